"""The pre-select manager: each conversation's person picks the one bot to talk to."""

from __future__ import annotations

from typing import Any

from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.bots.builtin.managing import ManagerBot
from tertulia.domain.model import MessageType, SystemEvent

DEFAULT_GREETING = "Choose a bot:"
DEFAULT_AFTER_CHOICE = 'You are now talking to {bot}. Send "{exit}" to choose another.'
CHOICE_KEY = "choice"
"""The key of the chosen bot's name in ``conversation_info.state``."""


class PreSelectManagerBot(ManagerBot):
    """A manager that lets the person choose a bot, then passes everything to it.

    The intended behaviour of BLAB's ``PreSelectManagerBot`` (PROTOCOL 7.5, fixed), with the
    choice kept in ``conversation_info.state`` so it survives restarts and workers:

    - On its own ``participant-joined`` system message: sends ``greeting`` with ``bots`` as
      ``options``. Other system messages are ignored.
    - A human message while no bot is chosen: a text equal (trimmed) to one of ``bots``
      chooses that bot and is answered with ``after_choice``; anything else is answered with
      the greeting again.
    - A human message once a bot is chosen: a text equal to ``exit_word`` (trimmed,
      case-insensitive) clears the choice and is answered with the greeting; anything else is
      redirected to the chosen bot (by name).
    - Another bot's message people cannot see yet (``approved`` false) is approved; its own
      and already approved messages are ignored.

    Only the ``bots`` that take part in the conversation are offered and can be chosen (a
    redirect to one that is not there is refused, and the person would get no answer).

    Its own texts are self-approved and quote the human message they answer. In
    ``after_choice``, ``{bot}`` stands for the chosen bot and ``{exit}`` for ``exit_word``.

    Built as ``PreSelectManagerBot(conversation_info, bots=[...], greeting=...,
    after_choice=..., exit_word=...)``, all keyword-only.
    """

    runs_on_loop = True  # decides at once and never blocks: no worker thread per message

    def __init__(
        self,
        conversation_info: ConversationInfo,
        *,
        bots: list[str],
        greeting: str = DEFAULT_GREETING,
        after_choice: str = DEFAULT_AFTER_CHOICE,
        exit_word: str = "exit",
    ) -> None:
        super().__init__(conversation_info)
        self.bots = list(bots)
        self.greeting = greeting
        self.after_choice = after_choice
        self.exit_word = exit_word

    def receive_message(self, message: ChatMessage) -> None:
        if message.type == MessageType.SYSTEM:
            if self._is_own_arrival(message):
                self._greet(None)
        elif message.sent_by_human and not self.is_own(message):
            self._on_human(message)
        elif self.is_unapproved_bot_message(message):
            self.approve(message.id)

    @property
    def state(self) -> dict[str, Any]:
        return self.conversation_info.state

    def _on_human(self, message: ChatMessage) -> None:
        text = (message.text or "").strip() if message.type == MessageType.TEXT else None
        choice = self._choice()
        if choice is None:
            if text is not None and text in self._offered():
                self.state[CHOICE_KEY] = text
                self.say(self._after_choice_text(text), quoted_message_id=message.id)
            else:
                self._greet(message.id)
        elif text is not None and text.casefold() == self.exit_word.strip().casefold():
            self.state.pop(CHOICE_KEY, None)
            self._greet(message.id)
        else:
            self.redirect(message.id, [choice])

    def _choice(self) -> str | None:
        """The chosen bot, or ``None`` (also when the stored one is no longer offered)."""
        choice = self.state.get(CHOICE_KEY)
        return choice if isinstance(choice, str) and choice in self._offered() else None

    def _offered(self) -> list[str]:
        """The configured bots that take part in this conversation, in configured order."""
        return [name for name in self.bots if self.has_bot(name)]

    def _greet(self, quoted_message_id: str | None) -> None:
        self.say(self.greeting, quoted_message_id=quoted_message_id, options=self._offered())

    def _after_choice_text(self, bot: str) -> str:
        # replace(), not format(): a user-supplied text may contain other braces.
        return self.after_choice.replace("{bot}", bot).replace("{exit}", self.exit_word)

    def _is_own_arrival(self, message: ChatMessage) -> bool:
        metadata = message.additional_metadata or {}
        return (
            message.event == SystemEvent.PARTICIPANT_JOINED
            and metadata.get("participant_id") == self.conversation_info.bot_participant_id
        )

"""A bot that answers people with any OpenAI-compatible chat-completions API.

Built on the official ``openai`` package (imported on first use). It works with OpenAI
itself and with the many servers that speak the same API (vLLM, llama.cpp's server,
Ollama, LiteLLM...): point ``base_url`` at them.

Contract:

- Answers human text messages only (``sent_by_human`` true, type ``T``; a manager may make
  any message look human with a redirect override). Each answer quotes the message.
- The prompt is ``system_prompt``, then the conversation's last ``context_messages``
  messages people could see before this one (people's as ``user`` turns, bots' as
  ``assistant`` turns, system events left out), at most ``context_chars`` characters of
  them (the newest kept: ten pasted texts of 4000 characters would overflow a small
  model's window, and every answer would be refused), then this message. The context is read
  with the server's ``recent_messages`` hook (:class:`tertulia.bots.base.BotServices`),
  not over REST.
- Requests go through the server's shared ``httpx.AsyncClient``. The ``openai`` client
  retries ``max_retries`` times, honouring ``Retry-After`` on 429, and retrying 408, 409,
  429, 5xx, timeouts and connection errors. When those fail for good one error line is
  logged ("LLM request failed") and the delivery fails, so the bot runner retries it later
  (the spec's ``retries``; each runner attempt repeats the client's retries, so keep
  ``retries`` small). Other errors (401, 400, 404...) are logged and not retried.
- Nothing is posted unless a whole completion arrived. An answer over the 4000-character
  limit is sent as several messages, each quoting the question.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from tertulia.bots.arguments import Seconds, bind_arguments
from tertulia.bots.base import Bot, BotFailed, ChatMessage, ConversationInfo
from tertulia.bots.external.urls import shown
from tertulia.domain.model import MessageType
from tertulia.errors import ConfigurationError

if TYPE_CHECKING:
    import openai

log = structlog.get_logger(__name__)
MAX_TEXT = 4000
RETRYABLE = frozenset({408, 409, 429})
DEFAULT_TIMEOUT = 60.0  # seconds per HTTP request
DEFAULT_RETRIES = 2  # the client's retries of one request
RETRY_WAIT = 120.0
"""Seconds the ``openai`` client may wait before one retry: its backoff stops at 8, but it
honours a ``Retry-After`` of up to two minutes (a rate limit saying when to come back)."""
ANSWER_MARGIN = 10.0  # seconds, past the requests', for a call to post its answer
KEPT_ANSWERS = 1000  # answers kept for a retry of their delivery (see receive_message)
_ANSWERS: OrderedDict[str, str] = OrderedDict()


class LLMFailed(BotFailed):
    """The completion could not be had after the client's retries (the runner retries)."""


async def _openai() -> Any:
    """The ``openai`` module, imported off the event loop the first time (it is large)."""
    return await asyncio.to_thread(importlib.import_module, "openai")


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` characters, at line or word breaks."""
    pieces = []
    rest = text.strip()
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _turn_text(message: dict[str, Any]) -> str:
    """A message as prompt text: its text, with a note for a file."""
    text = str(message.get("text") or "")
    if message.get("type") not in (None, "T"):
        what = message.get("file_name") or message.get("file_url") or "file"
        text = f"[{message['type']}: {what}] {text}".strip()
    return text


class OpenAIChatBot(Bot):
    """Answers each human text message with a chat completion.

    Args:
        conversation_info: as for every bot.
        model: the model name the API expects.
        base_url: the API's base URL (``https://api.openai.com/v1`` when None).
        api_key_env: name of the environment variable holding the API key; None or ``""``
            for servers that need none.
        system_prompt: the first, ``system``, turn; None for none.
        context_messages: how many earlier visible messages to include (0: none).
        context_chars: at most this many characters of them (the newest whole turns that
            fit; older ones are left out).
        temperature: sampling temperature; None for the API's default.
        max_tokens: cap on the answer's tokens; None for the API's default.
        timeout: seconds one HTTP request may take.
        max_retries: the ``openai`` client's retries of one request.

    Raises:
        ConfigurationError: ``api_key_env`` names an unset variable.
    """

    def __init__(
        self,
        conversation_info: ConversationInfo,
        *,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        system_prompt: str | None = None,
        context_messages: int = 10,
        context_chars: int = 12_000,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: Seconds = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_RETRIES,
    ) -> None:
        super().__init__(conversation_info)
        self.model = model
        self.base_url = base_url
        self.api_key = _api_key(api_key_env)
        self.system_prompt = system_prompt
        self.context_messages = max(0, context_messages)
        self.context_chars = max(0, context_chars)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries

    @classmethod
    def call_timeout(cls, kwargs: dict[str, Any]) -> float:
        """The runner's limit on one call when the spec sets none: every request the client
        may make (its retries and their waits included) and the answer's posting. Under the
        runner's default of 30 s a slow model would be cut off on every attempt, each one
        paid for, and never answer."""
        timeout = float(kwargs.get("timeout", DEFAULT_TIMEOUT))
        retries = max(0, int(kwargs.get("max_retries", DEFAULT_RETRIES)))
        return timeout * (retries + 1) + RETRY_WAIT * retries + ANSWER_MARGIN

    @classmethod
    def accepts_delivery(cls, kind: str, payload: dict[str, Any], participant_id: str) -> bool:
        """Human text messages only: nothing else is work for this bot."""
        return (
            kind == "message"
            and payload.get("sent_by_human") is True
            and payload.get("type") == MessageType.TEXT.value
        )

    @classmethod
    def check_config(cls, args: list[Any], kwargs: dict[str, Any]) -> None:
        """At the server's start (:mod:`tertulia.bots.checks`): the arguments, and the API
        key's variable, as the constructor would find them at every delivery.

        Raises:
            ConfigurationError: arguments that do not fit (``model`` missing, say) or of
                the wrong type (``temperature = "hot"``), or the key's variable unset or
                empty.
        """
        values = bind_arguments(
            cls,
            args,
            kwargs,
            usage="OpenAIChatBot takes kwargs model (required), base_url, api_key_env, …",
        )
        _api_key(values["api_key_env"])

    async def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human or message.type != MessageType.TEXT:
            return
        if not (message.text or "").strip():
            return
        delivery = self.conversation_info.delivery_id
        answer = _ANSWERS.get(delivery) if delivery is not None else None
        if answer is None:
            prompt = await self.prompt(message)
            answer = await self.complete(prompt, message)
            if not answer:
                return
            if delivery is not None:
                # Kept until every piece is sent: a retry after a failure halfway sends the
                # same answer (its pieces already stored are recognised by their local_id),
                # not the first pieces of one completion and the rest of another.
                _ANSWERS[delivery] = answer
                while len(_ANSWERS) > KEPT_ANSWERS:
                    _ANSWERS.popitem(last=False)
        for piece in split_text(answer):
            result = self.conversation_info.send_function(
                {"type": "T", "text": piece, "quoted_message_id": message.id}
            )
            if inspect.isawaitable(result):
                await result
        if delivery is not None:
            _ANSWERS.pop(delivery, None)

    async def prompt(self, message: ChatMessage) -> list[dict[str, str]]:
        """The chat-completions ``messages`` for answering ``message``."""
        turns: list[dict[str, str]] = []
        if self.system_prompt:
            turns.append({"role": "system", "content": self.system_prompt})
        context: list[dict[str, str]] = []
        budget = self.context_chars
        for earlier in reversed(await self._context(message)):
            text = _turn_text(earlier)
            if not text:
                continue
            if len(text) > budget:
                break  # this turn and older ones do not fit
            budget -= len(text)
            role = "user" if earlier.get("sent_by_human") else "assistant"
            context.append({"role": role, "content": text})
        turns.extend(reversed(context))
        turns.append({"role": "user", "content": message.text or ""})
        return turns

    async def _context(self, message: ChatMessage) -> list[dict[str, Any]]:
        """The visible messages before ``message``, system events left out, at most N."""
        services = self.conversation_info.services
        if self.context_messages == 0 or services is None or services.recent_messages is None:
            return []
        recent = await services.recent_messages(self.context_messages + 1)
        ids = [m.get("id") for m in recent]
        if message.id in ids:
            recent = recent[: ids.index(message.id)]
        else:  # e.g. a redirected copy of a message people cannot see
            recent = [m for m in recent if _parse_time(m.get("time")) <= message.time]
        earlier = [m for m in recent if m.get("type") != MessageType.SYSTEM.value]
        return earlier[-self.context_messages :]

    async def complete(self, prompt: list[dict[str, str]], message: ChatMessage) -> str | None:
        """One completion's text; None when the API refused (logged, not retried).

        Raises:
            LLMFailed: the request failed after the client's retries (worth retrying).
        """
        openai_module = await _openai()
        services = self.conversation_info.services
        own_client = services is None
        client: openai.AsyncOpenAI = openai_module.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            http_client=services.http if services is not None else None,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        bound = log.bind(
            conversation_id=self.conversation_info.conversation_id,
            participant_id=self.conversation_info.bot_participant_id,
            message_id=message.id,
            model=self.model,
            base_url=shown(str(client.base_url)),
        )
        try:
            completion = await client.chat.completions.create(
                model=self.model,
                messages=prompt,  # type: ignore[arg-type]
                **options,
            )
        except openai_module.APIStatusError as exc:
            status = exc.status_code
            retryable = status in RETRYABLE or status >= 500
            bound.error(
                "LLM request failed",
                status=status,
                attempts=self.max_retries + 1 if retryable else 1,
                error=str(exc),
                retried_later=retryable,
            )
            if retryable:
                raise LLMFailed(f"LLM answered {status}") from exc
            return None
        except openai_module.APIError as exc:  # connection errors and timeouts
            bound.error(
                "LLM request failed",
                attempts=self.max_retries + 1,
                error=f"{type(exc).__name__}: {exc}",
                retried_later=True,
            )
            raise LLMFailed(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # a 200 whose body is not JSON (a proxy's error page)
            bound.error("LLM answer unreadable", error=f"{type(exc).__name__}: {exc}")
            raise LLMFailed("the LLM's answer was not JSON") from exc
        finally:
            if own_client:
                await client.close()  # never close the server's shared client
        choice, text = _first_choice(completion)
        if text is None:
            # JSON, but no completion: no choices, a null message, content not a string.
            bound.error("LLM answer unreadable", error="no text in the first choice")
            raise LLMFailed("the LLM's answer held no text")
        if not text.strip():
            bound.warning(
                "LLM answered nothing", finish_reason=getattr(choice, "finish_reason", None)
            )
            return None
        if choice is not None and choice.finish_reason == "length":
            bound.info("LLM answer cut at max_tokens", max_tokens=self.max_tokens)
        return text


def _first_choice(completion: Any) -> tuple[Any, str | None]:
    """The first choice of a completion and its text ("" when the model said nothing), or
    None for the text when the answer is no completion at all (the client does not check:
    a proxy or a half-compatible server may send anything)."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        return None, None
    if not choices:
        return None, ""
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", "") if message is not None else None
    if content is None and message is not None:
        content = ""  # a message with no content: the model said nothing
    return choice, content if isinstance(content, str) else None


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _api_key(variable: str | None) -> str:
    """The API key from the environment variable ``variable`` ("unused" when None or "").

    Raises:
        ConfigurationError: the variable is unset or empty.
    """
    if not variable:
        return "unused"
    key = os.environ.get(variable, "")
    if not key:
        raise ConfigurationError(f"LLM API key variable {variable!r} is unset or empty")
    return key

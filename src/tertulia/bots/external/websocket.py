"""BLAB's WebSocket-triggered external bots (PROTOCOL 6.3).

The bot is a separate program. When its *participant-joined* message is delivered (after the
conversation is committed), the server creates a session valid only for that bot in that
conversation and POSTs ``{"conversation_id", "bot_participant_id", "session", "after"}``
as JSON to the configured URL; the bot then opens ``/ws/chat/<id>/`` with
``Cookie: sessionid=<session>`` and talks like any socket client. ``after`` (an extension;
BLAB's library reads only the first three keys) is the ``seq`` its first socket starts
after (``?after=``; the creation's last message), and, under a manager, ``copies_after``
(``0``) that of its redirected copies: where the server starts a socket that does not say.

A person writing while the bot has no socket triggers it again (:mod:`tertulia.recall`),
with ``after`` the ``seq`` before that person's message. A bot that
is connected when its trigger would go is not triggered. A retried trigger hands out a new
session and ends those of its earlier attempts, closing a socket open on one
(``ChatRegistry.new_bot_session``): a retry after a POST that timed out, though the bot had
taken it, started a second instance, and people saw every answer twice.

The POST runs in the bot runner, never in the request that created the conversation: a bot
that is down only costs retries with backoff (the spec's ``retries``, ``timeout``) and a log
line. The trigger URL is used as configured (BLAB's bot library listens on ``/``); only
``http`` and ``https`` are allowed, and since the session is a bearer secret, plain ``http``
should point at loopback or a private network. Only a 2xx answer counts: a redirect is not
followed (the session would go elsewhere) and fails like an error; the body is not read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog

from tertulia.bots.arguments import bind_arguments
from tertulia.bots.base import Bot, BotFailed, ChatMessage, ConversationInfo
from tertulia.bots.external.urls import shown
from tertulia.errors import ConfigurationError
from tertulia.recall import resume_point

log = structlog.get_logger(__name__)
TRIGGER_TIMEOUT = 5.0


class TriggerFailed(BotFailed):
    """The bot's trigger URL did not accept the POST."""


def _trigger_url(url: Any) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"external bot URL must be http(s)://host[:port]: {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class WebSocketExternalBot(Bot):
    """Starts an external bot by POSTing the trigger to ``url``.

    Args:
        conversation_info: as for every bot.
        url: the bot's trigger URL, ``http(s)://host:port[/path]`` (the query is dropped).
    """

    working_indicator = False  # its only delivery is the trigger: no work people wait for
    triggered = True  # started by the trigger, then over its own sockets (tertulia.recall)

    def __init__(
        self, conversation_info: ConversationInfo, url: str, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(conversation_info)
        self.url = _trigger_url(url)
        self.shown_url = shown(self.url)  # for logs and errors: no user or password

    @classmethod
    def check_config(cls, args: list[Any], kwargs: dict[str, Any]) -> None:
        """At the server's start (:mod:`tertulia.bots.checks`): the trigger URL, as the
        constructor would find it at every delivery.

        Raises:
            ConfigurationError: no URL, or not an http(s) one.
        """
        values = bind_arguments(cls, args, kwargs, usage="WebSocketExternalBot takes args = [url]")
        _trigger_url(values["url"])

    @classmethod
    def accepts_delivery(cls, kind: str, payload: dict[str, Any], participant_id: str) -> bool:
        """Only its own *participant-joined* matters (the rest reaches it over its socket)."""
        metadata = payload.get("additional_metadata") or {}
        return (
            kind == "message"
            and payload.get("event") == "participant-joined"
            and metadata.get("participant_id") == participant_id
        )

    async def receive_message(self, message: ChatMessage) -> None:
        info = self.conversation_info
        if not self.accepts_delivery(
            "message",
            {"event": message.event, "additional_metadata": message.additional_metadata},
            info.bot_participant_id,
        ):
            return
        if info.services is None:
            raise TriggerFailed("no server services available to trigger the bot")
        connected = info.services.connected
        if connected is not None and await connected():
            # (back already, or never gone: a recall that crossed its return)
            log.info(
                "external bot connected: not triggered",
                conversation_id=info.conversation_id,
                participant_id=info.bot_participant_id,
            )
            return
        # (A retry's ends the sessions of the attempts before it: one instance of the bot.)
        session = await (info.services.trigger_session or info.services.new_session)()
        body: dict[str, Any] = {
            "conversation_id": info.conversation_id,
            "bot_participant_id": info.bot_participant_id,
            "session": session,
        }
        # Called back (tertulia.recall): where to resume, so it answers what called it.
        for key in ("after", "copies_after"):
            point = resume_point(message.additional_metadata or {}, key)
            if point is not None:
                body[key] = point
        try:
            # Streamed and never read: the answer's body means nothing (and may be huge).
            async with info.services.http.stream(
                "POST", self.url, json=body, timeout=TRIGGER_TIMEOUT
            ) as response:
                status = response.status_code
        except Exception as exc:
            said = str(exc).replace(self.url, self.shown_url)
            raise TriggerFailed(
                f"cannot reach {self.shown_url}: {type(exc).__name__}: {said}"
            ) from exc
        if not 200 <= status < 300:
            # 3xx too: a redirect is not followed (the session would go elsewhere), and
            # taking it for success would leave the bot out with nothing said.
            raise TriggerFailed(f"{self.shown_url} answered {status}")
        log.info(
            "external bot triggered",
            conversation_id=info.conversation_id,
            participant_id=info.bot_participant_id,
            url=self.shown_url,
        )

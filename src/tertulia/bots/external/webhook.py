"""Webhook bots: each delivery is POSTed, signed, to an HTTP endpoint of the bot's own.

The wire contract (body, headers, answers) is in :mod:`tertulia.client.webhooks`, the side
bot authors read. Here:

- Which deliveries: every message routed to the bot (PROTOCOL 7.1: without a manager,
  every message, system messages included) except the bot's own. No status updates: the
  body carries the participant list instead.
- Delivery semantics come from the bot runner: the delivery is recorded before it is
  attempted, retried with backoff on failure (the spec's ``retries``), and the
  ``X-Tertulia-Delivery`` id is the same on every attempt, so the bot can skip a delivery
  it already handled. Inline answers sent again by a retried delivery are shown once (the
  runner derives their ``local_id`` from the delivery).
- Retried: connection errors, timeouts, and answers 408, 425, 429 and 5xx; also 1xx and
  3xx, which are not followed (the signed body and the session would go elsewhere), so a
  moved endpoint ends as a logged failure, never as a delivery silently done. Any other
  4xx means the bot refuses the delivery: logged, not retried.
- An inline answer is read up to :data:`MAX_ANSWER` bytes; a longer one is dropped unread
  (logged as an error, not retried: the bot would only send it again).
- The session in the body lets the bot post later over REST; it is valid only for this
  bot in this conversation. It is kept in the bot's state and reused for
  ``session_refresh`` seconds, then a fresh one is made (an unused session lapses after the
  server's ``bot_session_max_age``). The session is a bearer secret: use HTTPS, or
  loopback / a private network.
"""

from __future__ import annotations

import inspect
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import fields
from typing import Any

import httpx
import orjson
import structlog

from tertulia.bots.arguments import Seconds, bind_arguments
from tertulia.bots.base import Bot, BotFailed, ChatMessage, ConversationInfo
from tertulia.bots.external.urls import shown
from tertulia.client.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from tertulia.domain.times import format_time
from tertulia.errors import ConfigurationError, ConversationGone, TertuliaError

log = structlog.get_logger(__name__)
RETRYABLE = frozenset({408, 425, 429})
MAX_ANSWER = 1024 * 1024  # bytes of an inline answer read at most
DEFAULT_TIMEOUT = 10.0  # seconds per POST
ANSWER_MARGIN = 5.0  # seconds, past the POST's, for a call to post its answers
SESSION_STATE = "webhook_session"
RECENT_SESSIONS = 10_000  # bot participants whose latest session this process remembers
_RECENT: OrderedDict[str, dict[str, Any]] = OrderedDict()


class WebhookFailed(BotFailed):
    """The bot's endpoint did not take the delivery (the runner retries it)."""


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """``message`` as the WebSocket would show it (PROTOCOL 5.1, with its extensions)."""
    data = {f.name: getattr(message, f.name) for f in fields(message)}
    data["time"] = format_time(message.time)
    data["type"] = message.type.value
    keep = {"quoted_message_id", "local_id"} if message.type.value != "S" else set()
    return {k: v for k, v in data.items() if v is not None or k in keep}


async def _read_answer(response: httpx.Response) -> bytes | None:
    """The answer's body, or None when it is over :data:`MAX_ANSWER` bytes (the rest is
    never read: a huge or endless answer costs neither memory nor the bot's time limit)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER:
        return None
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > MAX_ANSWER:
            return None
    return bytes(content)


def _secret(url: str, secret_env: str) -> str:
    """The signing secret, once the URL is known good.

    Raises:
        ConfigurationError: a URL that is not http(s), or the variable unset or empty.
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"webhook URL must be http(s)://...: {url!r}")
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise ConfigurationError(f"webhook secret variable {secret_env!r} is unset or empty")
    return secret


def _kind(data: Any) -> str:
    """What a JSON value is, for a log line (``a JSON list``)."""
    names = {list: "a JSON list", str: "a JSON string", bool: "a JSON boolean"}
    if data is None:
        return "JSON null"
    return names.get(type(data), "a JSON number")


def delivery_header(info: ConversationInfo) -> str:
    """The idempotency id of the delivery being handled: stable across its retries (the
    runner's ``delivery_id``; a fresh one outside the runner)."""
    return info.delivery_id or str(uuid.uuid4())


class WebhookBot(Bot):
    """POSTs every message routed to it to ``url``, signed with the secret in ``secret_env``.

    Args:
        conversation_info: as for every bot.
        url: the bot's endpoint, ``http(s)://...``.
        secret_env: name of the environment variable holding the signing secret.
        timeout: seconds one POST may take (keep it below the spec's ``timeout``).
        session_refresh: seconds a session is reused before a fresh one is made.

    Raises:
        ConfigurationError: a bad URL, or the secret's variable is unset or empty.
    """

    def __init__(
        self,
        conversation_info: ConversationInfo,
        url: str,
        secret_env: str,
        *,
        timeout: Seconds = DEFAULT_TIMEOUT,
        session_refresh: Seconds = 3600.0,
    ) -> None:
        super().__init__(conversation_info)
        self.url = url
        self.shown_url = shown(url)  # for logs and errors: no user, password or query
        self.secret = _secret(url, secret_env).encode()
        self.timeout = timeout
        self.session_refresh = session_refresh

    @classmethod
    def check_config(cls, args: list[Any], kwargs: dict[str, Any]) -> None:
        """At the server's start (:mod:`tertulia.bots.checks`): the URL and the secret's
        variable, as the constructor would find them at every delivery.

        Raises:
            ConfigurationError: arguments that do not fit, a bad URL, or the secret's
                variable unset or empty.
        """
        values = bind_arguments(
            cls,
            args,
            kwargs,
            usage="WebhookBot takes args = [url, secret_env] (and kwargs timeout, session_refresh)",
        )
        _secret(values["url"], values["secret_env"])

    @classmethod
    def call_timeout(cls, kwargs: dict[str, Any]) -> float:
        """The runner's limit on one call when the spec sets none: the POST's own
        ``timeout`` and a few seconds to post the answers (docs/bots.md)."""
        return float(kwargs.get("timeout", DEFAULT_TIMEOUT)) + ANSWER_MARGIN

    @classmethod
    def accepts_delivery(cls, kind: str, payload: dict[str, Any], participant_id: str) -> bool:
        """Messages only, and not the bot's own."""
        return kind == "message" and payload.get("sender_id") != participant_id

    async def receive_message(self, message: ChatMessage) -> None:
        info = self.conversation_info
        if message.sender_id == info.bot_participant_id:
            return
        if info.services is None:
            raise WebhookFailed("no server services available to call the webhook")
        delivery = delivery_header(info)
        body = orjson.dumps(
            {
                "delivery_id": delivery,
                "conversation_id": info.conversation_id,
                "bot_participant_id": info.bot_participant_id,
                "session": await self._session(),
                "participants": info.participants,
                "message": wire_message(message),
            }
        )
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            DELIVERY_HEADER: delivery,
        }
        # Every line names the bot: its URL is shown cut short (no path, no query), so
        # several webhook bots on one host would look alike (docs/operations.md).
        bound = log.bind(
            bot=info.bot_name,
            conversation_id=info.conversation_id,
            participant_id=info.bot_participant_id,
            url=self.shown_url,
            delivery=delivery,
            message_id=message.id,
        )
        try:
            async with info.services.http.stream(
                "POST", self.url, content=body, headers=headers, timeout=self.timeout
            ) as response:
                status = response.status_code
                content = await _read_answer(response) if 200 <= status < 300 else b""
        except httpx.TimeoutException as exc:
            # (reached, maybe, but too slow: "cannot reach" sent operators to the network)
            raise WebhookFailed(
                f"{self.shown_url} did not answer within {self.timeout:g} s ({type(exc).__name__})"
            ) from exc
        except Exception as exc:
            said = str(exc).replace(self.url, self.shown_url)
            raise WebhookFailed(
                f"cannot reach {self.shown_url}: {type(exc).__name__}: {said}"
            ) from exc
        if status in RETRYABLE or status >= 500:
            raise WebhookFailed(f"{self.shown_url} answered {status}")
        if status < 200 or 300 <= status < 400:
            # Not handled: a redirect is not followed (the signed body and the session
            # would go to another address); the configured URL must be the final one.
            raise WebhookFailed(f"{self.shown_url} answered {status}, not followed: fix the URL")
        if status >= 400:
            bound.error("webhook refused the delivery", status=status)
            return
        if content is None:
            bound.error("webhook answer too large", limit=MAX_ANSWER)
            return
        await self._send_answers(content, bound)

    async def _session(self) -> str:
        """A session for the bot, reused while fresh enough: from its state, or, since a
        failed attempt's state is dropped, from this process's memory (else every attempt
        at a failing endpoint would make a new one)."""
        info = self.conversation_info
        assert info.services is not None
        now = time.time()
        for cached in (info.state.get(SESSION_STATE), _RECENT.get(info.bot_participant_id)):
            if isinstance(cached, dict) and now - float(cached.get("at", 0)) < self.session_refresh:
                info.state[SESSION_STATE] = cached
                return str(cached["key"])
        key = await info.services.new_session()
        made = {"key": key, "at": now}
        info.state[SESSION_STATE] = made
        _RECENT[info.bot_participant_id] = made
        _RECENT.move_to_end(info.bot_participant_id)
        while len(_RECENT) > RECENT_SESSIONS:
            _RECENT.popitem(last=False)
        return key

    async def _send_answers(self, content: bytes, bound: Any) -> None:
        """Send the inline answers ``{"messages": [...]}``; bad ones are logged and skipped,
        and so is an answer without the wrapper (an empty body, ``{}`` or ``"messages":
        null`` mean no answers)."""
        if not content.strip():
            return
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            bound.warning("webhook answer is not JSON; ignored")
            return
        if data == {}:
            return  # (nothing to say, as an empty body)
        if not isinstance(data, dict) or "messages" not in data:
            # A message sent bare, or a list of them: the bot forgot the wrapper, and would
            # otherwise never learn why nothing it answered is shown.
            what = "an object without messages" if isinstance(data, dict) else _kind(data)
            bound.warning(
                "webhook answer has no messages; ignored",
                answer=what,
                expected='{"messages": [...]}',
            )
            return
        answers = data["messages"]
        if answers is None:
            return
        if not isinstance(answers, list):
            bound.warning("webhook answer's messages is not a list; ignored")
            return
        for answer in answers:
            if not isinstance(answer, dict):
                bound.warning("webhook answer is not an object; skipped")
                continue
            try:
                result = self.conversation_info.send_function(answer)
                if inspect.isawaitable(result):
                    await result
            except ConversationGone:
                raise  # (deleted meanwhile: the runner drops the delivery)
            except TertuliaError as exc:
                # Retrying would only get the same answer refused again.
                bound.warning("webhook answer refused", code=exc.code, detail=exc.body())

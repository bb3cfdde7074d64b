"""One typed ``Settings``: environment variables ``TERTULIA_*`` plus an optional TOML file.

Precedence, highest first: values passed in code (tests), environment variables, the TOML
file (``--config FILE`` or ``TERTULIA_CONFIG``), the defaults below. Nested values use
``__`` in variable names (``TERTULIA_LIMITS__MAX_IMAGE_SIZE=0``).

:func:`load_settings` also checks that every bot spec can be imported, so that a bad
configuration stops start-up with one clear line instead of failing a request later.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import tomllib
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from tertulia.domain.ids import is_schema_name
from tertulia.errors import ConfigurationError
from tertulia.storage.database import check_url

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
_DAY = 24 * 3600  # seconds
_TEN_YEARS = 10 * 366 * _DAY  # seconds: a bound that keeps dates computable
_BROKER_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,32}")
_MILLION = 1_000_000
# Every number has an upper bound as well as a lower one: an absurd value (a lease of
# 1e12 s, a frame of 1e20 bytes) used to pass and then fail at start with an
# OverflowError, or fail every frame. The bounds are far beyond any sensible value.
# What ``allowed_hosts`` takes: a name or IPv4 address, ``*.`` and a domain, an IPv6
# address in brackets (as in a Host header), or ``*`` (Starlette's TrustedHostMiddleware).
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\]")
LIMIT_KEYS = (
    "MAX_ATTACHMENT_SIZE",
    "MAX_IMAGE_SIZE",
    "MAX_VIDEO_SIZE",
    "MAX_AUDIO_SIZE",
    "MAX_VOICE_SIZE",
)
# Tertulia's own key of ``[limits]``: the bytes one conversation's uploaded files may take
# in all. Not one of BLAB's five, so ``limits/`` (which BLAB's web client reads) leaves it
# out: it answers exactly those five (PROTOCOL 3.4).
FILES_BUDGET_KEY = "MAX_CONVERSATION_FILES_SIZE"
# A conversation's files: some 70 files at the largest attachment limit, or hundreds of
# phone photos; far more than a conversation with bots uses, yet a bound on what one
# participant (or a shared room's people) can pile up. The disk as a whole is kept by
# ``media_min_free``: a new conversation brings a new budget.
DEFAULT_FILES_BUDGET = 1024 * 1024 * 1024


class BotSpec(BaseModel):
    """A bot spec: BLAB's ``(module, class_name, required, args, kwargs)`` plus run limits.

    In TOML either a table (``[bots.ECHO]`` with ``module``, ``class``...) or BLAB's 5-item
    array ``["module", "Class", false, [], {}]``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    module: str
    class_name: str = Field(alias="class")
    required: bool = False
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=_DAY,
        description="seconds one call may take (default: what the class asks for, "
        "else 30; see docs/bots.md)",
    )
    retries: int = Field(default=3, ge=0, le=100, description="further attempts after a failure")
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="deliveries run at once for this bot, across conversations "
        "(default: 4 for plain methods, each call holding a worker thread; 64 for async ones)",
    )

    def resolve(self) -> type:
        """Import the module and find the class (a dotted path inside the module is allowed).

        Raises:
            ConfigurationError: the module or class cannot be found (the message names
                neither the bot nor the setting: :meth:`Settings.check` adds them).
        """
        try:
            target: Any = importlib.import_module(self.module)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import module {self.module!r}: {exc}") from exc
        except Exception as exc:  # (its code fails: a syntax error, an exception it raises)
            raise ConfigurationError(
                f"cannot import module {self.module!r}: {_failure_at(exc)}"
            ) from exc
        for part in self.class_name.split("."):
            found = getattr(target, part, None)
            if found is None:
                close = difflib.get_close_matches(part, _public_names(target), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"class {self.class_name!r} not found in module {self.module!r}{hint}"
                )
            target = found
        if not isinstance(target, type):
            raise ConfigurationError(f"{self.module}.{self.class_name} is not a class")
        return target


def _failure_at(exc: Exception) -> str:
    """An import's failure in one line: the exception, and the file and line it came from
    (a syntax error says its own)."""
    said = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, SyntaxError):
        said += f" ({frames[-1].filename}, line {frames[-1].lineno})"
    return said


def _public_names(namespace: object) -> list[str]:
    """The names a module (or class) offers that do not start with ``_``."""
    return [name for name in dir(namespace) if not name.startswith("_")]


DEFAULT_RATE_LIMITS = {
    "create": "60/minute",
    "join": "120/minute",
    "handshake": "300/minute",
    "message": "30/second",
    # A manager answers for everyone in its conversation: a redirect for each person's
    # message, an approval for each bot's answer. Ten times a person's rate carries a
    # conversation of several people and bots at full speed; it is still a limit, so a
    # manager stuck in a loop cannot flood the database and every socket.
    "manager": "300/second",
    # A rename is a write and a ``state`` frame (every participant's name) to every socket
    # of the conversation: 1,500 renames in a few seconds sent one listener 16 MB (QA). A
    # person renames now and then (a typo mended at once included): ten a minute.
    "rename": "10/minute",
}


# The most requests a rate limit may allow per period: more is no limit at all (and "" says
# so); the counter backends hold it easily.
MAX_RATE_AMOUNT = 1_000_000


def _default_bots() -> dict[str, BotSpec]:
    return {
        "ECHO": BotSpec(module="tertulia.bots.builtin", class_name="UpperCaseEchoBot"),
        "Calculator": BotSpec(module="tertulia.bots.builtin", class_name="CalculatorBot"),
    }


def _default_limits() -> dict[str, int]:
    limits = {key: (25 if key == "MAX_VIDEO_SIZE" else 15) * MiB for key in LIMIT_KEYS}
    return {**limits, FILES_BUDGET_KEY: DEFAULT_FILES_BUDGET}


class Settings(BaseSettings):
    """Tertulia's configuration. Every field can be set in TOML or as ``TERTULIA_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="TERTULIA_", env_nested_delimiter="__", extra="forbid"
    )

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=255,
        description="address serve listens on (its --host wins): a name or an IP address",
    )
    port: int = Field(
        default=8000, ge=0, le=65535, description="port serve listens on (its --port wins)"
    )
    database_url: str = "sqlite+aiosqlite:///./tertulia.db"
    database_schema: str | None = Field(
        default=None,
        description="PostgreSQL schema to use (created by migrate): a plain SQL identifier",
    )
    auto_migrate: bool = Field(default=True, description="run migrations when serve starts")
    broker_url: str = Field(
        default="memory://",
        pattern=r"^(memory|redis|rediss|unix)://",
        description="memory:// (one process) or redis://host:port/db (rediss://, unix://)",
    )
    broker_prefix: str | None = Field(
        default=None,
        description="with Redis, names this installation's channels and keys apart from "
        "another's on the same database number: letters, digits, _ or -, at most 32",
    )
    # Off unless asked for, as BLAB's CHAT_ENABLE_ROOMS is when absent: with rooms on anyone
    # may list, join and read every conversation (PROTOCOL 9 #37: rooms stay opt-in).
    rooms: bool = Field(default=False, description="BLAB's CHAT_ENABLE_ROOMS")
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="host names requests may be sent to (against DNS rebinding): "
        "chat.example.com, *.example.com, [2001:db8::1], or *; unset: only localhost, "
        "127.0.0.1 and [::1] on a connection to a loopback address, any on another",
    )
    manager: str | None = Field(default=None, description="BLAB's CHAT_BOT_MANAGER")
    limits: dict[str, Annotated[int, Field(ge=0, le=TiB)]] = Field(default_factory=_default_limits)
    bots: dict[str, BotSpec] = Field(default_factory=_default_bots)

    media_root: Path = Path("./media")
    media_min_free: int = Field(
        default=GiB,
        ge=0,
        le=1024 * TiB,
        description="bytes an upload must leave free on media_root's file system, else it "
        "is refused (507); 0: no floor",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description="delete conversations with no message for this many days, files "
        "included; each server process looks at start and then hourly",
    )
    external_files: Literal["everyone", "bots"] = "everyone"

    session_max_age: int = Field(default=14 * 24 * 3600, gt=0, le=_TEN_YEARS)
    bot_session_max_age: int = Field(
        default=24 * 3600,
        gt=0,
        le=_TEN_YEARS,
        description="idle seconds before an external bot's session lapses",
    )
    session_cookie_secure: bool = False
    session_cookie_samesite: Literal["lax", "strict", "none"] = "lax"

    presence_grace: float = Field(
        default=2.0, ge=0, le=3600, description="seconds a participant may be away before 'left'"
    )
    bot_recall: float = Field(
        default=15.0,
        ge=0,
        le=_DAY,
        description="an external (WebSocket) bot with no socket open, when a person writes, "
        "is triggered again (its program restarted, its socket dropped for good, or its "
        "trigger failed), at most once per this many seconds per bot and server process; "
        "0: never",
    )
    presence_lease: float = Field(
        default=60.0,
        ge=1,
        le=_DAY,
        description="seconds after which a person the transcript says is here, with no "
        "socket on any process (a restart closed it, or its process died), is announced as "
        "having left (plus presence_grace; checked every half lease); with Redis, also how "
        "long a socket counts as present after its process last renewed it (four times per "
        "lease), so a dead process's people show offline this long after",
    )
    bot_poll_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="seconds between checks for bot deliveries left behind by a process "
        "that died (and renewals of this process's claims)",
    )
    bot_delivery_lease: float = Field(
        default=30.0,
        gt=0,
        le=_DAY,
        description="seconds a process's claim on its bot deliveries lasts unless renewed: "
        "after a crash, the others take them over this long after",
    )
    ws_max_message: int = Field(default=64 * 1024, ge=1024, le=64 * MiB)
    ws_send_queue: int = Field(
        default=1000, ge=10, le=_MILLION, description="frames queued per socket"
    )
    ws_max_sockets_per_participant: int = Field(
        default=20,
        ge=1,
        le=_MILLION,
        description="open WebSockets one participant may hold (per process with Redis); "
        "one more is closed at once with 4429",
    )
    history_max_limit: int | None = Field(default=None, ge=1, le=_MILLION)
    max_participants: int = Field(default=1000, ge=2, le=_MILLION)
    rate_limits: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="per client address (create, join), client (handshake: address, session "
        "and conversation) or participant (message; "
        "manager: the manager bot's messages and commands, instead of message; rename); "
        "'' switches one off",
    )

    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    production: bool = False
    metrics: bool = Field(
        default=False,
        description="serve GET /metrics (Prometheus): activity anyone who reaches it can read",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin.strip() == "*":
                raise ValueError(
                    "'*' would let every site send requests with people's cookies and read "
                    "the answers: list the origins"
                )
            parts = urlsplit(origin.strip())
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(f"not an origin (http(s)://host[:port]): {origin!r}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("an empty list would refuse every request: list the host names")
        hosts = [host.strip().lower() for host in value]
        for given, host in zip(value, hosts, strict=True):
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(
                    f"not a host name or pattern (chat.example.com, *.example.com, "
                    f"203.0.113.7, [2001:db8::1] or *; no scheme, no port): {given!r}"
                )
        return hosts

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # (checked here: a URL SQLAlchemy cannot parse was "start-up failed: ArgumentError",
        # status 1, which a supervisor restarts for ever, rather than 2)
        try:
            check_url(value)
        except ConfigurationError as exc:
            raise ValueError(exc.detail) from None
        return value

    @field_validator("database_schema")
    @classmethod
    def _schema_name(cls, value: str | None) -> str | None:
        # (the rule `tertulia copy --target-schema` follows; checked here, a bad name was a
        # traceback from inside migrate or serve, status 1 or 3 rather than 2)
        if value is not None and not is_schema_name(value):
            raise ValueError(
                f"invalid database schema name {value!r}: a plain SQL identifier in lower "
                "case (a letter or _, then letters, digits or _; at most 63)"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_database(cls, value: str) -> str:
        # redis-py takes a path that is not a number for database 0: a typo (/1O) would put
        # an installation on another's database, where only the number keeps them apart
        parsed = urlsplit(value)
        if parsed.scheme in ("redis", "rediss"):
            number = parsed.path.strip("/")
            if number and not (number.isascii() and number.isdigit()):
                raise ValueError(
                    f"the Redis database must be a number (redis://host:6379/0), not {number!r}"
                )
        return value

    @field_validator("broker_prefix")
    @classmethod
    def _broker_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _BROKER_PREFIX.fullmatch(value):
            raise ValueError(
                f"invalid broker prefix {value!r}: letters, digits, _ or - (at most 32)"
            )
        return value

    @field_validator("bots", mode="before")
    @classmethod
    def _blab_tuples(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for name, spec in value.items():
            if isinstance(spec, list | tuple):
                if len(spec) != 5:
                    raise ValueError(
                        f"bot {name!r}: a spec array needs 5 items "
                        f"(module, class, required, args, kwargs), got {len(spec)}"
                    )
                module, class_name, required, args, kwargs = spec
                spec = {
                    "module": module,
                    "class": class_name,
                    "required": required,
                    "args": args,
                    "kwargs": kwargs,
                }
            out[name] = spec
        return out

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("limits", mode="before")
    @classmethod
    def _upper_limit_keys(cls, value: Any) -> Any:
        # Environment variables arrive lower-cased (TERTULIA_LIMITS__MAX_IMAGE_SIZE). A limit
        # left out keeps its default: setting one must not refuse every other kind of file
        # (BLAB's CHAT_LIMITS counted a missing key as 0; here 0 is written out).
        if not isinstance(value, dict):
            return value
        return {**_default_limits(), **{str(k).upper(): v for k, v in value.items()}}

    @field_validator("limits")
    @classmethod
    def _limit_keys(cls, value: dict[str, int]) -> dict[str, int]:
        known = [*LIMIT_KEYS, FILES_BUDGET_KEY]
        unknown = set(value) - set(known)
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; known: {known}")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        from limits import parse

        unknown = set(value) - set(DEFAULT_RATE_LIMITS)
        if unknown:
            known = list(DEFAULT_RATE_LIMITS)
            raise ValueError(f"unknown rate limit(s) {sorted(unknown)}; known: {known}")
        for name, rule in value.items():
            if not rule:
                continue
            amount = parse(rule).amount  # raises ValueError with the library's message
            if amount < 1:
                # (0 elsewhere turns a setting off; here it would refuse every request)
                raise ValueError(f'{name}: {rule!r} refuses everything; "" turns it off')
            if amount > MAX_RATE_AMOUNT:
                raise ValueError(f"{name}: {rule!r} is over {MAX_RATE_AMOUNT:,} per period")
        return {**DEFAULT_RATE_LIMITS, **value}

    def check(self) -> None:
        """Check what a field validator cannot: bots importable, manager among them.

        Raises:
            ConfigurationError: with one clear line.
        """
        for name, spec in self.bots.items():
            if not name or len(name) > 50:
                raise ConfigurationError(f"bot name {name!r} must be 1-50 characters")
            try:
                spec.resolve()
            except ConfigurationError as exc:
                raise ConfigurationError(f"bot {name!r}: {exc.detail}") from exc
        if self.manager is not None and self.manager not in self.bots:
            close = [n for n in self.bots if n.casefold() == self.manager.casefold()]
            hint = (
                f"; did you mean {close[0]!r}? (a bot defined only by environment variables "
                "has a lower-case name)"
                if close
                else ""
            )
            raise ConfigurationError(f"manager {self.manager!r} is not among the bots{hint}")
        check_url(self.database_url, self.database_schema, schema_name="database_schema")
        if self.production and not self.session_cookie_secure:
            raise ConfigurationError("production needs session_cookie_secure = true (HTTPS)")
        if self.session_cookie_samesite == "none" and not self.session_cookie_secure:
            raise ConfigurationError("session_cookie_samesite = 'none' needs a secure cookie")

    @property
    def chat_limits(self) -> dict[str, int]:
        """The five limits, a missing key counting as 0 (PROTOCOL 3.4)."""
        return {key: int(self.limits.get(key, 0)) for key in LIMIT_KEYS}

    @property
    def files_budget(self) -> int:
        """``limits.MAX_CONVERSATION_FILES_SIZE``: the bytes one conversation's uploaded
        files may take in all (0: no file is taken)."""
        return int(self.limits.get(FILES_BUDGET_KEY, DEFAULT_FILES_BUDGET))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


class _Values(PydanticBaseSettingsSource):
    """A settings source over a plain dict (the TOML file's contents)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class _EnvBotNames(PydanticBaseSettingsSource):
    """The environment variables, their bots named as in the file.

    Variable names are case-insensitive, so pydantic-settings lower-cases a bot's name
    (``TERTULIA_BOTS__ECHO__CLASS`` reads as bot ``echo``), which made a second bot beside
    the file's ``ECHO``. A name is matched to the file's bots whatever its case, and then
    changes the fields it names of that bot; two bots of the file that differ only in case
    make it ambiguous, and refused. A bot only in variables keeps the lower-case name.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource, names: list[str]
    ) -> None:
        super().__init__(settings_cls)
        self._env = env
        self._names = names

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._env.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self._env()
        bots = values.get("bots")
        if isinstance(bots, dict):
            values["bots"] = {self._file_name(str(name)): spec for name, spec in bots.items()}
        return values

    def _file_name(self, name: str) -> str:
        same = [known for known in self._names if known.casefold() == name.casefold()]
        if len(same) > 1:
            raise ConfigurationError(
                f"environment variables for bot {name!r} could mean any of the file's bots "
                f"{same} (variable names ignore case): give those bots names that differ "
                "by more than case"
            )
        return same[0] if same else name


def _looks_like_a_bot(value: Any) -> bool:
    """A bot spec: BLAB's array (5 items, or the old 4: module and class first, kwargs
    last) or a table naming a module or class."""
    if isinstance(value, list | tuple) and len(value) in (4, 5):
        module, class_name, *_, kwargs = value
        return isinstance(module, str) and isinstance(class_name, str) and isinstance(kwargs, dict)
    return isinstance(value, dict) and ("module" in value or "class" in value)


def _toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _format_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"])
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")  # (our validators' own words)
        if error["type"] == "extra_forbidden":
            # A key that names no setting, in the file (a typo, say): said as for a
            # misspelt environment variable, with the setting it is close to.
            message = "is not a setting"
            if len(error["loc"]) == 1 and _looks_like_a_bot(error.get("input")):
                # (a bot written at the top of the file, not in [bots]: QA followed the
                # README's one-line array there)
                message += f"; did you mean [bots.{_toml_key(where)}]?"
            elif len(error["loc"]) == 1:
                close = difflib.get_close_matches(where, sorted(Settings.model_fields), n=1)
                if close:
                    message += f"; did you mean {close[0]}?"
        parts.append(f"{where}: {message}" if where else message)
    if any(e["type"] == "missing" and e["loc"][:1] == ("bots",) for e in exc.errors()):
        # (QA: a variable meant to change the default ECHO, which is no file's bot)
        parts.append(
            "a bot only in environment variables needs its module and class; the default "
            "ECHO and Calculator are changed by defining them in the file"
        )
    return "; ".join(parts)


def _refuse_misspelt_variables(environ: Mapping[str, str]) -> None:
    """A ``TERTULIA_*`` variable close to a setting's name but not one is a typo that
    would leave the default in place unnoticed (SQLite where PostgreSQL was meant).
    Others of the prefix (an example bot's ``TERTULIA_URL``) are not the server's.

    Raises:
        ConfigurationError: naming the variable and the setting it is close to.
    """
    fields = {f"TERTULIA_{name.upper()}" for name in Settings.model_fields}
    known = sorted(fields | {"TERTULIA_CONFIG"})  # sorted: the suggestion is stable
    for variable in environ:
        upper = variable.upper()
        if not upper.startswith("TERTULIA_") or upper in known:
            continue
        # A nested key (TERTULIA_LIMITS__MAX_IMAGE_SIZE): the part before ``__`` names the
        # setting, and is the part compared (the key after it would drown a typo in it).
        prefix, nested, _ = upper.partition("__")
        if nested and prefix in fields:
            continue  # (the key itself is checked by the setting's own validation)
        close = difflib.get_close_matches(
            prefix, sorted(fields) if nested else known, n=1, cutoff=0.85
        )
        if close:
            meant = f"{close[0]}__{variable[len(prefix) + 2 :]}" if nested else close[0]
            raise ConfigurationError(f"{variable} is not a setting; did you mean {meant}?")


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the configuration and check it.

    Args:
        config_file: a TOML file; defaults to ``$TERTULIA_CONFIG`` when set.
        overrides: field values that win over everything else.

    Raises:
        ConfigurationError: unreadable file, invalid values, or bots that cannot be loaded.
    """
    _refuse_misspelt_variables(os.environ)
    path = config_file or os.environ.get("TERTULIA_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            file_values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from exc

    class _FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            file_bots = file_values.get("bots")
            names = [str(name) for name in file_bots] if isinstance(file_bots, dict) else []
            return (
                init_settings,
                _EnvBotNames(settings_cls, env_settings, names),
                _Values(settings_cls, file_values),
            )

    try:
        loaded = _FileSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {_format_error(exc)}") from exc
    except SettingsError as exc:  # an environment variable that is not valid JSON, say
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        hint = (
            " (a list or table in an environment variable is JSON, e.g. "
            "TERTULIA_ALLOWED_ORIGINS='[\"https://chat.example\"]')"
            if "EnvSettingsSource" in str(exc)
            else ""
        )
        raise ConfigurationError(f"invalid configuration: {exc}{cause}{hint}") from exc
    # A plain Settings of the values read, not validated again: pydantic-settings'
    # validation reads the environment once more (the class has a custom __init__), under
    # the values given, and so merged the variables' bots in a second time, as they come.
    settings = Settings.model_construct(_fields_set=loaded.model_fields_set, **dict(loaded))
    settings.check()
    return settings

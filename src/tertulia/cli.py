"""``tertulia serve | migrate | bots | export | copy | delete``: parse, load Settings, call."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import socket
import sys
from collections.abc import Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from tertulia.errors import ConfigurationError, SchemaNewer, TertuliaError, describe
from tertulia.logs import configure_logging
from tertulia.settings import Settings, load_settings

STARTUP_FAILURE = 3  # uvicorn's status when the application does not start
YOUNG_COLLECTION_EVERY = 10_000  # new container objects between young collections (700)
T = TypeVar("T")


class _Failed(Exception):
    """A command's work failed and said so in one line; the status to end with."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _say(line: str) -> None:
    print(f"tertulia: {line}", file=sys.stderr)


def _count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 conversation``, ``2 conversations`` (``noun`` singular; its plural with an s
    unless given)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


# what ``copy`` calls each table's rows: (one, several)
_ROWS = {
    "conversations": ("conversation", "conversations"),
    "participants": ("participant", "participants"),
    "messages": ("message", "messages"),
    "sessions": ("session", "sessions"),
    "session_participations": ("session participation", "session participations"),
    "deliveries": ("delivery", "deliveries"),
    "copies": ("message copy", "message copies"),
    "bot_states": ("bot state", "bot states"),
}


def _run(
    work: Coroutine[Any, Any, T], failed: str, *, wrong: tuple[type[TertuliaError], ...] = ()
) -> T:
    """Run a command's work. When it fails, one line on stderr and :class:`_Failed`: status
    2 for a configuration error, a database a newer version migrated, and the errors of
    ``wrong`` (an argument that cannot work, such as an output file that cannot be written;
    in their own words), as for the arguments the parser refuses; 1 for anything else, in
    the error's own words for Tertulia's (unreachable, not empty, an older schema), else
    ``<failed>: Type: reason``.
    A closed standard output (``BrokenPipeError``) is left to the caller."""
    # (SchemaNewer: a newer version migrated the database; starting again would not help)
    final: tuple[type[TertuliaError], ...] = (SchemaNewer, *wrong)
    try:
        return asyncio.run(work)
    except ConfigurationError as exc:
        _say(f"configuration error: {exc.detail}")
        raise _Failed(2) from None
    except BrokenPipeError:
        raise
    except final as exc:
        _say(exc.detail)
        raise _Failed(2) from None
    except TertuliaError as exc:
        _say(exc.detail)
        raise _Failed(1) from None
    except Exception as exc:
        _say(f"{failed}: {describe(exc)}")  # (a bare TimeoutError: its name alone)
        raise _Failed(1) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tertulia", description="Tertulia chat controller")
    parser.add_argument("--config", help="TOML configuration file (default: $TERTULIA_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        """A subcommand; ``--config`` is also taken after it (``tertulia serve --config``)."""
        sub = commands.add_parser(name, help=summary, description=description)
        sub.add_argument(
            "--config",
            dest="sub_config",
            metavar="CONFIG",
            help="TOML configuration file (default: $TERTULIA_CONFIG)",
        )
        return sub

    serve = command("serve", "run the server (migrates the database first)")
    serve.add_argument(
        "--host", help="address to listen on (default: the host setting, else 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, help="port (default: the port setting, else 8000)")
    migrate = command(
        "migrate",
        "bring the database schema up to date (or to an older revision, with --to)",
        "Bring the database schema up to date, or to REVISION: an older one takes it down, "
        "for an earlier release of Tertulia (stop every server on the database first; what "
        "the later revisions added is dropped). docs/operations.md, Databases.",
    )
    migrate.add_argument(
        "--to", metavar="REVISION", help="a schema revision of this version, or head (default)"
    )
    command("bots", "list the configured bots")
    export = command(
        "export",
        "write conversations as JSON Lines, one per line (all, or those named)",
        "Write conversations as JSON Lines (docs/operations.md, Exports): each "
        "with its participants and every stored message, hidden ones included.",
    )
    export.add_argument("conversation_ids", nargs="*", metavar="CONVERSATION_ID")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    copy = command(
        "copy",
        "copy the whole database into another, empty one (SQLite to PostgreSQL)",
        "Copy every conversation, message, session and bot delivery of the "
        "configured database into TARGET_URL, which must be empty (docs/operations.md). "
        "Stop the server first: what it writes after the copy began is not copied.",
    )
    copy.add_argument("target_url", metavar="TARGET_URL", help="SQLAlchemy URL of the target")
    copy.add_argument("--target-schema", help="PostgreSQL schema of the target")
    remove = command(
        "delete",
        "erase conversations: their messages, participants, deliveries and files",
        "Erase each conversation named (and, with --idle-before, each whose last "
        "message is older), whole, with its uploaded files (docs/operations.md). Running "
        "servers close its sockets (4404): at once with a Redis broker, else at its next use.",
    )
    remove.add_argument("conversation_ids", nargs="*", metavar="CONVERSATION_ID")
    remove.add_argument(
        "--idle-before",
        metavar="DATE",
        type=_moment,
        help="also every conversation whose last visible message is older than DATE "
        "(ISO 8601, UTC)",
    )
    return parser


def _moment(value: str) -> datetime:
    """A command line's date or date-time (ISO 8601; naive is UTC)."""
    from tertulia.domain.times import parse_query_time

    try:
        return parse_query_time(value)
    except TertuliaError:
        raise argparse.ArgumentTypeError(f"not a date or date-time: {value!r}") from None


def serve(settings: Settings, listener: socket.socket) -> None:
    """Run the server on ``listener`` (bound by :func:`tertulia.preflight.listen`)."""
    import uvicorn

    from tertulia.web.app import create_app
    from tertulia.web.httpprotocol import HttpProtocol
    from tertulia.web.wsprotocol import WebSocketProtocol

    app = create_app(settings)
    # What start-up built (modules, the app, the schema) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it on every round.
    gc.collect()
    gc.freeze()
    # A young collection every 10,000 new container objects rather than 700: a message
    # makes a few hundred, most gone by its end, and the collector's rounds were 3 % of the
    # instructions of an answered message (bench.instructions).
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=HttpProtocol,  # httptools, with a request's head bounded in size and time
        ws=WebSocketProtocol,  # websockets-sansio, aborting connections stuck in closing
        ws_max_size=settings.ws_max_message,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    host, port = listener.getsockname()[:2]
    url = (
        f"http://[{host}]:{port}" if listener.family == socket.AF_INET6 else f"http://{host}:{port}"
    )

    class Server(uvicorn.Server):
        """uvicorn's server, saying where it listens (it does only on sockets it bound)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                structlog.get_logger(__name__).info("listening", url=url)

    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn.run's handling, on our socket
        server.run(sockets=[listener])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = getattr(args, "sub_config", None) or args.config
    _find_bot_modules_beside(config or os.environ.get("TERTULIA_CONFIG"))
    try:
        settings = load_settings(config)
    except ConfigurationError as exc:
        _say(f"configuration error: {exc.detail}")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        status = _command(args, settings)
        sys.stdout.flush()  # (a reader gone shows here, not at the interpreter's exit)
    except _Failed as failure:
        return failure.status
    except BrokenPipeError:
        return _reader_gone()
    return status


def _reader_gone() -> int:
    """Standard output's reader went away (``tertulia export | head``): stop quietly with
    status 0, as Unix tools do, writing nothing more to it (not even at exit, where Python
    would flush what is buffered and complain of it)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _find_bot_modules_beside(config: str | None) -> None:
    """Let bot modules kept beside the configuration file (or, without one, in the current
    directory) be imported, as ``python -m tertulia`` would from there: the ``tertulia``
    command, unlike ``python -m``, puts no directory of the user's on the import path.
    Searched last, so that a file there never hides an installed package."""
    folder = str(Path(config).resolve().parent) if config else os.getcwd()
    if folder not in sys.path:
        sys.path.append(folder)


def _command(args: argparse.Namespace, settings: Settings) -> int:
    from tertulia.preflight import check_services

    if args.command == "serve":
        from tertulia.preflight import CannotListen, hold_database, listen

        try:
            listener = listen(
                settings.host if args.host is None else args.host,
                settings.port if args.port is None else args.port,
            )
        except CannotListen as exc:
            _say(exc.detail)
            return 1
        with listener, contextlib.ExitStack() as held:
            _run(check_services(settings, broker=True), "start-up failed")
            try:
                held.enter_context(hold_database(settings))  # (until the server ends)
            except ConfigurationError as exc:
                _say(f"configuration error: {exc.detail}")
                return 2
            serve(settings, listener)
    elif args.command == "migrate":
        from tertulia.storage.migrate import is_below, known_revisions, migrate, revision_at

        known = known_revisions()
        if args.to is not None and args.to not in (*known, "head"):
            _say(
                f"configuration error: --to {args.to!r} is not a schema revision of this "
                f"version: {known[0]} to {known[-1]}, or head"
            )
            return 2
        to = None if args.to == "head" else args.to
        url, schema = settings.database_url, settings.database_schema
        _run(check_services(settings, broker=False), "migrate failed")
        down = to is not None and is_below(to, _run(revision_at(url, schema), "migrate failed"))
        with contextlib.ExitStack() as held:
            if down and settings.is_sqlite:
                from tertulia.storage.sqlite import single_server

                why = "stop it before taking the database down to an older schema"
                try:
                    held.enter_context(single_server(url, why))
                except ConfigurationError as exc:
                    _say(f"configuration error: {exc.detail}")
                    return 2
            before, after = _run(migrate(url, schema, to), "migrate failed")
        if before != after:
            direction = "down " if down else ""
            print(
                f"database migrated {direction}from schema revision {before or 'none'} to {after}"
            )
        elif to is None or to == known[-1]:
            print(f"database already up to date (schema revision {after})")
        else:
            print(f"database already at schema revision {after}")
        from tertulia.ownership import claim_files

        # (an upgrade marks media_root as this database's before a copy could look at it)
        owner = asyncio.run(
            claim_files(settings.database_url, settings.database_schema, settings.media_root)
        )
        if owner is not None:
            _say(_not_the_owner(settings, owner))
    elif args.command == "bots":
        from tertulia.bots.checks import check_bots

        try:
            check_bots(settings.bots)  # what each bot's class says of its arguments
        except ConfigurationError as exc:
            _say(f"configuration error: {exc.detail}")
            return 2
        for name, spec in settings.bots.items():
            role = " (manager)" if name == settings.manager else ""
            required = " required" if spec.required else ""
            print(f"{name}{role}: {spec.module}.{spec.class_name}{required}")
    elif args.command == "export":
        return export(settings, args.conversation_ids, args.output)
    elif args.command == "copy":
        return copy(settings, args.target_url, args.target_schema)
    elif args.command == "delete":
        if not args.conversation_ids and args.idle_before is None:
            _say("delete needs conversation ids or --idle-before")
            return 2
        return delete(settings, args.conversation_ids, args.idle_before)
    return 0


def copy(settings: Settings, target_url: str, target_schema: str | None) -> int:
    """``tertulia copy``: 0 when every row was copied, 1 when the source or the target
    cannot be reached (within :data:`~tertulia.preflight.CONNECT_TIMEOUT`), the target is
    not empty, the source is not at this code's schema, or the copy failed; 2 for a
    configuration error."""
    from tertulia.files.store import OWNER_MARK
    from tertulia.ownership import claim_files
    from tertulia.preflight import check_database, check_existing
    from tertulia.storage.copying import copy_database
    from tertulia.storage.database import check_url, display_place

    async def run() -> tuple[dict[str, int], str | None]:
        # (the arguments first: before reaching anything)
        check_url(target_url, target_schema, schema_name="--target-schema")
        await check_existing(settings)  # (the source)
        copied = await copy_database(
            settings.database_url,
            settings.database_schema,
            target_url,
            target_schema,
            check_target=check_database,
        )
        # (marked as the source's before anything runs on the copy, if it was not yet)
        owner = await claim_files(
            settings.database_url, settings.database_schema, settings.media_root
        )
        return copied, owner

    try:
        copied, owner = _run(run(), "copy failed")
    except _Failed as failure:
        return failure.status
    where = display_place(target_url, target_schema)
    counts = ", ".join(
        _count(rows, *_ROWS.get(table, (table, table))) for table, rows in copied.items()
    )
    _say(f"copied {counts} into {where}")
    root = settings.media_root.resolve()
    if not root.is_dir():
        return 0  # (no files)
    if owner is None:
        _say(
            f"the uploaded files stay in media_root {root}, the source's: a server or "
            "tertulia delete on the copy deletes none of them. Moving to the copy rather "
            f"than keeping it? Remove {root / OWNER_MARK} before its first start"
        )
    else:  # (the source is itself a copy sharing it)
        _say(
            f"the uploaded files stay in media_root {root}, which holds the files of the "
            f"database at {owner[:300]}: neither the source nor the copy deletes them"
        )
    return 0


def delete(
    settings: Settings, conversation_ids: list[str], idle_before: datetime | None = None
) -> int:
    """``tertulia delete``: 0 when every conversation named was deleted, 1 when the
    database or a Redis broker cannot be reached (within
    :data:`~tertulia.preflight.CONNECT_TIMEOUT`: nothing is deleted then), some id names
    none, or the deletion failed, 2 for a configuration error."""
    from tertulia.deleting import Deleted, delete_conversations
    from tertulia.preflight import check_existing

    async def run() -> Deleted:
        await check_existing(settings, broker=True)
        return await delete_conversations(
            settings.database_url,
            settings.database_schema,
            settings.media_root,
            conversation_ids,
            idle_before,
            settings.broker_url,
            settings.broker_prefix,
        )

    try:
        done = _run(run(), "delete failed")
    except _Failed as failure:
        return failure.status
    kept = f", {done.kept} kept (written to since they were listed idle)" if done.kept else ""
    if done.files_owner is not None and done.conversations:
        _say(f"their files were kept: {_not_the_owner(settings, done.files_owner)}")
    return _finish(
        done.missing,
        f"deleted {_count(done.conversations, 'conversation')}, "
        f"{_count(done.messages, 'message')}, {_count(done.files, 'file')}{kept}",
    )


def _not_the_owner(settings: Settings, owner: str) -> str:
    from tertulia.files.store import OWNER_MARK

    return (
        f"media_root {settings.media_root.resolve()} holds the files "
        f"of the database at {owner[:300]} (its {OWNER_MARK} says so), not this one's; a copy "
        "needs a media_root of its own (docs/operations.md, 'Copies and files')"
    )


def export(settings: Settings, conversation_ids: list[str], output: str | None) -> int:
    """``tertulia export``: 0 when every conversation asked for was written or standard
    output's reader stopped reading (``| head``), 1 when the database cannot be reached
    (within :data:`~tertulia.preflight.CONNECT_TIMEOUT`), some id names none or the export
    failed, 2 for a configuration error or an ``output`` that cannot be written."""
    from tertulia.exporting import CannotWrite, export_database
    from tertulia.preflight import check_existing

    work = export_database(
        settings.database_url,
        settings.database_schema,
        conversation_ids,
        output,
        sys.stdout.buffer,
        check=functools.partial(check_existing, settings),  # (once the output file is made)
    )
    try:
        # (fails with the database unreachable, its schema older than this code, a disk full)
        done = _run(work, "export failed", wrong=(CannotWrite,))
    except _Failed as failure:
        return failure.status
    except BrokenPipeError:
        return _reader_gone()  # (``tertulia export | head``): nothing went wrong
    return _finish(
        done.missing,
        f"exported {_count(done.conversations, 'conversation')}, "
        f"{_count(done.messages, 'message')}",
    )


def _finish(missing: list[str], summary: str) -> int:
    """The last lines of a command over named conversations (one per id that named none,
    then ``summary``) and its status: 1 when some id named none, else 0."""
    for conversation_id in missing:
        _say(f"no conversation {conversation_id}")
    _say(summary)
    return 1 if missing else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

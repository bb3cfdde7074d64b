"""The command line: migrate, bots, and configuration errors."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from tertulia import cli, preflight
from tertulia.cli import main
from tertulia.storage.migrate import alembic_config


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tertulia.toml"
    path.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\n{extra}', encoding="utf-8"
    )
    return path


def test_migrate_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tertulia migrate` brings a new database to the current schema, and says what it
    did: the revisions it went from and to, or that there was nothing to do (found by QA:
    it said "database is up to date" either way)."""
    from tertulia.storage.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert main(["migrate", "--config", str(config(tmp_path))]) == 0
    assert capsys.readouterr().out == f"database migrated from schema revision none to {head}\n"
    assert (tmp_path / "cli.db").exists()
    assert main(["migrate", "--config", str(config(tmp_path))]) == 0
    assert capsys.readouterr().out == f"database already up to date (schema revision {head})\n"


def test_migrate_from_an_older_revision_names_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database one revision behind is said to be migrated from that one to the head."""
    from tertulia.storage.migrate import alembic_config, upgrade

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_current_head()
    older = scripts.get_revision(head).down_revision
    assert isinstance(older, str)
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", revision=older)
    assert main(["migrate", "--config", str(config(tmp_path))]) == 0
    assert capsys.readouterr().out == f"database migrated from schema revision {older} to {head}\n"


def test_migrate_to_an_older_revision_goes_down_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Going back to an earlier release: that release refuses a database a newer one
    migrated, so the newer one takes it down first (`migrate --to`), to the older one's
    revision; a plain `migrate` brings it up again. Rows stay."""
    from tertulia.storage.migrate import revision_at

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_current_head()
    assert head is not None
    older = scripts.get_revision(scripts.get_revision(head).down_revision).revision
    path, url = config(tmp_path), f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert main(["migrate", "--config", str(path)]) == 0
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        connection.execute(
            "INSERT INTO conversations (id, name, created_at, ended, last_seq)"
            " VALUES ('c1', 'kept', '2026-12-07 00:00:00', 0, 0)"
        )
    capsys.readouterr()
    assert main(["migrate", "--config", str(path), "--to", older]) == 0
    assert capsys.readouterr().out == (
        f"database migrated down from schema revision {head} to {older}\n"
    )
    assert asyncio.run(revision_at(url)) == older
    assert main(["migrate", "--config", str(path), "--to", older]) == 0
    assert capsys.readouterr().out == f"database already at schema revision {older}\n"
    assert main(["migrate", "--config", str(path), "--to", "head"]) == 0
    assert capsys.readouterr().out == (
        f"database migrated from schema revision {older} to {head}\n"
    )
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        assert connection.execute("SELECT name FROM conversations").fetchall() == [("kept",)]


def test_migrate_to_a_revision_it_does_not_know_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A revision this version does not have (a typo, a newer release's, ``base``, which
    would drop every table) is refused in one line that lists what it has; nothing is made."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = [r.revision for r in scripts.walk_revisions()]
    first, last = min(revisions), max(revisions)
    for wrong in ["9999", "base", "-1", "0001:0002", ""]:
        assert main(["migrate", "--config", str(config(tmp_path)), "--to", wrong]) == 2
        assert capsys.readouterr().err == (
            f"tertulia: configuration error: --to {wrong!r} is not a schema revision of this "
            f"version: {first} to {last}, or head\n"
        )
    assert not (tmp_path / "cli.db").exists()


def test_migrate_down_under_a_running_server_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server serving the newer schema would meet tables and columns gone under it: with
    SQLite, where a server holds the file's lock, going down waits for no one and is
    refused in one line (going up, as ever, is not: the server refuses an older schema)."""
    from tertulia.storage.migrate import revision_at
    from tertulia.storage.sqlite import single_server

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_current_head()
    older = scripts.get_revision(head).down_revision
    assert isinstance(older, str)
    path, database = config(tmp_path), tmp_path / "cli.db"
    assert main(["migrate", "--config", str(path)]) == 0
    capsys.readouterr()
    with single_server(f"sqlite+aiosqlite:///{database}"):
        assert main(["migrate", "--config", str(path), "--to", older]) == 2
        assert main(["migrate", "--config", str(path), "--to", head]) == 0
    assert capsys.readouterr().err == (
        f"tertulia: configuration error: another server is running on the SQLite database "
        f"{database} (it holds {database}.lock): stop it before taking the database down to "
        "an older schema\n"
    )
    assert asyncio.run(revision_at(f"sqlite+aiosqlite:///{database}")) == head


def test_bots_lists_the_configured_bots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tertulia bots` prints each bot with its class, marking the manager and required ones."""
    extra = (
        'manager = "Boss"\n'
        '[bots.ECHO]\nmodule = "tertulia.bots.builtin"\nclass = "UpperCaseEchoBot"\n'
        "required = true\n"
        '[bots.Boss]\nmodule = "tertulia.bots.builtin"\nclass = "TransparentManagerBot"\n'
    )
    assert main(["--config", str(config(tmp_path, extra)), "bots"]) == 0
    out = capsys.readouterr().out
    assert "ECHO: tertulia.bots.builtin.UpperCaseEchoBot required" in out
    assert "Boss (manager): tertulia.bots.builtin.TransparentManagerBot" in out


def test_bots_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`tertulia bots | head -1` whose reader has gone: status 0, nothing on stderr (no
    BrokenPipeError traceback, no "Exception ignored")."""
    reading, writing = os.pipe()
    os.close(reading)  # (the reader is gone before a byte is written: EPIPE, every time)
    tertulia = str(Path(sys.executable).parent / "tertulia")
    try:
        finished = subprocess.run(
            [tertulia, "--config", str(config(tmp_path)), "bots"],
            stdout=writing,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writing)
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == b""


def test_a_bad_configuration_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken config exits with status 2 and a single line on stderr, no traceback."""
    assert main(["bots", "--config", str(config(tmp_path, 'manager = "Ghost"'))]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tertulia: configuration error: manager 'Ghost' is not among the bots"


def test_a_bot_module_beside_the_configuration_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``module = "mybots"`` for a ``mybots.py`` beside ``tertulia.toml`` works with the
    ``tertulia`` command run from anywhere (before: "No module named 'mybots'" unless
    PYTHONPATH said where, which no doc did)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mybots_beside", raising=False)
    (tmp_path / "mybots_beside.py").write_text(
        "from tertulia.bots.builtin import UpperCaseEchoBot\n\n"
        "class Shouter(UpperCaseEchoBot):\n    pass\n",
        encoding="utf-8",
    )
    extra = '[bots.Shout]\nmodule = "mybots_beside"\nclass = "Shouter"\n'
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["bots", "--config", str(config(tmp_path, extra))]) == 0
    assert "Shout: mybots_beside.Shouter" in capsys.readouterr().out


def test_a_misspelt_key_in_the_file_names_the_setting_it_is_close_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a misspelt environment variable does (before: "Extra inputs are not permitted")."""
    assert main(["bots", "--config", str(config(tmp_path, 'brokr_url = "redis://x"'))]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "tertulia: configuration error: invalid configuration: "
        "brokr_url: is not a setting; did you mean broker_url?"
    )


def refused_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_with_the_database_down_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL refuses the connection: `tertulia serve` exits 1 with one line naming the
    database (its password hidden) and the reason, before any server starts."""
    url = f"postgresql+asyncpg://postgres:secret@127.0.0.1:{refused_port()}/test"
    path = tmp_path / "tertulia.toml"
    path.write_text(f'database_url = "{url}"\n', encoding="utf-8")
    assert main(["serve", "--config", str(path), "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "tertulia: cannot reach the database at postgresql+asyncpg://postgres:***@"
    )
    assert "secret" not in err
    assert len(err.splitlines()) == 1


def test_migrate_into_a_missing_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tertulia.toml"
    missing = tmp_path / "no" / "such" / "dir" / "t.db"
    path.write_text(f'database_url = "sqlite+aiosqlite:///{missing}"\n', encoding="utf-8")
    assert main(["migrate", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"tertulia: cannot reach the database at sqlite+aiosqlite:///{missing}: "
        "unable to open database file"
    )


@pytest.mark.parametrize(
    "command",
    [["serve", "--port", "0"], ["migrate"], ["export"], ["delete", "x"], ["copy"]],
    ids=lambda command: command[0],
)
def test_a_database_that_never_answers_gives_up_in_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """A host that accepts the connection and says nothing (a hung server, a proxy with
    nothing behind it): every command that reaches the database gives up after
    CONNECT_TIMEOUT, not asyncpg's 60 s, in one line, status 1 (found by QA: export, delete
    and copy's source waited 60 s, then said 'export failed: TimeoutError: ')."""
    monkeypatch.setattr(preflight, "CONNECT_TIMEOUT", 0.3)
    target = tmp_path / "copy.db"
    if command == ["copy"]:
        command = ["copy", f"sqlite+aiosqlite:///{target}"]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test"
        monkeypatch.setenv("TERTULIA_DATABASE_URL", url)
        began = time.monotonic()
        assert main(command) == 1
        assert time.monotonic() - began < 10
    assert capsys.readouterr().err.strip() == (
        f"tertulia: cannot reach the database at {url}: no answer within 0.3 s"
    )
    assert not target.exists()


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["delete", "x"]], ids=lambda c: c[0])
def test_a_broker_that_never_answers_gives_up_in_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    """A Redis broker that accepts the connection and says nothing: `serve`, and `delete`
    (which announces each deletion on it), give up after CONNECT_TIMEOUT with the same
    line, status 1, before anything is deleted (found by QA: delete said 'delete failed:
    TimeoutError: Timeout reading from ...')."""

    def started(*args: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(cli, "serve", started)
    assert main(["migrate", "--config", str(config(tmp_path))]) == 0
    capsys.readouterr()
    # (After the migration: under load, CI, its SQLite file took longer than 0.3 s to open.)
    monkeypatch.setattr(preflight, "CONNECT_TIMEOUT", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        extra = f'broker_url = "redis://:secret@127.0.0.1:{port}/0"'
        began = time.monotonic()
        assert main([*command, "--config", str(config(tmp_path, extra))]) == 1
        assert time.monotonic() - began < 10
    assert capsys.readouterr().err.strip() == (
        f"tertulia: cannot reach the broker at redis://:***@127.0.0.1:{port}/0: "
        "no answer within 0.3 s"
    )


def test_serve_with_the_broker_down_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = f'broker_url = "redis://:secret@127.0.0.1:{refused_port()}/0"'
    assert main(["serve", "--config", str(config(tmp_path, extra)), "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: cannot reach the broker at redis://:***@127.0.0.1:")
    assert "secret" not in err


def test_serve_on_a_taken_port_is_one_line_and_opens_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Something listens on the port already (another server, say on the same database):
    `tertulia serve` exits 1 with one line naming the address, before it opens the
    database, runs migrations or resumes any bot delivery."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--config", str(config(tmp_path)), "--host", "127.0.0.1"]
        assert main([*argv, "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"tertulia: cannot listen on 127.0.0.1:{port}: address already in use"
    assert not (tmp_path / "cli.db").exists()


def test_bots_says_a_webhook_secret_is_unset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tertulia bots` checks what `serve` checks, so a configuration can be tried first."""
    monkeypatch.delenv("CLI_TEST_UNSET_SECRET", raising=False)
    extra = (
        '[bots.Reverse]\nmodule = "tertulia.bots.external"\nclass = "WebhookBot"\n'
        'args = ["http://127.0.0.1:18141/hook", "CLI_TEST_UNSET_SECRET"]\n'
    )
    assert main(["bots", "--config", str(config(tmp_path, extra))]) == 2
    assert capsys.readouterr().err.strip() == (
        "tertulia: configuration error: bot 'Reverse': webhook secret variable "
        "'CLI_TEST_UNSET_SECRET' is unset or empty"
    )


def test_serve_with_a_webhook_secret_unset_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook bot whose secret variable is unset cannot sign a delivery: `tertulia
    serve` exits 2 with one line naming the bot and the variable, before it opens the
    database (it used to start, then fail every delivery, retried, for good)."""
    monkeypatch.delenv("CLI_TEST_UNSET_SECRET", raising=False)

    def started(*args: object) -> None:
        raise AssertionError("the server started")  # (rather than serve until killed)

    monkeypatch.setattr(cli, "serve", started)
    extra = (
        '[bots.Reverse]\nmodule = "tertulia.bots.external"\nclass = "WebhookBot"\n'
        'args = ["http://127.0.0.1:18141/hook", "CLI_TEST_UNSET_SECRET"]\n'
    )
    assert main(["serve", "--config", str(config(tmp_path, extra)), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "tertulia: configuration error: bot 'Reverse': webhook secret variable "
        "'CLI_TEST_UNSET_SECRET' is unset or empty"
    )
    assert not (tmp_path / "cli.db").exists()

    monkeypatch.setenv("CLI_TEST_UNSET_SECRET", "")  # empty is no secret either
    assert main(["serve", "--config", str(config(tmp_path, extra)), "--port", "0"]) == 2
    assert "'CLI_TEST_UNSET_SECRET' is unset or empty" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """(Found by QA: a traceback from bind().)"""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", port])
    assert exited.value.code == 2
    assert f"{port!r} is not a port (0-65535)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ("[]", "WebSocketExternalBot takes args = [url]: missing a required argument: 'url'"),
        ('["notaurl"]', "external bot URL must be http(s)://host[:port]: 'notaurl'"),
        ("[5]", "url = 5: Input should be a valid string"),
    ],
)
def test_an_external_bot_without_a_trigger_url_is_refused_at_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: str, said: str
) -> None:
    """(Found by QA: the server started, then failed every delivery.)"""
    extra = (
        f'[bots.W]\nmodule = "tertulia.bots.external"\nclass = "WebSocketExternalBot"\n'
        f"args = {args}\n"
    )
    assert main(["bots", "--config", str(config(tmp_path, extra))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: configuration error: bot 'W': ")
    assert said in err


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        (
            'class = "CalcOrEchoManagerBot"\n'
            'kwargs = { calculator_botname = "Calculator", echo_bot_name = "ECHO" }',
            "bot 'B': CalcOrEchoManagerBot: got an unexpected keyword argument "
            "'calculator_botname'; did you mean calculator_bot_name?",
        ),
        (
            'class = "CalcOrEchoManagerBot"\nkwargs = { echo_bot_name = "ECHO" }',
            "bot 'B': CalcOrEchoManagerBot: missing a required argument: "
            "'calculator_bot_name' (it takes calculator_bot_name, echo_bot_name)",
        ),
        (
            'class = "CalculatorBot"\nargs = [0, 1]',
            "bot 'B': CalculatorBot: too many positional arguments (it takes delay)",
        ),
    ],
)
def test_arguments_a_bot_class_does_not_take_are_refused_at_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, said: str
) -> None:
    """(Found by QA: the README's manager with a misspelt keyword passed `tertulia bots`
    and `serve`, then failed every delivery with a TypeError, retried.)"""
    extra = f'[bots.B]\nmodule = "tertulia.bots.builtin"\n{spec}\n'
    assert main(["bots", "--config", str(config(tmp_path, extra))]) == 2
    assert capsys.readouterr().err.strip() == f"tertulia: configuration error: {said}"


def test_a_bot_class_taking_any_arguments_takes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A class whose constructor takes *args and **kwargs (BLAB's Bot) is not second-guessed."""
    extra = (
        '[bots.W]\nmodule = "tertulia.bots.external"\nclass = "WebSocketExternalBot"\n'
        'args = ["http://127.0.0.1:18141/", 2]\nkwargs = { anything = 1 }\n'
    )
    assert main(["bots", "--config", str(config(tmp_path, extra))]) == 0
    assert "W: tertulia.bots.external.WebSocketExternalBot" in capsys.readouterr().out


BAD_PLACES = {
    "schema": (
        {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/x", "DATABASE_SCHEMA": 'bad"n'},
        "invalid configuration: database_schema: invalid database schema name 'bad\"n': a "
        "plain SQL identifier in lower case (a letter or _, then letters, digits or _; at most "
        "63)",
    ),
    "schema of SQLite": (
        {"DATABASE_SCHEMA": "qa"},
        "database_schema is for PostgreSQL: a SQLite database has none (leave it unset, or "
        "use a file of its own)",
    ),
    "unparsed URL": (
        {"DATABASE_URL": "garbage"},
        "invalid configuration: database_url: not a database URL (sqlite+aiosqlite:///path/"
        "to.db or postgresql+asyncpg://user:password@host:5432/name)",
    ),
    "Redis database": (
        {"BROKER_URL": "redis://127.0.0.1:6379/1O"},
        "invalid configuration: broker_url: the Redis database must be a number "
        "(redis://host:6379/0), not '1O'",
    ),
}


@pytest.mark.parametrize("command", ["migrate", "serve", "export", "bots"])
@pytest.mark.parametrize("bad", BAD_PLACES)
def test_a_database_or_broker_that_cannot_be_is_a_configuration_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    bad: str,
) -> None:
    """(Found by QA: a bad schema name ended migrate and serve in a traceback, status 1 or
    3, which systemd restarts; export blamed the database; bots said nothing. So did a
    schema set for SQLite, SQLite's 'near "SCHEMA": syntax error'; a URL SQLAlchemy cannot
    parse was status 1; a Redis database that is not a number was taken for 0.) Status 2,
    one line."""
    variables, said = BAD_PLACES[bad]
    for name, value in variables.items():
        monkeypatch.setenv(f"TERTULIA_{name}", value)
    assert main([command, "--config", str(config(tmp_path))]) == 2
    assert capsys.readouterr().err.strip() == f"tertulia: configuration error: {said}"


def test_serve_with_a_media_root_it_cannot_write_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Found by QA: the server started, said it was healthy, then answered every upload
    500.) Status 2, naming the media root, before the database is opened. (A path through
    a plain file: the tests may run as root, whom modes do not stop.)"""

    def started(*args: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(cli, "serve", started)
    (tmp_path / "plain").write_text("not a directory", encoding="utf-8")
    root = tmp_path / "plain" / "media"
    extra = f'media_root = "{root}"\n'
    assert main(["serve", "--config", str(config(tmp_path, extra)), "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tertulia: configuration error: media_root {root} cannot be written: "
        f"[Errno 20] Not a directory: '{root / 'tmp'}'"
    )
    assert not (tmp_path / "cli.db").exists()


def test_a_server_taking_no_uploads_needs_no_media_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every upload limit 0 (a read-only deployment): the media root is not checked, and a
    root it cannot write does not stop it (before: refused to start)."""
    started: list[object] = []
    monkeypatch.setattr(cli, "serve", lambda *args: started.append(args))
    (tmp_path / "plain").write_text("not a directory", encoding="utf-8")
    kinds = ("ATTACHMENT", "IMAGE", "VIDEO", "AUDIO", "VOICE")
    limits = "".join(f"MAX_{kind}_SIZE = 0\n" for kind in kinds)
    extra = f'media_root = "{tmp_path / "plain" / "media"}"\n[limits]\n{limits}'
    assert main(["serve", "--config", str(config(tmp_path, extra)), "--port", "0"]) == 0
    assert len(started) == 1


def test_serve_checks_the_media_root_with_a_file_written_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A media root that can be written is made (tmp and chat), and the probe leaves nothing."""
    seen: list[list[Path]] = []

    def started(settings: object, listener: object) -> None:
        seen.append(sorted((tmp_path / "media").rglob("*")))

    monkeypatch.setattr(cli, "serve", started)
    extra = f'media_root = "{tmp_path / "media"}"\n'
    assert main(["serve", "--config", str(config(tmp_path, extra)), "--port", "0"]) == 0
    assert seen == [[tmp_path / "media" / "chat", tmp_path / "media" / "tmp"]]


def test_a_second_server_on_one_sqlite_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Found by QA: two servers on one SQLite file both started, then refused each other's
    messages at random with 409s.) The first holds a lock beside the file for its life; a
    second `serve` ends with one line, status 2."""
    from tertulia.storage.sqlite import single_server

    def started(*args: object) -> None:
        raise AssertionError("the second server started")

    monkeypatch.setattr(cli, "serve", started)
    database = tmp_path / "cli.db"
    with single_server(f"sqlite+aiosqlite:///{database}"):  # (the first server)
        assert main(["serve", "--config", str(config(tmp_path)), "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tertulia: configuration error: another server is running on the SQLite database "
        f"{database} (it holds {database}.lock): SQLite serves one process; for several, "
        "use PostgreSQL"
    )


def test_a_second_server_through_a_symbolic_link_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Found by QA: a second `serve` on a link to the file, from another directory,
    started: the lock was taken beside the path as written.) The lock is the real file's,
    beside it, and the line names the real file."""
    from tertulia.storage.sqlite import single_server

    def started(*args: object) -> None:
        raise AssertionError("the second server started")

    monkeypatch.setattr(cli, "serve", started)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    database = first / "tertulia.db"
    (second / "link.db").symlink_to(database)
    monkeypatch.chdir(first)
    with single_server("sqlite+aiosqlite:///./tertulia.db"):  # (the first server, in a/)
        monkeypatch.chdir(second)
        monkeypatch.setenv("TERTULIA_DATABASE_URL", "sqlite+aiosqlite:///./link.db")
        assert main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tertulia: configuration error: another server is running on the SQLite database "
        f"{database} (it holds {database}.lock): SQLite serves one process; for several, "
        "use PostgreSQL"
    )
    assert not (second / "link.db.lock").exists()


@pytest.mark.parametrize("command", ["serve", "migrate", "export", "delete"])
def test_a_sqlite_uri_filename_is_a_configuration_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """(Found by QA: a second `serve` on ``file:/path?uri=true`` started beside the first,
    taking no lock.) Tertulia opens a SQLite database by its file's path, where a URI's
    parameters would be dropped: every command refuses one, status 2, naming the URL to
    write instead."""

    def started(*args: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(cli, "serve", started)
    database = tmp_path / "tertulia.db"
    monkeypatch.setenv("TERTULIA_DATABASE_URL", f"sqlite+aiosqlite:///file:{database}?uri=true")
    argv = {"serve": ["--port", "0"], "delete": ["x"]}.get(command, [])
    assert main([command, *argv]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tertulia: configuration error: SQLite URI filenames are not supported "
        f"(file:{database}): name the file, as in sqlite+aiosqlite:///{database}"
    )
    assert not database.exists()


def test_serve_holds_the_sqlite_lock_while_it_runs_and_no_longer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the server runs, the lock is taken; once it has ended, it is free again."""
    from tertulia.errors import ConfigurationError
    from tertulia.storage.sqlite import single_server

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    refused: list[str] = []

    def running(*args: object) -> None:
        with pytest.raises(ConfigurationError) as second, single_server(url):
            pass  # pragma: no cover
        refused.append(second.value.detail)

    monkeypatch.setattr(cli, "serve", running)
    assert main(["serve", "--config", str(config(tmp_path)), "--port", "0"]) == 0
    assert len(refused) == 1
    assert refused[0].startswith("another server is running")
    with single_server(url):  # released at the end
        pass


def test_an_error_without_words_is_named_not_followed_by_an_empty_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database that goes silent during an export ends it with asyncpg's bare
    ``TimeoutError()``: the line names it, without a dangling ``: `` (QA)."""

    async def work() -> None:
        raise TimeoutError

    with pytest.raises(cli._Failed) as failed:
        cli._run(work(), "export failed")
    assert failed.value.status == 1
    assert capsys.readouterr().err == "tertulia: export failed: TimeoutError\n"


@pytest.mark.parametrize("command", ["serve", "migrate", "export", "delete"])
def test_a_database_a_newer_version_migrated_ends_every_command_with_status_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """(Upgrade QA: an old release started on an upgraded database ended with status 1,
    which the documented systemd unit restarts every 2 s for ever.) Starting again would
    not help, as for a configuration error: status 2, one line."""
    path = config(tmp_path)
    assert main(["migrate", "--config", str(path)]) == 0
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    monkeypatch.setattr(cli, "serve", lambda *_: pytest.fail("served"))
    capsys.readouterr()
    extra = {"serve": ["--port", "0"], "delete": ["--idle-before", "2000-01-01"]}
    assert main([command, "--config", str(path), *extra.get(command, [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: the database at ")
    assert "at schema revision 9999, which this version" in err
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"that version's `tertulia migrate --to {head}`" in err, "how to go back"
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("def f(:\n", r"SyntaxError: invalid syntax \(.*qa_broken_\w+\.py, line 1\)"),
        (
            "x = 1\nraise RuntimeError('boom at import')\n",
            r"RuntimeError: boom at import \(.*qa_broken_\w+\.py, line 2\)",
        ),
    ],
    ids=["syntax", "raises"],
)
def test_a_bot_module_that_fails_to_import_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    said: str,
) -> None:
    """A bot's module with a syntax error, or one that raises as it is imported, is a
    configuration error like a missing module (status 2, one line with the file and line),
    not a traceback and status 1, which the documented systemd unit restarts for ever
    (QA of bot authors and of operators)."""
    module = f"qa_broken_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    extra = f'[bots.X]\nmodule = "{module}"\nclass = "Bot"\n'
    for command in (["bots"], ["serve", "--port", "0"]):
        monkeypatch.setattr(cli, "serve", _never_served)
        assert main([command[0], "--config", str(config(tmp_path, extra)), *command[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert re.fullmatch(
            rf"tertulia: configuration error: bot 'X': cannot import module '{module}': {said}",
            err,
        ), err
    assert not (tmp_path / "cli.db").exists()


def test_a_bot_class_without_receive_message_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A class with no ``receive_message`` (misspelt, say) is refused at start: it used to
    start, and every delivery to it was marked done without a word (bot authors' QA)."""
    module = f"qa_no_method_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "class NotABot:\n"
        "    def __init__(self, conversation_info):\n"
        "        pass\n\n"
        "    def recieve_message(self, message):\n"
        "        pass\n",
        encoding="utf-8",
    )
    extra = f'[bots.X]\nmodule = "{module}"\nclass = "NotABot"\n'
    assert main(["bots", "--config", str(config(tmp_path, extra))]) == 2
    assert capsys.readouterr().err.strip() == (
        "tertulia: configuration error: bot 'X': NotABot has no receive_message(message) "
        "method (docs/bots.md); did you mean 'recieve_message'?"
    )


def _never_served(*args: object) -> None:
    raise AssertionError("the server started")


def _listening_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> tuple[str, int]:
    """Where `tertulia serve` with ``argv`` (and the environment) would listen."""
    bound: list[tuple[str, int]] = []

    def started(settings: object, listener: socket.socket) -> None:
        bound.append(listener.getsockname()[:2])

    monkeypatch.setattr(cli, "serve", started)
    assert main(["serve", "--config", str(config(tmp_path)), *argv]) == 0
    return bound[0]


def test_the_address_can_be_set_by_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TERTULIA_HOST and TERTULIA_PORT (a container's way) are settings like the others;
    before, they were ignored without a word and the server listened on 127.0.0.1:8000."""
    port = free_port()
    monkeypatch.setenv("TERTULIA_HOST", "::1" if socket.has_ipv6 else "127.0.0.1")
    monkeypatch.setenv("TERTULIA_PORT", str(port))
    host, bound = _listening_address(tmp_path, monkeypatch, [])
    assert (host, bound) == ("::1" if socket.has_ipv6 else "127.0.0.1", port)


def test_the_command_line_wins_over_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERTULIA_PORT", str(free_port()))
    port = free_port()
    assert _listening_address(tmp_path, monkeypatch, ["--port", str(port)]) == (
        "127.0.0.1",
        port,
    )


def test_the_address_can_be_set_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    path = config(tmp_path, f'host = "127.0.0.1"\nport = {port}\n')
    bound: list[tuple[str, int]] = []
    monkeypatch.setattr(cli, "serve", lambda s, listener: bound.append(listener.getsockname()[:2]))
    assert main(["serve", "--config", str(path)]) == 0
    assert bound == [("127.0.0.1", port)]


@pytest.mark.parametrize("value", ["70000", "-1", "http"])
def test_a_port_setting_out_of_range_is_one_line(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TERTULIA_PORT", value)
    assert main(["serve", "--config", str(config(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: configuration error: invalid configuration: port")
    assert "\n" not in err
    assert not (tmp_path / "cli.db").exists()


def free_port() -> int:
    """A local port free at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

"""The command line: migrate, bots, and configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tertulia.cli import main


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tertulia.toml"
    path.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\n{extra}', encoding="utf-8"
    )
    return path


def test_migrate_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tertulia migrate` brings a new database to the current schema."""
    assert main(["migrate", "--config", str(config(tmp_path))]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "cli.db").exists()


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


def test_a_bad_configuration_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken config exits with status 2 and a single line on stderr, no traceback."""
    assert main(["bots", "--config", str(config(tmp_path, 'manager = "Ghost"'))]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tertulia: configuration error: manager 'Ghost' is not among the bots"

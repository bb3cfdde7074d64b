"""The README's bot examples, taken from the README itself and run on a live server."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.managers import Room
from support.server import live_server
from tertulia.settings import load_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.fixture
def mybots(tmp_path: Path) -> Iterator[str]:
    """The README's ``mybots`` module: its internal bot and its manager, importable."""
    blocks = [b for b in python_blocks() if "class ShoutBot" in b or "RoundRobinManager" in b]
    assert len(blocks) == 2, "the README shows one internal bot and one manager"
    name = f"mybots_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("\n\n".join(blocks))
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


async def test_the_internal_bot_answers(make_settings: Any, people: Any, mybots: str) -> None:
    """ShoutBot, configured as the README says, answers a person's text in capitals."""
    settings = make_settings(bots={"Shout": {"module": mybots, "class": "ShoutBot"}})
    async with live_server(settings) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["Shout"])).status_code == 201
        socket = await alice.connect()
        sent = await socket.message(local_id=await socket.say("hello there"))
        answer = await socket.message(quoted_message_id=sent["id"])
        assert answer["text"] == "HELLO THERE"


async def test_the_manager_takes_turns(make_settings: Any, people: Any, mybots: str) -> None:
    """RoundRobinManager sends each human message to the next bot, and shows every answer."""
    builtin = "tertulia.bots.builtin"
    bots = {
        "ECHO": {"module": builtin, "class": "UpperCaseEchoBot"},
        "Shout": {"module": mybots, "class": "ShoutBot"},
        "Router": {"module": mybots, "class": "RoundRobinManager"},
    }
    async with live_server(make_settings(bots=bots, manager="Router")) as server:
        room = await Room.open(server, people, ["ECHO", "Shout"], socket_manager=False)
        socket = room.sockets["alice"]
        senders = []
        for text in ("one", "two", "three"):
            sent = await socket.message(local_id=await socket.say(text))
            answer = await socket.message(quoted_message_id=sent["id"])
            assert answer["text"] == text.upper()
            senders.append(answer["sender_id"])
        assert senders[0] != senders[1]
        assert senders[0] == senders[2]
        assert set(senders) == {room.ids["ECHO"], room.ids["Shout"]}


async def test_the_configuration_example_serves_as_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, people: Any
) -> None:
    """The README's configuration file, used as it is on 127.0.0.1, serves requests: its
    allowed_hosts is a comment (set to the example's name, 127.0.0.1 got 400 "host")."""
    (example,) = [b for b in toml_blocks() if "database_url" in b]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tertulia.toml").write_text(example)
    settings = load_settings(tmp_path / "tertulia.toml", presence_grace=0)
    assert settings.manager == "Manager"
    async with live_server(settings) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", name="first", bots=["ECHO", "Calculator"])
        assert created.status_code == 201, created.text


def test_the_one_line_bot_goes_in_bots(tmp_path: Path) -> None:
    """The README's BLAB array bot, in its [bots] table, is a bot."""
    (example,) = [b for b in toml_blocks() if 'UpperCaseEchoBot", false' in b]
    (tmp_path / "tertulia.toml").write_text(example)
    spec = load_settings(tmp_path / "tertulia.toml").bots["ECHO"]
    assert (spec.module, spec.class_name, spec.required) == (
        "tertulia.bots.builtin",
        "UpperCaseEchoBot",
        False,
    )


async def test_the_quick_starts_client_talks_to_the_bots(server: Any) -> None:
    """The quick start's chat.py, run as the README shows it (on this server's address),
    says 1+2 and prints its text and both bots' answers, then ends."""
    (client,) = [b for b in python_blocks() if b.startswith("# chat.py")]
    assert client.rstrip().endswith("asyncio.run(main())")
    host = server.base_url.split("://", 1)[1]
    code = client.replace("127.0.0.1:8000", host).replace("asyncio.run(main())", "")
    printed: list[str] = []
    namespace: dict[str, object] = {"print": printed.append}
    exec(compile(code, "README.md", "exec"), namespace)
    main = namespace["main"]
    assert callable(main)
    await asyncio.wait_for(main(), 10)
    assert printed[0] == "alice: 1+2"
    assert sorted(printed[1:]) == ["Calculator: 3", "ECHO: 1+2"]

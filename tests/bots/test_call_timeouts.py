"""How long one bot call may take (bots/runner.py ``call_timeout``): the spec's ``timeout``,
else what the bot class asks for (the LLM and webhook bots know how long their own requests
and retries may take), else 30 s."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from support.managers import delivery_rows, start
from support.server import live_server
from tertulia.bots.external.openai_chat import RETRY_WAIT, OpenAIChatBot
from tertulia.bots.external.webhook import WebhookBot
from tertulia.bots.runner import DEFAULT_TIMEOUT, call_timeout
from tertulia.settings import BotSpec, load_settings

BOTS_MD = Path(__file__).resolve().parents[2] / "docs" / "bots.md"


def spec(**fields: Any) -> BotSpec:
    return BotSpec(module="tertulia.bots.builtin", class_name="EchoBot", **fields)


def test_the_spec_wins_then_the_class_then_the_default() -> None:
    class Plain:
        pass

    assert call_timeout(spec(), Plain) == DEFAULT_TIMEOUT == 30
    assert call_timeout(spec(timeout=7), OpenAIChatBot) == 7
    # 40 s per request, three requests, two waits of up to 120 s (a rate limit's
    # Retry-After), 10 s to post the answer: the runner's own 30 s would cut a slow model
    # off on every (paid) attempt.
    llm = call_timeout(spec(kwargs={"model": "m", "timeout": 40, "max_retries": 2}), OpenAIChatBot)
    assert llm == 40 * 3 + 120 * 2 + 10
    assert call_timeout(spec(kwargs={"model": "m"}), OpenAIChatBot) == 60 * 3 + 120 * 2 + 10
    assert call_timeout(spec(kwargs={"timeout": 20}), WebhookBot) == 25
    # kwargs the class cannot read: the default (its constructor says what is wrong)
    assert call_timeout(spec(kwargs={"timeout": "soon"}), WebhookBot) == DEFAULT_TIMEOUT


def test_the_llm_bots_example_gets_the_limit_its_page_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/bots.md's LLM bot example, loaded as a config file, gets the 370 s per call that
    the page works out for it (a spec ``timeout`` shorter than that cut the client's retries)."""
    (example,) = [
        block
        for block in re.findall(r"```toml\n(.*?)```", BOTS_MD.read_text(), flags=re.DOTALL)
        if "OpenAIChatBot" in block
    ]
    assert "370 s with the example's" in BOTS_MD.read_text()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = tmp_path / "tertulia.toml"
    config.write_text(example)
    assert call_timeout(load_settings(config).bots["Assistant"], OpenAIChatBot) == 370


def test_the_llm_bots_limit_covers_the_clients_longest_wait() -> None:
    """The LLM bot's limit counts the longest wait the pinned ``openai`` client may take
    before a retry (its own constants; an upgrade that lengthens them fails here)."""
    from openai import _constants

    assert RETRY_WAIT >= _constants.MAX_RETRY_AFTER_DELAY >= _constants.MAX_RETRY_DELAY


async def test_a_bot_class_sets_the_limit_of_its_calls(make_settings: Any, people: Any) -> None:
    """A class asking for 0.3 s, whose call takes 2 s, fails at its own limit (not after the
    runner's 30 s); the same call with a spec ``timeout`` of 5 answers."""
    timed = {"module": "support.runner_bots", "class": "TimedBot", "retries": 0}
    bots = {
        "Short": {**timed, "kwargs": {"limit": 0.3, "delay": 2.0}},
        "Long": {**timed, "kwargs": {"limit": 0.3, "delay": 0.5}, "timeout": 5},
    }
    async with live_server(make_settings(bots=bots)) as server:
        _, socket, ids = await start(server, people, ["Short", "Long"])
        sent = await socket.message(local_id=await socket.say("hello"))
        answer = await socket.message(quoted_message_id=sent["id"], timeout=5)
        assert answer["sender_id"] == ids["Long"]
        await server.registry.runner.idle()
        (row,) = [
            r
            for r in await delivery_rows(server, ids["Short"])
            if r.kind == "message" and r.payload["id"] == sent["id"]
        ]
        assert (row.status, row.last_error) == ("failed", "no answer within 0.3 s")

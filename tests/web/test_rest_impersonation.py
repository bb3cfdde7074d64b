"""No person takes a bot's name over REST (found by QA: a person created, joined or renamed
as "ECHO", "\u200eECHO" or "ECH\u200dO" read as the bot): create, join and rename refuse it
with 400; people may share a name; the web client's join with ``nickname: ""`` on reload
still re-enters."""

from __future__ import annotations

from support.blab import Person
from support.rest import PersonFactory
from support.server import LiveServer


def names(conversation: dict[str, object]) -> list[str]:
    participants = conversation["participants"]
    assert isinstance(participants, list)
    return [p["name"] for p in participants]


async def test_a_person_cannot_take_a_bots_name(server: LiveServer, people: PersonFactory) -> None:
    """A bot's name, in any disguise, is refused at create (even for a bot not in the
    conversation), join and rename, naming the bot; a refused nickname is not remembered;
    two people may both be "ana"; a reload's join with ``nickname: ""`` re-enters."""
    ana = people(server)
    for nickname in ("ECHO", "\u200eECHO", "ech\u200do", "calculator"):
        refused = await ana.create(nickname=nickname, bots=["ECHO"])
        assert refused.status_code == 400, refused.text
        bot = "Calculator" if nickname == "calculator" else "ECHO"
        assert refused.json() == [f"nickname {bot!r} is a bot's name; choose another"]
    created = await ana.create(nickname="ana", bots=["ECHO"])
    assert created.status_code == 201, created.text
    again = await ana.create(nickname="", bots=[])  # (the session's nickname: not ECHO)
    assert names(again.json())[0] == "ana"
    assert (await ana.create(nickname="ana", bots=["ECHO"])).status_code == 201
    assert ana.conversation_id

    bia, other_ana = people(server), people(server)
    refused = await bia.join(ana.conversation_id, nickname="E\u034fCHO")
    assert refused.status_code == 400, refused.text
    assert refused.json() == ["nickname 'ECHO' is a bot's name; choose another"]
    joined = await other_ana.join(ana.conversation_id, nickname="ana")
    assert joined.status_code == 200, joined.text
    assert names(joined.json()) == ["ana", "ECHO", "ana"]

    path = f"/conversations/{ana.conversation_id}/participants/{ana.participant_id}/"
    renamed = await ana.http.patch(path, json={"name": "ÉCHO"})
    assert renamed.status_code == 400, renamed.text
    assert renamed.json() == {
        "name": ["'ECHO' is a bot's name; choose another."],
        "code": "invalid",
    }
    assert (await ana.http.patch(path, json={"name": "Echo Ana"})).status_code == 200

    reload = await ana.join(ana.conversation_id, nickname="")
    assert reload.status_code == 200, reload.text
    assert reload.json()["my_participant_id"] == ana.participant_id
    assert names(reload.json()) == ["Echo Ana", "ECHO", "ana"]


async def test_a_new_person_joining_with_nothing_is_anon(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A new person joining with ``nickname: ""`` and no remembered nickname is
    ``ANON_<id>``, which is no bot's name."""
    newcomer = people(server)
    assert alice.conversation_id
    joined = await newcomer.join(alice.conversation_id, nickname="")
    assert joined.status_code == 200, joined.text
    assert names(joined.json())[-1] == f"ANON_{newcomer.participant_id}"

"""``PATCH conversations/<id>/participants/<pid>/``: rename oneself (PROTOCOL 3.10.1)."""

from __future__ import annotations

from support.blab import Person
from support.rest import NOWHERE, PersonFactory, call
from support.server import LiveServer


def path(person: Person, participant_id: str | None = None) -> str:
    """The rename path of ``person``'s participant (or of ``participant_id``)."""
    target = participant_id or person.participant_id
    return f"/conversations/{person.conversation_id}/participants/{target}/"


async def test_rename_answers_the_participant_and_publishes_state(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """A rename answers ``{"id", "name", "type"}`` and every socket gets a state frame."""
    bob = people(server)
    await bob.join(alice.conversation_id, nickname="bob")
    mine = await alice.connect()
    theirs = await bob.connect()

    response = await alice.http.patch(path(alice), json={"name": "  Alice B.  "})
    assert response.status_code == 200
    assert response.json() == {"id": alice.participant_id, "name": "Alice B.", "type": "H"}
    for socket in (mine, theirs):
        frame = await socket.wait_for(
            lambda f: (
                "state" in f
                and {p["id"]: p["name"] for p in f["state"]["participants"]}[alice.participant_id]
                == "Alice B."
            )
        )
        names = {p["id"]: p["name"] for p in frame["state"]["participants"]}
        assert names[bob.participant_id] == "bob"

    shown = (await bob.http.get(f"/conversations/{alice.conversation_id}/")).json()
    assert shown["participants"][0]["name"] == "Alice B."


async def test_rename_keeps_the_participant_order(alice: Person) -> None:
    """Renaming changes the name only: same id, same position, same type."""
    before = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    await alice.http.patch(path(alice), json={"name": "zed"})
    after = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    assert [p["id"] for p in after["participants"]] == [p["id"] for p in before["participants"]]
    assert after["participants"][0] == {"id": alice.participant_id, "name": "zed", "type": "H"}


async def test_rename_refuses_bad_names(alice: Person) -> None:
    """The name must be a string of 1-50 characters after trimming; nothing is published."""
    socket = await alice.connect()
    await socket.state()
    for body in (
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 51},
        {"name": 5},
        {"name": None},
        {},
    ):
        response = await alice.http.patch(path(alice), json=body)
        assert response.status_code == 400, body
        assert "name" in response.json(), body
    not_text = await alice.http.patch(path(alice), json={"name": 5})
    assert not_text.json()["name"] == ["Not a valid string."]  # not a length's message
    fifty = await alice.http.patch(path(alice), json={"name": "  " + "x" * 50 + " "})
    assert fifty.status_code == 200
    frames = await socket.sync()
    # (Besides, perhaps, the broadcast of alice's arrival, 50 ms after her socket's own.)
    names = [f["state"]["participants"][0]["name"] for f in frames if "state" in f]
    assert names in (["x" * 50], ["alice", "x" * 50]), names


async def test_rename_only_oneself(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Renaming another participant, or from outside the conversation, is 403."""
    conversation = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    echo = conversation["participants"][1]["id"]
    refused = await alice.http.patch(path(alice, echo), json={"name": "not ECHO"})
    assert refused.status_code == 403

    bob = people(server)
    await bob.join(alice.conversation_id, nickname="bob")
    assert (await bob.http.patch(path(alice), json={"name": "x"})).status_code == 403
    outsider = await call(server, "PATCH", f"/api/chat{path(alice)}", json={"name": "x"})
    assert outsider.status_code == 403
    unknown = await alice.http.patch(
        f"/conversations/{NOWHERE}/participants/{alice.participant_id}/", json={"name": "x"}
    )
    assert unknown.status_code == 403
    after = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    assert after["participants"] == conversation["participants"] + [
        {"id": bob.participant_id, "name": "bob", "type": "H"}
    ]


async def test_rename_with_own_id_of_another_conversation_is_refused(
    alice: Person, server: LiveServer
) -> None:
    """A participant id from another of the session's conversations does not count here."""
    first = alice.participant_id
    await alice.create(nickname="alice")
    response = await alice.http.patch(
        f"/conversations/{alice.conversation_id}/participants/{first}/", json={"name": "x"}
    )
    assert response.status_code == 403


async def test_rename_accepts_the_slashless_path_and_any_spelling_of_the_id(alice: Person) -> None:
    """The path works without the trailing slash, and the participant id in any spelling of
    a UUID, as the conversation id (before: without dashes or in braces, one was "not you")."""
    own = alice.participant_id
    assert own is not None
    bare = await alice.http.patch(path(alice).rstrip("/"), json={"name": "bare"})
    assert bare.status_code == 200
    for spelling in (own.upper(), own.replace("-", ""), "{" + own + "}"):
        renamed = await alice.http.patch(path(alice, spelling), json={"name": "up"})
        assert renamed.status_code == 200, spelling
        assert renamed.json()["id"] == own


async def test_rename_refuses_other_methods_and_bodies(alice: Person) -> None:
    """GET of the participant path is 405; a form body is 415."""
    assert (await alice.http.get(path(alice))).status_code == 405
    form = await alice.http.patch(path(alice), data={"name": "form"})
    assert form.status_code == 415

"""The sweep that announces people said to be here who are gone (src/tertulia/absences.py).

End to end (a restart, a stopped process) in tests/web/test_ws_restart.py and
tests/realtime/test_scale_out.py; here its reading by pages, its wait and its failures
(its schedule: tests/test_periodic.py).
"""

from __future__ import annotations

import pytest

from support.rest import PersonFactory
from support.server import LiveServer
from tertulia import absences
from tertulia.absences import AbsenceSweep
from tertulia.storage import conversations as conv_repo


async def _marked_present(server: LiveServer, people: PersonFactory, count: int) -> list[str]:
    """A conversation with ``count`` people announced as here and no socket: their ids."""
    alice = people(server)
    assert (await alice.create(nickname="alice")).status_code == 201
    assert alice.conversation_id is not None
    assert alice.participant_id is not None
    ids = [alice.participant_id]
    for i in range(count - 1):
        other = people(server)
        assert (await other.join(alice.conversation_id, nickname=f"p{i}")).status_code == 200
        assert other.participant_id is not None
        ids.append(other.participant_id)
    chat = await server.registry.get(alice.conversation_id)
    for participant_id in ids:
        await chat.generate_participant_joined_system_message(participant_id)
    return ids


async def _still_present(server: LiveServer) -> set[str]:
    async with server.registry.db.read() as conn:
        return {p for p, _ in await conv_repo.present_people(conn, after="", limit=1000)}


async def test_every_page_of_people_is_swept_and_each_announced_once(
    server: LiveServer, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(absences, "PAGE", 2)
    ids = await _marked_present(server, people, 5)
    sweep = AbsenceSweep(server.registry)
    sweep.after = 0  # gone long enough at first sight
    announced = await sweep.sweep()
    assert sorted(p for _, p in announced) == sorted(ids)
    assert not (await _still_present(server)) & set(ids)
    assert await sweep.sweep() == []


async def test_nobody_is_announced_before_being_gone_for_the_lease_and_the_grace(
    server: LiveServer, people: PersonFactory
) -> None:
    ids = await _marked_present(server, people, 2)
    sweep = AbsenceSweep(server.registry)
    assert sweep.after == server.settings.presence_lease + server.settings.presence_grace
    assert await sweep.sweep() == []
    assert await sweep.sweep() == []
    assert set(ids) <= await _still_present(server)


async def test_one_failure_to_store_does_not_keep_the_others_here(
    server: LiveServer, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing one person's 'left' fails (the database, say): the others are announced,
    and that one at the next sweep."""
    ids = await _marked_present(server, people, 3)
    registry = server.registry
    real = registry.left_unseen
    failed: list[str] = []

    async def once_failing(conversation_id: str, participant_id: str) -> None:
        if not failed:
            failed.append(participant_id)
            raise OSError("disk I/O error")
        await real(conversation_id, participant_id)

    monkeypatch.setattr(registry, "left_unseen", once_failing)
    sweep = AbsenceSweep(registry)
    sweep.after = 0
    await sweep.sweep()
    assert await _still_present(server) & set(ids) == set(failed)
    await sweep.sweep()
    assert not await _still_present(server) & set(ids)

"""Back-pressure: a peer that stops reading is dropped without stalling anyone (PROTOCOL 4.5)."""

from __future__ import annotations

from collections.abc import Callable

from support.blab import Frame, Person
from support.rest import not_reading, room_of_two
from support.server import LiveServer, live_server
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


def _left(participant_id: str | None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        message = frame.get("message", {})
        return bool(
            message.get("event") == "participant-left"
            and message["additional_metadata"] == {"participant_id": participant_id}
        )

    return match


async def test_peer_that_does_not_read_is_dropped(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """When a socket's queue overflows it is closed and its participant leaves; the others'
    sockets carry on."""
    settings = make_settings(ws_send_queue=10, ws_max_message=256 * 1024)
    async with live_server(settings) as server:
        alice, watcher = await room_of_two(server, people)

        async with not_reading(server, alice):
            for i in range(200):
                local_id = await watcher.say(
                    f"{i}", options=[f"{j} " + "x" * 990 for j in range(100)]
                )
                await watcher.message(local_id=local_id)
                if any(_left(alice.participant_id)(f) for f in watcher.frames):
                    break
            else:
                raise AssertionError("the socket that does not read was never dropped")
            await watcher.sync()

"""Rate limits per client address: creations, joins, WebSocket handshakes."""

from __future__ import annotations

import uuid

import pytest
from websockets.exceptions import InvalidStatus

from support.blab import Person
from support.environment import REDIS_URL, PersonFactory, SettingsFactory, require_service
from support.managers import Room, manager_bots
from support.server import live_server
from tertulia.errors import ConfigurationError
from tertulia.settings import DEFAULT_RATE_LIMITS
from tertulia.web.ratelimit import RateLimits, counted_address


async def test_creations_over_the_limit_get_429(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The third creation in a minute from one address is refused with a JSON 429."""
    async with live_server(make_settings(rate_limits={"create": "2/minute"})) as server:
        person = people(server)
        assert (await person.create(bots=["ECHO"])).status_code == 201
        assert (await person.create(bots=["ECHO"])).status_code == 201
        refused = await person.create(bots=["ECHO"])
        assert refused.status_code == 429
        assert refused.json() == {"detail": "Request was throttled.", "code": "throttled"}
        assert refused.headers["retry-after"] == "10"


async def test_joins_over_the_limit_get_429(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Joins count per address, separately from creations."""
    async with live_server(make_settings(rate_limits={"join": "1/minute"})) as server:
        alice = people(server)
        await alice.create(bots=[])
        assert alice.conversation_id
        assert (await people(server).join(alice.conversation_id)).status_code == 200
        assert (await people(server).join(alice.conversation_id)).status_code == 429


async def test_handshakes_over_the_limit_are_refused(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A client reconnecting too fast is throttled at the handshake (HTTP 429)."""
    async with live_server(make_settings(rate_limits={"handshake": "1/minute"})) as server:
        alice = people(server)
        await alice.create(bots=["ECHO"])
        socket = await alice.connect()
        await socket.state()
        with pytest.raises(InvalidStatus) as refused:
            await alice.connect()
        assert refused.value.response.status_code == 429
        await socket.say("still served")
        await socket.message(text="STILL SERVED")


async def test_an_empty_rule_switches_a_limit_off(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """'' disables a limit (benchmarks create hundreds of conversations from one address)."""
    async with live_server(make_settings(rate_limits={"create": ""})) as server:
        person = people(server)
        for _ in range(5):
            assert (await person.create()).status_code == 201


def test_bad_rules_stop_start_up(make_settings: SettingsFactory) -> None:
    """A malformed or unknown rule is a configuration error."""
    with pytest.raises(ConfigurationError, match="rate_limits"):
        make_settings(rate_limits={"create": "lots"})
    with pytest.raises(ConfigurationError, match="unknown rate limit"):
        make_settings(rate_limits={"upload": "1/second"})


async def test_messages_over_the_limit_get_an_error_frame_and_429(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A participant's messages count over REST and WebSocket together; the socket stays open."""
    async with live_server(make_settings(rate_limits={"message": "2/minute"})) as server:
        alice = people(server)
        await alice.create(bots=[])
        socket = await alice.connect()
        first = await socket.say("one")
        await socket.message(local_id=first)
        assert (await alice.post(type="T", text="two")).status_code == 201
        refused = await alice.post(type="T", text="three")
        assert refused.status_code == 429
        assert refused.json()["code"] == "throttled"
        # When one more will be taken: the oldest of the window's two expires (a minute
        # after "one", so 59 or 60 seconds from now).
        wait = refused.json()["retry_after"]
        assert 58 <= wait <= 60
        assert refused.headers["retry-after"] == str(wait)
        local_id = await socket.say("four")
        error = await socket.error()
        assert (error["code"], error["local_id"]) == ("throttled", local_id)
        assert 58 <= error["retry_after"] <= 60
        assert error["detail"] == "Too many messages; slow down."
        assert socket.connection.state.name == "OPEN"


async def test_a_manager_has_its_own_higher_limit(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A manager sends a command for every message of its conversation: it is held to
    ``manager``, not to a person's ``message``, so twice a person's allowance goes through,
    in order, while a person is still throttled; past its own limit it is refused too."""
    rules = {"message": "30/minute", "manager": "60/minute"}
    settings = make_settings(manager="Manager", bots=manager_bots(), rate_limits=rules)
    async with live_server(settings) as server:
        room = await Room.open(server, people, [])
        manager, alice = room.sockets["manager"], room.sockets["alice"]
        await room.sockets["bob"].close()  # (its unread frames would hold up the stop)
        sent = [await manager.say(f"command {n}") for n in range(60)]
        for local_id in sent:
            answer = await manager.wait_for(
                lambda f, sent_id=local_id: (
                    (f.get("message") or f.get("error") or {}).get("local_id") == sent_id
                )
            )
            assert "message" in answer, answer  # (before: throttled from the 31st on)
        mine = set(sent)
        arrived = [m["local_id"] for m in manager.messages() if m.get("local_id") in mine]
        assert arrived == sent  # stored in the order sent, each once
        over = await room.manager.post(type="T", text="one more", local_id="m61")
        assert over.status_code == 429
        assert over.json()["code"] == "throttled"

        said = [await alice.say(f"hello {n}") for n in range(30)]
        for local_id in said:
            await alice.message(local_id=local_id)
            await manager.message(local_id=local_id)  # (read, as bob's would be)
        local_id = await alice.say("one more")
        error = await alice.error()
        assert (error["code"], error["local_id"]) == ("throttled", local_id)


def test_the_managers_default_limit_is_above_a_persons() -> None:
    """By default a manager may send ten times what a person may (300 and 30 a second)."""
    assert DEFAULT_RATE_LIMITS["message"] == "30/second"
    assert DEFAULT_RATE_LIMITS["manager"] == "300/second"


@pytest.mark.parametrize("broker", ["redis", "redis-unix"])
async def test_processes_on_one_redis_share_their_counts(
    make_settings: SettingsFactory, broker: str, request: pytest.FixtureRequest
) -> None:
    """Two processes' limits on one Redis (over TCP or a Unix socket) count the same hits:
    a client cannot double its allowance by reaching the other process."""
    if broker == "redis":
        require_service("Redis", REDIS_URL)
        url = REDIS_URL
    else:
        url = request.getfixturevalue("redis_unix_url")
    settings = make_settings(broker_url=url, rate_limits={"message": "3/minute"})
    one, two = RateLimits(settings), RateLimits(settings)
    await one.start()
    await two.start()
    try:
        key = uuid.uuid4().hex
        assert [await one.hit("message", key) for _ in range(2)] == [True, True]
        assert [await two.hit("message", key) for _ in range(2)] == [True, False]
        assert not await one.hit("message", key)
    finally:
        await one.close()
        await two.close()


async def test_installations_with_their_own_prefix_count_apart(
    make_settings: SettingsFactory,
) -> None:
    """Two installations on one Redis database number, one with ``broker_prefix``: a
    participant id both hold (a copy keeps them) has an allowance in each."""
    require_service("Redis", REDIS_URL)
    rules = {"message": "1/minute"}
    production = RateLimits(make_settings(broker_url=REDIS_URL, rate_limits=rules))
    staging = RateLimits(
        make_settings(broker_url=REDIS_URL, rate_limits=rules, broker_prefix="staging")
    )
    await production.start()
    await staging.start()
    try:
        key = uuid.uuid4().hex
        assert [await production.hit("message", key) for _ in range(2)] == [True, False]
        assert [await staging.hit("message", key) for _ in range(2)] == [True, False]
    finally:
        await production.close()
        await staging.close()


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_the_wait_is_until_the_oldest_hit_of_the_window_expires(
    make_settings: SettingsFactory, broker: str
) -> None:
    """``retry_after``: whole seconds until the window's oldest hit expires, in memory and
    in Redis (shared by the processes): 1 for a per-second rule, 60 for a per-minute one
    right after its hits."""
    url = "memory://"
    if broker == "redis":
        require_service("Redis", REDIS_URL)
        url = REDIS_URL
    settings = make_settings(
        broker_url=url, rate_limits={"message": "2/second", "join": "2/minute"}
    )
    limits = RateLimits(settings)
    await limits.start()
    try:
        key = uuid.uuid4().hex
        for kind in ("message", "join"):
            assert [await limits.hit(kind, key) for _ in range(3)] == [True, True, False]
        assert await limits.retry_after("message", key) == 1
        assert await limits.retry_after("join", key) == 60
    finally:
        await limits.close()


async def test_ipv6_clients_are_counted_per_64_network(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Creations from many addresses of one IPv6 /64 (X-Forwarded-For through a trusted
    proxy) share one count (security QA: 70 addresses made 70 creations); another /64, and
    an IPv4-mapped address apart from its IPv4 one, count on their own."""
    async with live_server(make_settings(rate_limits={"create": "3/minute"})) as server:

        async def create(address: str) -> int:
            person = people(server)
            person.http.headers["X-Forwarded-For"] = address
            return (await person.create(bots=[])).status_code

        statuses = [await create(f"2001:db8:1:2::{n:x}") for n in range(1, 5)]
        assert statuses == [201, 201, 201, 429]
        assert await create("2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
        assert await create("2001:db8:1:3::1") == 201
        assert [await create("::ffff:198.51.100.7") for _ in range(3)] == [201] * 3
        assert await create("198.51.100.7") == 429


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("198.51.100.7", "198.51.100.7"),
        ("testclient", "testclient"),
    ],
)
def test_what_an_address_is_counted_under(address: str, counted: str) -> None:
    """IPv6 by its /64, IPv4-mapped as IPv4, the rest as it is."""
    assert counted_address(address) == counted


async def test_renames_over_the_limit_get_429_with_the_wait(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """(Found by QA: 300 renames in 0.5 s were all taken, each a write and a state frame to
    every socket.) Renames count per participant: over ``rename``, 429 ``throttled`` with
    ``Retry-After``, the name kept; another participant renames all the same."""
    assert DEFAULT_RATE_LIMITS["rename"] == "10/minute"
    async with live_server(make_settings(rate_limits={"rename": "2/minute"})) as server:
        alice, bob = people(server), people(server)
        await alice.create(nickname="alice", bots=[])
        assert alice.conversation_id
        await bob.join(alice.conversation_id, nickname="bob")

        def path(person: Person) -> str:
            return f"/conversations/{alice.conversation_id}/participants/{person.participant_id}/"

        for name in ("ana", "anna"):
            assert (await alice.http.patch(path(alice), json={"name": name})).status_code == 200
        refused = await alice.http.patch(path(alice), json={"name": "annie"})
        assert refused.status_code == 429
        body = refused.json()
        assert (body["code"], body["detail"]) == ("throttled", "Too many renames; try again later.")
        assert 58 <= body["retry_after"] <= 60
        assert refused.headers["retry-after"] == str(body["retry_after"])
        shown = (await bob.http.get(f"/conversations/{alice.conversation_id}/")).json()
        assert {p["name"] for p in shown["participants"]} == {"anna", "bob"}
        assert (await bob.http.patch(path(bob), json={"name": "bo"})).status_code == 200

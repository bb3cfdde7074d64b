"""The worker threads of synchronous bots: reused, failures reported, hangs contained."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tertulia.bots.threads import DaemonThreads


async def test_calls_run_in_reused_daemon_threads() -> None:
    """Calls one after another reuse one daemon thread (none is started per call)."""
    threads = DaemonThreads("t")
    seen: list[threading.Thread] = []
    for _ in range(5):
        await asyncio.wait_for(threads.run(lambda: seen.append(threading.current_thread())), 5)
    assert len({t.ident for t in seen}) == 1
    assert seen[0].daemon
    assert seen[0] is not threading.main_thread()


async def test_an_error_reaches_the_caller() -> None:
    """An exception in the call is raised from the awaited future."""
    threads = DaemonThreads("t")

    def fail() -> None:
        raise ValueError("bad bot")

    with pytest.raises(ValueError, match="bad bot"):
        await asyncio.wait_for(threads.run(fail), 5)


async def test_a_hung_call_holds_only_its_own_thread() -> None:
    """While one call blocks, others run in a new thread; the blocked one ends later."""
    threads = DaemonThreads("t")
    gate = threading.Event()
    hung = threads.run(lambda: gate.wait(10))
    others = [threads.run(lambda: None) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*others), 5)
    assert not hung.done()
    gate.set()
    await asyncio.wait_for(hung, 5)


async def test_idle_threads_end() -> None:
    """A thread idle for longer than idle_timeout ends; the next call starts a new one."""
    threads = DaemonThreads("idle", idle_timeout=0.05)
    first: list[threading.Thread] = []
    await asyncio.wait_for(threads.run(lambda: first.append(threading.current_thread())), 5)
    await asyncio.wait_for(asyncio.to_thread(first[0].join, 5), 6)
    assert not first[0].is_alive()
    later: list[threading.Thread] = []
    await asyncio.wait_for(threads.run(lambda: later.append(threading.current_thread())), 5)
    assert later[0] is not first[0]


async def test_an_abandoned_call_is_harmless() -> None:
    """A future nobody awaits any more (a timed-out bot) settles quietly."""
    threads = DaemonThreads("t")
    gate = threading.Event()

    def slow_failure() -> None:
        gate.wait(5)
        raise RuntimeError("too late")

    future = threads.run(slow_failure)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), 0.01)
    gate.set()
    await asyncio.wait_for(asyncio.gather(future, return_exceptions=True), 5)

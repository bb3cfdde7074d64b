"""Worker threads for synchronous bots: reused, and never in the way of the server's exit.

Not a ``concurrent.futures.ThreadPoolExecutor``: the interpreter joins its threads at exit,
so one bot call that never returns would keep the server from stopping. These threads are
daemons. They are reused (starting a thread per call cost about half a millisecond of the
event loop's time, waiting for the thread to start), a new one starts only when every
existing one is busy, and an idle one ends after ``idle_timeout`` seconds. The callers'
concurrency limits (each bot spec's slots) bound how many run at once; a call that hangs
keeps its thread, which is all it can hold up.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

IDLE_TIMEOUT = 60.0

_Job = tuple[asyncio.AbstractEventLoop, asyncio.Future[None], Callable[[], None]]


class DaemonThreads:
    """Runs blocking calls in reusable daemon threads.

    Args:
        name: prefix of the threads' names.
        idle_timeout: seconds an idle thread waits for work before it ends.
    """

    def __init__(self, name: str = "bot", *, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._started = 0

    def run(self, call: Callable[[], None]) -> asyncio.Future[None]:
        """Run ``call`` in a worker thread; the future settles (on the running loop) when it
        returns or raises. The future may be abandoned: its outcome is then ignored."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        # A call that outlived its timeout fails unobserved: mark its error as seen.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        with self._lock:
            self._jobs.put((loop, future, call))
            if self._idle:
                self._idle -= 1
                return future
            self._started += 1
            number = self._started
        threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            try:
                loop, future, call = self._jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # an idle thread nobody was promised: this one ends
                        self._idle -= 1
                        return
                continue  # a job was promised to an idle thread: wait for it
            error: BaseException | None = None
            try:
                call()
            except BaseException as exc:
                error = exc
            # Idle before the caller learns the outcome: its next call then finds this
            # thread instead of starting another one.
            with self._lock:
                self._idle += 1
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, error)
            del loop, future, call


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    elif isinstance(error, StopIteration):
        # A future refuses StopIteration (it would end the coroutine awaiting it), and the
        # call would stay unsettled, its slot taken for good: a plain RuntimeError instead,
        # as Python itself does for a coroutine (PEP 479).
        wrapped = RuntimeError(f"the call raised {type(error).__name__}")
        wrapped.__cause__ = error
        future.set_exception(wrapped)
    else:
        future.set_exception(error)

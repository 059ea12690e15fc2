"""The threads that run synchronous functions (and the host's blocking I/O) for the event loop.

Used by the devhost for sync functions, and by the platform's HTTP routes for their sync
bodies (`functions.access`), so it stands alone here. As the Python worker does, the devhost
runs a sync function on a pool of threads (`PYTHON_THREADPOOL_THREAD_COUNT`, else Python's
default for a `ThreadPoolExecutor`). It does not use `loop.run_in_executor` for it: per call,
that takes five locks in the executor and its `concurrent.futures.Future` (two of them
Python-level conditions, for the idle-thread count), chains a second, asyncio future to the
first, and wakes the loop through its self-pipe once per result. Here a call is one item on a
`SimpleQueue`, its result is set on the asyncio future directly, and the results that finish
while the loop is busy reach it with a single wake-up.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def default_thread_count() -> int:
    """Python's default for a `ThreadPoolExecutor`, which the Python worker uses too."""
    return min(32, (os.cpu_count() or 1) + 4)


class _Mailbox:
    """Results for one event loop, handed over together: the first result to arrive while
    none is waiting schedules one `deliver` on the loop, which sets every result waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.results: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
        with self._lock:
            self.results.append((future, value, error))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.deliver)
        except RuntimeError:  # the loop is closed: nobody awaits these any more
            pass

    def deliver(self) -> None:
        with self._lock:
            self._scheduled = False
            results, self.results = self.results, deque()
        for future, value, error in results:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


# A call handed to the threads: where its result goes, its future, and the call itself.
_Work = tuple[_Mailbox, "asyncio.Future[Any]", Callable[[], Any]]


class FunctionThreads:
    """Runs calls on up to `max_threads` threads, started as the work needs them."""

    def __init__(self, max_threads: int | None = None, name: str = "func") -> None:
        self.max_threads = max_threads or default_thread_count()
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle: list[None] = []  # a token per thread free for a call (as the executor's)
        self._start_lock = threading.Lock()
        self._mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False

    def run(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """Run `call` on a thread; its result (or exception) arrives on the running loop."""
        if self._closed:
            raise RuntimeError("the function threads are closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        mailbox = self._mailboxes.get(loop)
        if mailbox is None:
            mailbox = self._mailboxes[loop] = _Mailbox(loop)
        # A call takes a free thread's token, or starts a thread while there are fewer than
        # allowed (list.append and pop are atomic: no lock on this path).
        try:
            self._idle.pop()
        except IndexError:
            if len(self._threads) < self.max_threads:
                self._start_thread()
        self._work.put((mailbox, future, call))
        return future

    def _start_thread(self) -> None:
        with self._start_lock:
            if len(self._threads) >= self.max_threads:
                return
            thread = threading.Thread(
                target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _serve(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                return
            mailbox, future, call = work
            try:
                value, error = call(), None
            except BaseException as raised:  # handed to the awaiting coroutine
                value, error = None, raised
            mailbox.post(future, value, error)
            del work, mailbox, future, call, value, error  # not kept while waiting for more
            self._idle.append(None)

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the threads once they finish what they run; calls not started are cancelled.
        `wait_s` waits that long at most for the calls running to finish (the threads are
        daemons: the process does not wait for them at exit)."""
        self._closed = True
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                break
            if work is not None:
                mailbox, future, _ = work
                if not mailbox.loop.is_closed():
                    mailbox.loop.call_soon_threadsafe(future.cancel)
        for _ in self._threads:
            self._work.put(None)
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

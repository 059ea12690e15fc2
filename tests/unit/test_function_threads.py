"""The threads that run sync functions: results and errors reach the awaiting coroutine, the
thread count is bounded, results finishing together all arrive, and closing cancels the rest."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from embedded.function_threads import FunctionThreads, default_thread_count

pytestmark = pytest.mark.unit


async def test_a_call_runs_on_another_thread_and_its_result_comes_back() -> None:
    threads = FunctionThreads(2)
    try:
        name = await threads.run(lambda: threading.current_thread().name)
        assert name.startswith("func_") and name != threading.current_thread().name
    finally:
        threads.close()


async def test_an_exception_is_raised_in_the_awaiting_coroutine() -> None:
    threads = FunctionThreads(2)

    def fail() -> None:
        raise LookupError("nope")

    try:
        with pytest.raises(LookupError, match="nope"):
            await threads.run(fail)
        assert await threads.run(lambda: 5) == 5  # the thread survives it
    finally:
        threads.close()


async def test_no_more_threads_than_allowed_run_at_once() -> None:
    threads = FunctionThreads(3)
    running, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    try:
        await asyncio.gather(*(threads.run(work) for _ in range(12)))
        assert most == 3
        assert len({t.name for t in threading.enumerate() if t.name.startswith("func_")}) <= 3
    finally:
        threads.close()


async def test_results_finishing_while_the_loop_is_busy_all_arrive() -> None:
    threads = FunctionThreads(4)
    try:
        futures = [threads.run(lambda n=n: n * n) for n in range(200)]
        time.sleep(0.05)  # the loop is blocked: the results queue up for one wake-up
        assert await asyncio.gather(*futures) == [n * n for n in range(200)]
    finally:
        threads.close()


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    threads = FunctionThreads(1)
    release = threading.Event()
    try:
        first = threads.run(lambda: release.wait(5))
        second = threads.run(lambda: "second")
        first.cancel()
        release.set()
        assert await second == "second"
    finally:
        threads.close()


async def test_closing_cancels_the_calls_not_started() -> None:
    threads = FunctionThreads(1)
    release = threading.Event()
    started = threads.run(lambda: release.wait(5))
    waiting = threads.run(lambda: "never")
    await asyncio.sleep(0.05)
    threads.close()
    release.set()
    assert await started is True
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(RuntimeError, match="closed"):
        threads.run(lambda: None)


async def test_closing_can_wait_for_the_calls_running() -> None:
    threads = FunctionThreads(2)
    done: list[int] = []
    running = threads.run(lambda: (time.sleep(0.1), done.append(1)))
    await asyncio.sleep(0.01)
    threads.close(wait_s=5)
    assert done == [1]
    await running


def test_the_default_count_is_pythons() -> None:
    assert FunctionThreads().max_threads == default_thread_count() >= 5

"""Slow sync tasks starve nothing: worker threads are their own limit.

``max_running_tasks`` bounds the tasks running on the event loop. A sync task
waiting for a worker thread, or running in one, holds no running place (the
threads, ``max_task_threads``, are the limit there), so async tasks start at
once while every thread is busy. Sync jobs waiting for a thread count
against ``max_pending_tasks`` instead, and a WARNING says when every thread
has stayed busy with jobs waiting (``SATURATED_WARN_AFTER``, at most every
``SATURATED_WARN_EVERY``).

Found by: 40 sync tasks of 20 s, then 1,000 of 0 s, then 50 async tasks of
0 s: none of the 50 ever ran before the drain (the 1,000 queued sync jobs
filled the running cap), and nothing said why.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundCapacityError, BackgroundTasks, TaskHandle, TaskState, TrioAPI
from trioapi._runtime.threads import SATURATED_WARN_AFTER, SATURATED_WARN_EVERY

from .shutdown_app import THREADS_ENV
from .test_e2e import (
    CLIENT_TIMEOUT,
    TRIOAPI,
    ServerProcess,
    add_tasks,
    client_for,
    launch,
    wait_until,
)

__all__ = ["launch"]  # the fixture, used by the e2e test below

THREAD_WAIT = 10.0  # real seconds a blocked worker thread waits: a bound, not a sleep


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[TrioAPI]:
    app = TrioAPI(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        try:
            yield app
        finally:
            await app.background.drain(timeout=THREAD_WAIT)


class Holders:
    """Sync tasks that hold a worker thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.holding = 0

    def hold(self) -> None:
        with self._lock:
            self.holding += 1
        self.release.wait(THREAD_WAIT)

    async def until_holding(self, count: int) -> None:
        """Returns once ``count`` threads are held, without letting the autojump clock move.

        Threads start in real time; see ``until_idle``.
        """
        while self.holding < count:
            await trio.testing.wait_all_tasks_blocked()


async def until_idle(app: TrioAPI) -> None:
    """Returns once no task is left, without letting the autojump clock move.

    Worker threads finish in real time; waiting on trio for them would let
    the clock jump meanwhile. While a task waits for the run to go idle the
    clock does not jump; the pool's dispatcher, which waits for idle too,
    still sends workers for jobs submitted meanwhile.
    """
    while app.background.in_flight():
        await trio.testing.wait_all_tasks_blocked()


class WarningTimes(logging.Handler):
    """Records each WARNING of the runtime with the trio time it was logged at."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((trio.current_time(), record.getMessage()))


@pytest.fixture
def warning_times() -> Any:
    handler = WarningTimes()
    logger = logging.getLogger("trioapi.background")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def add(app: TrioAPI, func: Callable[..., Any], *args: Any, name: str | None = None) -> Any:
    """A task on its own, submitted at once (a lone sync one goes straight to the threads)."""
    return app.background.options(name=name).add_task(func, *args)


def submit(app: TrioAPI, *funcs: Callable[[], Any]) -> list[TaskHandle[Any]]:
    """One request's group, run in order by a runner."""
    tasks = BackgroundTasks(app.background, "POST /jobs")
    for func in funcs:
        tasks.add_task(func)
    handles = tasks.tasks
    app.background.submit(tasks._take())
    return handles


async def test_async_tasks_start_at_once_while_sync_tasks_hold_every_thread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(max_task_threads=2, max_running_tasks=4) as app:
        holders = Holders()
        held = [add(app, holders.hold, name="hold") for _ in range(2)]
        await holders.until_holding(2)
        # Lone sync tasks (straight to the threads) and groups of two sync
        # tasks (on runners): all wait for a thread, more than the cap of 4.
        queued = [add(app, lambda: None, name="quick-sync") for _ in range(10)]
        for _ in range(3):
            queued += submit(app, lambda: None, lambda: None)
        quick: list[TaskHandle[Any]] = [add(app, trio.sleep, 0) for _ in range(5)]
        with trio.fail_after(SATURATED_WARN_AFTER / 2):  # before: they waited for the threads
            for handle in quick:
                assert await handle.wait() is TaskState.COMPLETED
        assert trio.current_time() == 0.0
        assert not any(handle.done for handle in (*held, *queued))
        holders.release.set()
        await until_idle(app)
        assert all(handle.state is TaskState.COMPLETED for handle in (*held, *queued))


async def test_sync_jobs_waiting_for_a_thread_count_against_the_pending_cap() -> None:
    async with running(max_task_threads=1, max_pending_tasks=3) as app:
        holders = Holders()
        add(app, holders.hold)
        await holders.until_holding(1)
        waiting = [add(app, lambda: None) for _ in range(3)]
        assert app.background.pending == 0  # handed to the threads: running, as before
        with pytest.raises(BackgroundCapacityError, match="3 of them sync tasks waiting"):
            add(app, trio.sleep, 0)
        holders.release.set()
        for handle in waiting:
            with trio.fail_after(THREAD_WAIT):
                assert await handle.wait() is TaskState.COMPLETED
        assert await add(app, trio.sleep, 0).wait() is TaskState.COMPLETED


async def test_a_warning_says_when_every_thread_stays_busy_and_jobs_wait(
    autojump_clock: trio.testing.MockClock, warning_times: WarningTimes
) -> None:
    async with running(max_task_threads=2) as app:
        holders = Holders()
        for _ in range(2):
            add(app, holders.hold, name="export")
        await holders.until_holding(2)
        for _ in range(3):
            add(app, lambda: None, name="quick")
        await trio.sleep(SATURATED_WARN_EVERY * 1.5)
        holders.release.set()
        await until_idle(app)
    message = (
        "all 2 worker threads for sync background tasks have been busy for {:.1f} s and 3 "
        "sync job(s) wait for one (running: export x2); async tasks still start. Raise "
        "max_task_threads, or make long tasks async"
    )
    # Once it lasted SATURATED_WARN_AFTER, then at most every SATURATED_WARN_EVERY.
    first = SATURATED_WARN_AFTER
    assert warning_times.seen == [
        (first, message.format(first)),
        (first + SATURATED_WARN_EVERY, message.format(first + SATURATED_WARN_EVERY)),
    ]


async def test_threads_busy_for_less_than_the_warning_delay_say_nothing(
    autojump_clock: trio.testing.MockClock, warning_times: WarningTimes
) -> None:
    async with running(max_task_threads=1) as app:
        holders = Holders()
        add(app, holders.hold)
        await holders.until_holding(1)
        add(app, lambda: None)
        await trio.sleep(SATURATED_WARN_AFTER * 0.9)
        holders.release.set()
        await until_idle(app)
        await trio.sleep(SATURATED_WARN_EVERY)
    assert warning_times.seen == []


@pytest.mark.e2e
def test_the_command_line_runs_async_tasks_while_slow_sync_tasks_hold_every_thread(
    launch: Callable[..., ServerProcess],
) -> None:
    # The shape, scaled to 2 threads: 2 sync tasks that hold them,
    # 1,000 quick sync tasks behind them (more than max_running_tasks), then
    # async tasks, which must run now, not after the drain cancelled them.
    server = launch(
        *TRIOAPI,
        "tests.shutdown_app:app",
        "--bind",
        "127.0.0.1:0",
        "--drain-timeout",
        "1",
        env={THREADS_ENV: "2"},
    )
    port = server.wait_ready()
    add_tasks(port, ("/sync-task", 600.0, "hold"))
    add_tasks(port, ("/sync-task", 600.0, "hold-too"))
    wait_until(
        lambda: {"start hold", "start hold-too"} <= set(server.task_lines),
        CLIENT_TIMEOUT,
        "both threads held",
    )
    with client_for(port) as client:
        response = client.post("/sync-task", params={"seconds": 0, "name": "q", "count": 1000})
        assert response.status_code == 200
    names = [f"async-{index}" for index in range(5)]
    add_tasks(port, *(("/task", 0.0, name) for name in names))
    wait_until(
        lambda: set(names) <= set(server.task_lines), CLIENT_TIMEOUT, "the async tasks to run"
    )
    wait_until(
        lambda: "all 2 worker threads for sync background tasks have been busy" in server.stderr,
        CLIENT_TIMEOUT,
        "the saturation warning",
    )
    code, _ = server.signal_and_wait(signal.SIGTERM, 30.0)
    assert code == 0
    stderr = server.stderr
    assert "running: hold x1, hold-too x1" in stderr or "running: hold-too x1, hold x1" in stderr
    assert re.search(r"5 completed, 0 failed, 1000 cancelled, 2 abandoned", stderr), stderr

"""Shutdown always ends: tasks that ignore cancellation cannot keep the process alive.

trio cannot stop a task that shields itself from cancellation (or catches
``Cancelled`` and carries on), and a nursery waits for every task in it. The
runtime's nursery therefore lives in a trio system task: at the drain
deadline plus ``UNWIND_GRACE`` such a task is abandoned and named, and the
runtime, the lifespan call and the server end without it, while the task
itself goes on as a *straggler* until it returns. ``python -m trioapi`` then
exits without waiting for it; a second signal ends the process within
``FORCED_EXIT_AFTER`` seconds whatever still runs.

The runtime's part is tested in process, at exact virtual times; the command
line's in subprocesses (marked ``e2e``), where the timeouts are failure
guards only: how long an exit took is printed, never asserted.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import trioapi
from trioapi import BackgroundTasks, RuntimeState, TaskHandle, TaskState, TrioAPI
from trioapi._runtime.background import UNWIND_GRACE
from trioapi.testing import TestClient

from .test_e2e import (
    CLIENT_TIMEOUT,
    TRIOAPI,
    ServerProcess,
    add_tasks,
    client_for,
    launch,
    wait_until,
)

__all__ = ["launch"]  # the fixture, used by the e2e tests below

LOGGER = "trioapi.background"
APP = "tests.shutdown_app:app"
EXIT_GUARD = 30.0
"""Seconds a server may take to exit before a test fails: a guard against hanging, not a bound."""


def now() -> float:
    return trio.current_time()


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING
    ]


async def shielded(seconds: float, trail: list[str]) -> None:
    with trio.CancelScope(shield=True):
        await trio.sleep(seconds)
    trail.append(f"shielded returned at {now():g}")


async def carries_on(seconds: float, trail: list[str]) -> None:
    # Catches the cancellation and keeps working (shielded, so that its next
    # await does not raise at once).
    started = now()
    try:
        await trio.sleep(seconds)
    except trio.Cancelled:
        trail.append(f"cancelled at {now():g}")
        with trio.CancelScope(shield=True):
            await trio.sleep(started + seconds - now())
    trail.append(f"carried on until {now():g}")


# --- the runtime, in process -----------------------------------------------------------


@pytest.mark.parametrize("misbehaviour", [shielded, carries_on], ids=["shielded", "carries-on"])
async def test_the_runtime_closes_at_the_grace_after_the_deadline_and_leaves_the_task_behind(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    misbehaviour: Callable[[float, list[str]], Any],
) -> None:
    app = TrioAPI(drain_timeout=5)
    runtime = app.background
    trail: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        stubborn = runtime.options(name="stubborn").add_task(misbehaviour, 50, trail)
        quick = runtime.add_task(trio.sleep, 1)
        report = await runtime.drain()
    closed_at = now()

    # The runtime (and so the lifespan call hosting it) ended at the grace,
    # not when the task returns.
    assert closed_at == report.finished_at == 5 + UNWIND_GRACE
    assert (report.completed, report.abandoned, report.abandoned_tasks) == (1, 1, ("stubborn",))
    assert (stubborn.state, quick.state) == (TaskState.ABANDONED, TaskState.COMPLETED)
    assert runtime.state is RuntimeState.CLOSED
    assert runtime.stragglers == [stubborn]
    assert (
        "background runtime closed with 1 abandoned task(s) still running, which ignore "
        "cancellation: stubborn; the trio run ends only when they return"
    ) in warnings_logged(caplog)

    # It goes on outside every nursery of ours (a trio system task holds it).
    await trio.sleep_until(50)
    await trio.testing.wait_all_tasks_blocked()
    assert trail[-1] in ("shielded returned at 50", "carried on until 50")
    assert runtime.stragglers == []
    assert "abandoned background task 'stubborn' returned at last" in warnings_logged(caplog)
    # Its late return changes nothing the report said.
    assert runtime.stats() == report_stats(completed=1, abandoned=1)


def report_stats(**counts: int) -> dict[str, int]:
    stats = dict.fromkeys(
        (
            "pending",
            "running",
            "completed",
            "failed",
            "cancelled",
            "abandoned",
            "skipped",
            "resumable",
            "retried",
            "delegated",
        ),
        0,
    )
    stats.update(counts)
    return stats


async def test_the_lifespan_shutdown_completes_and_the_client_exits_at_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=5)
    trail: list[str] = []

    @app.post("/stubborn")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.options(name="stubborn").add_task(shielded, 100, trail)
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/stubborn")
        report = await client.shutdown()
    # Leaving the client waits for the whole lifespan call: before, its
    # nursery held the task until it returned, at 100.
    assert now() == report.finished_at == 6.0
    assert [handle.name for handle in app.background.stragglers] == ["stubborn"]
    assert trail == []


async def test_a_stop_without_a_drain_names_every_task_and_leaves_a_shielded_one_after_the_grace(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()
    runtime = app.background
    trail: list[str] = []
    handles: list[TaskHandle[Any]] = []

    async def unwinds_slowly() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.5)
            trail.append(f"unwound at {now():g}")

    with trio.CancelScope() as outer:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            handles.append(runtime.options(name="stubborn").add_task(shielded, 50, trail))
            handles.append(runtime.options(name="cleanup").add_task(unwinds_slowly))
            handles.append(runtime.options(name="sync").add_task(lambda: None))
            await trio.sleep(2)
            handles.append(runtime.options(name="slow").add_task(trio.sleep, 30))
            await trio.testing.wait_all_tasks_blocked()
            outer.cancel()  # the server stopped at once (a second signal)
    assert now() == 2 + UNWIND_GRACE  # the grace, not the 50 s of the shielded task
    assert trail == ["unwound at 2.5"]
    assert [h.state for h in handles] == [
        TaskState.CANCELLED,
        TaskState.CANCELLED,
        TaskState.COMPLETED,
        TaskState.CANCELLED,
    ]
    assert (
        "background runtime stopped without a drain: 3 task(s) cancelled: stubborn, cleanup, "
        "slow; still running after 1 s, left behind (the trio run ends only when they return): "
        "stubborn"
    ) in warnings_logged(caplog)
    assert runtime.stragglers == [handles[0]]


async def test_a_straggler_returning_late_takes_nothing_from_the_runtimes_next_life(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Test suites reuse one app for several lifespans. A task left behind by
    # the first must not take the second life's groups (nor count its runners).
    app = TrioAPI(drain_timeout=1, max_running_tasks=1)
    runtime = app.background
    trail: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        runtime.options(name="stubborn").add_task(shielded, 10, trail)
        await runtime.drain()
    assert now() == 2.0

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        gate = trio.Event()
        first = runtime.add_task(gate.wait)
        queued = [runtime.add_task(trio.sleep, 1) for _ in range(3)]
        await trio.sleep_until(10)  # the straggler returns, and its runner leaves
        await trio.testing.wait_all_tasks_blocked()
        assert trail == ["shielded returned at 10"]
        assert [h.state for h in queued] == [TaskState.PENDING] * 3  # still waiting their turn
        gate.set()
        for handle in queued:
            assert await handle.wait() is TaskState.COMPLETED
        assert now() == 13.0  # one at a time: max_running_tasks still holds
        report = await runtime.drain()
    assert first.state is TaskState.COMPLETED
    assert (report.completed, report.abandoned) == (4, 0)
    assert runtime.stragglers == []


async def test_serve_shutdown_returns_the_report_while_a_shielded_task_runs_on() -> None:
    # Real sockets, real time (a short drain): serve() and Server.shutdown()
    # return at the grace; the task is listed until it returns.
    app = TrioAPI(drain_timeout=0.1)
    done = trio.Event()

    async def stubborn() -> None:
        with trio.CancelScope(shield=True):
            await done.wait()

    @app.post("/stubborn")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.options(name="stubborn").add_task(stubborn)
        return {}

    def post(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /stubborn HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            return sock.recv(4096)

    timed_out = False

    async def guard() -> None:
        # Before the fix, serve() waited for the task: end it after a while, and fail.
        nonlocal timed_out
        await trio.sleep(20)
        timed_out = True
        done.set()

    async with trio.open_nursery() as outer:
        outer.start_soon(guard)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(trioapi.serve, app, "127.0.0.1:0")
            answer = await trio.to_thread.run_sync(post, server.port)
            assert answer.startswith(b"HTTP/1.1 200")
            report = await server.shutdown()
        stragglers = [handle.name for handle in app.background.stragglers]
        outer.cancel_scope.cancel()
    done.set()  # lets the trio run end
    assert not timed_out
    assert report is not None
    assert report.abandoned_tasks == ("stubborn",)
    assert stragglers == ["stubborn"]


# --- python -m trioapi, in subprocesses ---------------------------------------------


def exit_after(server: ServerProcess, signum: int) -> int:
    code, elapsed = server.signal_and_wait(signum, EXIT_GUARD)
    print(f"exit code {code}, {elapsed:.3f} s after the signal")
    return code


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/shielded", "/persistent"])
def test_a_task_that_ignores_cancellation_cannot_keep_the_command_line_alive(
    launch: Callable[..., ServerProcess], path: str
) -> None:
    server = launch(
        *TRIOAPI, APP, "--bind", "127.0.0.1:0", "--drain-timeout", "2", "--graceful-timeout", "1"
    )
    port = server.wait_ready()
    add_tasks(port, (path, 600.0, "stubborn"), ("/task", 0.1, "quick"))
    wait_until(lambda: "start stubborn" in server.task_lines, CLIENT_TIMEOUT, "the task's start")

    # Before: the report said "abandoned" and the process lived on for 600 s.
    assert exit_after(server, signal.SIGTERM) == 0
    stderr = server.stderr
    assert re.search(
        r"\[WARNING\] background drain finished in [\d.]+ s: 1 completed, 0 failed, "
        r"0 cancelled, 1 abandoned, 0 skipped; abandoned: stubborn\n",
        stderr,
    ), stderr
    assert (
        "[WARNING] trioapi: exiting without waiting for 1 abandoned background task(s) that "
        "ignore cancellation: stubborn\n"
    ) in stderr
    assert "stubborn" not in server.task_lines  # it never finished
    assert "quick" in server.task_lines
    assert "Traceback" not in stderr


@pytest.mark.e2e
@pytest.mark.parametrize("moment", ["before the drain", "during the drain"])
def test_a_second_signal_ends_the_process_and_names_every_task_cut_off(
    launch: Callable[..., ServerProcess], moment: str
) -> None:
    # "before": a request in flight holds hypercorn's graceful_timeout (30 s);
    # "during": the drain (60 s) has begun. Before the fix, a second signal
    # during the drain left the process alive for the shielded task, and one
    # before it did the same without writing any line about the tasks.
    server = launch(
        *TRIOAPI,
        APP,
        "--bind",
        "127.0.0.1:0",
        "--drain-timeout",
        "60",
        "--graceful-timeout",
        "30",
    )
    port = server.wait_ready()
    add_tasks(port, ("/shielded", 600.0, "stubborn"), ("/task", 600.0, "slow"))
    wait_until(lambda: "start slow" in server.task_lines, CLIENT_TIMEOUT, "the tasks' start")
    if moment == "during the drain":
        with client_for(port) as client:
            assert client.post("/watch-drain").status_code == 200
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as in_flight:
        if moment == "before the drain":
            in_flight.sendall(b"GET /sleep?seconds=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            wait_until(lambda: "request started" in server.task_lines, 5.0, "the slow request")
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping gracefully" in server.stderr, CLIENT_TIMEOUT, "the signal")
        if moment == "during the drain":
            wait_until(lambda: "draining" in server.task_lines, CLIENT_TIMEOUT, "the drain")
        assert exit_after(server, signal.SIGTERM) == 1

    stderr = server.stderr
    assert "second signal: stopping at once, without a drain" in stderr, stderr
    assert (
        "[WARNING] background runtime stopped without a drain: 2 task(s) cancelled: stubborn, "
        "slow; still running after 1 s, left behind (the trio run ends only when they return): "
        "stubborn\n"
    ) in stderr, stderr
    assert "drain finished" not in stderr
    assert "Traceback" not in stderr


@pytest.mark.e2e
def test_a_second_signal_ends_the_process_while_a_client_that_stops_reading_holds_a_write(
    launch: Callable[..., ServerProcess],
) -> None:
    # hypercorn's socket write is shielded: a client that stops reading a big
    # answer holds it past every cancellation. The tasks were drained early
    # (serve()'s guard); the second signal must still end the process.
    server = launch(
        *TRIOAPI, APP, "--bind", "127.0.0.1:0", "--drain-timeout", "1", "--graceful-timeout", "1"
    )
    port = server.wait_ready()
    add_tasks(port, ("/task", 600.0, "slow"))
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"GET /big?mib=64 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert reader.recv(1).startswith(b"H")  # the answer began; the client reads no more
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "drain finished" in server.stderr, 15.0, "the early drain")
        assert exit_after(server, signal.SIGTERM) == 1

    stderr = server.stderr
    assert "cancelled: slow\n" in stderr, stderr
    assert (
        "[WARNING] trioapi: not stopped 1.5 s after the second signal: exiting now; "
        "background tasks cut off: none\n"
    ) in stderr, stderr

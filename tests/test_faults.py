"""Fault injection: what the client sees, what is logged, what the drain report says.

Each test injects one fault into an app served by hypercorn's real trio
worker (the in-memory harness, ``trioapi._server.harness``) under pytest-trio's
``autojump_clock``, so every timeout fires at an exact virtual time. Each
test also runs a bystander request alongside the fault and checks that it
was not disturbed: it gets its 200 and its background task completes.

A ``trio.sleep`` inside an endpoint or a task is that code's own work (virtual
time); tests synchronise with ``wait_all_tasks_blocked`` and events, never
with sleeps. The last tests use a real socket on 127.0.0.1 and real time:
only a kernel socket buffer shows a client that stops reading.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
import trio
import trio.testing
from hypercorn.utils import LifespanFailureError

import trioapi
import trioapi._server.serve
from trioapi import BackgroundTasks, Depends, Request, Response, TrioAPI
from trioapi._http.responses import StreamingResponse
from trioapi._runtime.background import DrainReport, RuntimeState, TaskHandle, TaskState
from trioapi._server.harness import InMemoryServer


def now() -> float:
    return trio.current_time()


def logged(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    """``logger LEVEL: message`` for every record at ``level`` or above, in order."""
    return [
        f"{r.name} {r.levelname}: {r.getMessage()}" for r in caplog.records if r.levelno >= level
    ]


def with_traceback(caplog: pytest.LogCaptureFixture, exc_type: type[BaseException]) -> int:
    """How many records carry a traceback of ``exc_type``."""
    return sum(1 for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], exc_type))


class Bystander:
    """A normal endpoint added to every faulty app: it must stay undisturbed."""

    def __init__(self, app: TrioAPI) -> None:
        self.done: list[str] = []

        async def record(name: str) -> None:
            self.done.append(name)

        @app.post("/bystander/{name}")
        async def bystander(name: str, tasks: BackgroundTasks) -> dict[str, str]:
            tasks.add_task(record, name)
            return {"name": name}

    async def check(self, server: InMemoryServer, name: str) -> None:
        async with await server.connect() as conn:
            response = await conn.request("POST", f"/bystander/{name}", wait_background=True)
        assert response.status == 200, response
        assert name in self.done


async def post(
    server: InMemoryServer, target: str, *, wait: bool = True, method: str = "POST"
) -> tuple[int, bytes]:
    async with await server.connect() as conn:
        response = await conn.request(method, target, wait_background=wait)
    return response.status, response.body


def no_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return logged(caplog, logging.ERROR)


# --- tasks that raise, hang, block, spawn ----------------------------------------------


class TaskBroke(Exception):
    pass


async def test_a_failing_task_is_logged_once_counted_and_its_request_later_tasks_still_run(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()
    bystander = Bystander(app)
    ran: list[str] = []

    async def boom() -> None:
        raise TaskBroke("the task broke")

    async def after() -> None:
        ran.append("after")

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(boom)
        tasks.add_task(after)
        return {"ok": True}

    async with InMemoryServer(app) as server:
        assert await post(server, "/jobs") == (200, b'{"ok":true}')
        await bystander.check(server, "b")
        report = await server.shutdown()

    assert ran == ["after"]
    assert report is not None
    assert (report.completed, report.failed, report.cancelled, report.total) == (2, 1, 0, 3)
    errors = no_errors(caplog)
    assert errors == [
        "trioapi.background ERROR: background task 'test_a_failing_task_is_logged_once_counted"
        "_and_its_request_later_tasks_still_run.<locals>.boom' failed (POST /jobs): "
        "TaskBroke('the task broke')"
    ]
    assert with_traceback(caplog, TaskBroke) == 1
    assert report.duration == 0


async def test_a_hanging_task_is_cancelled_at_exactly_the_drain_deadline_and_named(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI(drain_timeout=10)
    bystander = Bystander(app)
    unwound: list[float] = []

    async def hang() -> None:
        try:
            await trio.sleep_forever()
        finally:
            unwound.append(now())

    async def four_seconds() -> None:
        await trio.sleep(4)

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.options(name="hang").add_task(hang)
        tasks.options(name="four").add_task(four_seconds)  # behind hang: never starts
        return {"ok": True}

    async with InMemoryServer(app) as server:
        assert await post(server, "/jobs", wait=False) == (200, b'{"ok":true}')
        await bystander.check(server, "b")
        assert now() == 0
        report = await server.shutdown()

    assert unwound == [10]
    assert report is not None
    assert (report.started_at, report.finished_at, report.deadline_hit) == (0, 10, True)
    assert (report.completed, report.cancelled, report.abandoned) == (1, 2, 0)
    assert report.cancelled_tasks == ("four", "hang")
    assert server.timeline.lifespan_complete == 10
    warnings = logged(caplog)
    assert warnings == [
        "trioapi.background WARNING: background drain finished in 10.000 s: 1 completed, "
        "0 failed, 2 cancelled, 0 abandoned, 0 skipped; cancelled: four, hang"
    ]


async def test_a_blocked_sync_task_is_abandoned_at_the_deadline_and_never_counted_twice(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI(drain_timeout=10)
    bystander = Bystander(app)
    release = threading.Event()
    returned = threading.Event()

    def blocked() -> str:
        release.wait(timeout=30)  # bounded: the test releases it below
        returned.set()
        return "late"

    handles: list[TaskHandle[Any]] = []

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        handles.append(tasks.options(name="blocked").add_task(blocked))
        return {"ok": True}

    try:
        async with InMemoryServer(app) as server:
            assert await post(server, "/jobs", wait=False) == (200, b'{"ok":true}')
            await bystander.check(server, "b")
            report = await server.shutdown()
    finally:
        release.set()
    # The thread finishes on its own; its late result changes nothing.
    assert await trio.to_thread.run_sync(returned.wait, 10)

    assert report is not None
    assert (report.started_at, report.finished_at) == (0, 10)
    assert (report.completed, report.cancelled, report.abandoned) == (1, 0, 1)
    assert report.abandoned_tasks == ("blocked",)
    assert handles[0].result is None
    assert app.background.stats()["abandoned"] == 1
    warnings = logged(caplog)
    # The thread's late return is noted when it reaches the trio thread in time.
    late = "trioapi.background WARNING: abandoned background task 'blocked' finished in its"
    assert [w for w in warnings[2:] if not w.startswith(late)] == []
    assert warnings[0] == (
        "trioapi.background WARNING: background task 'blocked' (POST /jobs) was abandoned: "
        "drain_timeout of 10 s expired during shutdown; its thread keeps running until the "
        "function returns"
    )
    assert warnings[1] == (
        "trioapi.background WARNING: background drain finished in 10.000 s: 1 completed, "
        "0 failed, 0 cancelled, 1 abandoned, 0 skipped; abandoned: blocked"
    )


@pytest.mark.parametrize(
    ("child_fault", "expected"),
    [
        ("none", (2, 0, 0)),
        ("raise", (1, 1, 0)),
        ("hang", (1, 0, 1)),
    ],
)
async def test_a_task_running_its_own_nursery_ends_as_one_task(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    child_fault: str,
    expected: tuple[int, int, int],
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI(drain_timeout=10)
    bystander = Bystander(app)
    children: list[str] = []

    async def child(name: str) -> None:
        try:
            await trio.sleep(1 if name == "first" else 2)
            if name == "second" and child_fault == "raise":
                raise TaskBroke(f"child {name} broke")
            if name == "second" and child_fault == "hang":
                await trio.sleep_forever()
            children.append(f"{name} done at {now():g}")
        finally:
            children.append(f"{name} ended at {now():g}")

    async def parent() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, "first")
            nursery.start_soon(child, "second")

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.options(name="parent").add_task(parent)
        return {"ok": True}

    async with InMemoryServer(app) as server:
        assert await post(server, "/jobs", wait=False) == (200, b'{"ok":true}')
        await bystander.check(server, "b")
        report = await server.shutdown()

    assert report is not None
    assert (report.completed, report.failed, report.cancelled) == expected
    assert report.abandoned == report.skipped == 0
    assert children[:2] == ["first done at 1", "first ended at 1"]
    if child_fault == "none":
        assert children[2:] == ["second done at 2", "second ended at 2"]
        assert logged(caplog) == []
    elif child_fault == "raise":
        assert children[2:] == ["second ended at 2"]
        errors = no_errors(caplog)
        assert len(errors) == 1
        assert errors[0].startswith(
            "trioapi.background ERROR: background task 'parent' failed (POST /jobs): "
            "ExceptionGroup("
        )
        assert with_traceback(caplog, ExceptionGroup) == 1
    else:
        assert children[2:] == ["second ended at 10"]
        assert report.cancelled_tasks == ("parent",)
        assert no_errors(caplog) == []


# --- faults in the request's own machinery ----------------------------------------------


TEARDOWN_NOTES: list[str] = []


async def note_teardown(what: str) -> None:
    TEARDOWN_NOTES.append(what)


async def broken_session(tasks: BackgroundTasks) -> AsyncIterator[str]:
    yield "session"
    tasks.add_task(note_teardown, "added in teardown")
    raise OSError("the session could not be closed")


async def test_an_error_in_a_yield_dependency_teardown_goes_to_the_server_and_the_tasks_run(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()
    bystander = Bystander(app)
    ran = TEARDOWN_NOTES
    ran.clear()

    @app.get("/with-session")
    async def with_session(
        value: Annotated[str, Depends(broken_session)], tasks: BackgroundTasks
    ) -> dict[str, str]:
        tasks.add_task(note_teardown, "added by the endpoint")
        return {"value": value}

    async with InMemoryServer(app) as server:
        status, body = await post(server, "/with-session", method="GET")
        assert (status, body) == (200, b'{"value":"session"}')
        await bystander.check(server, "b")
        report = await server.shutdown()

    assert ran == ["added by the endpoint", "added in teardown"]
    assert report is not None
    assert (report.completed, report.failed, report.skipped) == (3, 0, 0)
    # As in FastAPI, the error reaches the server, which logs it with its traceback.
    assert no_errors(caplog) == ["hypercorn.error ERROR: Error in ASGI Framework"]
    assert with_traceback(caplog, OSError) == 1


class Refused(Exception):
    pass


async def test_an_exception_handler_that_raises_gives_500_logs_once_and_skips_the_tasks(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()
    bystander = Bystander(app)
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    @app.exception_handler(Refused)
    async def broken_handler(request: Request, exc: Refused) -> None:
        raise KeyError("the handler itself is broken")

    @app.post("/refuse")
    async def refuse(tasks: BackgroundTasks) -> None:
        tasks.add_task(note)
        raise Refused("no")

    async with InMemoryServer(app) as server:
        assert await post(server, "/refuse") == (500, b'{"detail":"Internal Server Error"}')
        await bystander.check(server, "b")
        report = await server.shutdown()

    assert ran == []
    assert report is not None
    assert (report.completed, report.skipped, report.failed) == (1, 1, 0)
    errors = no_errors(caplog)
    assert len(errors) == 1
    assert errors[0].startswith("trioapi.error ERROR: exception handler ")
    assert errors[0].endswith("failed while handling Refused('no')")
    assert with_traceback(caplog, KeyError) == 1


async def test_a_failing_startup_hook_stops_the_server_and_says_why(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    closed: list[str] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            closed.append("lifespan context left")

    app = TrioAPI(lifespan=lifespan)

    async def broken() -> None:
        raise OSError("database unreachable")

    app.on_startup.append(broken)

    with pytest.RaisesGroup(
        pytest.RaisesExc(LifespanFailureError, match="database unreachable"),
        flatten_subgroups=True,
    ):
        async with InMemoryServer(app):
            pass

    assert closed == ["lifespan context left"]
    assert app.background.state is RuntimeState.CLOSED
    assert app.background.last_report is None  # nothing ran, nothing to report
    errors = no_errors(caplog)
    assert errors[0] == "trioapi ERROR: trioapi: application startup failed"
    assert with_traceback(caplog, OSError) == 1


async def test_failing_shutdown_hooks_are_logged_and_the_drain_and_other_hooks_still_run(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        yield
        events.append(f"lifespan exit at {now():g}")
        raise OSError("pool close failed")

    async def bad_hook() -> None:
        events.append(f"bad hook at {now():g}")
        raise RuntimeError("hook broke")

    def good_hook() -> None:
        events.append("good hook")

    app = TrioAPI(lifespan=lifespan, on_shutdown=[bad_hook, good_hook])
    bystander = Bystander(app)

    async def two_seconds() -> None:
        await trio.sleep(2)
        events.append(f"task done at {now():g}")

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(two_seconds)
        return {"ok": True}

    async with InMemoryServer(app) as server:
        assert await post(server, "/jobs", wait=False) == (200, b'{"ok":true}')
        await bystander.check(server, "b")
        report = await server.shutdown()

    # The drain came first; every hook ran; the lifespan still completed.
    assert events == ["task done at 2", "bad hook at 2", "good hook", "lifespan exit at 2"]
    assert report is not None
    assert (report.completed, report.failed, report.cancelled) == (2, 0, 0)
    assert server.timeline.lifespan_complete == 2
    errors = no_errors(caplog)
    assert len(errors) == 2
    assert errors[0].startswith("trioapi ERROR: trioapi: shutdown hook ")
    assert errors[0].endswith(" failed")
    assert errors[1] == ("trioapi ERROR: trioapi: the lifespan context failed while shutting down")


# --- clients that leave ------------------------------------------------------------------


async def test_a_client_leaving_mid_body_is_no_error_and_the_request_tasks_are_skipped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()
    bystander = Bystander(app)
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    async def audit(tasks: BackgroundTasks) -> None:
        tasks.add_task(note)  # added before the body is read

    @app.post("/upload", dependencies=[Depends(audit)])
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(
            b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n" + b"x" * 10
        )
        await trio.testing.wait_all_tasks_blocked()
        await conn.aclose()  # gone, 90 bytes short
        await trio.testing.wait_all_tasks_blocked()
        await bystander.check(server, "b")
        report = await server.shutdown()

    assert ran == []
    assert report is not None
    assert (report.completed, report.skipped, report.failed) == (1, 1, 0)
    assert no_errors(caplog) == []


async def test_a_client_leaving_mid_stream_stops_the_stream_and_skips_the_tasks(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()
    bystander = Bystander(app)
    produced: list[float] = []
    closed: list[float] = []
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    @app.get("/events")
    async def events(tasks: BackgroundTasks) -> StreamingResponse:
        tasks.add_task(note)

        async def forever() -> AsyncIterator[bytes]:
            try:
                while True:
                    produced.append(now())
                    yield b"data: tick\n\n"
                    await trio.sleep(1)
            finally:
                closed.append(now())

        return StreamingResponse(forever(), media_type="text/event-stream")

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        received = b""
        while received.count(b"data: tick") < 3:
            received += await conn.receive_some()
        assert now() == 2
        await conn.aclose()  # the consumer is gone
        await trio.sleep(30)  # the client's own idle time, long after it left
        stopped_at = closed[0] if closed else None
        await bystander.check(server, "b")
        report = await server.shutdown()

    # The generator was closed within one tick of the client leaving, not when
    # shutdown cancelled the connection 30 s later.
    assert stopped_at is not None
    assert stopped_at <= 3
    assert len(produced) <= 4
    assert ran == []
    assert report is not None
    assert (report.completed, report.skipped) == (1, 1)
    assert no_errors(caplog) == []


async def test_a_stream_cancelled_while_sending_closes_its_generator_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # hypercorn cancels a response still streaming at graceful_timeout, most
    # often while the app waits in send(): the body's generator must be closed
    # then (its finally releases what it holds), not whenever it is collected.
    closed: list[float] = []

    async def ticks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick"
        finally:
            closed.append(now())

    sent: list[str] = []

    async def send(message: Any) -> None:  # the server's side of the stream
        sent.append(message["type"])
        if len(sent) == 3:
            await trio.sleep_forever()  # the client stopped reading

    with trio.move_on_after(5):
        await StreamingResponse(ticks()).send_to(send)
    assert sent == ["http.response.start", "http.response.body", "http.response.body"]
    assert closed == [5]


# --- a task that will not stop ------------------------------------------------------------


stats_after: list[dict[str, int]] = []
# When the server stopped, the stragglers then, and the app.
stopped: list[tuple[float, list[str], TrioAPI]] = []


async def _stubborn_run(
    behaviour: str, caplog: pytest.LogCaptureFixture
) -> tuple[DrainReport, list[str]]:
    app = TrioAPI(drain_timeout=10)
    bystander = Bystander(app)
    trail: list[str] = []

    async def stubborn() -> str:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            trail.append(f"cancelled at {now():g}")
            if behaviour == "cleanup-then-reraise":
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.5)
                trail.append(f"cleaned up at {now():g}")
                raise
            if behaviour == "swallow-and-return":
                return "kept going"
            # swallow-and-keep-working: shields itself for far longer than the grace
            with trio.CancelScope(shield=True):
                await trio.sleep(60)
            trail.append(f"finished at {now():g}")
            return "finished anyway"
        return "not reached"

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.options(name="stubborn").add_task(stubborn)
        return {"ok": True}

    async with InMemoryServer(app) as server:
        assert await post(server, "/jobs", wait=False) == (200, b'{"ok":true}')
        await bystander.check(server, "b")
        report = await server.shutdown()
    assert report is not None
    stats_after[:] = [app.background.stats()]
    stopped[:] = [(now(), [handle.name for handle in app.background.stragglers], app)]
    return report, trail


async def test_a_task_that_cleans_up_then_reraises_cancellation_is_reported_cancelled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    report, trail = await _stubborn_run("cleanup-then-reraise", caplog)
    assert trail == ["cancelled at 10", "cleaned up at 10.5"]
    assert (report.completed, report.cancelled, report.abandoned) == (1, 1, 0)
    assert report.cancelled_tasks == ("stubborn",)
    assert report.finished_at == 10.5


async def test_a_task_that_swallows_cancellation_and_returns_is_reported_completed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # It did return: the report counts it as completed, at the deadline.
    report, trail = await _stubborn_run("swallow-and-return", caplog)
    assert trail == ["cancelled at 10"]
    assert (report.completed, report.cancelled, report.abandoned) == (2, 0, 0)
    assert report.deadline_hit
    assert report.finished_at == 10


async def test_a_task_that_swallows_cancellation_and_keeps_going_is_abandoned_and_named(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    report, trail = await _stubborn_run("swallow-and-keep-working", caplog)
    # The drain waits UNWIND_GRACE (1 s) after cancelling, then stops waiting,
    # and the server stops then too: the runtime's nursery lives in a trio
    # system task, which holds the task until it returns at 70.
    assert trail == ["cancelled at 10"]
    ((stopped_at, stragglers, app),) = stopped
    assert (stopped_at, stragglers) == (11, ["stubborn"])
    assert (report.completed, report.cancelled, report.abandoned) == (1, 0, 1)
    assert report.abandoned_tasks == ("stubborn",)
    assert report.finished_at == 11
    await trio.sleep_until(70)
    await trio.testing.wait_all_tasks_blocked()
    assert trail == ["cancelled at 10", "finished at 70"]
    assert app.background.stragglers == []
    assert (
        "trioapi.background WARNING: abandoned background task 'stubborn' returned at last"
        in logged(caplog)
    )
    assert any(
        "abandoned" in message and "it did not stop when cancelled" in message
        for message in logged(caplog)
    ), logged(caplog)
    # Its late return must not count it a second time.
    assert (
        stats_after[0]
        == app.background.stats()
        == {
            "pending": 0,
            "running": 0,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
            "abandoned": 1,
            "skipped": 0,
            "resumable": 0,
            "retried": 0,
            "delegated": 0,
        }
    )


# --- a flood against the pending cap -----------------------------------------------------


async def test_a_flood_past_the_pending_cap_gets_503_with_retry_after_and_counts_reconcile(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI(max_pending_tasks=3, max_running_tasks=2)
    gate = trio.Event()
    finished: list[int] = []

    async def gated(number: int) -> None:
        await gate.wait()
        finished.append(number)

    @app.post("/jobs/{number}")
    async def work(number: int, tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(gated, number)
        return {"number": number}

    @app.post("/pair/{number}")
    async def pair(number: int, tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(gated, number)
        tasks.add_task(gated, number + 1000)  # may be refused after the first was admitted
        return {"number": number}

    statuses: list[tuple[int, str | None]] = []
    async with InMemoryServer(app) as server:
        for number in range(10):
            async with await server.connect() as conn:
                response = await conn.request("POST", f"/jobs/{number}")
            statuses.append((response.status, response.header("retry-after")))
            await trio.testing.wait_all_tasks_blocked()
        # Two running, three pending: the cap is full.
        assert app.background.stats() == {
            "pending": 3,
            "running": 2,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "abandoned": 0,
            "skipped": 0,
            "resumable": 0,
            "retried": 0,
            "delegated": 0,
        }
        gate.set()
        await app.background.wait_idle()
        # Room for one more, not for two: the pair's first task is skipped.
        app.background.max_pending = 1
        gate = trio.Event()
        async with await server.connect() as conn:
            refused = await conn.request("POST", "/pair/100")
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
        report = await server.shutdown()

    assert statuses == [(200, None)] * 5 + [(503, "1")] * 5
    assert refused.status == 503
    assert refused.header("retry-after") == "1"
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert report is not None
    # Five completed, the pair's admitted task skipped; the refused ones were never admitted.
    assert (report.completed, report.skipped, report.failed, report.cancelled) == (5, 1, 0, 0)
    assert report.total == 6
    assert no_errors(caplog) == []


# --- real sockets: a client that stops reading ------------------------------------------


async def test_a_client_that_stops_reading_cannot_keep_the_tasks_from_being_drained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # hypercorn's socket write is shielded: a client that never reads holds the
    # connection past graceful_timeout, so the lifespan shutdown (and with it
    # the drain) never comes. trioapi.serve then drains on its own.
    caplog.set_level(logging.INFO)
    app = TrioAPI(drain_timeout=0.5)
    handles: list[TaskHandle[Any]] = []

    async def endless() -> None:
        await trio.sleep_forever()

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        handles.append(tasks.options(name="endless").add_task(endless))
        return {"ok": True}

    @app.get("/firehose")
    async def firehose() -> Response:
        return Response(b"x" * (32 << 20))  # far more than the socket buffers hold

    hypercorn_config = trioapi._server.serve.make_config(app, "127.0.0.1:0")
    hypercorn_config.graceful_timeout = 0.2
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                functools.partial(trioapi.serve, config=hypercorn_config), app, "127.0.0.1:0"
            )
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as worker:
                await worker.send_all(
                    b"POST /jobs HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n"
                )
                assert (await worker.receive_some()).startswith(b"HTTP/1.1 200")
            reader = await trio.open_tcp_stream("127.0.0.1", server.port)
            try:
                await reader.send_all(b"GET /firehose HTTP/1.1\r\nhost: t\r\n\r\n")
                assert (await reader.receive_some(100)).startswith(b"HTTP/1.1 200")
                # ...and never reads again: once everything is blocked, the
                # server's write is waiting for room in the socket buffer.
                await trio.testing.wait_all_tasks_blocked()
                server.request_shutdown()
                assert await handles[0] is TaskState.CANCELLED
                await trio.testing.wait_all_tasks_blocked()
                report = app.background.last_report
                assert report is not None
                assert server._stopped.is_set() is False  # still stuck on the reader
            finally:
                await reader.aclose()  # it leaves; hypercorn can finish
            assert await server.shutdown() is report

    assert (report.completed, report.cancelled) == (0, 1)
    assert report.cancelled_tasks == ("endless",)
    messages = logged(caplog)
    assert any("connections are still open" in message for message in messages), messages
    assert sum("background drain finished" in message for message in messages) == 1


@pytest.mark.parametrize("with_parameter", [False, True], ids=["plain", "with-query"])
async def test_an_endless_stream_without_tasks_stops_when_its_client_leaves(
    autojump_clock: trio.testing.MockClock, with_parameter: bool
) -> None:
    # No BackgroundTasks, and (plain) no parameters at all: the response is
    # sent on the app's fastest path, which must still watch for the client.
    app = TrioAPI()
    closed: list[float] = []

    async def forever() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: tick\n\n"
                await trio.sleep(1)
        finally:
            closed.append(now())

    if with_parameter:

        @app.get("/events")
        async def events(topic: str = "all") -> StreamingResponse:
            return StreamingResponse(forever(), media_type="text/event-stream")

    else:

        @app.get("/events")
        async def events() -> StreamingResponse:
            return StreamingResponse(forever(), media_type="text/event-stream")

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        received = b""
        while received.count(b"data: tick") < 3:
            received += await conn.receive_some()
        await conn.aclose()
        await trio.sleep(30)
        await server.shutdown()
    assert closed
    assert closed[0] <= 3  # within a tick of the client leaving, not at shutdown (32)

"""Shutdown: the drain, its report, and what runs after it.

All times are virtual (``autojump_clock``) and asserted exactly: a drain
deadline that fires a moment late or early fails these tests.
"""

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, HTTPException, RuntimeState, TaskHandle, TaskState, TrioAPI
from trioapi.testing import TestClient

LOGGER = "trioapi.background"


def now() -> float:
    return trio.current_time()


def background_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


# --- 11. the drain ------------------------------------------------------------------


async def test_drain_completes_short_tasks_cancels_long_ones_and_abandons_blocked_threads(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    app = TrioAPI(drain_timeout=10)
    handles: list[TaskHandle[Any]] = []
    events: list[tuple[str, float]] = []
    entered, release, left = threading.Event(), threading.Event(), threading.Event()

    def blocking_sync() -> None:
        entered.set()
        try:
            release.wait()
        finally:
            left.set()

    async def short() -> None:
        await trio.sleep(2)
        events.append(("short finished", now()))

    async def long_export() -> None:
        try:
            await trio.sleep(1000)
        except trio.Cancelled:
            events.append(("long cancelled", now()))
            raise

    async def after_long() -> None:
        events.append(("after-long ran", now()))

    async def explode() -> None:
        raise ValueError("boom")

    @app.post("/blocked")
    async def blocked(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name="blocking-sync").add_task(blocking_sync))
        return {}

    @app.post("/fail")
    async def fail(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(explode))
        return {}

    @app.post("/skip")
    async def skip(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(short))
        raise HTTPException(409)

    @app.post("/short")
    async def short_route(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(short))
        return {}

    @app.post("/long")
    async def long_route(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name="long-export").add_task(long_export))
        handles.append(background_tasks.options(name="after-long").add_task(after_long))
        return {}

    try:
        async with TestClient(app, wait_background=False) as client:
            await client.post("/blocked")
            # Let the worker thread pick the job up before any deadline exists
            # (the mock clock jumps while trio waits on a thread).
            await trio.to_thread.run_sync(entered.wait)
            assert (await client.post("/fail", wait_background=True)).status_code == 200
            assert (await client.post("/skip")).status_code == 409
            await client.post("/short")
            await client.post("/long")
            await trio.sleep(1)  # virtual: shutdown begins at t=1
            with trio.fail_after(100):  # virtual guard: a thread never abandoned hangs
                report = await client.shutdown()
            assert now() == 11.0
    finally:
        release.set()
        await trio.to_thread.run_sync(left.wait)

    assert events == [("short finished", 2.0), ("long cancelled", 11.0)]
    assert {h.name: h.state for h in handles} == {
        "blocking-sync": TaskState.ABANDONED,
        explode.__qualname__: TaskState.FAILED,
        short.__qualname__: TaskState.COMPLETED,  # the skipped one has the same name
        "long-export": TaskState.CANCELLED,
        "after-long": TaskState.CANCELLED,
    }
    assert [h.state for h in handles if h.name == short.__qualname__] == [
        TaskState.SKIPPED,
        TaskState.COMPLETED,
    ]
    assert (report.completed, report.failed, report.cancelled, report.abandoned) == (1, 1, 2, 1)
    assert report.skipped == 1
    assert report.completed + report.failed + report.cancelled + report.abandoned + (
        report.skipped
    ) == len(handles)
    assert report.total == len(handles)
    # Both named; the order in which they ended is the runtime's business.
    assert sorted(report.cancelled_tasks) == ["after-long", "long-export"]
    assert report.abandoned_tasks == ("blocking-sync",)
    assert report.deadline_hit
    assert (report.started_at, report.finished_at, report.duration) == (1.0, 11.0, 10.0)
    assert all(h.cancel_reason and "drain_timeout" in h.cancel_reason for h in handles[-2:])
    assert app.background.state is RuntimeState.CLOSED

    logged = [r for r in background_records(caplog) if "drain finished" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.WARNING
    for name in ("long-export", "after-long", "blocking-sync"):
        assert name in logged[0].getMessage()


async def test_drain_that_cut_nothing_off_logs_info_and_ends_with_the_last_task(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    app = TrioAPI(drain_timeout=10)

    async def work(seconds: float) -> None:
        await trio.sleep(seconds)

    @app.post("/job/{seconds}")
    async def add(seconds: float, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(work, seconds)
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/job/3")
        await client.post("/job/1.5")
        report = await client.shutdown()
        assert now() == 3.0
        # Shutdown is idempotent: the same report, no second drain.
        assert await client.shutdown() is report
        assert await app.background.drain() is report

    assert (report.completed, report.total, report.deadline_hit) == (2, 2, False)
    assert (report.cancelled_tasks, report.abandoned_tasks) == ((), ())
    assert (report.started_at, report.duration) == (0.0, 3.0)
    logged = [r for r in background_records(caplog) if "drain finished" in r.getMessage()]
    assert [r.levelno for r in logged] == [logging.INFO]
    assert not [r for r in background_records(caplog) if r.levelno >= logging.WARNING]


async def test_add_task_while_draining_or_closed_answers_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=30)
    reports: list[Any] = []

    async def work() -> None:
        await trio.sleep(10)

    @app.post("/job")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(work)
        return {}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    async def shut_down(client: TestClient) -> None:
        reports.append(await client.shutdown())

    async with TestClient(app, wait_background=False) as client:
        await client.post("/job")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shut_down, client)
            await trio.testing.wait_all_tasks_blocked()
            assert app.background.state is RuntimeState.DRAINING
            refused = await client.post("/job")
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "draining" in refused.json()["detail"]
            # Requests without background tasks are still served.
            assert (await client.get("/plain")).status_code == 200
        assert now() == 10.0
        assert app.background.state is RuntimeState.CLOSED
        closed = await client.post("/job")
        assert closed.status_code == 503
        assert "closed" in closed.json()["detail"]

    (report,) = reports
    # Refused tasks were never admitted: nothing to count, nothing lost.
    assert (report.completed, report.total) == (1, 1)


async def test_tasks_of_a_request_still_in_flight_when_the_drain_begins_still_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=10)
    finished: list[float] = []

    async def work() -> None:
        await trio.sleep(1)
        finished.append(now())

    @app.post("/slow-endpoint")
    async def slow_endpoint(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(work)
        await trio.sleep(2)  # still answering when shutdown begins at t=1
        return {}

    responses: list[int] = []

    async def request(client: TestClient) -> None:
        responses.append((await client.post("/slow-endpoint")).status_code)

    async with TestClient(app) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(request, client)
            await trio.sleep(1)  # virtual
            report = await client.shutdown()
        assert now() == 3.0

    assert responses == [200]
    assert finished == [3.0]
    assert (report.completed, report.cancelled, report.deadline_hit) == (1, 0, False)
    assert report.started_at == 1.0


async def test_tasks_admitted_by_a_request_that_outlives_the_deadline_are_cancelled_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=5)
    handles: list[TaskHandle[Any]] = []
    ran: list[str] = []

    async def work() -> None:
        ran.append("work")

    @app.post("/very-slow")
    async def very_slow(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name="late-work").add_task(work))
        await trio.sleep(20)
        return {}

    async with TestClient(app) as client, trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "/very-slow")
        await trio.testing.wait_all_tasks_blocked()
        report = await client.shutdown()
        assert now() == 5.0

    assert ran == []
    assert handles[0].state is TaskState.CANCELLED
    assert (report.cancelled, report.cancelled_tasks, report.total) == (1, ("late-work",), 1)
    assert app.background.stats()["cancelled"] == 1
    assert app.background.stats()["pending"] == 0


async def test_async_error_hook_of_a_task_that_failed_just_before_shutdown_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A hook that reports to an error tracker awaits I/O: the drain must not
    # end (and cancel the hook) before the report of the last failure is out.
    app = TrioAPI(drain_timeout=10)
    reported: list[tuple[str, float]] = []

    async def explode() -> None:
        raise ValueError("boom")

    @app.background.on_error
    async def report_to_tracker(handle: TaskHandle[Any], error: BaseException) -> None:
        await trio.sleep(2)  # virtual network round trip
        reported.append((handle.name, now()))

    @app.post("/fail")
    async def fail(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.options(name="explode").add_task(explode)
        return {}

    async with TestClient(app) as client:
        await client.post("/fail")
        report = await client.shutdown()

    assert reported == [("explode", 2.0)]
    assert (report.failed, report.cancelled, report.deadline_hit) == (1, 0, False)
    assert report.finished_at == 2.0


async def test_task_shielded_from_cancellation_is_abandoned_and_shutdown_still_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The runtime promises to stop waiting for a task that ignores the drain's
    # cancellation: one grace second after the deadline it is reported as
    # abandoned, and the lifespan shutdown must complete then, not when the
    # task eventually ends on its own.
    app = TrioAPI(drain_timeout=5)

    async def stubborn() -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(1000)

    @app.post("/stubborn")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.options(name="stubborn").add_task(stubborn)
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/stubborn")
        report = await client.shutdown()
        shutdown_returned = now()

    assert report.abandoned_tasks == ("stubborn",)
    assert report.deadline_hit
    assert report.finished_at == 6.0
    assert shutdown_returned == 6.0


# --- 12. shutdown hooks run after the drain -----------------------------------------


@pytest.mark.parametrize(("task_seconds", "drain_ends"), [(4.0, 4.0), (100.0, 5.0)])
async def test_shutdown_hooks_and_lifespan_exit_run_after_the_drain_ended(
    autojump_clock: trio.testing.MockClock, task_seconds: float, drain_ends: float
) -> None:
    events: list[tuple[str, float, RuntimeState]] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        events.append(("lifespan enter", now(), app.background.state))
        yield
        events.append(("lifespan exit", now(), app.background.state))

    def sync_hook() -> None:
        events.append(("on_shutdown sync", now(), app.background.state))

    async def async_hook() -> None:
        await trio.lowlevel.checkpoint()
        events.append(("on_shutdown async", now(), app.background.state))

    app = TrioAPI(drain_timeout=5, lifespan=lifespan, on_shutdown=[sync_hook, async_hook])

    async def work() -> None:
        try:
            await trio.sleep(task_seconds)
        finally:
            events.append(("task ended", now(), app.background.state))

    @app.post("/job")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(work)
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/job")
        report = await client.shutdown()

    assert report.finished_at == drain_ends
    closed = RuntimeState.CLOSED
    assert events == [
        ("lifespan enter", 0.0, RuntimeState.ACCEPTING),
        ("task ended", drain_ends, RuntimeState.DRAINING),
        ("on_shutdown sync", drain_ends, closed),
        ("on_shutdown async", drain_ends, closed),
        ("lifespan exit", drain_ends, closed),
    ]


# --- 13. failing and hanging tasks never take the app down --------------------------


async def test_raising_and_hanging_tasks_never_take_down_the_lifespan_or_other_tasks(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI(drain_timeout=5)
    completed: list[tuple[str, float]] = []
    handles: list[TaskHandle[Any]] = []

    async def ok(label: str, seconds: float) -> None:
        await trio.sleep(seconds)
        completed.append((label, now()))

    async def raises() -> None:
        await trio.sleep(0.5)
        raise ValueError("plain failure")

    async def raises_group() -> None:
        async def child() -> None:
            await trio.sleep(0.25)
            raise KeyError("child failure")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            nursery.start_soon(child)

    def sync_raises() -> None:
        raise OSError("disk full")

    async def hangs() -> None:
        await trio.sleep_forever()

    async def raises_when_cancelled() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise RuntimeError("cleanup failed while being cancelled") from None

    bad = {
        "raise": raises,
        "group": raises_group,
        "sync-raise": sync_raises,
        "hang": hangs,
        "cancel-raise": raises_when_cancelled,
    }

    @app.post("/bad/{kind}")
    async def add_bad(kind: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name=kind).add_task(bad[kind]))
        handles.append(background_tasks.add_task(ok, f"after {kind}", 1))
        return {}

    @app.post("/ok/{label}")
    async def add_ok(label: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(ok, label, 2))
        return {}

    async with TestClient(app, wait_background=False) as client:
        # The sync task first, alone: while trio waits on a worker thread the
        # mock clock jumps to the next deadline, so let no deadline exist yet.
        await client.post("/bad/sync-raise")
        assert await handles[0] is TaskState.FAILED
        async with trio.open_nursery() as nursery:
            for kind in bad:
                if kind != "sync-raise":
                    nursery.start_soon(client.post, f"/bad/{kind}")
            for label in ("a", "b", "c"):
                nursery.start_soon(client.post, f"/ok/{label}")
        report = await client.shutdown()
        assert now() == 5.0

    assert sorted(completed) == [
        ("a", 2.0),
        ("after group", 1.25),
        ("after raise", 1.5),
        ("after sync-raise", 1.0),
        ("b", 2.0),
        ("c", 2.0),
    ]
    states = {h.name: h.state for h in handles if h.name in bad}
    assert states == {
        "raise": TaskState.FAILED,
        "group": TaskState.FAILED,
        "sync-raise": TaskState.FAILED,
        "hang": TaskState.CANCELLED,
        "cancel-raise": TaskState.FAILED,
    }
    assert (report.completed, report.failed, report.cancelled, report.abandoned) == (6, 4, 3, 0)
    assert report.total == len(handles) == 13
    assert sorted(report.cancelled_tasks) == sorted(["hang", ok.__qualname__, ok.__qualname__])
    failures = [r for r in background_records(caplog) if r.levelno == logging.ERROR]
    assert sorted(r.getMessage().split("'")[1] for r in failures) == sorted(
        ["raise", "group", "sync-raise", "cancel-raise"]
    )


async def test_max_running_tasks_makes_other_requests_tasks_wait_their_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(max_running_tasks=1)
    finished: list[tuple[str, float]] = []

    async def work(label: str) -> None:
        await trio.sleep(10)
        finished.append((label, now()))

    @app.post("/job/{label}")
    async def add(label: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(work, label)
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/job/a")
        await trio.testing.wait_all_tasks_blocked()
        await client.post("/job/b")
        await trio.testing.wait_all_tasks_blocked()
        assert (app.background.running, app.background.pending) == (1, 1)
        await app.background.wait_idle()
        assert now() == 20.0
        report = await client.shutdown()

    assert finished == [("a", 10.0), ("b", 20.0)]
    assert report.completed == 2


async def test_tasks_keep_running_across_many_requests_until_one_drain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=25)
    done: list[int] = []

    async def work(number: int) -> None:
        await trio.sleep(number % 7)
        done.append(number)

    @app.post("/n/{number}")
    async def add(number: int, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(work, number)
        return {}

    async with TestClient(app, wait_background=False) as client:
        async with trio.open_nursery() as nursery:
            for number in range(50):
                nursery.start_soon(functools.partial(client.post, f"/n/{number}"))
        report = await client.shutdown()
        assert now() == 6.0

    assert sorted(done) == list(range(50))
    assert (report.completed, report.total, report.deadline_hit) == (50, 50, False)


async def test_cancelled_task_names_are_kept_up_to_a_bound_and_counted_beyond_it(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("trioapi._runtime.background.REPORT_NAMES", 100)
    app = TrioAPI(drain_timeout=1)

    async def forever() -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        for number in range(150):
            app.background.options(name=f"t{number}").add_task(forever)
        with caplog.at_level(logging.WARNING, logger="trioapi.background"):
            report = await app.background.drain()
    assert report.cancelled == 150  # every task counted
    assert len(report.cancelled_tasks) == 100  # names kept in order up to the bound
    assert set(report.cancelled_tasks) <= {f"t{number}" for number in range(150)}
    # ...and every one of them by name, in the log too.
    assert dict(report.cancelled_by_name) == {f"t{number}": 1 for number in range(150)}
    assert str(report).endswith("; cancelled: " + ", ".join(report.cancelled_by_name))
    assert caplog.records[-1].getMessage() == str(report)


async def test_every_cut_off_task_is_named_with_its_count_beyond_10_000(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The finding: 10,686 cut off, the report named 10,000 "and 686 more".
    app = TrioAPI(drain_timeout=1, max_pending_tasks=20_000)

    async def forever() -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        for number in range(10_686):
            name = "send-email" if number % 2 else "resize-image"
            app.background.options(name=name).add_task(forever)
        app.background.options(name="export-csv").add_task(forever)
        with caplog.at_level(logging.WARNING, logger="trioapi.background"):
            report = await app.background.drain()
    assert report.cancelled == 10_687
    assert len(report.cancelled_tasks) == 10_000
    assert sum(report.cancelled_by_name.values()) == report.cancelled
    assert dict(report.cancelled_by_name) == {
        "resize-image": 5_343,
        "send-email": 5_343,
        "export-csv": 1,
    }
    message = caplog.records[-1].getMessage()
    assert message == str(report)
    cut_off = message.split("; cancelled: ", 1)[1]
    assert sorted(cut_off.split(", ")) == ["export-csv", "resize-image (5343)", "send-email (5343)"]
    with pytest.raises(TypeError):
        report.cancelled_by_name["send-email"] = 0  # type: ignore[index]

"""The background-task runtime while the app serves: when, where and in what order tasks run.

Every test that involves time runs under ``autojump_clock`` and asserts exact
virtual times: a ``trio.sleep`` inside a task is that task's "work", never a
way to synchronise the test. Draining at shutdown is in ``test_drain.py``.

No ``from __future__ import annotations`` here: routes declared inside a test
name local dependencies in ``Annotated[..., Depends(local)]``, which must be
evaluated where they are written.
"""

import contextvars
import functools
import logging
import threading
from collections.abc import AsyncIterator, MutableMapping
from typing import Annotated, Any

import pytest
import trio
import trio.testing

from trioapi import (
    BackgroundTasks,
    BackgroundTaskTimeout,
    Depends,
    Header,
    HTTPException,
    RuntimeState,
    TaskHandle,
    TaskState,
    TrioAPI,
)
from trioapi.testing import TestClient

from ._asgi import http_scope
from ._pool import until_sync_job_sent

LOGGER = "trioapi.background"

Event = tuple[str, float]


def now() -> float:
    return trio.current_time()


async def call_asgi(
    app: TrioAPI,
    method: str,
    path: str,
    events: list[Event],
    *,
    final_send_seconds: float = 0.0,
) -> int:
    """Calls ``app`` as a server would and records when the response went out.

    The final body message takes ``final_send_seconds`` to be accepted, like a
    slow socket write; ``"response complete"`` is recorded once ``send`` returned.
    """
    scope = http_scope(path, method)
    done = trio.Event()
    received = False
    status: list[int] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif not message.get("more_body", False):
            await trio.sleep(final_send_seconds)
            events.append(("response complete", now()))
            done.set()

    await app(scope, receive, send)
    events.append(("app call returned", now()))
    return status[0]


def background_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


# --- 1. the response is complete before any task starts ----------------------------


async def test_task_starts_only_after_the_final_response_message_was_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    events: list[Event] = []

    async def record_start() -> None:
        events.append(("task started", now()))

    @app.post("/orders")
    async def create_order(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(record_start)
        events.append(("endpoint returned", now()))
        return {"status": "ok"}

    async with TestClient(app):
        status = await call_asgi(app, "POST", "/orders", events, final_send_seconds=1.5)
        await app.background.wait_idle()

    assert status == 200
    assert events == [
        ("endpoint returned", 0.0),
        ("response complete", 1.5),
        ("app call returned", 1.5),
        ("task started", 1.5),
    ]


async def test_request_call_cancelled_during_its_final_send_still_hands_its_tasks_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # hypercorn can cancel the request call (graceful_timeout) while the last
    # bytes are being written: the client then has its 200, so the task must run.
    app = TrioAPI()
    events: list[Event] = []
    handles: list[TaskHandle[Any]] = []

    async def record_start() -> None:
        events.append(("task started", now()))

    @app.post("/orders")
    async def create_order(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(record_start))
        return {"status": "ok"}

    async with TestClient(app):
        with trio.move_on_after(0.5):
            await call_asgi(app, "POST", "/orders", events, final_send_seconds=2.0)
        assert await handles[0] is TaskState.COMPLETED

    # (Whether the call itself returns or raises Cancelled is not the point.)
    assert [event for event in events if event[0] != "app call returned"] == [
        ("response complete", 2.0),
        ("task started", 2.0),
    ]


@pytest.mark.parametrize("opt_out", ["per-client", "per-call"])
async def test_request_returns_at_once_while_its_five_second_task_finishes_at_five(
    autojump_clock: trio.testing.MockClock, opt_out: str
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    finished: list[float] = []

    async def five_seconds_of_work() -> None:
        await trio.sleep(5)
        finished.append(now())

    @app.post("/job")
    async def work(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(five_seconds_of_work))
        return {"status": "accepted"}

    async with TestClient(app, wait_background=opt_out != "per-client") as client:
        if opt_out == "per-call":
            response = await client.post("/job", wait_background=False)
        else:
            response = await client.post("/job")
        assert response.status_code == 200
        assert now() == 0.0
        assert finished == []
        assert await handles[0] is TaskState.COMPLETED
        assert now() == 5.0
    assert finished == [5.0]


async def test_by_default_a_request_returns_after_its_own_tasks_finished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()

    async def five_seconds_of_work() -> None:
        await trio.sleep(5)

    @app.post("/job")
    async def work(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(five_seconds_of_work)
        return {"status": "accepted"}

    async with TestClient(app) as client:
        response = await client.post("/job")
        assert response.status_code == 200
        assert now() == 5.0
        assert app.background.completed == 1


# --- 2. order within a request; 3. concurrency across requests --------------------


async def test_tasks_of_one_request_run_one_after_another_in_the_order_added(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    spans: list[tuple[str, float, float]] = []

    async def slow(label: str, seconds: float) -> None:
        started = now()
        await trio.sleep(seconds)
        spans.append((label, started, now()))

    def sync_step(label: str) -> None:
        spans.append((label, -1.0, -1.0))  # a worker thread cannot read the trio clock

    @app.post("/steps")
    async def steps(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(slow, "first", 3)
        background_tasks.add_task(sync_step, "second")
        background_tasks.add_task(slow, "third", 1)
        background_tasks.add_task(slow, "fourth", 0.5)
        return {}

    async with TestClient(app) as client:
        await client.post("/steps")

    assert spans == [
        ("first", 0.0, 3.0),
        ("second", -1.0, -1.0),
        ("third", 3.0, 4.0),
        ("fourth", 4.0, 4.5),
    ]


async def test_tasks_of_different_requests_run_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    finished: dict[str, float] = {}

    async def ten_seconds(label: str) -> None:
        await trio.sleep(10)
        finished[label] = now()

    @app.post("/jobs/{label}")
    async def job(label: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(ten_seconds, label)
        return {}

    async with TestClient(app) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.post, "/jobs/a")
            nursery.start_soon(client.post, "/jobs/b")
        assert now() == 10.0

    assert finished == {"a": 10.0, "b": 10.0}


# --- 4. failure isolation -----------------------------------------------------------


async def test_failing_task_is_logged_and_reported_to_hooks_and_later_tasks_still_run(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()
    hook_calls: list[tuple[str, str, TaskHandle[Any], BaseException]] = []
    ran: list[tuple[str, float]] = []

    async def explode() -> None:
        await trio.sleep(1)
        raise ValueError("the mail server said no")

    async def after_the_failure() -> None:
        ran.append(("after", now()))

    @app.background.on_error
    def sync_hook(handle: TaskHandle[Any], error: BaseException) -> None:
        hook_calls.append(("sync", handle.name, handle, error))

    @app.background.on_error
    def broken_hook(handle: TaskHandle[Any], error: BaseException) -> None:
        raise RuntimeError("the hook itself is broken")

    @app.background.on_error
    async def async_hook(handle: TaskHandle[Any], error: BaseException) -> None:
        await trio.lowlevel.checkpoint()
        hook_calls.append(("async", handle.name, handle, error))

    @app.post("/notify")
    async def notify(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(explode)
        background_tasks.add_task(after_the_failure)
        return {}

    async with TestClient(app) as client:
        response = await client.post("/notify")
        assert response.status_code == 200

    assert ran == [("after", 1.0)]
    assert [(kind, name) for kind, name, _, _ in hook_calls] == [
        ("sync", explode.__qualname__),
        ("async", explode.__qualname__),
    ]
    for _, _, handle, error in hook_calls:
        assert isinstance(error, ValueError)
        assert str(error) == "the mail server said no"
        assert handle.exception is error
        assert handle.state is TaskState.FAILED
    assert (app.background.failed, app.background.completed) == (1, 1)

    failures = [r for r in background_records(caplog) if r.levelno == logging.ERROR]
    failure = next(r for r in failures if r.exc_info and isinstance(r.exc_info[1], ValueError))
    message = failure.getMessage()
    assert explode.__qualname__ in message
    assert "POST /notify" in message
    assert failure.exc_info is not None
    assert "raise ValueError" in caplog.text
    assert "Traceback" in caplog.text
    hook_failure = [r for r in failures if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert len(hook_failure) == 1
    assert "broken_hook" in hook_failure[0].getMessage()


# --- 5. dependencies share the request's BackgroundTasks ----------------------------


async def test_dependency_tasks_merge_with_the_endpoints_in_the_order_added() -> None:
    app = TrioAPI()
    ran: list[str] = []
    seen: list[BackgroundTasks] = []

    async def record(label: str) -> None:
        ran.append(label)

    async def innermost(background_tasks: BackgroundTasks) -> None:
        seen.append(background_tasks)
        background_tasks.add_task(record, "sub-dependency")

    async def outer(
        background_tasks: BackgroundTasks, _: Annotated[None, Depends(innermost)]
    ) -> None:
        seen.append(background_tasks)
        background_tasks.add_task(record, "dependency")

    async def with_teardown(background_tasks: BackgroundTasks) -> AsyncIterator[None]:
        seen.append(background_tasks)
        background_tasks.add_task(record, "yield dependency, before yield")
        yield
        background_tasks.add_task(record, "yield dependency, teardown")

    def sync_dependency(background_tasks: BackgroundTasks) -> None:
        seen.append(background_tasks)
        background_tasks.add_task(record, "sync dependency")

    @app.post("/merge")
    async def merge(
        background_tasks: BackgroundTasks,
        _a: Annotated[None, Depends(outer)],
        _b: Annotated[None, Depends(with_teardown)],
        _c: Annotated[None, Depends(sync_dependency)],
    ) -> dict[str, str]:
        seen.append(background_tasks)
        background_tasks.add_task(record, "endpoint")
        return {}

    async with TestClient(app) as client:
        assert (await client.post("/merge")).status_code == 200
        assert (await client.post("/merge")).status_code == 200

    expected = [
        "sub-dependency",
        "dependency",
        "yield dependency, before yield",
        "sync dependency",
        "endpoint",
        "yield dependency, teardown",
    ]
    assert ran == expected + expected
    first, second = seen[:5], seen[5:]
    assert all(tasks is first[0] for tasks in first)
    assert all(tasks is second[0] for tasks in second)
    assert first[0] is not second[0]


# --- 6. an endpoint that raises skips its tasks; 7. teardown tasks still run ------


@pytest.mark.parametrize(
    ("error", "status"),
    [(HTTPException(409, detail="already there"), 409), (RuntimeError("bug"), 500)],
)
async def test_tasks_of_an_endpoint_that_raises_never_run_and_are_counted_skipped(
    error: Exception, status: int
) -> None:
    app = TrioAPI()
    ran: list[str] = []
    handles: list[TaskHandle[Any]] = []

    async def record(label: str) -> None:
        ran.append(label)

    async def dependency(background_tasks: BackgroundTasks) -> None:
        handles.append(background_tasks.add_task(record, "from dependency"))

    @app.post("/fail")
    async def fail(
        background_tasks: BackgroundTasks, _: Annotated[None, Depends(dependency)]
    ) -> dict[str, str]:
        handles.append(background_tasks.add_task(record, "from endpoint"))
        raise error

    async with TestClient(app) as client:
        response = await client.post("/fail")
        assert response.status_code == status
        await trio.testing.wait_all_tasks_blocked()
        report = await client.shutdown()

    assert ran == []
    assert [handle.state for handle in handles] == [TaskState.SKIPPED, TaskState.SKIPPED]
    assert [await handle for handle in handles] == [TaskState.SKIPPED, TaskState.SKIPPED]
    assert app.background.skipped == 2
    assert (report.skipped, report.completed, report.cancelled, report.failed) == (2, 0, 0, 0)


async def test_tasks_added_in_a_yield_dependencys_teardown_run_after_the_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    events: list[Event] = []

    async def record(label: str) -> None:
        events.append((label, now()))

    async def session(background_tasks: BackgroundTasks) -> AsyncIterator[None]:
        yield
        events.append(("teardown", now()))
        background_tasks.add_task(record, "teardown task")

    @app.post("/session")
    async def use_session(_: Annotated[None, Depends(session)]) -> dict[str, str]:
        return {}

    async with TestClient(app):
        status = await call_asgi(app, "POST", "/session", events, final_send_seconds=2.0)
        await app.background.wait_idle()

    assert status == 200
    assert events == [
        ("response complete", 2.0),
        ("teardown", 2.0),
        ("app call returned", 2.0),
        ("teardown task", 2.0),
    ]
    assert app.background.completed == 1


async def test_teardown_tasks_run_even_when_the_endpoint_raised() -> None:
    app = TrioAPI()
    ran: list[str] = []

    async def record(label: str) -> None:
        ran.append(label)

    async def session(background_tasks: BackgroundTasks) -> AsyncIterator[None]:
        background_tasks.add_task(record, "before yield")
        try:
            yield
        finally:
            background_tasks.add_task(record, "rollback")

    @app.post("/session")
    async def use_session(
        background_tasks: BackgroundTasks, _: Annotated[None, Depends(session)]
    ) -> dict[str, str]:
        background_tasks.add_task(record, "endpoint")
        raise HTTPException(400, detail="bad")

    async with TestClient(app) as client:
        assert (await client.post("/session")).status_code == 400

    assert ran == ["rollback"]
    assert (app.background.skipped, app.background.completed) == (2, 1)


# --- 8. per-task options --------------------------------------------------------------


async def test_task_past_its_timeout_is_cancelled_then_and_counted_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    hook_errors: list[tuple[str, BaseException]] = []
    interrupted: list[float] = []

    async def warm_up() -> None:
        await trio.sleep(1)

    async def slow_report() -> None:
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            interrupted.append(now())
            raise

    @app.background.on_error
    def hook(handle: TaskHandle[Any], error: BaseException) -> None:
        hook_errors.append((handle.name, error))

    @app.post("/report")
    async def report(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(warm_up))
        handles.append(
            background_tasks.options(name="monthly-report", timeout=2.5).add_task(slow_report)
        )
        return {}

    async with TestClient(app) as client:
        await client.post("/report")
        # The timeout runs from the task's start (t=1), not from add_task (t=0).
        assert now() == 3.5

    slow = handles[1]
    assert slow.name == "monthly-report"
    assert slow.timeout == 2.5
    assert slow.state is TaskState.FAILED
    assert (slow.started_at, slow.finished_at) == (1.0, 3.5)
    assert interrupted == [3.5]
    assert isinstance(slow.exception, BackgroundTaskTimeout)
    assert isinstance(slow.exception, TimeoutError)
    assert [(name, type(error)) for name, error in hook_errors] == [
        ("monthly-report", BackgroundTaskTimeout)
    ]
    assert hook_errors[0][1] is slow.exception
    assert (app.background.failed, app.background.cancelled, app.background.completed) == (1, 0, 1)


async def test_options_never_take_the_task_functions_own_name_and_timeout_arguments(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    received: list[tuple[str, float]] = []
    handles: list[TaskHandle[Any]] = []

    async def send_mail(*, name: str, timeout: float) -> None:
        await trio.sleep(timeout)
        received.append((name, timeout))

    def sync_send_mail(name: str, timeout: float) -> None:
        received.append((name, timeout))

    @app.post("/mail")
    async def mail(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(send_mail, name="Ada", timeout=2.0))
        handles.append(
            background_tasks.options(name="mail-bob", timeout=30).add_task(
                send_mail, name="Bob", timeout=3.0
            )
        )
        handles.append(background_tasks.add_task(sync_send_mail, name="Cy", timeout=4.0))
        return {}

    async with TestClient(app) as client:
        await client.post("/mail")
        assert now() == 5.0

    assert received == [("Ada", 2.0), ("Bob", 3.0), ("Cy", 4.0)]
    assert [(h.name, h.timeout) for h in handles] == [
        (send_mail.__qualname__, None),
        ("mail-bob", 30),
        (sync_send_mail.__qualname__, None),
    ]
    assert [h.state for h in handles] == [TaskState.COMPLETED] * 3


async def test_a_timeout_bounds_only_its_own_task_not_the_ones_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []

    async def work(seconds: float) -> None:
        await trio.sleep(seconds)

    @app.post("/mixed")
    async def mixed(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name="a", timeout=2).add_task(work, 1))
        handles.append(background_tasks.options(name="b").add_task(work, 5))
        handles.append(background_tasks.options(name="c", timeout=1).add_task(work, 10))
        handles.append(background_tasks.options(name="d").add_task(work, 1))
        handles.append(background_tasks.options(name="e", timeout=3).add_task(work, 2))
        return {}

    async with TestClient(app) as client:
        await client.post("/mixed")
        assert now() == 10.0

    assert [(h.name, h.state, h.started_at, h.finished_at) for h in handles] == [
        ("a", TaskState.COMPLETED, 0.0, 1.0),
        ("b", TaskState.COMPLETED, 1.0, 6.0),
        ("c", TaskState.FAILED, 6.0, 7.0),
        ("d", TaskState.COMPLETED, 7.0, 8.0),
        ("e", TaskState.COMPLETED, 8.0, 10.0),
    ]


async def test_a_timeout_runs_from_the_tasks_start_not_while_it_waits_for_a_run_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(max_running_tasks=1)
    handles: list[TaskHandle[Any]] = []

    async def work(seconds: float) -> None:
        await trio.sleep(seconds)

    @app.post("/job/{seconds}/{timeout}")
    async def add(
        seconds: float, timeout: float, background_tasks: BackgroundTasks
    ) -> dict[str, str]:
        handles.append(background_tasks.options(timeout=timeout).add_task(work, seconds))
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/job/5/100")
        await trio.testing.wait_all_tasks_blocked()
        await client.post("/job/2/3")
        await app.background.wait_idle()
        assert now() == 7.0

    assert [(h.state, h.started_at, h.finished_at) for h in handles] == [
        (TaskState.COMPLETED, 0.0, 5.0),
        (TaskState.COMPLETED, 5.0, 7.0),
    ]


@pytest.mark.parametrize("how", ["cancel()", "timeout"])
async def test_a_task_that_swallows_its_cancellation_does_not_cut_off_the_next_one(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    # Swallowing Cancelled is a bug in the task, but the request's later
    # tasks must not pay for it.
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    events: list[Event] = []

    async def swallower() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            events.append(("swallowed", now()))

    async def next_task() -> None:
        await trio.sleep(2)
        events.append(("next finished", now()))

    @app.post("/swallow")
    async def swallow(background_tasks: BackgroundTasks) -> dict[str, str]:
        timeout = 1.0 if how == "timeout" else None
        handles.append(background_tasks.options(timeout=timeout).add_task(swallower))
        handles.append(background_tasks.add_task(next_task))
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/swallow")
        if how == "cancel()":
            await trio.sleep(1)  # virtual
            handles[0].cancel()
        assert await handles[1] is TaskState.COMPLETED

    assert events == [("swallowed", 1.0), ("next finished", 3.0)]
    assert handles[0].done


async def test_sync_task_past_its_timeout_fails_its_thread_abandoned_and_the_next_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    hook_errors: list[BaseException] = []
    entered, release, left = threading.Event(), threading.Event(), threading.Event()
    events: list[Event] = []

    def stuck() -> None:
        entered.set()
        try:
            release.wait()
        finally:
            left.set()

    async def next_task() -> None:
        events.append(("next ran", now()))

    app.background.on_error(lambda handle, error: hook_errors.append(error))

    @app.post("/stuck")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name="stuck", timeout=4).add_task(stuck))
        handles.append(background_tasks.add_task(next_task))
        return {}

    try:
        async with TestClient(app, wait_background=False) as client:
            await client.post("/stuck")
            await until_sync_job_sent()
            # Block the trio thread (not a checkpoint) until the worker thread
            # is inside the job: otherwise the clock could reach the deadline
            # while the job is still queued.
            assert entered.wait(10)
            # A virtual guard: if the timeout never fired, fail instead of hanging.
            with trio.fail_after(60):
                assert await handles[0] is TaskState.FAILED
            assert now() == 4.0
            assert await handles[1] is TaskState.COMPLETED
    finally:
        release.set()
        await trio.to_thread.run_sync(left.wait, 10)

    assert events == [("next ran", 4.0)]
    assert isinstance(handles[0].exception, BackgroundTaskTimeout)
    assert "abandoned" in str(handles[0].exception)
    assert hook_errors == [handles[0].exception]


async def test_cancelling_a_running_sync_task_abandons_its_thread_and_the_next_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    entered, release, left = threading.Event(), threading.Event(), threading.Event()
    events: list[Event] = []

    def stuck() -> None:
        entered.set()
        try:
            release.wait()
        finally:
            left.set()

    async def next_task() -> None:
        events.append(("next ran", now()))

    @app.post("/stuck")
    async def add(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.options(name="stuck").add_task(stuck))
        handles.append(background_tasks.add_task(next_task))
        return {}

    try:
        async with TestClient(app, wait_background=False) as client:
            await client.post("/stuck")
            await until_sync_job_sent()
            assert entered.wait(10)  # blocks the trio thread on purpose, see above
            handles[0].cancel("operator gave up")
            with trio.fail_after(60):  # virtual guard against a hang
                assert await handles[0] is TaskState.ABANDONED
            assert await handles[1] is TaskState.COMPLETED
            assert now() == 0.0
            assert (app.background.abandoned, app.background.completed) == (1, 1)
    finally:
        release.set()
        await trio.to_thread.run_sync(left.wait, 10)

    assert events == [("next ran", 0.0)]
    assert handles[0].cancel_reason == "operator gave up"


def test_options_refuse_a_timeout_that_is_not_positive() -> None:
    tasks = BackgroundTasks(TrioAPI().background)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            tasks.options(timeout=bad)


# --- 9. cancel by handle ------------------------------------------------------------


async def test_cancelling_a_pending_task_means_it_never_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    ran: list[str] = []

    async def first() -> None:
        await trio.sleep(5)
        ran.append("first")

    async def second() -> None:
        ran.append("second")

    @app.post("/two")
    async def two(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(first))
        handles.append(background_tasks.add_task(second))
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/two")
        await trio.testing.wait_all_tasks_blocked()
        assert [h.state for h in handles] == [TaskState.RUNNING, TaskState.PENDING]
        handles[1].cancel("not needed any more")
        assert handles[1].state is TaskState.CANCELLED
        assert await handles[1] is TaskState.CANCELLED
        assert now() == 0.0
        assert await handles[0].wait() is TaskState.COMPLETED
        assert now() == 5.0
        await app.background.wait_idle()

    assert ran == ["first"]
    assert handles[1].cancel_reason == "not needed any more"
    assert handles[1].started_at is None
    assert (app.background.completed, app.background.cancelled) == (1, 1)


async def test_cancelling_a_running_async_task_interrupts_it_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []
    events: list[Event] = []

    async def long_job() -> None:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            events.append(("long job interrupted", now()))
            raise

    async def next_job() -> None:
        events.append(("next job ran", now()))

    @app.post("/long")
    async def long(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(long_job))
        handles.append(background_tasks.add_task(next_job))
        return {}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/long")
        await trio.sleep(3)  # virtual: let the job run for 3 s before cancelling it
        handles[0].cancel()
        assert await handles[0] is TaskState.CANCELLED
        assert now() == 3.0
        assert await handles[1] is TaskState.COMPLETED

    assert events == [("long job interrupted", 3.0), ("next job ran", 3.0)]
    assert handles[0].finished_at == 3.0
    assert handles[0].cancel_reason
    assert (app.background.cancelled, app.background.completed, app.background.failed) == (
        1,
        1,
        0,
    )


async def test_cancelling_a_finished_task_changes_nothing() -> None:
    app = TrioAPI()
    handles: list[TaskHandle[Any]] = []

    async def answer() -> int:
        await trio.lowlevel.checkpoint()
        return 42

    @app.post("/answer")
    async def ask(background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(answer))
        return {}

    async with TestClient(app) as client:
        await client.post("/answer")
        handle = handles[0]
        assert await handle is TaskState.COMPLETED
        before = app.background.stats()
        handle.cancel("too late")
        assert handle.state is TaskState.COMPLETED
        assert handle.result == 42
        assert handle.exception is None
        assert handle.cancel_reason is None
        assert app.background.stats() == before
        assert await handle.wait() is TaskState.COMPLETED


# --- 10. the pending cap ------------------------------------------------------------


async def test_add_task_past_the_pending_cap_answers_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(max_pending_tasks=2)
    added: list[TaskHandle[Any]] = []

    async def slow() -> None:
        await trio.sleep(10)

    @app.post("/add/{count}")
    async def add(count: int, background_tasks: BackgroundTasks) -> dict[str, int]:
        for _ in range(count):
            added.append(background_tasks.add_task(slow))
        return {"added": count}

    async with TestClient(app, wait_background=False) as client:
        # Two admitted: one starts at once, one waits behind it (pending 1).
        assert (await client.post("/add/2")).status_code == 200
        await trio.testing.wait_all_tasks_blocked()
        assert (app.background.pending, app.background.running) == (1, 1)
        assert (await client.post("/add/1")).status_code == 200
        assert app.background.pending == 2

        refused = await client.post("/add/1")
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        detail = refused.json()["detail"]
        assert "cannot add a background task" in detail
        assert "max_pending=2" in detail

        await app.background.wait_idle()
        assert now() == 20.0

    assert len(added) == 3
    assert (app.background.completed, app.background.skipped) == (3, 0)
    assert app.background.stats() == {
        "pending": 0,
        "running": 0,
        "completed": 3,
        "failed": 0,
        "cancelled": 0,
        "abandoned": 0,
        "skipped": 0,
        "resumable": 0,
        "retried": 0,
        "delegated": 0,
    }


async def test_a_request_refused_at_the_cap_skips_the_tasks_it_had_already_added() -> None:
    app = TrioAPI(max_pending_tasks=2)
    ran: list[int] = []
    added: list[TaskHandle[Any]] = []

    async def record(number: int) -> None:
        ran.append(number)

    @app.post("/three")
    async def three(background_tasks: BackgroundTasks) -> dict[str, str]:
        for number in range(3):
            added.append(background_tasks.add_task(record, number))
        return {}

    async with TestClient(app) as client:
        response = await client.post("/three")
        report = await client.shutdown()

    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert ran == []
    assert [h.state for h in added] == [TaskState.SKIPPED, TaskState.SKIPPED]
    assert report.total == len(added) == report.skipped


# --- 14. live introspection ---------------------------------------------------------


async def test_counters_in_flight_and_wait_idle_follow_the_tasks_live(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()

    async def step(seconds: float) -> None:
        await trio.sleep(seconds)

    @app.post("/steps")
    async def steps(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.options(name="two-seconds").add_task(step, 2)
        background_tasks.options(name="three-seconds").add_task(step, 3)
        return {}

    async with TestClient(app, wait_background=False) as client:
        assert app.background.stats()["pending"] == 0
        await client.post("/steps")
        await trio.testing.wait_all_tasks_blocked()
        assert (app.background.pending, app.background.running) == (1, 1)
        assert [(h.name, h.state, h.age) for h in app.background.in_flight()] == [
            ("two-seconds", TaskState.RUNNING, 0.0),
            ("three-seconds", TaskState.PENDING, 0.0),
        ]

        await trio.sleep(2.5)  # virtual: look again while the second task runs
        assert app.background.stats() == {
            "pending": 0,
            "running": 1,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
            "abandoned": 0,
            "skipped": 0,
            "resumable": 0,
            "retried": 0,
            "delegated": 0,
        }
        assert [(h.name, h.state, h.age) for h in app.background.in_flight()] == [
            ("three-seconds", TaskState.RUNNING, 2.5),
        ]

        await app.background.wait_idle()
        assert now() == 5.0
        assert app.background.in_flight() == []
        assert (app.background.running, app.background.completed) == (0, 2)
        await app.background.wait_idle()
        assert now() == 5.0


# --- 15. without the lifespan -------------------------------------------------------


async def test_without_lifespan_tasks_run_inside_the_request_call_after_the_response(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()
    events: list[Event] = []

    async def five_seconds() -> None:
        events.append(("task started", now()))
        await trio.sleep(5)
        events.append(("task finished", now()))

    @app.post("/inline")
    async def inline(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(five_seconds)
        return {}

    assert app.background.state is RuntimeState.IDLE
    assert await call_asgi(app, "POST", "/inline", events) == 200
    assert events == [
        ("response complete", 0.0),
        ("task started", 0.0),
        ("task finished", 5.0),
        ("app call returned", 5.0),
    ]

    client = TestClient(app, wait_background=False)
    for _ in range(3):
        assert (await client.post("/inline")).status_code == 200
    assert now() == 20.0
    assert app.background.completed == 4

    warnings = [r for r in background_records(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "lifespan" in warnings[0].getMessage()


# --- 16. where tasks run, and what they see -----------------------------------------


async def test_a_sync_task_can_call_back_into_trio_from_its_worker_thread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # What trio promises for code run by trio.to_thread.run_sync: a sync task
    # may reach the trio run with trio.from_thread (to read the clock, set an
    # Event, run an async client call) without being handed a token.
    app = TrioAPI()
    seen: list[float] = []

    async def warm_up() -> None:
        await trio.sleep(2)

    def sync_task() -> None:
        seen.append(trio.from_thread.run_sync(trio.current_time))
        trio.from_thread.run(trio.sleep, 1)
        seen.append(trio.from_thread.run_sync(trio.current_time))

    @app.post("/callback")
    async def callback(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(warm_up)
        background_tasks.add_task(sync_task)
        return {}

    async with TestClient(app) as client:
        await client.post("/callback")

    assert seen == [2.0, 3.0]
    assert (app.background.completed, app.background.failed) == (2, 0)


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_sync_tasks_run_in_worker_threads_and_async_tasks_in_the_trio_thread() -> None:
    app = TrioAPI()
    threads: dict[str, int] = {}

    def sync_task() -> None:
        threads["sync"] = threading.get_ident()

    async def async_task() -> None:
        threads["async"] = threading.get_ident()

    class AsyncCallable:
        async def __call__(self, label: str) -> None:
            threads[label] = threading.get_ident()

    @app.post("/where")
    async def where(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(sync_task)
        background_tasks.add_task(async_task)
        background_tasks.add_task(AsyncCallable(), "async callable object")
        background_tasks.add_task(functools.partial(AsyncCallable(), "async partial"))
        return {}

    async with TestClient(app) as client:
        await client.post("/where")

    trio_thread = threading.get_ident()
    assert threads["sync"] != trio_thread
    assert threads["async"] == trio_thread
    assert threads["async callable object"] == trio_thread
    assert threads["async partial"] == trio_thread
    assert app.background.completed == 4


async def test_tasks_see_the_context_variables_their_own_request_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    seen: list[tuple[str, str, str]] = []

    async def tag_request(x_request_id: Annotated[str, Header()]) -> None:
        request_id.set(x_request_id)

    async def async_task(expected: str) -> None:
        await trio.sleep(1)
        seen.append(("async", expected, request_id.get()))

    def sync_task(expected: str) -> None:
        seen.append(("sync", expected, request_id.get()))

    @app.post("/ctx")
    async def ctx(
        background_tasks: BackgroundTasks,
        x_request_id: Annotated[str, Header()],
        _: Annotated[None, Depends(tag_request)],
    ) -> dict[str, str]:
        background_tasks.add_task(async_task, x_request_id)
        background_tasks.add_task(sync_task, x_request_id)
        return {}

    async with TestClient(app) as client, trio.open_nursery() as nursery:
        for rid in ("req-1", "req-2"):
            nursery.start_soon(
                functools.partial(client.post, "/ctx", headers={"x-request-id": rid})
            )

    assert sorted(seen) == [
        ("async", "req-1", "req-1"),
        ("async", "req-2", "req-2"),
        ("sync", "req-1", "req-1"),
        ("sync", "req-2", "req-2"),
    ]


# --- 17. embedding the runtime without ASGI -----------------------------------------


async def test_runtime_embedded_in_a_nursery_runs_submitted_tasks_and_drains(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=10)
    runtime = app.background
    finished: list[tuple[str, float]] = []

    async def job(label: str, seconds: float) -> None:
        await trio.sleep(seconds)
        finished.append((label, now()))

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        assert runtime.state is RuntimeState.ACCEPTING
        tasks = BackgroundTasks(runtime)
        first = tasks.add_task(job, "a", 2)
        second = tasks.add_task(job, "b", 1)
        other = BackgroundTasks(runtime)
        third = other.add_task(job, "c", 1)
        runtime.submit(tasks.tasks)
        runtime.submit(other.tasks)
        report = await runtime.drain()
        assert now() == 3.0
    # drain() closed the runtime's nursery, so ours could end.

    assert finished == [("c", 1.0), ("a", 2.0), ("b", 3.0)]
    assert [h.state for h in (first, second, third)] == [TaskState.COMPLETED] * 3
    assert runtime.state is RuntimeState.CLOSED
    assert (report.completed, report.total, report.deadline_hit) == (3, 3, False)
    assert runtime.last_report is report


async def test_a_burst_of_groups_is_taken_by_few_runners_and_none_waits_behind_a_slow_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 200 requests' groups submitted at once (as a group commit releases
    # them): runners are sent one at a time, each taking groups back to back,
    # not one runner woken or spawned per group. The first group waits for
    # a long time; every other group still runs at once.
    app = TrioAPI(drain_timeout=100)
    runtime = app.background
    runners: set[trio.lowlevel.Task] = set()
    order: list[int] = []

    async def job(number: int) -> None:
        runners.add(trio.lowlevel.current_task())
        if number == 0:
            await trio.sleep(60)
        order.append(number)

    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        for number in range(200):
            group = BackgroundTasks(runtime)
            group.add_task(job, number)
            runtime.submit(group.tasks)
        sent = runtime._runners  # runner tasks alive (or spawned) for the burst
        await trio.sleep(1)
        assert order == list(range(1, 200))  # in submission order, none behind the slow one
        await runtime.drain()
    assert order == [*range(1, 200), 0]
    assert now() == 60.0
    # One runner sent for the burst (before: 200, a runner spawned per group),
    # and few of them ran it all.
    assert sent == 1
    assert len(runners) <= 20, len(runners)


async def test_runtime_add_task_runs_work_outside_any_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=5)
    done: list[tuple[str, float]] = []

    async def work(label: str, seconds: float) -> None:
        await trio.sleep(seconds)
        done.append((label, trio.current_time()))

    with pytest.raises(RuntimeError, match="start it with the app's lifespan"):
        app.background.add_task(work, "too early", 1)

    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        first = app.background.add_task(work, "first", 1)
        second = app.background.options(name="second", timeout=2).add_task(work, "late", 3)
        # Each is its own group: they run side by side, not one after another.
        assert await first is TaskState.COMPLETED
        assert await second is TaskState.FAILED
        report = await app.background.drain()

    assert done == [("first", 1)]
    assert isinstance(second.exception, BackgroundTaskTimeout)
    assert trio.current_time() == 2
    assert (report.completed, report.failed) == (1, 1)


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


async def test_a_group_that_waited_for_a_place_still_sees_its_own_requests_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # With max_running_tasks=1 the second request's group waits (in a queue,
    # not as a parked trio task) until the first ends; it must still run in
    # the context of the request that submitted it.
    app = TrioAPI(max_running_tasks=1)
    seen: list[tuple[str, float]] = []

    async def work() -> None:
        await trio.sleep(1)
        seen.append((request_id.get(), trio.current_time()))

    def tag(rid: str) -> str:
        request_id.set(rid)
        return rid

    async def tagged(rid: str) -> str:  # async: runs in the request's own task
        return tag(rid)

    @app.post("/jobs/{rid}")
    async def add(rid: Annotated[str, Depends(tagged)], tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(work)
        return {"rid": rid}

    async with TestClient(app, wait_background=False) as client:
        await client.post("/jobs/first")
        await client.post("/jobs/second")
        await trio.testing.wait_all_tasks_blocked()
        assert app.background.stats()["running"] == 1
        assert app.background.stats()["pending"] == 1  # waiting for the one place
        await app.background.wait_idle()
    assert seen == [("first", 1), ("second", 2)]


# --- a response's background= (Starlette's BackgroundTask and hand-made groups) -----


async def test_a_responses_background_runs_after_it_with_the_requests_own_tasks() -> None:
    from trioapi.background import BackgroundTask
    from trioapi.responses import JSONResponse, PlainTextResponse

    app = TrioAPI()
    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    @app.get("/plain")
    def plain() -> JSONResponse:  # no BackgroundTasks parameter: the fast path
        return JSONResponse({"ok": True}, background=BackgroundTask(ran.append, "task"))

    @app.get("/both")
    async def both(background_tasks: BackgroundTasks) -> PlainTextResponse:
        background_tasks.add_task(note, "own")
        by_hand = BackgroundTasks()
        by_hand.add_task(note, "by hand 1")
        by_hand.add_task(ran.append, "by hand 2")
        return PlainTextResponse("ok", background=by_hand)

    @app.exception_handler(KeyError)
    async def on_key_error(request: Any, exc: KeyError) -> PlainTextResponse:
        return PlainTextResponse("gone", 410, background=BackgroundTask(note, "handler"))

    @app.get("/fails")
    async def fails() -> None:
        raise KeyError("x")

    @app.exception_handler(404)
    async def on_404(request: Any, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("none", 404, background=BackgroundTask(note, "404"))

    async with TestClient(app) as client:
        assert (await client.get("/plain")).json() == {"ok": True}
        assert ran == ["task"]
        assert (await client.get("/both")).text == "ok"
        assert ran[1:] == ["own", "by hand 1", "by hand 2"]
        assert (await client.get("/fails")).status_code == 410
        assert (await client.get("/nowhere")).status_code == 404
    assert ran[4:] == ["handler", "404"]
    assert app.background.completed == 6


def test_a_response_refuses_a_background_it_cannot_run() -> None:
    from trioapi.responses import JSONResponse, StreamingResponse

    with pytest.raises(
        TypeError, match="takes a BackgroundTask or BackgroundTasks, not builtin_function"
    ):
        JSONResponse({}, background=print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not list"):
        StreamingResponse(iter([b""]), background=[])

"""How the runtime carries groups: runners, direct sync jobs, the worker pool.

A request's group runs on a *runner*, a long-lived task of the runtime that
takes groups from a queue, each in the context of the request that submitted
it. A group of one sync task without a timeout skips the runner: its job goes
straight to the worker threads and its result is recorded when the pool
delivers it. These tests pin what users can observe of both paths: states,
results, failures, hooks, cancellation, the running cap, context variables,
and that no job waits behind a slow one while a thread is free.

Tasks here block on ``threading.Event``/``trio.Event`` objects the test sets;
time-based tests use the autojump clock and assert exact virtual times.
"""

from __future__ import annotations

import contextvars
import logging
import subprocess
import sys
import threading
import types
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, TaskHandle, TaskState, TrioAPI
from trioapi._runtime import threads as _threads
from trioapi._runtime.background import GROUPS_PER_TURN, IDLE_RUNNERS, UNWIND_GRACE, _in_context
from trioapi._runtime.threads import HOLD_LIMIT, HOLD_SECONDS, ThreadPool

from ._pool import until_sync_job_sent

LOGGER = "trioapi.background"
THREAD_WAIT = 10.0  # seconds a test may wait for a worker thread: a bound, not a sleep
QUIET = 0.05  # real seconds in which a worker sent too early would have run its job


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[TrioAPI]:
    """An app whose runtime runs in this trio run, as the lifespan would start it."""
    app = TrioAPI(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        try:
            yield app
        finally:
            await app.background.drain(timeout=THREAD_WAIT)


async def settled(handle: TaskHandle[Any]) -> TaskState:
    with trio.fail_after(THREAD_WAIT):
        return await handle


def submit(app: TrioAPI, *adds: tuple[Any, ...]) -> list[TaskHandle[Any]]:
    """Submits one group, as a request whose response went out would."""
    tasks = BackgroundTasks(app.background, "POST /jobs")
    for func, *args in adds:
        tasks.add_task(func, *args)
    handles = tasks.tasks
    app.background.submit(tasks._take())
    return handles


def count_runners() -> int:
    """The runtime's runner tasks alive in this run (trio's public task tree)."""
    found = 0
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task.name.endswith("._runner"):
            found += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found


# --- a lone sync task: the direct path ----------------------------------------------


async def test_a_lone_sync_task_completes_with_its_result_and_no_trio_task() -> None:
    async with running() as app:
        thread_ids: list[int] = []

        def work(x: int) -> int:
            thread_ids.append(threading.get_ident())
            return x * 2

        runners_before = count_runners()
        (handle,) = submit(app, (work, 21))
        assert handle.state is TaskState.RUNNING  # handed to the threads at once
        assert count_runners() == runners_before  # no runner was needed
        assert await settled(handle) is TaskState.COMPLETED
        assert handle.result == 42
        assert thread_ids != [threading.get_ident()]
        assert app.background.stats()["running"] == 0


async def test_a_lone_sync_task_that_raises_fails_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running() as app:

        def broken() -> None:
            raise ValueError("smtp said no")

        (handle,) = submit(app, (broken,))
        assert await settled(handle) is TaskState.FAILED
        assert isinstance(handle.exception, ValueError)
        assert app.background.failed == 1
    failures = [r for r in caplog.records if r.name == LOGGER and "failed" in r.getMessage()]
    assert len(failures) == 1
    assert "broken" in failures[0].getMessage()


async def test_a_lone_sync_task_failure_counts_only_after_its_async_hook_returned() -> None:
    async with running() as app:
        seen: list[tuple[str, TaskState]] = []
        hook_entered, hook_may_return = trio.Event(), trio.Event()

        @app.background.on_error
        async def report(handle: TaskHandle[Any], error: BaseException) -> None:
            seen.append((str(error), handle.state))
            hook_entered.set()
            await hook_may_return.wait()

        def broken() -> None:
            raise RuntimeError("boom")

        (handle,) = submit(app, (broken,))
        with trio.fail_after(THREAD_WAIT):
            await hook_entered.wait()
        assert seen == [("boom", TaskState.RUNNING)]
        assert app.background.failed == 0  # the hook is still running
        hook_may_return.set()
        assert await settled(handle) is TaskState.FAILED
        assert app.background.failed == 1


async def test_a_lone_sync_callable_returning_a_coroutine_has_it_awaited() -> None:
    async with running() as app:
        context_seen: list[int] = []

        async def later(x: int) -> int:
            await trio.lowlevel.checkpoint()
            context_seen.append(threading.get_ident())
            return x + 1

        def factory(x: int) -> Coroutine[Any, Any, int]:
            return later(x)  # a sync callable, its coroutine made in a thread

        (handle,) = submit(app, (factory, 1))
        assert await settled(handle) is TaskState.COMPLETED
        assert handle.result == 2
        assert context_seen == [threading.get_ident()]  # awaited in the trio thread


async def test_a_lone_sync_task_raising_system_exit_fails_without_stopping_the_app() -> None:
    async with running() as app:

        def leaves() -> None:
            raise SystemExit(3)

        (handle,) = submit(app, (leaves,))
        assert await settled(handle) is TaskState.FAILED
        assert isinstance(handle.exception, SystemExit)
        (after,) = submit(app, (int,))
        assert await settled(after) is TaskState.COMPLETED


async def test_cancelling_a_queued_sync_job_means_it_never_runs() -> None:
    async with running(max_task_threads=1) as app:
        release = threading.Event()
        ran: list[str] = []

        def blocker() -> None:
            release.wait(THREAD_WAIT)
            ran.append("blocker")

        def queued() -> None:
            ran.append("queued")

        (first,) = submit(app, (blocker,))
        (second,) = submit(app, (queued,))
        assert second.state is TaskState.RUNNING  # counted running, waiting for the thread
        second.cancel("no longer wanted")
        assert second.state is TaskState.CANCELLED
        assert second.cancel_reason == "no longer wanted"
        release.set()
        assert await settled(first) is TaskState.COMPLETED
        (third,) = submit(app, (ran.append, "third"))  # the one thread is free again
        assert await settled(third) is TaskState.COMPLETED
        assert ran == ["blocker", "third"]
        assert app.background.stats()["cancelled"] == 1


class _LateEnd(logging.Handler):
    """Sets an event when the pool logs that an abandoned job finished."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "finished in its worker thread" in record.getMessage():
            self.seen.set()  # the pool logs this from the trio thread


async def test_cancelling_a_running_sync_job_abandons_it_and_logs_its_late_end() -> None:
    late_end = _LateEnd()
    logging.getLogger(LOGGER).addHandler(late_end)
    try:
        await _cancel_running_sync_job(late_end)
    finally:
        logging.getLogger(LOGGER).removeHandler(late_end)


async def _cancel_running_sync_job(late_end: _LateEnd) -> None:
    async with running() as app:
        started, release = threading.Event(), threading.Event()

        def stuck() -> str:
            started.set()
            release.wait(THREAD_WAIT)
            return "late"

        (handle,) = submit(app, (stuck,))
        await trio.to_thread.run_sync(started.wait, THREAD_WAIT)
        handle.cancel()
        assert handle.state is TaskState.ABANDONED
        assert handle.result is None
        assert not late_end.seen.is_set()
        release.set()
        # The job's end is delivered to the trio thread and logged, not recorded.
        with trio.fail_after(THREAD_WAIT):
            await late_end.seen.wait()
        assert handle.state is TaskState.ABANDONED
        assert app.background.stats()["abandoned"] == 1
        assert app.background.stats()["completed"] == 0


async def test_a_sync_task_in_a_thread_holds_no_running_place() -> None:
    # max_running_tasks=1: the running cap is for the event loop; worker
    # threads are their own limit. While a lone sync task (the direct path)
    # and a runner's sync task run in threads, an async group starts at once.
    async with running(max_running_tasks=1) as app:
        release = threading.Event()
        order: list[str] = []

        def blocker(label: str) -> None:
            release.wait(THREAD_WAIT)
            order.append(label)

        async def after() -> None:
            order.append("async")

        (direct,) = submit(app, (blocker, "direct"))
        on_runner, _ = submit(app, (blocker, "runner"), (order.append, "runner done"))
        (third,) = submit(app, (after,))
        assert await settled(third) is TaskState.COMPLETED
        assert order == ["async"]
        assert (direct.state, on_runner.state) == (TaskState.RUNNING, TaskState.RUNNING)
        release.set()
        assert await settled(direct) is TaskState.COMPLETED
        assert await settled(on_runner) is TaskState.COMPLETED


async def test_groups_of_several_sync_tasks_keep_their_order_on_a_runner() -> None:
    async with running() as app:
        order: list[int] = []
        handles = submit(app, (order.append, 1), (order.append, 2), (order.append, 3))
        for handle in handles:
            assert await settled(handle) is TaskState.COMPLETED
        assert order == [1, 2, 3]


# --- runners ---------------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_one_runner_gives_each_group_its_own_requests_context() -> None:
    # max_running_tasks=1: one runner carries every group. A task changing a
    # context variable changes it for the rest of its group only.
    async with running(max_running_tasks=1) as app:
        seen: list[tuple[str, str]] = []

        async def record(label: str) -> None:
            await trio.lowlevel.checkpoint()
            seen.append((label, request_id.get()))
            request_id.set(f"changed by {label}")

        handles: list[TaskHandle[Any]] = []
        for rid in ("a", "b"):
            token = request_id.set(rid)
            try:
                handles += submit(app, (record, f"{rid}1"), (record, f"{rid}2"))
            finally:
                request_id.reset(token)
        handles += submit(app, (record, "none"))
        for handle in handles:
            assert await settled(handle) is TaskState.COMPLETED
        assert count_runners() == 1
    assert seen == [
        ("a1", "a"),
        ("a2", "changed by a1"),
        ("b1", "b"),
        ("b2", "changed by b1"),
        ("none", "unset"),
    ]
    assert request_id.get() == "unset"


async def test_a_cancelled_task_does_not_stop_its_runner_from_the_next_groups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(max_running_tasks=1) as app:
        done: list[tuple[str, float]] = []

        async def forever() -> None:
            await trio.sleep_forever()

        async def work(label: str) -> None:
            await trio.sleep(1)
            done.append((label, trio.current_time()))

        stuck, rest = submit(app, (forever,), (work, "same group"))
        (other,) = submit(app, (work, "next group"))
        await trio.sleep(5)
        stuck.cancel("stop it")
        assert await settled(other) is TaskState.COMPLETED
        assert stuck.state is TaskState.CANCELLED
        assert rest.state is TaskState.COMPLETED
    assert done == [("same group", 6.0), ("next group", 7.0)]


async def test_a_task_past_its_timeout_fails_and_the_runner_carries_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(max_running_tasks=1) as app:
        tasks = BackgroundTasks(app.background, "POST /jobs")
        slow = tasks.options(timeout=2).add_task(trio.sleep, 10)
        quick = tasks.add_task(trio.sleep, 1)
        app.background.submit(tasks._take())
        (later,) = submit(app, (trio.sleep, 1))
        assert await settled(later) is TaskState.COMPLETED
        assert trio.current_time() == 4.0  # 2 s cut off, then 1 s, then 1 s
        assert slow.state is TaskState.FAILED
        assert quick.state is TaskState.COMPLETED


async def test_runners_started_by_a_burst_go_away_once_it_is_over() -> None:
    async with running() as app:
        gate = trio.Event()
        handles = [submit(app, (gate.wait,))[0] for _ in range(IDLE_RUNNERS * 3)]
        await trio.testing.wait_all_tasks_blocked()
        assert count_runners() == IDLE_RUNNERS * 3  # every group running at once
        gate.set()
        for handle in handles:
            assert await settled(handle) is TaskState.COMPLETED
        await trio.testing.wait_all_tasks_blocked()
        assert count_runners() == IDLE_RUNNERS  # parked for the next requests
        (again,) = submit(app, (trio.lowlevel.checkpoint,))
        assert await settled(again) is TaskState.COMPLETED
        assert count_runners() == IDLE_RUNNERS  # a parked one took it


class GroupsPerStep(trio.abc.Instrument):
    """Counts the tasks completed during each step of a runner (trio's instrument API)."""

    def __init__(self, app: TrioAPI) -> None:
        self.runtime = app.background
        self.before = 0
        self.per_step: list[int] = []

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.before = self.runtime.completed

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("._runner"):
            self.per_step.append(self.runtime.completed - self.before)


async def test_a_runner_gives_other_tasks_a_turn_between_groups_that_never_await() -> None:
    async def quick() -> None:
        return None  # never awaits: only the runner can give others a turn

    async with running(max_running_tasks=1) as app:
        steps = GroupsPerStep(app)
        trio.lowlevel.add_instrument(steps)
        try:
            handles = [submit(app, (quick,))[0] for _ in range(GROUPS_PER_TURN * 5 + 3)]
            for handle in handles:
                assert await settled(handle) is TaskState.COMPLETED
        finally:
            trio.lowlevel.remove_instrument(steps)
    # One runner ran them all, never more than GROUPS_PER_TURN in one step
    # (and no checkpoint after each: that would cost as much as the task).
    assert sum(steps.per_step) == len(handles)
    assert max(steps.per_step) == GROUPS_PER_TURN
    assert steps.per_step.count(GROUPS_PER_TURN) == 5


async def test_parked_runners_end_with_the_drain() -> None:
    app = TrioAPI()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        (handle,) = submit(app, (trio.lowlevel.checkpoint,))
        assert await settled(handle) is TaskState.COMPLETED
        await trio.testing.wait_all_tasks_blocked()
        assert count_runners() == 1
        report = await app.background.drain()
    assert count_runners() == 0
    assert report.completed == 1


def test_a_step_thrown_into_a_group_reaches_its_coroutine_in_the_groups_context() -> None:
    # trio throws into a task only when it recovers from a foreign await; the
    # runner must hand that on, inside the group's context, like a send.
    context = contextvars.copy_context()

    @types.coroutine
    def trap() -> Any:
        try:
            yield "trap"
        except ValueError as error:
            return f"caught {error} as {request_id.get()}"
        return "not thrown"

    async def group() -> str:
        request_id.set("the group's")
        return str(await trap())

    stepper = _in_context(context, group())
    assert stepper.send(None) == "trap"
    with pytest.raises(StopIteration) as stop:
        stepper.throw(ValueError("boom"))
    assert stop.value.value == ("caught boom as the group's", True)  # result, stepped
    assert request_id.get() == "unset"  # the group's change stayed in its context
    assert context[request_id] == "the group's"


# --- the worker pool -------------------------------------------------------------------


async def busy(steps: int = 3) -> None:
    """Passes through the loop with this task always runnable: the run never goes idle."""
    for _ in range(steps):
        await trio.lowlevel.checkpoint()


async def test_a_sync_job_submitted_while_the_loop_is_busy_waits_for_it_to_go_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as app:
        ran = threading.Event()
        (handle,) = submit(app, (ran.set,))
        for _ in range(3):
            await busy()
            assert not ran.wait(QUIET)  # blocks the trio thread: a sent worker would run
        await until_sync_job_sent()  # idle: the dispatcher sends a worker
        assert ran.wait(THREAD_WAIT)
        assert await handle is TaskState.COMPLETED  # no deadline here: nowhere to jump to
        # Held jobs keep the autojump clock still: it never ran ahead of the job.
        assert trio.current_time() == 0.0


async def test_a_loop_that_never_goes_idle_holds_a_sync_job_for_hold_seconds_at_most(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as app:
        ran = threading.Event()
        (handle,) = submit(app, (ran.set,))
        await busy()  # the dispatcher now waits for idle, until HOLD_SECONDS
        autojump_clock.jump(HOLD_SECONDS / 2)
        await busy()
        assert not ran.wait(QUIET)
        autojump_clock.jump(HOLD_SECONDS / 2)
        await busy()
        assert ran.wait(THREAD_WAIT)
        assert trio.current_time() == HOLD_SECONDS
        assert await handle is TaskState.COMPLETED


async def test_a_worker_thread_that_cannot_start_is_logged_and_its_job_waits_for_the_next(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, LOGGER)
    start = threading.Thread.start

    def refuse(thread: threading.Thread) -> None:
        if thread.name == "trioapi-background":
            raise RuntimeError("can't start new thread")  # what a pids limit gives
        start(thread)

    async with running() as app:
        monkeypatch.setattr(threading.Thread, "start", refuse)
        (first,) = submit(app, (int, 1))
        await until_sync_job_sent()  # the dispatcher tried to start one, and failed
        assert "could not start a worker thread" in caplog.text
        assert "1 job(s) wait for a thread" in caplog.text
        assert first.state is TaskState.RUNNING  # still queued: neither run nor lost
        monkeypatch.undo()
        (second,) = submit(app, (int, 2))
        assert await settled(first) is TaskState.COMPLETED
        assert await settled(second) is TaskState.COMPLETED
        assert (first.result, second.result) == (1, 2)


@pytest.mark.parametrize("ending", ["drain", "no drain"])
async def test_a_sync_result_still_on_its_way_when_the_runtime_stops_waiting_is_counted_once(
    ending: str,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The job finished in its thread, but its delivery to the trio thread has
    # not run when the runtime stops waiting (an autojump clock can reach the
    # drain's grace first; a lifespan cancelled without a drain waits for
    # nothing). The fault: deliveries held back until the test lets them go.
    caplog.set_level(logging.WARNING, LOGGER)
    arrived = trio.Event()
    deliver = ThreadPool._deliver
    monkeypatch.setattr(ThreadPool, "_deliver", lambda pool: arrived.set())
    app = TrioAPI()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        (handle,) = submit(app, (int, 42))
        await arrived.wait()  # the result is in; its delivery did not run
        pool = app.background._pool
        if ending == "drain":
            report = await app.background.drain(timeout=0)
            assert trio.current_time() == UNWIND_GRACE  # waited its grace for it, in vain
            assert (report.completed, report.total) == (1, 1)
        else:
            nursery.cancel_scope.cancel()
    assert handle.state is TaskState.COMPLETED
    assert handle.result == 42
    assert "cancelled" not in caplog.text  # not named among tasks cut off
    assert pool is not None
    deliver(pool)  # the held-back delivery arrives after all: not counted twice
    assert app.background.stats()["completed"] == 1


def test_the_pool_waits_for_idle_with_trios_function_without_importing_trio_testing() -> None:
    # trio.testing imports pytest when it is installed, and takes ~60 ms: a
    # server process should not pay that. If trio moves the function, the
    # pool falls back to the public name and this test says so.
    assert _threads._wait_idle is trio.testing.wait_all_tasks_blocked
    code = "import sys, trioapi; print('trio.testing' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "False"


async def test_hold_limit_jobs_send_a_worker_however_busy_the_loop() -> None:
    async with running() as app:
        ran: list[int] = []
        all_ran = threading.Event()

        def record(number: int) -> None:
            ran.append(number)
            if len(ran) == HOLD_LIMIT:
                all_ran.set()

        # This task never yields in between: the loop stays busy throughout.
        handles = [submit(app, (record, n))[0] for n in range(HOLD_LIMIT - 1)]
        assert not all_ran.wait(QUIET)
        assert ran == []  # held, all of them
        handles += submit(app, (record, HOLD_LIMIT - 1))
        assert all_ran.wait(THREAD_WAIT)
        for handle in handles:
            assert await settled(handle) is TaskState.COMPLETED
        assert sorted(ran) == list(range(HOLD_LIMIT))


async def test_a_quick_sync_job_never_waits_behind_a_slow_one_while_a_thread_is_free() -> None:
    async with running(max_task_threads=2) as app:
        release = threading.Event()
        (warm_up,) = submit(app, (int,))
        assert await settled(warm_up) is TaskState.COMPLETED  # one thread, now parked

        # One wake-up for the burst: the parked thread takes the slow job,
        # sees the queue still full, and sends the second thread for the rest.
        (slow,) = submit(app, (release.wait, THREAD_WAIT))
        quick = [submit(app, (int, n))[0] for n in range(5)]
        for handle in quick:
            assert await settled(handle) is TaskState.COMPLETED
        assert slow.state is TaskState.RUNNING  # still blocked in its thread
        release.set()
        assert await settled(slow) is TaskState.COMPLETED


async def test_the_thread_cap_holds_for_a_burst_of_blocking_jobs() -> None:
    async with running(max_task_threads=3) as app:
        release = threading.Event()
        full = trio.Event()
        inside = 0
        most = 0
        lock = threading.Lock()

        def blocking() -> None:
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
                now_full = inside == 3
            if now_full:
                trio.from_thread.run_sync(full.set)
            release.wait(THREAD_WAIT)
            with lock:
                inside -= 1

        handles = [submit(app, (blocking,))[0] for _ in range(12)]
        with trio.fail_after(THREAD_WAIT):
            await full.wait()
        release.set()
        for handle in handles:
            assert await settled(handle) is TaskState.COMPLETED
        assert most == 3


async def test_drain_cancels_queued_sync_jobs_and_abandons_running_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    release = threading.Event()
    started = threading.Event()

    def stuck() -> None:
        started.set()
        release.wait(THREAD_WAIT)

    app = TrioAPI(max_task_threads=1)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.background.run)
            (running_one,) = submit(app, (stuck,))
            (queued,) = submit(app, (stuck,))
            await trio.to_thread.run_sync(started.wait, THREAD_WAIT)
            report = await app.background.drain(timeout=0)
    finally:
        release.set()
    assert running_one.state is TaskState.ABANDONED
    assert queued.state is TaskState.CANCELLED
    assert (report.abandoned, report.cancelled) == (1, 1)

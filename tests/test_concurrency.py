"""``trioapi.concurrency``: blocking code in worker threads, FastAPI's helpers on trio.

Threads are synchronised with ``threading.Event`` and
``trio.testing.wait_all_tasks_blocked``, never with sleeps. A thread that
waits for the test has a generous timeout only so that a bug fails the test
instead of hanging it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from traceback import extract_tb
from types import TracebackType

import pytest
import trio
import trio.testing

from trioapi.concurrency import (
    contextmanager_in_threadpool,
    iterate_in_threadpool,
    run_in_threadpool,
    run_until_first_complete,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")

GUARD_SECONDS = 30


def wait_for(event: threading.Event) -> None:
    if not event.wait(GUARD_SECONDS):
        raise AssertionError("the test never released the worker thread")


class Failure(BaseException):
    """Not an ``Exception``: must travel the same way as one."""


# --- run_in_threadpool -------------------------------------------------------


async def test_run_in_threadpool_runs_the_function_in_another_thread() -> None:
    assert await run_in_threadpool(threading.get_ident) != threading.get_ident()


async def test_run_in_threadpool_passes_arguments_and_returns_the_result() -> None:
    def combine(a: int, b: int, *, scale: int = 1) -> int:
        return (a - b) * scale

    assert await run_in_threadpool(combine, 5, 3) == 2
    assert await run_in_threadpool(combine, 5, b=3, scale=10) == 20


async def test_run_in_threadpool_propagates_the_exception_itself() -> None:
    error = KeyError("missing")

    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        await run_in_threadpool(fail)
    assert caught.value is error


async def test_run_in_threadpool_sees_the_callers_context_variables() -> None:
    def read_then_set() -> str:
        seen = request_id.get()
        request_id.set("changed in thread")
        return seen

    request_id.set("abc")
    assert await run_in_threadpool(read_then_set) == "abc"
    # The thread ran in a copy of the context: its change stays there.
    assert request_id.get() == "abc"


async def test_run_in_threadpool_refuses_an_async_function() -> None:
    async def not_blocking() -> None:
        raise AssertionError("never awaited")  # pragma: no cover

    with pytest.raises(TypeError, match="asynchronous"):
        await run_in_threadpool(not_blocking)  # type: ignore[unused-coroutine]


async def test_cancelling_run_in_threadpool_waits_for_the_function_to_return() -> None:
    started = trio.Event()
    release = threading.Event()
    finished = trio.Event()
    results: list[str] = []

    def blocking() -> str:
        trio.from_thread.run_sync(started.set)
        wait_for(release)
        return "done"

    async def call(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            results.append(await run_in_threadpool(blocking))
            # The result came back despite the cancellation; the next
            # checkpoint delivers it.
            await trio.lowlevel.checkpoint()
            raise AssertionError("the checkpoint did not raise Cancelled")  # pragma: no cover
        assert scope.cancelled_caught
        finished.set()

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(call)
        await started.wait()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert not finished.is_set()
        release.set()
        await finished.wait()
    assert results == ["done"]


# --- iterate_in_threadpool ---------------------------------------------------


async def test_iterate_in_threadpool_yields_items_in_order() -> None:
    assert [item async for item in iterate_in_threadpool([3, 1, 2])] == [3, 1, 2]
    assert [item async for item in iterate_in_threadpool(range(0))] == []


async def test_iterate_in_threadpool_takes_each_item_in_a_worker_thread() -> None:
    threads: list[int] = []

    def numbers() -> Iterator[int]:
        for number in range(3):
            threads.append(threading.get_ident())
            yield number
        threads.append(threading.get_ident())

    assert [item async for item in iterate_in_threadpool(numbers())] == [0, 1, 2]
    assert len(threads) == 4
    assert threading.get_ident() not in threads


async def test_iterate_in_threadpool_sees_the_callers_context_variables() -> None:
    def values() -> Iterator[str]:
        yield request_id.get()

    request_id.set("from the task")
    assert [item async for item in iterate_in_threadpool(values())] == ["from the task"]


async def test_iterate_in_threadpool_propagates_the_iterators_exception() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("broken")

    items = iterate_in_threadpool(broken())
    assert await anext(items) == 1
    with pytest.raises(ValueError, match="broken"):
        await anext(items)


async def test_iterate_in_threadpool_ends_on_a_generators_return_value() -> None:
    def returns_a_value() -> Generator[int, None, int]:
        yield 1
        return 2  # becomes StopIteration(2): the end, not an error or an item

    assert [item async for item in iterate_in_threadpool(returns_a_value())] == [1]


async def test_leaving_iterate_in_threadpool_early_leaves_the_iterator_open() -> None:
    source = iter([1, 2, 3])
    async for item in iterate_in_threadpool(source):
        assert item == 1
        break
    assert next(source) == 2


async def test_iterate_in_threadpool_works_with_aclosing() -> None:
    async with contextlib.aclosing(iterate_in_threadpool("ab")) as items:  # type: ignore[type-var]
        assert [item async for item in items] == ["a", "b"]


async def test_iterate_in_threadpool_refuses_two_tasks_asking_at_once() -> None:
    release = threading.Event()

    def blocked() -> Iterator[int]:
        wait_for(release)
        yield 1

    items = iterate_in_threadpool(blocked())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(anext, items)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="already waiting"):
            await anext(items)
        release.set()


# --- contextmanager_in_threadpool --------------------------------------------


class RecordingContextManager(AbstractContextManager[str]):
    def __init__(
        self,
        *,
        enter_error: BaseException | None = None,
        exit_error: BaseException | None = None,
        suppress: bool = False,
    ) -> None:
        self.enter_error = enter_error
        self.exit_error = exit_error
        self.suppress = suppress
        self.enter_threads: list[int] = []
        self.exit_threads: list[int] = []
        self.exit_args: list[
            tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
        ] = []

    def __enter__(self) -> str:
        self.enter_threads.append(threading.get_ident())
        if self.enter_error is not None:
            raise self.enter_error
        return "value"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self.exit_threads.append(threading.get_ident())
        self.exit_args.append((exc_type, exc_value, traceback))
        if self.exit_error is not None:
            raise self.exit_error
        return self.suppress

    def assert_exited_once_in_a_worker(self) -> None:
        assert len(self.exit_threads) == 1
        assert self.exit_threads[0] != threading.get_ident()


async def test_contextmanager_yields_the_value_and_exits_in_a_worker() -> None:
    cm = RecordingContextManager()
    async with contextmanager_in_threadpool(cm) as value:
        assert value == "value"
        assert cm.exit_threads == []
    assert cm.enter_threads[0] != threading.get_ident()
    cm.assert_exited_once_in_a_worker()
    assert cm.exit_args == [(None, None, None)]


async def test_contextmanager_enters_with_the_callers_context_variables() -> None:
    @contextmanager
    def reads_context() -> Iterator[str]:
        yield request_id.get()

    request_id.set("entering")
    async with contextmanager_in_threadpool(reads_context()) as value:
        assert value == "entering"


@pytest.mark.parametrize("error_type", [ValueError, Failure])
async def test_failed_enter_propagates_and_does_not_exit(error_type: type[BaseException]) -> None:
    error = error_type("entry failed")
    cm = RecordingContextManager(enter_error=error)
    with pytest.raises(error_type) as caught:
        async with contextmanager_in_threadpool(cm):
            raise AssertionError("the body must not run")  # pragma: no cover
    assert caught.value is error
    assert cm.exit_threads == []


@pytest.mark.parametrize("error_type", [ValueError, Failure])
@pytest.mark.parametrize("suppress", [False, True])
async def test_exit_receives_the_bodys_exception_and_may_suppress_it(
    error_type: type[BaseException], suppress: bool
) -> None:
    error = error_type("body failed")
    cm = RecordingContextManager(suppress=suppress)

    async def use() -> None:
        async with contextmanager_in_threadpool(cm):
            raise error

    if suppress:
        await use()
    else:
        with pytest.raises(error_type) as caught:
            await use()
        assert caught.value is error
    cm.assert_exited_once_in_a_worker()
    exc_type, exc_value, traceback = cm.exit_args[0]
    assert exc_type is error_type
    assert exc_value is error
    assert traceback is not None
    assert extract_tb(traceback)[-1].name == "use"


@pytest.mark.parametrize("body", ["returns", "raises", "cancelled"])
async def test_exception_from_exit_propagates_chained_to_the_bodys(body: str) -> None:
    error = ValueError("cleanup failed")
    cm = RecordingContextManager(exit_error=error)

    async def use() -> None:
        with trio.CancelScope() as scope:
            async with contextmanager_in_threadpool(cm):
                if body == "raises":
                    raise RuntimeError("body failed")
                if body == "cancelled":
                    scope.cancel()
                    await trio.lowlevel.checkpoint()

    with pytest.raises(ValueError, match="cleanup failed") as caught:
        await use()
    assert caught.value is error
    cm.assert_exited_once_in_a_worker()
    if body == "raises":
        assert isinstance(error.__context__, RuntimeError)
    elif body == "cancelled":
        assert isinstance(error.__context__, trio.Cancelled)
    else:
        assert error.__context__ is None


async def test_cancelled_body_exits_in_a_worker_with_cancelled() -> None:
    cm = RecordingContextManager()
    with trio.CancelScope() as scope:
        async with contextmanager_in_threadpool(cm):
            scope.cancel()
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    cm.assert_exited_once_in_a_worker()
    assert isinstance(cm.exit_args[0][1], trio.Cancelled)


async def test_cancel_without_a_checkpoint_in_the_body_exits_cleanly() -> None:
    cm = RecordingContextManager()
    with trio.CancelScope() as scope:
        async with contextmanager_in_threadpool(cm):
            scope.cancel()
    cm.assert_exited_once_in_a_worker()
    assert cm.exit_args == [(None, None, None)]


async def test_cancelled_while_waiting_for_a_thread_neither_enters_nor_exits() -> None:
    cm = RecordingContextManager()
    limiter = trio.to_thread.current_default_thread_limiter()
    original_tokens = limiter.total_tokens
    finished = trio.Event()

    async def use(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            async with contextmanager_in_threadpool(cm):
                raise AssertionError("no thread was free")  # pragma: no cover
        finished.set()

    limiter.total_tokens = 1
    try:
        async with limiter, trio.open_nursery() as nursery:
            scope = await nursery.start(use)
            await trio.testing.wait_all_tasks_blocked()
            assert limiter.statistics().tasks_waiting == 1
            scope.cancel()
            await finished.wait()
    finally:
        limiter.total_tokens = original_tokens
    assert cm.enter_threads == []
    assert cm.exit_threads == []


@pytest.mark.parametrize("blocked_in", ["enter", "exit"])
async def test_cancellation_waits_for_enter_and_exit_to_finish(blocked_in: str) -> None:
    started = trio.Event()
    release = threading.Event()
    finished = trio.Event()

    class BlockingContextManager(RecordingContextManager):
        def __enter__(self) -> str:
            if blocked_in == "enter":
                trio.from_thread.run_sync(started.set)
                wait_for(release)
            return super().__enter__()

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc_value: BaseException | None,
            traceback: TracebackType | None,
        ) -> bool:
            if blocked_in == "exit":
                trio.from_thread.run_sync(started.set)
                wait_for(release)
            return super().__exit__(exc_type, exc_value, traceback)

    cm = BlockingContextManager()

    async def use(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            async with contextmanager_in_threadpool(cm):
                await trio.lowlevel.checkpoint()
        finished.set()

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(use)
        await started.wait()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert not finished.is_set()
        release.set()
        await finished.wait()
    # Cancelled during __enter__: it completed, so __exit__ ran too.
    cm.assert_exited_once_in_a_worker()


@pytest.mark.parametrize("cancel", [False, True])
async def test_exit_does_not_need_a_free_thread_of_the_default_limit(cancel: bool) -> None:
    cm = RecordingContextManager()
    limiter = trio.to_thread.current_default_thread_limiter()
    original_tokens = limiter.total_tokens
    entered = trio.Event()
    capacity_held = trio.Event()
    release_capacity = trio.Event()
    finished = trio.Event()

    async def hold_capacity() -> None:
        await entered.wait()
        async with limiter:
            capacity_held.set()
            await release_capacity.wait()

    async def use() -> None:
        with trio.CancelScope() as scope:
            async with contextmanager_in_threadpool(cm):
                entered.set()
                await capacity_held.wait()
                if cancel:
                    scope.cancel()
                    await trio.lowlevel.checkpoint()
        finished.set()

    limiter.total_tokens = 1
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_capacity)
            nursery.start_soon(use)
            await finished.wait()
            # The only default thread is still taken: __exit__ did not need it.
            assert limiter.borrowed_tokens == 1
            release_capacity.set()
    finally:
        limiter.total_tokens = original_tokens
    cm.assert_exited_once_in_a_worker()


# --- run_until_first_complete ------------------------------------------------


async def test_run_until_first_complete_cancels_the_others_when_one_returns() -> None:
    events: list[str] = []

    async def forever(name: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            events.append(f"{name} cancelled")

    async def quick(name: str) -> None:
        events.append(f"{name} returned")

    with pytest.deprecated_call(match="run_until_first_complete is deprecated"):
        await run_until_first_complete((forever, {"name": "a"}), (quick, {"name": "b"}))
    assert sorted(events) == ["a cancelled", "b returned"]


async def test_run_until_first_complete_propagates_a_failure_in_a_group() -> None:
    async def fail() -> None:
        raise KeyError("failed")

    async def forever() -> None:
        await trio.sleep_forever()

    with (
        pytest.deprecated_call(),
        pytest.RaisesGroup(pytest.RaisesExc(KeyError, match="failed")),
    ):
        await run_until_first_complete((fail, {}), (forever, {}))

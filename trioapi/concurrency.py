"""Run blocking code in worker threads from async code: FastAPI's helpers, on trio.

Every helper goes through ``trio.to_thread.run_sync``, so:

- each call runs in a copy of the calling task's context: context variables
  set before the call are visible in the thread, and the thread's own
  changes to them stay there;
- threads come from trio's default ``CapacityLimiter`` (40 at once), and a
  call that waits for a free thread can be cancelled: then it never runs;
- a call that is running cannot be interrupted: the cancellation waits for
  the function to return, which hands back its result as usual; the task's
  next checkpoint raises ``trio.Cancelled``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from contextlib import AbstractContextManager
from contextlib import asynccontextmanager as asynccontextmanager
from typing import Any, ParamSpec, TypeVar, final

import trio

from ._runtime.anyio_threads import in_worker

__all__ = [
    "asynccontextmanager",
    "contextmanager_in_threadpool",
    "iterate_in_threadpool",
    "run_in_threadpool",
    "run_until_first_complete",
]

P = ParamSpec("P")
T = TypeVar("T")


async def run_in_threadpool(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Calls a blocking function in a worker thread and waits for its result.

    Args:
        func: The function to call. It must not be async.
        *args: Positional arguments for ``func``.
        **kwargs: Keyword arguments for ``func``.

    Returns:
        What ``func`` returned.

    Raises:
        Exception: Whatever ``func`` raised, as it raised it.
        TypeError: ``func`` returned a coroutine: await an async function
            directly instead.
    """
    if kwargs:
        return await trio.to_thread.run_sync(in_worker(functools.partial(func, *args, **kwargs)))
    return await trio.to_thread.run_sync(in_worker(func), *args)


_EXHAUSTED: Any = object()


@final
class _ThreadedIterator(AsyncIterator[T]):
    # A class rather than an async generator: there is nothing to clean up,
    # so leaving a loop early (a client that disconnects from a stream) needs
    # no aclose(), and trio has no unfinished generator to warn about.

    def __init__(self, iterable: Iterable[T]) -> None:
        self._iterable = iterable
        self._iterator: Iterator[T] | None = None
        self._running = False

    def __aiter__(self) -> _ThreadedIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._running:
            msg = "iterate_in_threadpool: another task is already waiting for the next item"
            raise RuntimeError(msg)
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        self._running = True
        try:
            # StopIteration cannot travel out of the thread (inside a
            # coroutine it becomes a RuntimeError): the end is a sentinel.
            item: T = await trio.to_thread.run_sync(in_worker(next), self._iterator, _EXHAUSTED)
        finally:
            self._running = False
        if item is _EXHAUSTED:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Does nothing: the iterable is not closed (so ``contextlib.aclosing`` works)."""


def iterate_in_threadpool(iterator: Iterable[T]) -> AsyncIterator[T]:
    """Iterates over a blocking iterable, taking each item in a worker thread.

    ``iter(iterator)`` is called in the trio thread, when the first item is
    asked for; every ``next`` then runs in a worker thread, one at a time, so
    items arrive in the iterable's order. Leaving the loop early does not
    close the iterable, and needs no clean-up.

    Args:
        iterator: An iterable or iterator whose ``next`` may block, such as a
            file or a generator reading from a socket.

    Returns:
        An async iterator over the iterable's items, in order.

    Raises:
        Exception: From the async iteration: whatever the iterable's ``next``
            raised. ``RuntimeError`` when two tasks ask for items at once.
    """
    return _ThreadedIterator(iterator)


@asynccontextmanager
async def contextmanager_in_threadpool(cm: AbstractContextManager[T]) -> AsyncGenerator[T, None]:
    """Enters and exits a blocking context manager in worker threads.

    ``cm.__enter__`` runs in a worker thread, with trio's default limit on
    threads; if the task is cancelled while waiting for a thread, ``cm`` is
    neither entered nor exited. Once entered, ``cm.__exit__`` always runs,
    in a worker thread, shielded from cancellation and outside the default
    thread limit: a context manager that owns a pool (database connections)
    must be able to give its resource back even when every thread is busy
    waiting for one. ``__exit__`` receives the body's exception, including
    ``trio.Cancelled``; when it returns true the exception is suppressed.

    Args:
        cm: The context manager, for example a sync dependency's
            ``contextlib.contextmanager``.

    Yields:
        What ``cm.__enter__`` returned.

    Raises:
        BaseException: Whatever ``__enter__`` raised; the body's exception
            unless ``__exit__`` suppressed it; whatever ``__exit__`` raised
            (with the body's exception as its ``__context__``).
    """
    value = await trio.to_thread.run_sync(in_worker(cm.__enter__))
    # A limiter of its own for each exit: any limit works, as only one call
    # ever uses it.
    exit_limiter = trio.CapacityLimiter(1)
    try:
        yield value
    except BaseException as error:
        with trio.CancelScope(shield=True):
            suppress = await trio.to_thread.run_sync(
                in_worker(cm.__exit__),
                type(error),
                error,
                error.__traceback__,
                limiter=exit_limiter,
            )
        if not suppress:
            raise
    else:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(
                in_worker(cm.__exit__), None, None, None, limiter=exit_limiter
            )


async def run_until_first_complete(
    *args: tuple[Callable[..., Awaitable[object]], dict[str, Any]],
) -> None:
    """Runs async functions concurrently until the first one returns, then cancels the rest.

    Deprecated, as in Starlette: open a ``trio`` nursery and cancel its scope
    when the first task finishes instead.

    Args:
        *args: ``(func, kwargs)`` pairs; each ``func(**kwargs)`` is awaited in
            its own task.

    Raises:
        BaseExceptionGroup: A function raised (trio nurseries group errors).
    """
    warnings.warn(
        "run_until_first_complete is deprecated: open a trio nursery and cancel"
        " its cancel scope when the first task finishes instead",
        DeprecationWarning,
        stacklevel=2,
    )

    async with trio.open_nursery() as nursery:

        async def run_then_cancel(func: Callable[..., Awaitable[object]], kwargs: Any) -> None:
            await func(**kwargs)
            nursery.cancel_scope.cancel(
                reason="run_until_first_complete: another function returned"
            )

        for func, kwargs in args:
            nursery.start_soon(run_then_cancel, func, kwargs)

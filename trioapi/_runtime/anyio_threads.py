"""Worker threads that anyio recognises, for sync code written against anyio.

FastAPI runs sync endpoints, dependencies and background tasks with
``anyio.to_thread``, so sync code written for it may call
``anyio.from_thread.run(...)`` or ``anyio.from_thread.run_sync(...)``
without a token: anyio finds the event loop through a thread-local that its
own worker threads set. trioapi's threads are trio's and its background
pool's. When anyio is imported, :func:`in_worker` wraps a call into user code
so that, while it runs in a worker thread, that thread-local names this trio
run; ``anyio.from_thread`` then works there as in FastAPI. Without anyio
imported, :func:`in_worker` returns the function itself and imports nothing.

The thread-local is private to anyio (``anyio._core._eventloop.threadlocals``);
if it moves, code can still pass ``token=anyio.lowlevel.current_token()``
itself, and ``tests/test_anyio_threads.py`` says it moved.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")

_MISSING: Any = object()

_cached: tuple[trio.lowlevel.TrioToken, Any, Any] | None = None
"""This run's trio token, anyio's token for it, and anyio's thread-local."""


def in_worker(func: Callable[..., T]) -> Callable[..., T]:
    """``func``, to be called in a worker thread of the current trio run.

    In the trio thread. As is when anyio is not imported; else wrapped so
    that ``anyio.from_thread`` finds this run while ``func`` runs.
    """
    if "anyio" not in sys.modules:
        return func
    found = _anyio_token()
    if found is None:
        return func
    token, threadlocals = found
    return functools.partial(_call_claimed, threadlocals, token, func)


def _anyio_token() -> tuple[Any, Any] | None:
    global _cached
    trio_token = trio.lowlevel.current_trio_token()
    cached = _cached
    if cached is not None and cached[0] is trio_token:
        return cached[1], cached[2]
    try:
        from anyio._core._eventloop import threadlocals
        from anyio.lowlevel import current_token
    except ImportError:  # pragma: no cover - anyio moved its thread-local
        return None
    try:
        token = current_token()
    except Exception:  # pragma: no cover - anyio cannot tell it runs on trio
        return None
    _cached = (trio_token, token, threadlocals)
    return token, threadlocals


def _call_claimed(
    threadlocals: Any, token: Any, func: Callable[..., T], /, *args: Any, **kwargs: Any
) -> T:
    # In the worker thread: anyio's own workers set current_token the same way.
    previous = getattr(threadlocals, "current_token", _MISSING)
    threadlocals.current_token = token
    try:
        return func(*args, **kwargs)
    finally:
        if previous is _MISSING:
            del threadlocals.current_token
        else:
            threadlocals.current_token = previous

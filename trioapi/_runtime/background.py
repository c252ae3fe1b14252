"""The background-task runtime: post-response work under structured concurrency.

Theory of operation
===================

A path operation (or any of its dependencies) asks for ``BackgroundTasks`` and
calls ``add_task(func, *args, **kwargs)``. Each call is *admitted* at once by
the runtime: it checks the state and the pending cap, counts the task as
pending, and returns a :class:`TaskHandle`. Nothing runs yet. When the
response's last byte has been handed to the server (and yield-dependency
teardown has run), the app *submits* the request's tasks as one group; if
the endpoint raised, it *discards* them instead (they are counted as skipped,
FastAPI's rule). Submission is the single seam through which work enters the
runtime; a durable store would slot in there.

A submitted group goes on a queue served by *runners*: long-lived tasks in
the runtime's nursery, which the ASGI lifespan call starts and which therefore
outlives every connection (see ``docs/background-tasks.md`` for why that
matters under hypercorn). A runner runs a group's tasks one after another in
the order they were added, then takes the next group; groups run
concurrently, up to ``max_running`` of them on the event loop. A group of one
sync task without a timeout skips the runners: its job goes straight to the
worker threads (``_runtime/threads.py``), which run sync callables up to
``max_threads`` at once. A sync task waiting for a thread, or running in one,
holds no running place (the threads are their own limit): slow sync tasks
cannot keep async ones from starting. While it waits for a thread it counts
against ``max_pending`` instead.

The runtime's nursery is held by a trio *system task* (the host), not by
the lifespan call that starts it: trio cannot stop a task that shields
itself from cancellation (or catches ``Cancelled`` and carries on), and a
nursery waits for all of its tasks. At the drain deadline plus
``UNWIND_GRACE`` such a task is abandoned, as a sync task stuck in its
thread is; the runtime then closes without it, so the lifespan call, the
server and ``serve()`` all end on time. The task keeps running (it is a
*straggler*, listed by ``stragglers``) and the trio run cannot return until
it does; ``python -m trioapi`` ends the process without waiting for it.
Each task ends in exactly one terminal state, and the counters move with it:

    PENDING -> RUNNING -> COMPLETED | FAILED | CANCELLED | ABANDONED
    PENDING -> CANCELLED (cancelled before it started) | SKIPPED (endpoint raised)

Durable tasks (``_runtime/durable.py``, ``_stores/``) take the same path with
three differences. The app *commits* them to the task store before it sends
the response (``commit``), so they are held by this process from the start.
A failed attempt with retries left goes back to PENDING, waits out its
backoff on trio's clock and runs again as a group of its own; out of
retries it is FAILED and dead-lettered. And the drain, or a stop without
one, does not cancel them for good: they end RESUMABLE, released back to
the store, for the next process to run. A *dispatcher* task claims what the
store holds that nobody runs (tasks of a dead process, released ones,
retries due) and submits each as a group of one.

A task that raises is logged (logger ``trioapi.background``) and handed to
the error hooks; its group carries on with the next task. Nothing a task does
can escape into the lifespan call.

The runtime's own lifecycle is a small state machine:

    IDLE ──start()──▶ ACCEPTING ──drain()──▶ DRAINING ──▶ CLOSED
      │                                                    ▲
      └──────────────────── drain() ───────────────────────┘

IDLE
    No lifespan has started it (a server that never sends the lifespan
    events). Tasks are admitted, and the app runs each group inline, inside
    the request call, after the response; it warns once about what that costs.
ACCEPTING
    The nursery is open: admitted groups start as soon as they are submitted.
DRAINING
    Shutdown began. ``add_task`` is refused (503 for the request); tasks
    already admitted keep running, and groups still held by requests in
    flight may still be submitted, until the drain deadline. Then every task
    left is cancelled with a reason, and a sync task whose thread cannot be
    interrupted is abandoned (the thread finishes on its own; we stop waiting).
CLOSED
    The drain report is final. A group submitted now is cancelled at once and
    counted, never silently dropped.

If the lifespan call is cancelled before a drain (a forced stop), every
unfinished task is cancelled at once and named in one WARNING; tasks get
``UNWIND_GRACE`` to unwind, and the ones that do not are left running and
named too.

Context variables: a group runs in a copy of the request's context taken at
submission, as if spawned from the request's task (request ids for logging
work); changes its tasks make are not seen by the request. A runner passes
each step of a group through ``context.run`` for that (``_in_context``).
"""

from __future__ import annotations

import collections
import contextvars
import enum
import functools
import inspect
import itertools
import logging
import math
import os
import random
import time
import traceback
import types
import uuid
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from contextvars import Context
from typing import Any, Generic, ParamSpec, TypeVar, final

import attrs
import outcome
import trio

from .._exceptions import (
    BackgroundCapacityError,
    BackgroundClosedError,
    BackgroundTaskTimeout,
    TaskStoreError,
)
from .._observability.events import TaskObserver
from .._stores.base import Owner, TaskRecord, TaskStore
from . import codec
from .anyio_threads import in_worker
from .durable import CurrentTask, DurableRegistry, DurableTask, _current
from .threads import Job, ThreadPool
from .watchdog import LoopWatchdog

logger = logging.getLogger("trioapi.background")

P = ParamSpec("P")
T = TypeVar("T")

# How long cancelled tasks get to unwind after the drain deadline (or a stop
# without a drain) before the runtime stops waiting for them. Cancelled trio
# code normally unwinds at its next checkpoint, so this only matters for
# tasks that shield themselves.
UNWIND_GRACE = 1.0

# How many cancelled (and abandoned) task names a runtime keeps in the order
# they ended, for its drain report's ``cancelled_tasks``/``abandoned_tasks``.
# Beyond it, ``cancelled_by_name``/``abandoned_by_name`` still count every
# task under its name (one entry per distinct name: tasks named after their
# function share one), and the logged report lists every name with its count.
REPORT_NAMES = 10_000

# Runner tasks kept parked for the next groups once the queue is empty; a
# runner finding no work while this many are parked exits. A burst can start
# up to max_running runners; afterwards their memory goes back.
IDLE_RUNNERS = 64

# Groups a runner may run back to back without giving other tasks a turn,
# when none of them awaited anything (a group that awaits gives one). A
# checkpoint per group would cost about as much as the quick task itself;
# trio runs a whole batch of spawned tasks before it looks at I/O again, so
# this is still a turn far more often than ``start_soon`` would give.
GROUPS_PER_TURN = 8

# Durable tasks one claim takes from the store at most: a restart with
# 100,000 queued starts on the first thousand at once.
CLAIM_BATCH = 1000

# Starts of one durable task that ended neither in success nor in failure
# (the process died or was stopped during them) before it is dead-lettered:
# a task that crashes its process would otherwise crash every restart.
MAX_INTERRUPTED = 10

# How long closing the task store (its last acks) may take at shutdown.
STORE_CLOSE_GRACE = 5.0


class TaskState(enum.Enum):
    """Where a background task is in its life.

    ``RESUMABLE`` and ``DELEGATED`` are durable tasks' own: left in the task
    store for the next process (cut off by a drain), or committed to a
    shared store that hands them to whichever process claims them first.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"
    SKIPPED = "skipped"
    RESUMABLE = "resumable"
    DELEGATED = "delegated"

    @property
    def is_final(self) -> bool:
        return self not in _LIVE


_LIVE = frozenset({TaskState.PENDING, TaskState.RUNNING})


class RuntimeState(enum.Enum):
    """The runtime's lifecycle; see the module's theory of operation."""

    IDLE = "idle"
    ACCEPTING = "accepting"
    DRAINING = "draining"
    CLOSED = "closed"


@attrs.define(eq=False)
class _Durable:
    """What a durable task's handle carries besides the in-memory fields."""

    task: DurableTask[Any, Any]
    id: str
    payload: str
    attempt: int = 1
    failures: int = 0
    committed: bool = False
    committing: bool = False
    started: bool = False
    run_at: float = 0.0
    wait: trio.CancelScope | None = None
    by_user: bool = False
    trace: str | None = None  # W3C traceparent of the span that committed it


_FUNC_INFO: dict[Callable[..., Any], tuple[str, bool]] = {}
_FUNC_INFO_MAX = 4096


def _func_info(func: Callable[..., Any]) -> tuple[str, bool]:
    """The default name of a task function and whether it is async (cached)."""
    info = _FUNC_INFO.get(func) if type(func) is types.FunctionType else None
    if info is None:
        info = (_task_name(func), _is_coroutine_function(func))
        if type(func) is types.FunctionType:
            # Plain functions only: they are few and long-lived, while bound
            # methods and partials are often made per call.
            if len(_FUNC_INFO) >= _FUNC_INFO_MAX:
                _FUNC_INFO.clear()
            _FUNC_INFO[func] = info
    return info


def _task_name(func: Callable[..., Any]) -> str:
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    return getattr(target, "__qualname__", None) or type(target).__qualname__


@final
@attrs.define(eq=False, repr=False)
class TaskHandle(Generic[T]):
    """A background task, as seen from the code that added it.

    ``await handle`` (or ``await handle.wait()``) waits until the task reached
    a final state and returns that state; ``handle.result`` and
    ``handle.exception`` then say how it went. ``handle.cancel()`` stops it.
    """

    name: str
    request: str
    timeout: float | None
    _func: Callable[..., Any]
    _args: tuple[Any, ...]
    _kwargs: dict[str, Any]
    _runtime: BackgroundRuntime
    _is_async: bool
    id: int = 0
    state: TaskState = TaskState.PENDING
    result: T | None = None
    exception: BaseException | None = None
    cancel_reason: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    _scope: trio.CancelScope | None = None
    _job: Job | None = None
    _done: trio.Event | None = None
    _in_thread: bool = False
    _durable: _Durable | None = None
    _submitted_at: float | None = None
    _span: Any = None

    @property
    def task_id(self) -> str | None:
        """A durable task's stored id (stable across attempts); None for in-memory tasks."""
        return self._durable.id if self._durable is not None else None

    @property
    def attempt(self) -> int:
        """Starts so far (a durable task's retries count; an in-memory task has one)."""
        if self._durable is not None:
            return self._durable.attempt
        return 0 if self.state is TaskState.PENDING and self.started_at is None else 1

    @property
    def done(self) -> bool:
        """True once the task reached a final state."""
        return self.state.is_final

    @property
    def age(self) -> float:
        """Seconds since the task was added (until it finished, if it did)."""
        end = self.finished_at if self.finished_at is not None else trio.current_time()
        return end - self.created_at

    def cancel(self, reason: str | None = None) -> None:
        """Cancels the task: a pending one never starts; a running one is interrupted.

        A sync task already running in a worker thread cannot be interrupted:
        it is abandoned (we stop waiting for it) and its state says so.
        Cancelling a finished task does nothing.
        """
        if self.state.is_final:
            return
        self.cancel_reason = reason or "cancelled through its handle"
        if self._durable is not None:
            self._durable.by_user = True  # forgotten by the store, not resumed
            if self._durable.wait is not None:
                self._durable.wait.cancel()
        if self.state is TaskState.PENDING:
            self._runtime._finish(self, TaskState.CANCELLED)
        elif self._scope is not None:
            self._scope.cancel(self.cancel_reason)
        elif self._job is not None:
            self._runtime._end_cancelled(self, self.cancel_reason)

    async def wait(self) -> TaskState:
        """Waits until the task reached a final state, and returns it."""
        while not self.state.is_final:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        return self.state

    def __await__(self) -> Generator[Any, None, TaskState]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<TaskHandle #{self.id} {self.name!r} {self.state.value}>"


@final
class TaskOptions:
    """Per-task options, kept apart from the task's own arguments.

    ``background_tasks.options(name="email", timeout=30).add_task(send, to, subject=s)``:
    ``name`` and ``timeout`` can never collide with ``send``'s keyword arguments.
    """

    __slots__ = ("_name", "_tasks", "_timeout")

    def __init__(self, tasks: BackgroundTasks, name: str | None, timeout: float | None) -> None:
        self._tasks = tasks
        self._name = name
        self._timeout = timeout

    def add_task(
        self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[Any]:
        """Adds ``func(*args, **kwargs)`` with these options; see ``BackgroundTasks.add_task``."""
        return self._tasks._add(func, args, kwargs, self._name, self._timeout)


class BackgroundTasks:
    """The request's background tasks: declare a parameter of this type to get it.

    One object per request, shared by the path operation and all its
    dependencies, so tasks added anywhere run in the order they were added.
    They start after the response was sent; if the endpoint raises, the tasks
    it added are skipped (tasks added later, in a yield dependency's teardown,
    still run).
    """

    __slots__ = ("_durable", "_handles", "_request", "_runtime")

    def __init__(self, runtime: BackgroundRuntime | None = None, request: str = "") -> None:
        self._runtime = runtime if runtime is not None else BackgroundRuntime()
        self._request = request
        self._handles: list[TaskHandle[Any]] = []
        self._durable = False  # a durable task was added: commit before the response

    def add_task(
        self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[Any]:
        """Adds ``func(*args, **kwargs)`` to run after the response.

        ``func`` may be async (awaited in the runtime) or sync (run in a worker
        thread). Per-task options go through :meth:`options`.

        Returns:
            The task's handle; code written for FastAPI can ignore it.

        Raises:
            BackgroundCapacityError: Too many tasks are pending (becomes 503).
            BackgroundClosedError: The app is draining for shutdown (503).
        """
        return self._add(func, args, kwargs, None, None)

    def options(self, *, name: str | None = None, timeout: float | None = None) -> TaskOptions:
        """Returns an adder whose tasks get a ``name`` and/or a ``timeout`` in seconds.

        A task that runs past its timeout is cancelled and reported as failed
        with :class:`BackgroundTaskTimeout`.
        """
        if timeout is not None and not timeout > 0:
            msg = f"timeout must be a positive number of seconds, not {timeout!r}"
            raise ValueError(msg)
        return TaskOptions(self, name, timeout)

    def _add(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        timeout: float | None,
    ) -> TaskHandle[Any]:
        if not callable(func):
            msg = f"add_task needs a callable first, not {type(func).__name__}"
            raise TypeError(msg)
        if trio.lowlevel.in_trio_run():
            handle = self._runtime._admit(func, args, kwargs, name, timeout, self._request)
        else:
            # A sync endpoint or dependency, running in a worker thread: admit
            # in the trio thread, so that capacity errors surface right here.
            runtime = self._runtime
            running = runtime.state in (RuntimeState.ACCEPTING, RuntimeState.DRAINING)
            token = runtime._token if running else None
            try:
                handle = trio.from_thread.run_sync(
                    self._runtime._admit,
                    func,
                    args,
                    kwargs,
                    name,
                    timeout,
                    self._request,
                    trio_token=token,
                )
            except RuntimeError as error:
                if token is not None or "trio token" not in str(error).lower():
                    raise
                msg = (
                    "add_task was called from a thread that trio did not start, before the "
                    "runtime started; call it from the endpoint or dependency itself"
                )
                raise RuntimeError(msg) from error
        self._handles.append(handle)
        if handle._durable is not None:
            self._durable = True
        return handle

    @property
    def tasks(self) -> list[TaskHandle[Any]]:
        """The handles of the tasks added so far, in order."""
        return list(self._handles)

    def __len__(self) -> int:
        return len(self._handles)

    def _take(self) -> list[TaskHandle[Any]]:
        handles, self._handles = self._handles, []
        return handles


@final
class BackgroundTask:
    """One call to run after the response (Starlette's ``BackgroundTask``).

    ``Response(..., background=BackgroundTask(send_email, to))``: the app runs
    it after the response, with the request's other background tasks, in its
    runtime (drained on shutdown, reported, retried when durable). Awaiting
    ``task()`` directly runs it at once (a sync function in a worker thread).
    """

    __slots__ = ("args", "func", "is_async", "kwargs")

    def __init__(self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
        if not callable(func):
            msg = f"BackgroundTask needs a callable first, not {type(func).__name__}"
            raise TypeError(msg)
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = _is_coroutine_function(func)

    async def __call__(self) -> None:
        if self.is_async:
            await self.func(*self.args, **self.kwargs)
        else:
            call = functools.partial(self.func, *self.args, **self.kwargs)
            await trio.to_thread.run_sync(in_worker(call))

    def __repr__(self) -> str:
        return f"<BackgroundTask {getattr(self.func, '__qualname__', self.func)!r}>"


def checked_background(background: Any) -> Any:
    """``background`` if a response can take it (a ``BackgroundTask`` or ``BackgroundTasks``).

    Raises:
        TypeError: It is something else (refused when the response is made,
            not after it was sent).
    """
    if not isinstance(background, BackgroundTask | BackgroundTasks):
        msg = (
            "background= takes a BackgroundTask or BackgroundTasks, "
            f"not {type(background).__name__}"
        )
        raise TypeError(msg)
    return background


def adopt_background(group: BackgroundTasks, background: Any) -> None:
    """Moves a response's ``background=`` into ``group``, the request's tasks.

    ``background`` is a :class:`BackgroundTask`, or a :class:`BackgroundTasks`
    other than ``group``: made by hand (``BackgroundTasks()``), its tasks are
    added to ``group`` anew (the handles its ``add_task`` returned are not
    the ones that run); bound to the same runtime, its tasks join ``group``.
    """
    # Checked again: code may set ``response.background`` itself, as FastAPI does.
    checked_background(background)
    if background is group:
        return
    if isinstance(background, BackgroundTask):
        group._add(background.func, background.args, background.kwargs, None, None)
        return
    taken = background._take()
    if background._runtime is group._runtime:
        group._handles.extend(taken)
        group._durable = group._durable or any(h._durable is not None for h in taken)
        return
    for handle in taken:
        durable = handle._durable
        func = durable.task if durable is not None else handle._func
        group._add(func, handle._args, handle._kwargs, handle.name, handle.timeout)


@final
class _SubmittingTasks(BackgroundTasks):
    """A one-task group for ``BackgroundRuntime.add_task``: submitted as added."""

    __slots__ = ()

    def __init__(self, runtime: BackgroundRuntime) -> None:
        super().__init__(runtime, "")

    def _add(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        timeout: float | None,
    ) -> TaskHandle[Any]:
        handle = super()._add(func, args, kwargs, name, timeout)
        self._runtime.submit(self._take())
        return handle


def _frozen_counts(counts: Mapping[str, int]) -> Mapping[str, int]:
    return types.MappingProxyType(dict(counts))


@final
@attrs.frozen
class DrainReport:
    """What happened to every task since startup, written when the drain ends.

    Attributes:
        completed, failed, cancelled, abandoned, skipped: Tasks per final state.
        cancelled_tasks, abandoned_tasks: Names of the tasks cut off by the
            drain or cancelled otherwise, in the order they ended (up to
            ``REPORT_NAMES``, 10,000; the counts are always complete).
        cancelled_by_name, abandoned_by_name: Every such task counted under
            its name, in the order the names first ended: complete however
            many there were (memory: one entry, about 100 bytes, per distinct
            name). ``str()`` lists these when the ordered names fell short.
        deadline_hit: The drain ran into ``drain_timeout``.
        started_at, finished_at: trio clock times of the drain.
        resumable: Durable tasks the drain cut off (or never started), left
            in the task store for the next process to run.
        durable: The app has durable tasks (the text then counts ``resumable``).
    """

    completed: int
    failed: int
    cancelled: int
    abandoned: int
    skipped: int
    cancelled_tasks: tuple[str, ...]
    abandoned_tasks: tuple[str, ...]
    deadline_hit: bool
    started_at: float
    finished_at: float
    resumable: int = 0
    durable: bool = False
    cancelled_by_name: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    abandoned_by_name: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)

    @property
    def total(self) -> int:
        return (
            self.completed
            + self.failed
            + self.cancelled
            + self.abandoned
            + self.skipped
            + self.resumable
        )

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    def __str__(self) -> str:
        text = (
            f"background drain finished in {self.duration:.3f} s: {self.completed} completed, "
            f"{self.failed} failed, {self.cancelled} cancelled, {self.abandoned} abandoned, "
            f"{self.skipped} skipped"
        )
        if self.durable:
            text += f", {self.resumable} resumable"
        if self.cancelled_tasks:
            text += "; cancelled: " + _names(
                self.cancelled_tasks, self.cancelled_by_name, self.cancelled
            )
        if self.abandoned_tasks:
            text += "; abandoned: " + _names(
                self.abandoned_tasks, self.abandoned_by_name, self.abandoned
            )
        return text


def _names(names: tuple[str, ...], by_name: Mapping[str, int], count: int) -> str:
    # Each name in the order the tasks ended, while they all fit; beyond the
    # bound, every name once with its count ("send-email (9000)"), complete.
    if count <= len(names):
        return ", ".join(names)
    if sum(by_name.values()) < count:  # a report made without the counts
        return f"{', '.join(names)} and {count - len(names)} more"
    return ", ".join(f"{name} ({times})" if times > 1 else name for name, times in by_name.items())


ErrorHook = Callable[["TaskHandle[Any]", BaseException], Any]


@final
@attrs.define(eq=False)
class _Host:
    """One life of the runtime's nursery, held by a trio system task (see ``run``).

    ``tasks`` counts the tasks started in the nursery that have not left it;
    ``owners`` maps each runner's current cancel scope to its task, so that a
    task the runtime abandons can be told apart (``stuck``) from those that
    unwind. ``settled`` is set once the nursery is closed and only stuck
    tasks are left in it (or none: then ``done`` follows).
    """

    nursery: trio.Nursery | None = None
    tasks: int = 0
    owners: dict[trio.CancelScope, trio.lowlevel.Task] = attrs.Factory(dict)
    stuck: dict[trio.lowlevel.Task, TaskHandle[Any]] = attrs.Factory(dict)
    closed: bool = False
    left: bool = False
    result: outcome.Outcome[None] | None = None
    opened: trio.Event = attrs.Factory(trio.Event)
    settled: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)


class BackgroundRuntime:
    """Runs every request's background tasks; reachable as ``app.background``.

    Args:
        drain_timeout: Seconds shutdown waits for tasks before cancelling them.
        max_pending: Admitted tasks not yet started, across all requests; past
            it ``add_task`` raises :class:`BackgroundCapacityError` (503).
        max_running: Tasks running at once; further ones wait, pending.
        max_threads: Worker threads for sync tasks.
        store: Where durable tasks are kept: a :class:`~trioapi.stores.TaskStore`
            or a URL (``sqlite:///tasks.db``, ``redis://host:6379/0``);
            ``TRIOAPI_TASK_STORE`` in the environment overrides it. Without
            one, durable tasks are kept in memory (with a warning).
        poll_interval: Seconds between looks at the store for tasks nobody
            runs (released, recovered from a dead process, due retries).
        loop_watchdog: Seconds the event loop may be held (by blocking code in
            an async task or endpoint) before a WARNING names the code and
            shows its stack (``_runtime/watchdog.py``); None turns it off.
    """

    def __init__(
        self,
        *,
        drain_timeout: float = 25.0,
        max_pending: int = 10_000,
        max_running: int = 1_000,
        max_threads: int = 40,
        store: TaskStore | str | None = None,
        poll_interval: float = 0.5,
        loop_watchdog: float | None = 0.5,
    ) -> None:
        if not drain_timeout >= 0:
            msg = f"drain_timeout must be >= 0 seconds, not {drain_timeout!r}"
            raise ValueError(msg)
        for label, value in (
            ("max_pending", max_pending),
            ("max_running", max_running),
            ("max_threads", max_threads),
        ):
            if value < 1:
                msg = f"{label} must be at least 1, not {value!r}"
                raise ValueError(msg)
        self.drain_timeout = drain_timeout
        self.max_pending = max_pending
        self.max_running = max_running
        self.max_threads = max_threads
        if not poll_interval > 0:
            msg = f"poll_interval must be a positive number of seconds, not {poll_interval!r}"
            raise ValueError(msg)
        self.poll_interval = poll_interval
        self.watchdog = LoopWatchdog(loop_watchdog) if loop_watchdog is not None else None
        from .._stores.registry import store_from

        self.store: TaskStore | None = store_from(store)
        self.durable = DurableRegistry()
        self.resumable = 0
        self.retried = 0
        self.delegated = 0
        self._active_store: TaskStore | None = None
        self._owner: Owner | None = None
        self._rng = random.Random()
        self._wake_dispatcher: trio.Event | None = None
        self._observers: list[TaskObserver] = []
        # The app's Telemetry (app.instrument()): spans around each task.
        self._tracing: Any = None
        self.state = RuntimeState.IDLE
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.abandoned = 0
        self.skipped = 0
        self.pending = 0
        self.running = 0
        self.last_report: DrainReport | None = None
        self._live: dict[TaskHandle[Any], None] = {}
        self._ended_names: dict[TaskState, list[str]] = {
            TaskState.CANCELLED: [],
            TaskState.ABANDONED: [],
        }
        self._ended_counts: dict[TaskState, dict[str, int]] = {
            TaskState.CANCELLED: {},
            TaskState.ABANDONED: {},
        }
        self._nursery: trio.Nursery | None = None
        # Submitted groups not yet taken by a runner, with the context they
        # were submitted from; the runner tasks alive, and those parked idle.
        self._queue: collections.deque[tuple[Sequence[TaskHandle[Any]], Context]] = (
            collections.deque()
        )
        self._runners = 0
        self._parked: list[trio.lowlevel.Task] = []
        # Runners woken or spawned that have not yet looked at the queue:
        # while one is on its way, a new group wakes nobody (see _wake_runner).
        self._searching = 0
        self._runner_context = contextvars.Context()
        # Runners whose current task is sync: waiting for a worker thread or
        # running in one, they hold no running place.
        self._in_threads = 0
        self._host: _Host | None = None
        # Hosts left with stuck tasks still running (see stragglers).
        self._stuck_hosts: list[_Host] = []
        self._pool: ThreadPool | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._idle: trio.Event | None = None
        self._hooks: list[ErrorHook] = []
        self._next_id = 0
        self._warned_inline = False
        self._dropped: list[str] = []
        self._draining: trio.Event | None = None
        # Set when the drain begins: long-lived work that is not a task (a
        # websocket session) ends itself then (wait_draining).
        self._drain_begun = trio.Event()

    # --- lifecycle ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Opens the runtime's nursery and accepts tasks until drained and closed.

        The ASGI lifespan call runs this; each run is a new life of the
        runtime (counters start at zero), so one app can serve several
        lifespans one after another, as test suites do. To embed the runtime
        without ASGI: ``await nursery.start(app.background.run)``, add work
        with :meth:`add_task`, then ``await app.background.drain()``.

        It returns once the drain closed the runtime and its tasks ended, or
        were abandoned because they ignore cancellation (see
        :attr:`stragglers`). Cancelled before a drain, it cancels every task,
        gives them ``UNWIND_GRACE`` to unwind, and names them in a WARNING.
        """
        if self.state is RuntimeState.CLOSED:
            self._reset()
        self._require(RuntimeState.IDLE, "start")
        self._runners = 0
        self._in_threads = 0
        self._searching = 0
        self._parked.clear()
        # Runners start in a context of their own: between groups they
        # hold on to no request's context variables.
        self._runner_context = contextvars.copy_context()
        self._start_run()
        assert self._pool is not None
        host = _Host()
        self._host = host
        trio.lowlevel.spawn_system_task(
            self._host_task,
            host,
            self._pool,
            name="trioapi background runtime",
            context=self._runner_context.copy(),
        )
        try:
            await host.opened.wait()
            if not host.done.is_set():
                self._nursery = host.nursery
                await self._open_store(host)
                self.state = RuntimeState.ACCEPTING
                task_status.started()
                # Until drain() closed the nursery and its tasks are gone (or
                # stuck), or the nursery failed.
                await host.settled.wait()
        finally:
            with trio.CancelScope(shield=True):
                await self._leave(host)
        if host.done.is_set() and host.result is not None:
            host.result.unwrap()  # the nursery failed: a bug in the runtime, raised here

    async def _host_task(self, host: _Host, pool: ThreadPool) -> None:
        # A system task: trio would turn an exception escaping it into a
        # TrioInternalError, so its outcome goes to run(), which raises it.
        host.result = await outcome.acapture(self._host_nursery, host, pool)
        host.opened.set()
        host.settled.set()
        host.done.set()
        error = host.result.error if isinstance(host.result, outcome.Error) else None
        if isinstance(error, BaseExceptionGroup):
            error = error.split(trio.Cancelled)[1]
        elif isinstance(error, trio.Cancelled):
            error = None  # the run is ending (its main task returned): nothing failed
        if host.left and error is not None:
            logger.error(
                "background runtime: its nursery failed after it closed",
                exc_info=(type(error), error, error.__traceback__),
            )

    async def _host_nursery(self, host: _Host, pool: ThreadPool) -> None:
        async with trio.open_nursery() as nursery:
            host.nursery = nursery
            host.tasks += 2
            await nursery.start(self._hosted, host, pool.dispatch)
            await nursery.start(self._hosted, host, pool.watch)
            if self.watchdog is not None:
                host.tasks += 1
                await nursery.start(self._hosted, host, self.watchdog.run)
            host.opened.set()
            # Cancelled by _close_host; the nursery then waits for its tasks,
            # stuck ones included: this system task may outlive run().
            await trio.sleep_forever()

    async def _hosted(
        self,
        host: _Host,
        func: Callable[..., Coroutine[Any, Any, None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            await func(task_status=task_status)
        finally:
            self._task_left(host, trio.lowlevel.current_task())

    def _task_left(self, host: _Host, task: trio.lowlevel.Task) -> None:
        # In the finally of every task of the host's nursery.
        host.tasks -= 1
        handle = host.stuck.pop(task, None)
        if handle is not None and host.left:
            logger.warning("abandoned background task %r returned at last", handle.name)
        if host.closed and host.tasks <= len(host.stuck):
            host.settled.set()

    def _close_host(self, host: _Host, reason: str) -> None:
        # Cancels the host's nursery: its tasks unwind, stuck ones stay.
        if self._host is host:
            self._nursery = None
        if host.closed:
            return
        host.closed = True
        if host.nursery is not None:
            host.nursery.cancel_scope.cancel(reason)
        if self._pool is not None:
            self._pool.close()
        if host.tasks <= len(host.stuck):
            host.settled.set()

    def _note_stuck(self, host: _Host, scope: trio.CancelScope, handle: TaskHandle[Any]) -> None:
        # The runtime stops waiting for the task running under scope.
        task = host.owners.get(scope)
        if task is not None:
            host.stuck[task] = handle
            if host not in self._stuck_hosts:
                self._stuck_hosts.append(host)

    async def _leave(self, host: _Host) -> None:
        # run()'s last step, shielded: close this life and say what is left.
        await host.opened.wait()
        if self.state is not RuntimeState.CLOSED:
            # Cancelled before (or during) a drain: a forced stop, an embedded
            # server cancelled from outside, or the nursery failed.
            self._close_abruptly(host)
            with trio.move_on_after(UNWIND_GRACE):
                await host.done.wait()
        else:
            self._close_host(host, "the background runtime closed")
            with trio.move_on_after(UNWIND_GRACE):
                await host.settled.wait()  # at once, unless a task misbehaves
        await self._close_store()
        host.left = True
        left = [handle.name for handle in host.stuck.values()]
        others = host.tasks - len(host.stuck)
        if others > 0:
            left.append(f"{others} task(s) of the runtime itself")
        if self._dropped:
            behind = (
                f"; still running after {UNWIND_GRACE:g} s, left behind (the trio run ends "
                f"only when they return): {', '.join(left)}"
                if left
                else ""
            )
            logger.warning(
                "background runtime stopped without a drain: %d task(s) cancelled: %s%s",
                len(self._dropped),
                ", ".join(self._dropped),
                behind,
            )
            self._dropped.clear()
        elif left:
            logger.warning(
                "background runtime closed with %d abandoned task(s) still running, which "
                "ignore cancellation: %s; the trio run ends only when they return",
                len(left),
                ", ".join(left),
            )

    @property
    def stragglers(self) -> list[TaskHandle[Any]]:
        """Abandoned tasks whose code is still running, oldest first.

        An async task that ignores cancellation (it shields itself, or
        catches ``Cancelled`` and carries on) is abandoned at the drain
        deadline plus ``UNWIND_GRACE`` and reported; the runtime closes
        without it, but trio cannot end a run before every task returned. A
        program that must exit now ends its process with ``os._exit`` after
        flushing its logs, as ``python -m trioapi`` does. Sync tasks
        abandoned in their threads do not hold the run and are not listed.
        """
        self._stuck_hosts = [host for host in self._stuck_hosts if host.stuck]
        return [handle for host in self._stuck_hosts for handle in host.stuck.values()]

    def _start_run(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._pool = ThreadPool(self.max_threads, self._token)

    def _reset(self) -> None:
        self.state = RuntimeState.IDLE
        self.completed = self.failed = self.cancelled = self.abandoned = self.skipped = 0
        self.pending = self.running = 0
        self.resumable = self.retried = self.delegated = 0
        self.last_report = None
        self._draining = None
        self._drain_begun = trio.Event()
        self._queue.clear()
        self._live.clear()
        for names in self._ended_names.values():
            names.clear()
        for counts in self._ended_counts.values():
            counts.clear()
        self._idle = None

    def _require(self, state: RuntimeState, action: str) -> None:
        if self.state is not state:
            msg = f"cannot {action} the background runtime: it is {self.state.value}"
            raise RuntimeError(msg)

    def add_task(
        self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[Any]:
        """Adds a task outside any request; it starts at once, on its own.

        For code that embeds the runtime (a trio program, a worker) rather than
        a path operation, which uses its ``BackgroundTasks`` parameter instead.
        Admission is the same: the pending cap and the drain apply.

        Raises:
            RuntimeError: The runtime is not running (no lifespan started it).
        """
        return self.options().add_task(func, *args, **kwargs)

    def options(self, *, name: str | None = None, timeout: float | None = None) -> TaskOptions:
        """Like :meth:`BackgroundTasks.options`, for :meth:`add_task` outside requests."""
        if self.state is RuntimeState.IDLE or self.state is RuntimeState.CLOSED:
            msg = (
                f"cannot add a task to a runtime that is {self.state.value}: start it "
                "with the app's lifespan (or nursery.start(app.background.run)) first"
            )
            raise RuntimeError(msg)
        return _SubmittingTasks(self).options(name=name, timeout=timeout)

    def on_error(self, hook: ErrorHook) -> ErrorHook:
        """Registers ``hook(handle, exception)``, called when a task fails.

        Sync or async; usable as a decorator. Exceptions raised by a hook are
        logged and otherwise ignored.
        """
        self._hooks.append(hook)
        return hook

    def observe(self, observer: TaskObserver) -> TaskObserver:
        """Adds an observer of task events (metrics, traces); see ``_observability``."""
        self._observers.append(observer)
        return observer

    def _emit(self, event: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, event)(*args)
            except Exception:
                logger.exception("task observer %r failed on %s", observer, event)

    # --- introspection ------------------------------------------------------

    def in_flight(self) -> list[TaskHandle[Any]]:
        """The tasks not yet finished (pending or running), oldest first."""
        return list(self._live)

    def stats(self) -> dict[str, int]:
        """The counters as a dict: pending, running and each final state."""
        return {
            "pending": self.pending,
            "running": self.running,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "abandoned": self.abandoned,
            "skipped": self.skipped,
            "resumable": self.resumable,
            "retried": self.retried,
            "delegated": self.delegated,
        }

    async def wait_idle(self) -> None:
        """Waits until no task is pending or running."""
        await trio.lowlevel.checkpoint()
        while self._live:
            if self._idle is None:
                self._idle = trio.Event()
            await self._idle.wait()

    async def wait_draining(self) -> None:
        """Waits until the drain begins (shutdown); returns at once if it already has.

        For long-lived work that is not a task, such as an open websocket:
        it ends itself when this returns, so its tasks reach the drain.
        """
        await self._drain_begun.wait()

    # --- admission, submission (the seam) -----------------------------------

    def _admit(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        timeout: float | None,
        request: str,
    ) -> TaskHandle[Any]:
        if (
            self.state is RuntimeState.CLOSED
            and self._token is not trio.lowlevel.current_trio_token()
        ):
            # Closed by an earlier trio run (a test suite reusing its app): this
            # run never started the runtime, so it is a new life without lifespan.
            self._reset()
        if self.state is RuntimeState.DRAINING or self.state is RuntimeState.CLOSED:
            msg = (
                f"cannot add a background task: the app is {self.state.value} for shutdown; "
                "the request gets 503 so the client can retry on another instance"
            )
            if self._observers:
                self._emit("task_rejected", "closed")
            raise BackgroundClosedError(msg)
        pool = self._pool
        waiting = self.pending if pool is None else self.pending + pool.queued
        if waiting >= self.max_pending:
            msg = (
                f"cannot add a background task: {waiting} tasks are already waiting to start "
                f"({waiting - self.pending} of them sync tasks waiting for a worker thread; "
                f"max_pending={self.max_pending}); the request gets 503 with Retry-After"
            )
            if self._observers:
                self._emit("task_rejected", "capacity")
            raise BackgroundCapacityError(msg)
        if type(func) is DurableTask:
            return self._admit_durable(func, args, kwargs, name, timeout, request)
        default_name, is_async = _func_info(func)
        return self._new_handle(
            name or default_name, request, timeout, func, args, kwargs, is_async
        )

    def _new_handle(
        self,
        name: str,
        request: str,
        timeout: float | None,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
    ) -> TaskHandle[Any]:
        # A pending task the runtime now answers for (admitted, or resumed).
        self._next_id += 1
        handle: TaskHandle[Any] = TaskHandle(
            name,
            request,
            timeout,
            func,
            args,
            kwargs,
            self,
            is_async,
            id=self._next_id,
            created_at=trio.current_time(),
        )
        self.pending += 1
        self._live[handle] = None
        return handle

    def submit(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Starts a request's admitted tasks, in order, as one group.

        The one entry point for work: call it only after the response was sent.
        Durable tasks not yet committed (added during a yield dependency's
        teardown, or through :meth:`add_task`) are committed first.
        """
        if not handles:
            return
        if self._observers:
            submitted = trio.current_time()
            for handle in handles:
                if handle._submitted_at is None:
                    handle._submitted_at = submitted
        if self._active_store is not None and self._nursery is not None:
            for handle in handles:
                durable = handle._durable
                if durable is not None and not durable.committed:
                    self._spawn(self._commit_then_submit, handles)
                    return
        if self.state is RuntimeState.CLOSED or self._nursery is None:
            if self.state is RuntimeState.IDLE:
                msg = "the runtime is not started; run the group inline with run_inline()"
                raise RuntimeError(msg)
            for handle in handles:
                if not handle.state.is_final:
                    handle.cancel_reason = "submitted after the runtime closed"
                    self._finish(handle, TaskState.CANCELLED)
            return
        if len(handles) == 1 and _runs_direct(handles[0]):
            self._run_direct(handles[0])  # it holds no running place: the threads are the limit
            return
        self._queue.append((handles, contextvars.copy_context()))
        if not self._searching:
            self._wake_runner()

    def _wake_runner(self) -> None:
        # Sends a runner to the queue: a parked one, else a new one if fewer
        # than max_running groups are running. Otherwise the group waits in
        # the queue as its handles and a context, a few hundred bytes, not a
        # task, until a runner (or a direct job) is done.
        #
        # One runner on its way is enough: the one that takes a group and
        # leaves others queued sends the next (_take_group). A burst of groups
        # is then taken by the runners already alive, a group after another
        # when they do not wait, instead of a runner woken (or spawned) per
        # group; yet a group never waits behind one that awaits, since a
        # runner always sends another before it runs a group with more queued.
        if self._parked:
            self._searching += 1
            trio.lowlevel.reschedule(self._parked.pop())
        elif self._has_place() and self._nursery is not None:
            assert self._host is not None
            self._searching += 1
            self._runners += 1
            self._host.tasks += 1
            self._runner_context.run(self._nursery.start_soon, self._runner, self._host)

    def _has_place(self) -> bool:
        # Groups running on the event loop: busy runners (parked ones hold no
        # group), except those whose task waits for a worker thread or runs
        # in one. Direct jobs never hold a place.
        return self._runners - len(self._parked) - self._in_threads < self.max_running

    def _run_direct(self, handle: TaskHandle[Any]) -> None:
        # The common FastAPI case, a request with one sync task and no timeout,
        # needs no trio task at all: the job goes straight to the worker
        # threads and its result is recorded when the pool delivers it. The
        # task counts as running from here, as one run by a runner does while
        # its job waits for a thread; it holds no running place (see
        # _has_place), and while it waits it counts against max_pending.
        assert self._pool is not None
        handle.state = TaskState.RUNNING
        handle.started_at = trio.current_time()
        self.pending -= 1
        self.running += 1
        tracing = self._tracing
        if tracing is not None:
            traced = tracing.start(handle)  # the job's context is copied with the span
        job = _job_for(handle)
        if tracing is not None:
            tracing.detach(traced)
        handle._job = job
        self._pool.start(job, self._direct_done)

    def _direct_done(self, job: Job) -> None:
        # In the trio thread, from the pool's delivery of a batch of results.
        handle: TaskHandle[Any] = job.owner
        if handle._job is not job:
            return  # it ended already (cancelled just as it finished)
        self._release_job(handle)
        result = job.result
        assert result is not None
        if self._record_outcome(handle, result, call_hooks=bool(self._hooks)):
            return
        if self._nursery is not None:
            # A coroutine to await, error hooks to call, or a BaseException:
            # a runner-like task finishes it, in the request's context.
            assert self._host is not None
            self._host.tasks += 1
            job.context.run(
                self._nursery.start_soon, self._complete_direct, handle, result, self._host
            )
        else:
            self._end_cancelled(handle, "the runtime closed as the task finished")

    def _record_outcome(
        self, handle: TaskHandle[Any], result: outcome.Outcome[Any], *, call_hooks: bool
    ) -> bool:
        # Finishes a direct job's task from its outcome when nothing is left
        # to await; False when a task must finish it (a coroutine returned by
        # the sync callable, error hooks to call, a BaseException).
        if type(result) is outcome.Value and not inspect.isawaitable(result.value):
            handle.result = result.value
            self._finish(handle, TaskState.COMPLETED)
            return True
        if type(result) is outcome.Error and isinstance(result.error, Exception) and not call_hooks:
            handle.exception = result.error
            self._log_failure(handle, result.error)
            self._finish(handle, TaskState.FAILED)
            return True
        return False

    async def _complete_direct(
        self, handle: TaskHandle[Any], result: outcome.Outcome[Any], host: _Host
    ) -> None:
        scope = trio.CancelScope()
        task = trio.lowlevel.current_task()
        host.owners[scope] = task
        handle._scope = scope
        try:
            with scope:
                try:
                    value = result.unwrap()
                    if inspect.isawaitable(value):  # a sync callable returning a coroutine
                        value = await value
                except trio.Cancelled:
                    raise
                except BaseException as error:
                    await self._handle_error(handle, error)
                    return
                handle.result = value
                self._finish(handle, TaskState.COMPLETED)
            if scope.cancelled_caught:
                await self._cut_off_running((handle,))
        finally:
            del host.owners[scope]
            self._drop_live((handle,))
            self._task_left(host, task)

    def _release_job(self, handle: TaskHandle[Any]) -> None:
        handle._job = None

    def discard(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Skips admitted tasks that must not run (their endpoint raised).

        Durable tasks already committed run all the same: their response may
        have reached the client even though sending it failed.
        """
        committed = []
        for handle in handles:
            if handle.state.is_final:
                continue
            if handle._durable is not None and handle._durable.committed:
                committed.append(handle)
            else:
                self._finish(handle, TaskState.SKIPPED)
        if committed:
            self.submit(committed)

    async def run_inline(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Runs a group in the calling task: the fallback when no lifespan started us."""
        if not self._warned_inline:
            self._warned_inline = True
            logger.warning(
                "trioapi: the server did not run the ASGI lifespan, so background tasks run "
                "inside each request's call after its response. They are not drained at "
                "shutdown: the server cancels them with the connection (hypercorn after its "
                "graceful_timeout, 3 s by default). Serve with lifespan events enabled to "
                "have them drained within drain_timeout."
            )
        if self._token is not trio.lowlevel.current_trio_token():
            self._start_run()
        try:
            await self._run_group(handles)
        finally:
            if self._dropped:
                logger.warning(
                    "background tasks cancelled with their request (no lifespan, no drain): %s",
                    ", ".join(self._dropped),
                )
                self._dropped.clear()

    # --- running ----------------------------------------------------------------

    async def _runner(self, host: _Host) -> None:
        # A long-lived task of the runtime's nursery that runs groups from the
        # queue, one after another, each in the context it was submitted from.
        # Runners save a task spawn per request; there are at most max_running
        # of them, and at most IDLE_RUNNERS stay parked when the queue is empty.
        #
        # Their tasks run under the runner's cancel scope, kept from group to
        # group: a task's timeout is its deadline while it runs; cancel() and
        # the drain cancel it. A cancelled scope cannot be reused, so the
        # runner then records the cut-off task and carries on under a new one.
        task = trio.lowlevel.current_task()
        owners = host.owners
        group: tuple[Sequence[TaskHandle[Any]], Context] | None = None
        unyielded = 0  # groups run since this runner last gave others a turn
        searching = True  # spawned by _wake_runner, which counted it on its way
        try:
            while True:
                scope = trio.CancelScope()
                owners[scope] = task  # so that the drain can tell a stuck task's runner
                try:
                    with scope:
                        while True:
                            if group is None:
                                group = await self._take_group(task, host, searching)
                                searching = False
                                if group is None:
                                    return
                            handles, context = group
                            done, stepped = await _in_context(
                                context, self._run_tasks(handles, scope)
                            )
                            if not done:
                                break  # the scope was cancelled, its task returned anyway
                            group = None
                            if stepped:
                                unyielded = 0
                            else:
                                unyielded += 1
                                if unyielded == GROUPS_PER_TURN:
                                    unyielded = 0
                                    if self._queue:  # else parking is the turn
                                        await trio.lowlevel.cancel_shielded_checkpoint()
                    if scope.cancelled_caught and group is not None:
                        await _in_context(group[1], self._cut_off_running(group[0]))
                finally:
                    del owners[scope]
        finally:
            if self._host is host:  # not a stuck runner of an earlier life
                self._runners -= 1
            if group is not None:
                self._drop_live(group[0])
            self._task_left(host, task)

    async def _take_group(
        self, runner: trio.lowlevel.Task, host: _Host, searching: bool
    ) -> tuple[Sequence[TaskHandle[Any]], Context] | None:
        # The next group with a task still pending (cancel() or the drain may
        # have ended them all), or None when the runner should exit: also
        # when its nursery closed (a stuck task that returned at last must
        # not take groups from the runtime's next life). ``searching``: the
        # runner was sent by _wake_runner and is counted on its way.
        try:
            while True:
                if host.closed:
                    return None
                while self._queue:
                    group = self._queue.popleft()
                    for handle in group[0]:
                        if handle.state is TaskState.PENDING:
                            if searching:
                                searching = False
                                self._searching -= 1
                            if self._queue and not self._searching:
                                self._wake_runner()  # the next group may not wait for this one
                            return group
                if searching:
                    searching = False
                    self._searching -= 1
                if len(self._parked) >= IDLE_RUNNERS:
                    return None
                self._parked.append(runner)

                def unpark(_: object) -> trio.lowlevel.Abort:
                    self._parked.remove(runner)  # cancelled while parked: shutting down
                    return trio.lowlevel.Abort.SUCCEEDED

                await trio.lowlevel.wait_task_rescheduled(unpark)
                searching = True  # _wake_runner rescheduled it, and counted it
        finally:
            if searching and self._host is host:
                self._searching -= 1

    async def _run_group(self, handles: Sequence[TaskHandle[Any]]) -> None:
        # The inline mode's counterpart of a runner: one group, in the calling task.
        try:
            while True:
                scope = trio.CancelScope()
                with scope:
                    if await self._run_tasks(handles, scope):
                        return
                if scope.cancelled_caught:
                    await self._cut_off_running(handles)
        finally:
            self._drop_live(handles)

    async def _run_tasks(self, handles: Sequence[TaskHandle[Any]], scope: trio.CancelScope) -> bool:
        """Runs a group's pending tasks in order; False if ``scope`` must be replaced.

        Each task runs under ``scope``: its timeout is the scope's deadline
        while it runs, and cancelling the scope cuts it off (the caller then
        records that). One coroutine for the whole group, not one per task:
        a coroutine frame is a cost on every step of every task.
        """
        for handle in handles:
            if handle.state is not TaskState.PENDING:
                continue  # cancelled before its turn
            durable = handle._durable
            if durable is not None:
                if durable.wait is not None:
                    continue  # a retry waiting out its backoff: it runs as a group of its own
                token = self._begin_attempt(handle, durable)
            tracing = self._tracing
            if tracing is not None:
                traced = tracing.start(handle)
            now = trio.current_time()
            handle.state = TaskState.RUNNING
            handle.started_at = now
            self.pending -= 1
            self.running += 1
            handle._scope = scope
            timeout = handle.timeout
            if timeout is not None:
                scope.deadline = now + timeout
            try:
                if handle._is_async:
                    result = await handle._func(*handle._args, **handle._kwargs)
                else:
                    # run() and run_inline() bound the pool to this trio run.
                    assert self._pool is not None
                    # Waiting for a thread or running in one, the task holds no
                    # running place: a group waiting for one may start.
                    self._in_threads += 1
                    if self._queue and not self._searching:
                        self._wake_runner()
                    try:
                        result = await self._pool.run(_job_for(handle), _note_abort)
                    finally:
                        self._in_threads -= 1
                    if inspect.isawaitable(result):  # a sync callable returning a coroutine
                        result = await result
            except trio.Cancelled:
                raise  # the caller records the outcome once the scope is left
            except BaseException as error:
                await self._handle_error(handle, error)
            else:
                handle.result = result
                self._finish(handle, TaskState.COMPLETED)
            finally:
                if timeout is not None:
                    scope.deadline = math.inf
                if durable is not None:
                    _current.reset(token)
                if tracing is not None:
                    tracing.detach(traced)
            # Was the scope cancelled while the task ran (and the task returned
            # anyway)? Then it cannot be reused. Only handle.cancel() and the
            # drain cancel it, both after setting cancel_reason, or else the
            # task's deadline; asking the scope alone would read the clock
            # after every task.
            if handle.cancel_reason is not None or (timeout is not None and scope.cancel_called):
                return False
        return True

    def _drop_live(self, handles: Sequence[TaskHandle[Any]]) -> None:
        for handle in handles:
            if handle.state in _LIVE:
                # Only an outer cancellation gets here with tasks left: the
                # runtime's nursery was cancelled without a (finished) drain
                # (from a group's unwinding, or _close_abruptly for them all).
                self._end_cancelled(
                    handle, "the server ended the lifespan before a drain", final=True
                )
                if handle.state is TaskState.CANCELLED or handle.state is TaskState.ABANDONED:
                    self._dropped.append(handle.name)

    async def _cut_off_running(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Records why the group's running task was cut off by its scope."""
        for handle in handles:
            if handle.state is TaskState.RUNNING:
                break
        else:
            return  # it ended already (the drain abandoned it)
        if handle.cancel_reason is None and handle.timeout is not None:
            error = BackgroundTaskTimeout(
                f"background task {handle.name!r} ran past its timeout of {handle.timeout:g} s"
                + (" (its worker thread was abandoned)" if handle._in_thread else "")
            )
            await self._fail(handle, error)
        else:
            self._end_cancelled(handle, handle.cancel_reason)

    async def _handle_error(self, handle: TaskHandle[Any], error: BaseException) -> None:
        # A Cancelled in here must keep unwinding to the group's scope (or
        # further out); everything else is the task's failure.
        if isinstance(error, BaseExceptionGroup):
            cancelled, rest = error.split(trio.Cancelled)
            if cancelled is not None:
                if rest is not None:
                    self._log_failure(handle, rest)
                raise cancelled from None  # the group records the outcome
            assert rest is not None
            error = rest
        if isinstance(error, KeyboardInterrupt | GeneratorExit):
            handle.exception = error
            self._finish(handle, TaskState.FAILED)
            raise error
        await self._fail(handle, error)

    def _end_cancelled(
        self,
        handle: TaskHandle[Any],
        reason: str | None,
        *,
        abandoned: bool = False,
        final: bool = False,
    ) -> None:
        # final: the runtime stops waiting for this task (the drain's last
        # pass, a close without a drain); nothing will be delivered after it.
        if handle.state.is_final:
            return
        job = handle._job
        if job is not None:
            # A direct job: take it off the queue, or abandon it mid-run.
            assert self._pool is not None
            started = self._pool.abort(job)
            if started is None:
                # It finished; its result is on its way to this thread.
                if not final:
                    return  # the delivery records it
                # The runtime is done waiting, so take the result now, or the
                # report would miss the task (seen with an autojump clock
                # that reached the drain's grace before the delivery ran).
                # Error hooks are not called any more: the drain is over.
                self._release_job(handle)
                assert job.result is not None
                if self._record_outcome(handle, job.result, call_hooks=False):
                    return
                started = True  # a coroutine never awaited, a BaseException: cut off
            handle._in_thread = started
        handle.cancel_reason = handle.cancel_reason or reason or "cancelled"
        abandoned = abandoned or handle._in_thread
        self._finish(handle, TaskState.ABANDONED if abandoned else TaskState.CANCELLED)

    def _note_name(self, state: TaskState, name: str) -> None:
        # The report names the tasks that were cut off: in order up to a
        # bound, and counted per name without one (see REPORT_NAMES).
        names = self._ended_names[state]
        if len(names) < REPORT_NAMES:
            names.append(name)
        counts = self._ended_counts[state]
        counts[name] = counts.get(name, 0) + 1

    async def _fail(self, handle: TaskHandle[Any], error: BaseException) -> None:
        # Logged and reported to the hooks before the task counts as finished:
        # a drain waits for an async hook (an error tracker's round trip)
        # instead of cancelling it halfway.
        handle.exception = error
        self._log_failure(handle, error)
        try:
            await self._call_hooks(handle, error)
        finally:
            self._finish(handle, TaskState.FAILED)

    def _log_failure(self, handle: TaskHandle[Any], error: BaseException) -> None:
        durable = handle._durable
        # A durable task's attempt that will be retried is a WARNING; the
        # last one, which dead-letters it, an ERROR like any failed task.
        retried = (
            durable is not None
            and durable.committed
            and durable.failures < durable.task.retries
            and self.state is RuntimeState.ACCEPTING
        )
        logger.log(
            logging.WARNING if retried else logging.ERROR,
            "background task %r failed (%s%s): %r",
            handle.name,
            handle.request or "no request",
            f", attempt {durable.attempt}" if durable is not None else "",
            error,
            exc_info=(type(error), error, error.__traceback__),
        )

    async def _call_hooks(self, handle: TaskHandle[Any], error: BaseException) -> None:
        for hook in self._hooks:
            try:
                outcome = hook(handle, error)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("error hook %r failed for task %r", hook, handle.name)

    def _finish(self, handle: TaskHandle[Any], state: TaskState) -> None:
        if handle.state.is_final:
            # It ended already (the drain abandoned it): a late return or
            # failure changes nothing the report said.
            return
        if handle._durable is not None:
            final = self._durable_outcome(handle, handle._durable, state)
            if final is None:
                return  # it will be retried
            state = final
        if handle.state is TaskState.RUNNING:
            self.running -= 1
        else:
            self.pending -= 1
        handle.state = state
        handle.finished_at = trio.current_time()
        if self._observers:
            self._observe_end(handle, state)
        handle._scope = None
        if handle._job is not None:
            self._release_job(handle)
        if state is TaskState.COMPLETED:
            self.completed += 1
        elif state is TaskState.FAILED:
            self.failed += 1
        elif state is TaskState.CANCELLED:
            self.cancelled += 1
            self._note_name(state, handle.name)
        elif state is TaskState.RESUMABLE:
            self.resumable += 1
        elif state is TaskState.DELEGATED:
            self.delegated += 1
        elif state is TaskState.ABANDONED:
            self.abandoned += 1
            self._note_name(state, handle.name)
            logger.warning(
                "background task %r (%s) was abandoned: %s; %s",
                handle.name,
                handle.request or "no request",
                handle.cancel_reason,
                "its thread keeps running until the function returns"
                if handle._in_thread
                else "it did not stop when cancelled",
            )
        else:
            self.skipped += 1
        # Drop references to the callable and its arguments: a finished task's
        # handle may be kept by user code, its payload should not be.
        handle._func = _finished
        handle._args = ()
        handle._kwargs = {}
        self._live.pop(handle, None)
        if handle._done is not None:
            handle._done.set()
        if not self._live and self._idle is not None:
            self._idle.set()
            self._idle = None

    # --- durable tasks --------------------------------------------------------------

    def _admit_durable(
        self,
        task: DurableTask[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        timeout: float | None,
        request: str,
    ) -> TaskHandle[Any]:
        # The arguments are stored as they will be read back after a crash,
        # and the task runs with what was read back: the first attempt sees
        # what a resumed one would, and an argument that does not survive
        # the trip fails the request, not the task.
        payload = codec.encode(task.name, args, kwargs)
        try:
            if codec.TAG in payload:  # plain JSON reads back as it is
                args, kwargs = codec.decode(payload)
        except Exception as error:
            msg = f"durable task {task.name!r}: its arguments do not read back: {error}"
            raise TypeError(msg) from error
        self._register_durable(task)
        handle = self._admit(
            task.func, args, kwargs, name or task.name, timeout or task.timeout, request
        )
        handle._is_async = task.is_async
        handle._durable = _Durable(task, _new_task_id(), payload)
        return handle

    def _register_durable(self, task: DurableTask[Any, Any]) -> None:
        if task.name not in self.durable:
            self.durable.add(task)

    async def commit(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Stores the durable tasks among ``handles`` (the request's, before its response).

        A group commit: concurrent requests' tasks share one write. Tasks
        already committed, and in-memory ones, are left as they are.

        Raises:
            TaskStoreError: The store could not take them (the request gets
                503); none of them is stored.
        """
        new = [
            handle
            for handle in handles
            if handle._durable is not None
            and not handle._durable.committed
            and handle.state is TaskState.PENDING
        ]
        if not new:
            return
        store = self._active_store
        if store is None:
            if not self._warned_inline:
                logger.warning(
                    "trioapi: durable tasks need the app's lifespan (which opens the task "
                    "store): without it they run in memory, like any other task"
                )
            return
        if self._tracing is not None:
            self._tracing.produce(new)
        now = time.time()
        records = [
            TaskRecord(durable.id, durable.task.name, durable.payload, 1, 0, now)
            for handle in new
            if (durable := handle._durable) is not None
        ]
        for handle in new:
            assert handle._durable is not None
            handle._durable.committing = True
        began = trio.current_time()
        try:
            await store.commit(records, claimed=store.claims_on_commit)
            if self._observers:
                self._emit("store_committed", len(records), trio.current_time() - began)
        except TaskStoreError:
            raise
        except Exception as error:
            msg = f"the task store {store.url} failed to store {len(records)} task(s): {error!r}"
            raise TaskStoreError(msg) from error
        finally:
            for handle in new:
                assert handle._durable is not None
                handle._durable.committing = False
        for handle in new:
            assert handle._durable is not None
            handle._durable.committed = True
        if not store.claims_on_commit:
            # A shared store hands them to whichever process claims first.
            for handle in new:
                self._finish(handle, TaskState.DELEGATED)
            self._poke_dispatcher()

    async def _commit_then_submit(self, handles: Sequence[TaskHandle[Any]]) -> None:
        try:
            await self.commit(handles)
        except TaskStoreError as error:
            logger.error(  # noqa: TRY400 - the message says it all
                "durable task(s) %s could not be stored (%s); they run in memory instead, "
                "and a crash would lose them",
                ", ".join(handle.name for handle in handles if handle._durable is not None),
                error,
            )
            for handle in handles:
                handle._durable = None  # not stored: an in-memory task from here on
        self.submit(handles)

    def _spawn(self, func: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        # A task of the runtime's nursery that the host counts, like a runner.
        assert self._nursery is not None
        assert self._host is not None
        host = self._host
        host.tasks += 1

        async def hosted() -> None:
            task = trio.lowlevel.current_task()
            try:
                await func(*args)
            finally:
                self._task_left(host, task)

        self._nursery.start_soon(hosted)

    def _begin_attempt(self, handle: TaskHandle[Any], durable: _Durable) -> contextvars.Token[Any]:
        if durable.started:
            durable.attempt += 1
            self._post(self._active_store, "started", durable.id, durable.attempt)
        durable.started = True
        return _current.set(
            CurrentTask(durable.id, durable.task.name, durable.attempt, durable.failures)
        )

    def _durable_outcome(
        self, handle: TaskHandle[Any], durable: _Durable, state: TaskState
    ) -> TaskState | None:
        # What a durable task's end means for the store; None: it runs again here.
        store = self._active_store
        if durable.committing and state is TaskState.CANCELLED and not durable.by_user:
            # Cut off while its commit is under way: once stored, it is the
            # next process's (closing the store frees what this one holds).
            return TaskState.RESUMABLE
        if not durable.committed or store is None:
            return state
        if state is TaskState.COMPLETED:
            self._post(store, "ack", durable.id)
        elif state is TaskState.FAILED:
            error = handle.exception
            durable.failures += 1
            task = durable.task
            text = _describe(error)
            if durable.failures > task.retries or isinstance(
                error, KeyboardInterrupt | GeneratorExit
            ):
                self._post(store, "dead", durable.id, durable.failures, text, _traceback_of(error))
                if self._observers:
                    self._emit("task_dead", handle)
                logger.error(
                    "durable task %r (%s) is dead-lettered after %d attempt(s): %s",
                    handle.name,
                    durable.id,
                    durable.attempt,
                    text,
                )
                return state
            delay = task.delay(durable.failures, self._rng)
            self._post(store, "retry", durable.id, durable.failures, time.time() + delay, text)
            if self.state is not RuntimeState.ACCEPTING or self._nursery is None:
                self._post(store, "release", [durable.id])
                return TaskState.RESUMABLE  # the next process retries it
            self.retried += 1
            logger.info(
                "durable task %r (%s) failed on attempt %d; retry %d of %d in %.3g s",
                handle.name,
                durable.id,
                durable.attempt,
                durable.failures,
                task.retries,
                delay,
            )
            if self._observers:
                self._emit("task_retried", handle, delay)
            self._wait_retry(handle, durable, delay)
            return None
        elif state is TaskState.CANCELLED:
            if durable.by_user:
                self._post(store, "cancel", durable.id)
            else:
                self._post(store, "release", [durable.id])
                return TaskState.RESUMABLE
        elif state is TaskState.ABANDONED:
            # Its code may still be running; another process may run it again.
            self._post(store, "release", [durable.id])
        return state

    def _wait_retry(self, handle: TaskHandle[Any], durable: _Durable, delay: float) -> None:
        # Back to PENDING, holding no running place, until the backoff is over.
        if handle.state is TaskState.RUNNING:
            self.running -= 1
            self.pending += 1
        handle.state = TaskState.PENDING
        handle._scope = None
        handle._job = None
        handle.cancel_reason = None
        handle._submitted_at = None  # its wait is counted from the retry's hand-off
        durable.wait = trio.CancelScope(deadline=trio.current_time() + delay)
        self._spawn(self._retry_after, handle, durable, durable.wait)

    async def _retry_after(
        self, handle: TaskHandle[Any], durable: _Durable, wait: trio.CancelScope
    ) -> None:
        with wait:
            await trio.sleep_forever()
        if durable.wait is not wait:
            return
        durable.wait = None
        if handle.state is TaskState.PENDING and self.state is RuntimeState.ACCEPTING:
            self.submit([handle])

    def _release_waiting(self) -> None:
        # The drain began: retries waiting out a backoff are the next process's.
        for handle in list(self._live):
            durable = handle._durable
            if durable is not None and durable.wait is not None:
                durable.wait.cancel()
                durable.wait = None
                self._finish(handle, TaskState.CANCELLED)

    def _post(self, store: TaskStore | None, method: str, *args: Any) -> None:
        # A write the runtime does not wait for. Once the store is closed (a
        # straggler finishing late) there is nothing to write to: the task
        # stays in the store as it was, and is run again.
        if store is None:
            return
        try:
            getattr(store, method)(*args)
        except Exception:
            logger.warning(
                "the task store %s could not record %s for task %s; it will run again",
                store.url,
                method,
                args[0],
                exc_info=True,
            )

    def _observe_end(self, handle: TaskHandle[Any], state: TaskState) -> None:
        started = handle.started_at
        finished = handle.finished_at
        assert finished is not None
        duration = finished - started if started is not None else None
        submitted = handle._submitted_at
        wait = (
            started - submitted
            if started is not None and submitted is not None and started >= submitted
            else None
        )
        self._emit("task_finished", handle, state, duration, wait)

    def _poke_dispatcher(self) -> None:
        if self._wake_dispatcher is not None:
            self._wake_dispatcher.set()

    async def _open_store(self, host: _Host) -> None:
        store = self.store
        if store is None:
            if not len(self.durable):
                return
            from .._stores.memory import MemoryStore

            store = MemoryStore()
            logger.warning(
                "trioapi: the app has durable tasks but no task_store: they are kept in "
                "memory, so a crash loses them; give TrioAPI(task_store='sqlite:///tasks.db')"
            )
        owner = Owner.this_process(store.lease)
        await store.open(owner)
        self._active_store = store
        self._owner = owner
        assert host.nursery is not None
        host.tasks += 1
        try:
            await host.nursery.start(self._hosted, host, self._dispatch)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._close_store()
            raise

    async def _close_store(self) -> None:
        store, self._active_store = self._active_store, None
        if store is None:
            return
        with trio.move_on_after(STORE_CLOSE_GRACE) as waited:
            try:
                await store.close()
            except Exception:
                logger.exception(
                    "closing the task store %s failed: its last acks may be lost, so those "
                    "tasks run again",
                    store.url,
                )
        if waited.cancelled_caught:
            logger.warning(
                "the task store %s did not close within %g s: its last acks may be lost, so "
                "those tasks run again",
                store.url,
                STORE_CLOSE_GRACE,
            )

    async def _dispatch(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Claims what the store holds that nobody runs, and keeps this process's lease.

        The first pass, before the runtime accepts requests, takes over the
        tasks of processes that are gone: recovered work goes first.
        """
        store = self._active_store
        assert store is not None
        renew_every = store.lease / 3
        next_renew = -math.inf
        first = True
        while True:
            claimed = 0
            try:
                now = trio.current_time()
                if now >= next_renew:
                    if not first:
                        await store.renew()
                    freed = await store.recover()
                    if freed:
                        logger.warning(
                            "took over %d durable task(s) held by a process that is gone", freed
                        )
                    next_renew = now + renew_every
                if self.state is RuntimeState.ACCEPTING or first:
                    pool = self._pool
                    room = self.max_pending - self.pending - (pool.queued if pool else 0)
                    if room > 0:
                        records = await store.claim(min(room, CLAIM_BATCH))
                        claimed = len(records)
                        for record in records:
                            self._resume(record)
            except Exception:
                logger.exception("the task store %s failed; trying again", store.url)
            if first:
                first = False
                task_status.started()
            if claimed == CLAIM_BATCH:
                await trio.lowlevel.checkpoint()
                continue  # more are waiting
            self._wake_dispatcher = trio.Event()
            wait = max(0.0, min(self.poll_interval, next_renew - trio.current_time()))
            with trio.move_on_after(wait):
                await self._wake_dispatcher.wait()

    def _resume(self, record: TaskRecord) -> None:
        # A task from the store: run it as a group of its own, when it is due.
        store = self._active_store
        try:
            task = self.durable.find(record.name)
            args, kwargs = codec.decode(record.payload)
            interrupted = record.attempt - 1 - record.failures
            if interrupted >= MAX_INTERRUPTED:
                msg = (
                    f"started {record.attempt - 1} times and interrupted {interrupted} times "
                    "without finishing: the process died (or was stopped) during each of them; "
                    "dead-lettered so that a task that kills its process cannot do it forever"
                )
                raise RuntimeError(msg)
        except Exception as error:
            text = _describe(error)
            self._post(store, "dead", record.id, record.failures + 1, text, _traceback_of(error))
            logger.error(  # noqa: TRY400 - the message says it all
                "durable task %r (%s) cannot run in this process and is dead-lettered: %s",
                record.name,
                record.id,
                text,
            )
            return
        handle = self._new_handle(
            task.name,
            "resumed from the task store",
            task.timeout,
            task.func,
            args,
            kwargs,
            task.is_async,
        )
        handle._durable = _Durable(
            task,
            record.id,
            record.payload,
            attempt=record.attempt,
            failures=record.failures,
            committed=True,
            trace=codec.trace_of(record.payload),
        )
        delay = record.run_at - time.time()
        if delay > 0:
            self._wait_retry(handle, handle._durable, delay)
        else:
            self.submit([handle])

    # --- drain --------------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> DrainReport:
        """Stops admitting, waits for tasks until the deadline, cancels the rest.

        Args:
            timeout: Seconds to wait; ``drain_timeout`` when None.

        Returns:
            The report over every task since startup (also kept as
            ``last_report`` and logged: INFO when all finished, WARNING when
            anything was cancelled or abandoned).
        """
        if self.state is RuntimeState.CLOSED and self.last_report is not None:
            return self.last_report
        if self._draining is not None:
            # Already under way (serve() drains early when hypercorn is stuck on
            # a connection; the lifespan shutdown then asks again): one drain.
            await self._draining.wait()
            assert self.last_report is not None
            return self.last_report
        self._draining = trio.Event()
        try:
            return await self._drain(timeout)
        finally:
            self._draining.set()

    async def _drain(self, timeout: float | None) -> DrainReport:
        timeout = self.drain_timeout if timeout is None else timeout
        self.state = RuntimeState.DRAINING
        self._drain_begun.set()
        started = trio.current_time()
        logger.info(
            "background drain started: %d task(s) pending or running get up to %g s",
            len(self._live),
            timeout,
        )
        deadline_hit = False
        self._release_waiting()
        with trio.move_on_at(started + timeout):
            await self.wait_idle()
        if self._live:
            deadline_hit = True
            reason = f"drain_timeout of {timeout:g} s expired during shutdown"
            for handle in list(self._live):
                handle.cancel_reason = handle.cancel_reason or reason
                if handle.state is TaskState.PENDING:
                    # Never started (queued in its group, or held by a request
                    # still in flight): it never will.
                    self._finish(handle, TaskState.CANCELLED)
                elif handle._scope is not None:
                    handle._scope.cancel(reason)
                elif handle._job is not None:
                    self._end_cancelled(handle, reason)
            with trio.move_on_after(UNWIND_GRACE):
                await self.wait_idle()
            for handle in list(self._live):
                # It shielded itself from cancellation: stop waiting, say so.
                scope = handle._scope
                self._end_cancelled(handle, reason, abandoned=True, final=True)
                if scope is not None and self._host is not None and self._nursery is not None:
                    self._note_stuck(self._host, scope, handle)  # its runner is stuck in it
        self.state = RuntimeState.CLOSED
        report = DrainReport(
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            abandoned=self.abandoned,
            skipped=self.skipped,
            cancelled_tasks=tuple(self._ended_names[TaskState.CANCELLED]),
            abandoned_tasks=tuple(self._ended_names[TaskState.ABANDONED]),
            cancelled_by_name=self._ended_counts[TaskState.CANCELLED],
            abandoned_by_name=self._ended_counts[TaskState.ABANDONED],
            deadline_hit=deadline_hit,
            started_at=started,
            finished_at=trio.current_time(),
            resumable=self.resumable,
            durable=self._active_store is not None,
        )
        self.last_report = report
        level = logging.WARNING if report.cancelled or report.abandoned else logging.INFO
        logger.log(level, "%s", report)
        if self._observers:
            self._emit("drain_finished", report)
        if self._nursery is not None and self._host is not None:
            self._close_host(self._host, "the background runtime closed after its drain")
        return report

    def _close_abruptly(self, host: _Host) -> None:
        # The lifespan was cancelled before any drain (an embedded server
        # cancelled from outside, a forced stop): every unfinished task is
        # accounted for at once, and said out loud. The running ones count as
        # stuck until they have unwound (see _leave).
        self.state = RuntimeState.CLOSED
        live = list(self._live)
        for handle in live:
            if handle._scope is not None:
                self._note_stuck(host, handle._scope, handle)
        self._drop_live(live)
        self._close_host(host, "the server ended the lifespan before a drain")


def _runs_direct(handle: TaskHandle[Any]) -> bool:
    # A sync task without a timeout needs no trio task while it runs.
    return (
        not handle._is_async
        and handle.timeout is None
        and handle.state is TaskState.PENDING
        and handle._durable is None
    )


_ID_PREFIX = uuid.uuid4().hex[:16]
_ids = itertools.count(1)


def _new_task_id() -> str:
    """A task id unique across processes: a random prefix per process, then a counter."""
    return f"{_ID_PREFIX}{next(_ids):016x}"


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ids
    _ID_PREFIX = uuid.uuid4().hex[:16]
    _ids = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_prefix)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "failed"
    text = str(error)
    return f"{type(error).__qualname__}: {text}" if text else type(error).__qualname__


def _traceback_of(error: BaseException | None) -> str:
    if error is None:
        return ""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _finished(*_: Any, **__: Any) -> None:
    return None


def _job_for(handle: TaskHandle[Any]) -> Job:
    """The worker-pool job that runs a sync task; the handle is its owner."""
    job = Job(in_worker(handle._func), handle._args, handle._kwargs, handle.name)
    job.owner = handle
    return job


def _note_abort(job: Job) -> None:
    # Cancelled while its job was queued: it never ran. While running: abandoned.
    job.owner._in_thread = job.started


@types.coroutine
def _in_context(
    context: Context, coro: Coroutine[Any, Any, T]
) -> Generator[Any, Any, tuple[T, bool]]:
    """Awaits ``coro`` with every step of it run inside ``context``.

    A runner serves many requests, but each group must see its own request's
    context variables, as a task spawned from the request would. trio steps a
    task in the task's own context; this passes each step (and whatever trio
    sends or throws back) through ``context.run`` instead.

    Returns the coroutine's result, and whether it ever yielded to trio.
    """
    value: Any = None
    error: BaseException | None = None
    stepped = False
    while True:
        try:
            if error is None:
                trap = context.run(coro.send, value)
            else:
                trap = context.run(coro.throw, error)
        except StopIteration as stop:
            result: T = stop.value
            return result, stepped
        stepped = True
        try:
            value = yield trap
            error = None
        except BaseException as thrown:  # handed on to the coroutine
            value = None
            error = thrown


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004
    return call is not None and not inspect.isroutine(target) and inspect.iscoroutinefunction(call)

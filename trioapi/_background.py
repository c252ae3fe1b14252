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

A submitted group becomes one trio task in the runtime's nursery, which the
ASGI lifespan call opens and which therefore outlives every connection (see
``docs/background-tasks.md`` for why that matters under hypercorn). Inside a
group, tasks run one after another in the order they were added; groups run
concurrently. Sync callables run in worker threads under a capacity limiter.
Each task ends in exactly one terminal state, and the counters move with it:

    PENDING -> RUNNING -> COMPLETED | FAILED | CANCELLED | ABANDONED
    PENDING -> CANCELLED (cancelled before it started) | SKIPPED (endpoint raised)

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

Context variables: a group is started from the request's task, so its tasks
see a copy of the request's context variables as they were at submission
(request ids for logging work); changes they make are not seen by the request.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, final

import attrs
import trio

from ._exceptions import BackgroundCapacityError, BackgroundClosedError, BackgroundTaskTimeout

logger = logging.getLogger("trioapi.background")

P = ParamSpec("P")
T = TypeVar("T")

# How long cancelled tasks get to unwind after the drain deadline before the
# report is written without them. Cancelled trio code normally unwinds at its
# next checkpoint, so this only matters for tasks that shield themselves.
UNWIND_GRACE = 1.0


class TaskState(enum.Enum):
    """Where a background task is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self not in (TaskState.PENDING, TaskState.RUNNING)


class RuntimeState(enum.Enum):
    """The runtime's lifecycle; see the module's theory of operation."""

    IDLE = "idle"
    ACCEPTING = "accepting"
    DRAINING = "draining"
    CLOSED = "closed"


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
    _done: trio.Event | None = None
    _in_thread: bool = False
    _submitted: bool = False

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
        if self.state is TaskState.PENDING:
            self._runtime._finish(self, TaskState.CANCELLED)
        elif self._scope is not None:
            self._scope.cancel(self.cancel_reason)

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

    __slots__ = ("_handles", "_request", "_runtime")

    def __init__(self, runtime: BackgroundRuntime | None = None, request: str = "") -> None:
        self._runtime = runtime if runtime is not None else BackgroundRuntime()
        self._request = request
        self._handles: list[TaskHandle[Any]] = []

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
            try:
                handle = trio.from_thread.run_sync(
                    self._runtime._admit, func, args, kwargs, name, timeout, self._request
                )
            except RuntimeError as error:
                if "trio token" not in str(error).lower():
                    raise
                msg = (
                    "add_task was called from a thread that trio did not start; call it "
                    "from the endpoint or dependency itself"
                )
                raise RuntimeError(msg) from error
        self._handles.append(handle)
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
@attrs.frozen
class DrainReport:
    """What happened to every task since startup, written when the drain ends.

    Attributes:
        completed, failed, cancelled, abandoned, skipped: Tasks per final state.
        cancelled_tasks, abandoned_tasks: Names of the tasks cut off by the
            drain or cancelled otherwise, in the order they ended.
        deadline_hit: The drain ran into ``drain_timeout``.
        started_at, finished_at: trio clock times of the drain.
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

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.cancelled + self.abandoned + self.skipped

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    def __str__(self) -> str:
        text = (
            f"background drain finished in {self.duration:.3f} s: {self.completed} completed, "
            f"{self.failed} failed, {self.cancelled} cancelled, {self.abandoned} abandoned, "
            f"{self.skipped} skipped"
        )
        if self.cancelled_tasks:
            text += f"; cancelled: {', '.join(self.cancelled_tasks)}"
        if self.abandoned_tasks:
            text += f"; abandoned: {', '.join(self.abandoned_tasks)}"
        return text


ErrorHook = Callable[["TaskHandle[Any]", BaseException], Any]


class BackgroundRuntime:
    """Runs every request's background tasks; reachable as ``app.background``.

    Args:
        drain_timeout: Seconds shutdown waits for tasks before cancelling them.
        max_pending: Admitted tasks not yet started, across all requests; past
            it ``add_task`` raises :class:`BackgroundCapacityError` (503).
        max_running: Tasks running at once; further ones wait, pending.
        max_threads: Worker threads for sync tasks.
    """

    def __init__(
        self,
        *,
        drain_timeout: float = 25.0,
        max_pending: int = 10_000,
        max_running: int = 1_000,
        max_threads: int = 40,
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
        self._groups: set[trio.CancelScope] = set()
        self._nursery: trio.Nursery | None = None
        self._run_slots: trio.Semaphore | None = None
        self._threads: trio.CapacityLimiter | None = None
        self._idle: trio.Event | None = None
        self._hooks: list[ErrorHook] = []
        self._next_id = 0
        self._warned_inline = False

    # --- lifecycle ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Opens the runtime's nursery and accepts tasks until drained and closed.

        Use with ``await nursery.start(app.background.run)`` to embed the
        runtime without the ASGI lifespan; then ``await app.background.drain()``.
        """
        self._require(RuntimeState.IDLE, "start")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._run_slots = trio.Semaphore(self.max_running)
            self._threads = trio.CapacityLimiter(self.max_threads)
            self.state = RuntimeState.ACCEPTING
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                # Only reached by cancellation: drain() closes the runtime by
                # cancelling this scope once every group has ended.
                self._nursery = None
                if self.state is not RuntimeState.CLOSED:
                    self._close_abruptly()

    def _require(self, state: RuntimeState, action: str) -> None:
        if self.state is not state:
            msg = f"cannot {action} the background runtime: it is {self.state.value}"
            raise RuntimeError(msg)

    def on_error(self, hook: ErrorHook) -> ErrorHook:
        """Registers ``hook(handle, exception)``, called when a task fails.

        Sync or async; usable as a decorator. Exceptions raised by a hook are
        logged and otherwise ignored.
        """
        self._hooks.append(hook)
        return hook

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
        }

    async def wait_idle(self) -> None:
        """Waits until no task is pending or running."""
        await trio.lowlevel.checkpoint()
        while self._live:
            if self._idle is None:
                self._idle = trio.Event()
            await self._idle.wait()

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
        if self.state is RuntimeState.DRAINING or self.state is RuntimeState.CLOSED:
            msg = (
                f"cannot add a background task: the app is {self.state.value} for shutdown; "
                "the request gets 503 so the client can retry on another instance"
            )
            raise BackgroundClosedError(msg)
        if self.pending >= self.max_pending:
            msg = (
                f"cannot add a background task: {self.pending} tasks are already pending "
                f"(max_pending={self.max_pending}); the request gets 503 with Retry-After"
            )
            raise BackgroundCapacityError(msg)
        self._next_id += 1
        handle: TaskHandle[Any] = TaskHandle(
            name or _task_name(func),
            request,
            timeout,
            func,
            args,
            kwargs,
            self,
            _is_coroutine_function(func),
            id=self._next_id,
            created_at=trio.current_time(),
        )
        self.pending += 1
        self._live[handle] = None
        return handle

    def submit(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Starts a request's admitted tasks, in order, as one group.

        The one entry point for work: call it only after the response was sent.
        """
        if not handles:
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
        for handle in handles:
            handle._submitted = True
        self._nursery.start_soon(self._run_group, handles)

    def discard(self, handles: Sequence[TaskHandle[Any]]) -> None:
        """Skips admitted tasks that must not run (their endpoint raised)."""
        for handle in handles:
            if not handle.state.is_final:
                self._finish(handle, TaskState.SKIPPED)

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
        if self._run_slots is None:
            self._run_slots = trio.Semaphore(self.max_running)
            self._threads = trio.CapacityLimiter(self.max_threads)
        for handle in handles:
            handle._submitted = True
        await self._run_group(handles)

    # --- running ----------------------------------------------------------------

    async def _run_group(self, handles: Sequence[TaskHandle[Any]]) -> None:
        scope = trio.CancelScope()
        self._groups.add(scope)
        try:
            with scope:
                for handle in handles:
                    if handle.state is TaskState.PENDING:
                        await self._run_one(handle)
        finally:
            self._groups.discard(scope)
            for handle in handles:
                if not handle.state.is_final:
                    self._end_cancelled(handle, "its request's task group was cancelled")

    async def _run_one(self, handle: TaskHandle[Any]) -> None:
        slots = self._run_slots
        assert slots is not None
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            await slots.acquire()
        try:
            if handle.state is not TaskState.PENDING:  # cancelled while waiting for a slot
                return
            await self._execute(handle)
        finally:
            slots.release()

    async def _execute(self, handle: TaskHandle[Any]) -> None:
        handle.state = TaskState.RUNNING
        handle.started_at = trio.current_time()
        self.pending -= 1
        self.running += 1
        scope = trio.CancelScope()
        if handle.timeout is not None:
            scope.deadline = handle.started_at + handle.timeout
        handle._scope = scope
        try:
            with scope:
                if handle._is_async:
                    result = await handle._func(*handle._args, **handle._kwargs)
                else:
                    handle._in_thread = True
                    result = await trio.to_thread.run_sync(
                        _ThreadCall(handle), abandon_on_cancel=True, limiter=self._threads
                    )
                    handle._in_thread = False
                    if inspect.isawaitable(result):  # a sync callable returning a coroutine
                        result = await result
                handle.result = result
        except trio.Cancelled:
            # Cancelled from outside (the drain deadline, or the server ending
            # the lifespan): record it, then let the cancellation unwind.
            self._end_cancelled(handle, "the background runtime was cancelled")
            raise
        except BaseException as error:
            await self._handle_error(handle, error)
            return
        if scope.cancelled_caught:
            if handle.cancel_reason is None and handle.timeout is not None:
                timeout_error = BackgroundTaskTimeout(
                    f"background task {handle.name!r} ran past its timeout of {handle.timeout:g} s"
                    + (" (its worker thread was abandoned)" if handle._in_thread else "")
                )
                self._fail(handle, timeout_error)
                await self._call_hooks(handle, timeout_error)
            else:
                self._end_cancelled(handle, handle.cancel_reason)
            return
        self._finish(handle, TaskState.COMPLETED)

    async def _handle_error(self, handle: TaskHandle[Any], error: BaseException) -> None:
        # The task's own scope already removed its own Cancelled (timeout,
        # cancel()); any Cancelled still in here belongs to an outer scope and
        # must keep unwinding. Everything else is the task's failure.
        if isinstance(error, BaseExceptionGroup):
            cancelled, rest = error.split(trio.Cancelled)
            if cancelled is not None:
                if rest is not None:
                    self._log_failure(handle, rest)
                self._end_cancelled(handle, "the background runtime was cancelled")
                raise cancelled from None
            assert rest is not None
            error = rest
        self._fail(handle, error)
        if isinstance(error, KeyboardInterrupt | GeneratorExit):
            raise error
        await self._call_hooks(handle, error)

    def _end_cancelled(
        self, handle: TaskHandle[Any], reason: str | None, *, abandoned: bool = False
    ) -> None:
        if handle.state.is_final:
            return
        handle.cancel_reason = handle.cancel_reason or reason or "cancelled"
        abandoned = abandoned or handle._in_thread
        self._finish(handle, TaskState.ABANDONED if abandoned else TaskState.CANCELLED)

    def _fail(self, handle: TaskHandle[Any], error: BaseException) -> None:
        handle.exception = error
        self._finish(handle, TaskState.FAILED)
        self._log_failure(handle, error)

    def _log_failure(self, handle: TaskHandle[Any], error: BaseException) -> None:
        logger.error(
            "background task %r failed (%s): %r",
            handle.name,
            handle.request or "no request",
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
        if handle.state is TaskState.RUNNING:
            self.running -= 1
        else:
            self.pending -= 1
        handle.state = state
        handle.finished_at = trio.current_time()
        handle._scope = None
        if state is TaskState.COMPLETED:
            self.completed += 1
        elif state is TaskState.FAILED:
            self.failed += 1
        elif state is TaskState.CANCELLED:
            self.cancelled += 1
            self._ended_names[state].append(handle.name)
        elif state is TaskState.ABANDONED:
            self.abandoned += 1
            self._ended_names[state].append(handle.name)
            logger.warning(
                "background task %r (%s) was abandoned in its worker thread: %s; the thread "
                "keeps running until the function returns",
                handle.name,
                handle.request or "no request",
                handle.cancel_reason,
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
        timeout = self.drain_timeout if timeout is None else timeout
        self.state = RuntimeState.DRAINING
        started = trio.current_time()
        deadline_hit = False
        with trio.move_on_at(started + timeout):
            await self.wait_idle()
        if self._live:
            deadline_hit = True
            reason = f"drain_timeout of {timeout:g} s expired during shutdown"
            for handle in list(self._live):
                handle.cancel_reason = handle.cancel_reason or reason
                if handle.state is TaskState.PENDING and not handle._submitted:
                    # Admitted by a request that has not finished yet.
                    self._finish(handle, TaskState.CANCELLED)
            for scope in list(self._groups):
                scope.cancel(reason)
            with trio.move_on_after(UNWIND_GRACE):
                await self.wait_idle()
            for handle in list(self._live):
                # It shielded itself from cancellation: stop waiting, say so.
                handle.cancel_reason = f"{reason}; it did not stop when cancelled"
                self._end_cancelled(handle, None, abandoned=True)
        self.state = RuntimeState.CLOSED
        report = DrainReport(
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            abandoned=self.abandoned,
            skipped=self.skipped,
            cancelled_tasks=tuple(self._ended_names[TaskState.CANCELLED]),
            abandoned_tasks=tuple(self._ended_names[TaskState.ABANDONED]),
            deadline_hit=deadline_hit,
            started_at=started,
            finished_at=trio.current_time(),
        )
        self.last_report = report
        level = logging.WARNING if report.cancelled or report.abandoned else logging.INFO
        logger.log(level, "%s", report)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel("the background runtime closed after its drain")
        return report

    def _close_abruptly(self) -> None:
        self.state = RuntimeState.CLOSED
        for handle in list(self._live):
            if not handle.state.is_final:
                self._end_cancelled(handle, "the server ended the lifespan before a drain")


def _finished(*_: Any, **__: Any) -> None:
    return None


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004
    return call is not None and not inspect.isroutine(target) and inspect.iscoroutinefunction(call)


@final
class _ThreadCall:
    """Runs a sync task in its worker thread and notes when an abandoned one ends."""

    __slots__ = ("_args", "_func", "_handle", "_kwargs")

    def __init__(self, handle: TaskHandle[Any]) -> None:
        self._handle = handle
        self._func = handle._func
        self._args = handle._args
        self._kwargs = handle._kwargs

    def __call__(self) -> Any:
        try:
            return self._func(*self._args, **self._kwargs)
        finally:
            if self._handle.state is TaskState.ABANDONED:
                logger.warning(
                    "abandoned background task %r finished in its thread (%s)",
                    self._handle.name,
                    threading.current_thread().name,
                )

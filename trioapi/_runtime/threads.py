"""Worker threads for sync background tasks, with one wake-up per batch.

``trio.to_thread.run_sync`` costs a full round trip per call (about 100 µs
on a small machine): a thread handoff, an ``Outcome``, a limiter, and a
wake-up of the trio thread for each result. Background tasks are many and
mostly short, so the runtime uses this pool instead:

- up to ``max_threads`` daemon threads, started on demand, take jobs from
  one FIFO queue; jobs beyond that wait in the queue (pending), which keeps
  the capacity limit;
- a worker that finishes a job takes the next one without going to sleep,
  and a submitted job wakes a parked worker only when no worker is already
  on its way to the queue. So a burst of jobs costs a few wake-ups, not one
  per job; yet a job never waits behind a slow one while a thread is free:
  a worker that takes a job and leaves others queued makes sure another
  worker is on its way;
- while the trio thread is busy, a new job wakes no worker at all: it is
  *held* in the queue, and the pool's dispatcher task sends a worker once
  the run goes idle (no task runnable, no I/O ready), after
  ``HOLD_SECONDS`` of a loop that never idles, or at once when
  ``HOLD_LIMIT`` jobs wait. Waking a thread while the loop has work costs
  the loop a context switch and a fight for the GIL per job, on every
  request of a busy server; held jobs go in batches instead (measured under
  load: 5.1 context switches per request fell to 0.6, and throughput rose
  about 10 %). On an idle server a job is sent a pass or two of the loop
  later (in process, a lone POST's task completes in 96 µs instead of 72);
  only the inline mode, which has no dispatcher, wakes a worker per job;
- a finished job is put on a "done" list, and only the first result of a
  batch asks the trio thread to wake (``TrioToken.run_sync_soon``); that one
  callback reschedules every waiting task whose job is done;
- cancelling a task whose job has not started removes it from the queue
  (it never runs); cancelling one whose job is running abandons it: its
  thread finishes on its own, and the result is dropped with a log line;
- when every thread is running a job and more jobs wait, the pool is
  *saturated*: the pool's watcher task logs a WARNING once that has lasted
  ``SATURATED_WARN_AFTER`` seconds, naming what holds the threads, at most
  every ``SATURATED_WARN_EVERY`` seconds. Jobs waiting for a thread hold no
  running place in the runtime (async tasks still start at once); they
  count against its pending cap instead (``queued``).

Each job runs in a copy of the submitting task's context, like
``trio.to_thread.run_sync``, and a task may call back into trio with
``trio.from_thread.run``/``run_sync`` as it could in a trio worker thread:
the pool records the run's token in trio's per-thread slot for that, which
makes those calls behave as if ``trio_token=`` had been passed.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import math
import threading
from collections.abc import Callable
from typing import Any, final

import outcome
import trio

try:
    # The function behind trio.testing.wait_all_tasks_blocked, taken from where
    # it lives: importing trio.testing costs ~60 ms and imports pytest when it
    # is installed. A test checks that both names are the same function.
    from trio._core._generated_run import wait_all_tasks_blocked as _wait_idle
except ImportError:  # pragma: no cover - trio moved it; the public name still works
    from trio.testing import wait_all_tasks_blocked as _wait_idle

logger = logging.getLogger("trioapi.background")

IDLE_THREAD_SECONDS = 10.0
"""An idle worker thread exits after this long without work."""

HOLD_SECONDS = 0.002
"""The longest a job is held, without a worker sent for it, while the trio loop stays busy."""

HOLD_LIMIT = 16
"""Jobs waiting in the queue that send a worker at once, however busy the loop."""

SATURATED_WARN_AFTER = 1.0
"""Seconds every worker thread must stay busy, with jobs waiting, before a WARNING says so."""

SATURATED_WARN_EVERY = 60.0
"""The least time between two warnings about busy worker threads."""


def _register_thread(token: trio.lowlevel.TrioToken) -> None:
    # trio.from_thread finds the run of a thread it started in this
    # thread-local; with abandon_on_cancel set it takes the same path as an
    # explicit trio_token= argument. Private to trio: if it moves, sync tasks
    # can still pass trio_token= themselves, and a test says it moved.
    slot = getattr(trio._threads, "PARENT_TASK_DATA", None)
    if slot is not None:
        slot.token = token
        slot.abandon_on_cancel = True


@final
class Job:
    """One call to run in a worker thread, and what became of it."""

    __slots__ = (
        "abandoned",
        "args",
        "context",
        "dropped",
        "func",
        "kwargs",
        "name",
        "on_done",
        "owner",
        "result",
        "started",
        "task",
    )

    def __init__(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.context = contextvars.copy_context()
        self.task: trio.lowlevel.Task | None = None
        # A job started with ThreadPool.start reports to on_done(job) instead
        # of waking a task; owner is whatever its caller needs to find in
        # on_done(job) or on_abort(job).
        self.on_done: Callable[[Job], None] | None = None
        self.owner: Any = None
        self.result: outcome.Outcome[Any] | None = None
        self.started = False
        self.abandoned = False
        self.dropped = False

    def run(self) -> None:
        self.result = outcome.capture(self.context.run, self.func, *self.args, **self.kwargs)


def _names_counted(counts: collections.Counter[str], shown: int = 10) -> str:
    names = ", ".join(f"{name} x{count}" for name, count in counts.most_common(shown))
    rest = len(counts) - shown
    return f"{names} and {rest} more" if rest > 0 else names


@final
class ThreadPool:
    """The worker threads of one background runtime (one trio run)."""

    def __init__(self, max_threads: int, token: trio.lowlevel.TrioToken) -> None:
        self.max_threads = max_threads
        self._token = token
        self._lock = threading.Lock()
        self._queue: collections.deque[Job] = collections.deque()
        self._done: list[Job] = []
        self._wake_pending = False
        self._threads = 0
        # Parked workers, each waiting on its own lock (released to wake it),
        # and how many workers were woken or started and have not yet looked
        # at the queue: while one is on its way, a new job wakes nobody.
        self._parked: collections.deque[threading.Lock] = collections.deque()
        self._searching = 0
        self._closed = False
        # Holding, only while dispatch() runs: a job submitted with no worker
        # on its way is held rather than waking one. The dispatcher is parked
        # here until a job is held; the submission takes it out (None: jobs
        # are held, a send is coming) and it waits for the run to go idle.
        # Only the trio thread submits, so these need no lock.
        self._holding = False
        self._dispatcher: trio.lowlevel.Task | None = None
        # Jobs a worker is running, and cancelled jobs still in the queue
        # (a worker skips them): for ``queued`` and the saturation warning.
        self._running: dict[Job, None] = {}
        self._dropped = 0
        # Saturated: every thread runs a job and jobs wait. Dated (trio time)
        # when a submission or a worker finds it so, cleared by the worker
        # that takes the last waiting job; watch() warns when it lasts.
        self._saturated_since: float | None = None
        self._saturation_noted = False
        self._saturation: trio.Event | None = None
        self._quiet_until = -math.inf

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker thread (approximate: workers move on meanwhile)."""
        return len(self._queue) - self._dropped

    @property
    def busy(self) -> int:
        """Worker threads running a job now (approximate, like ``queued``)."""
        return len(self._running)

    async def dispatch(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sends workers for held jobs; a task of the runtime's nursery, for the whole run.

        Once started (``await nursery.start(pool.dispatch)``), :meth:`run`
        and :meth:`start` hold a job rather than wake a worker for it, until
        the run goes idle, for ``HOLD_SECONDS`` at most.
        """
        self._holding = True
        task_status.started()
        try:
            while True:
                # Parked until a submission holds a job (and reschedules us).
                self._dispatcher = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._forget_dispatcher)
                # Idle means no task runnable and no I/O ready: the loop would
                # sleep, so a woken worker takes nothing from it. Waiting for
                # idle also keeps an autojump clock from jumping past the job.
                with trio.move_on_after(HOLD_SECONDS):
                    await _wait_idle()
                self._send_for_held()
        finally:
            self._holding = False
            self._send_for_held()

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Warns while every thread is busy and jobs wait; a task of the runtime's nursery."""
        self._saturation = trio.Event()
        task_status.started()
        while True:
            since = self._saturated_since
            if since is None:
                await self._saturation.wait()
                self._saturation = trio.Event()
                continue
            due = max(since + SATURATED_WARN_AFTER, self._quiet_until)
            now = trio.current_time()
            if now < due:
                await trio.sleep_until(due)
                continue  # it may have ended, or another saturation begun
            with self._lock:
                waiting = len(self._queue) - self._dropped
                holding = collections.Counter(job.name for job in self._running)
                if waiting <= 0:  # only cancelled jobs are left in the queue
                    self._saturated_since = None
                    continue
            self._quiet_until = now + SATURATED_WARN_EVERY
            logger.warning(
                "all %d worker threads for sync background tasks have been busy for %.1f s "
                "and %d sync job(s) wait for one (running: %s); async tasks still start. "
                "Raise max_task_threads, or make long tasks async",
                self.max_threads,
                now - since,
                waiting,
                _names_counted(holding),
            )

    def _forget_dispatcher(self, _: Any) -> trio.lowlevel.Abort:
        self._dispatcher = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _send_for_held(self) -> None:
        with self._lock:
            start_thread = bool(self._queue) and self._searching == 0 and self._wake_one()
        if start_thread:
            self._start_thread()

    async def run(self, job: Job, on_abort: Callable[[Job], None]) -> Any:
        """Runs ``job`` in a worker thread and returns its result (or raises its error).

        ``on_abort(job)`` is called (in the trio thread) when the wait is
        cancelled: ``job.started`` then says whether it was abandoned mid-run
        or removed before it ran.
        """
        job.task = trio.lowlevel.current_task()
        self._submit(job)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if self.abort(job) is None:
                # Done, its wake-up is on the way: take the result instead.
                return trio.lowlevel.Abort.FAILED
            on_abort(job)
            return trio.lowlevel.Abort.SUCCEEDED

        result: outcome.Outcome[Any] = await trio.lowlevel.wait_task_rescheduled(abort)
        return result.unwrap()

    def start(self, job: Job, on_done: Callable[[Job], None]) -> None:
        """Queues ``job``; ``on_done(job)`` runs in the trio thread once it finished.

        Nothing waits for it: the caller stops it with :meth:`abort`.
        """
        job.on_done = on_done
        self._submit(job)

    def abort(self, job: Job) -> bool | None:
        """Stops waiting for ``job``: True if it was running (abandoned), False
        if it had not started (it never will), None if it already finished
        (its result is being delivered)."""
        with self._lock:
            if job.result is not None:
                return None
            if job.started:
                job.abandoned = True
                return True
            if not job.dropped:
                job.dropped = True  # left in the queue; a worker skips it
                self._dropped += 1
            return False

    def _submit(self, job: Job) -> None:
        # In the trio thread.
        dispatcher = None
        with self._lock:
            if self._closed:
                msg = "the background runtime's worker threads are closed"
                raise RuntimeError(msg)
            self._queue.append(job)
            if self._searching:
                return  # the worker on its way takes this job too
            saturated = (
                not self._parked and self._threads >= self.max_threads and self._note_saturated()
            )
            if self._holding and len(self._queue) < HOLD_LIMIT:
                start_thread = False
                dispatcher, self._dispatcher = self._dispatcher, None  # None: already coming
            else:
                start_thread = self._wake_one()
        if dispatcher is not None:
            trio.lowlevel.reschedule(dispatcher)
        if start_thread:
            self._start_thread()
        if saturated:
            self._begin_saturation()

    def _note_saturated(self) -> bool:
        # Under the lock, with every thread busy and a job waiting: True when
        # this saturation is new and _begin_saturation must run (in trio).
        if self._saturated_since is not None or self._saturation_noted:
            return False
        self._saturation_noted = True
        return True

    def _begin_saturation(self) -> None:
        # In the trio thread: dates the saturation for watch(), if jobs still wait.
        with self._lock:
            self._saturation_noted = False
            if self._saturated_since is None and len(self._queue) > self._dropped:
                self._saturated_since = trio.current_time()
        if self._saturation is not None:
            self._saturation.set()

    def _wake_one(self) -> bool:
        # Under the lock: sends one more worker to the queue. Returns True
        # when a new thread must be started (after the lock is released);
        # False when a parked worker was woken or every thread is busy.
        if self._parked:
            self._searching += 1
            self._parked.pop().release()  # the most recently parked: warm
            return False
        if self._threads < self.max_threads:
            self._searching += 1
            self._threads += 1
            return True
        return False  # the capacity limit: the job waits for a worker

    def _start_thread(self) -> None:
        # After _wake_one counted the thread in, from the trio thread (a
        # submission, the dispatcher) or a worker (sending one more).
        thread = threading.Thread(target=self._worker, name="trioapi-background", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # "can't start new thread": a process or container limit. Raised
            # on, it would stop the dispatcher (and with it the runtime) or a
            # worker holding a job. The jobs stay queued: a running worker or
            # the next submission's wake-up takes them, and a drain cancels
            # what is still queued at its deadline.
            with self._lock:
                self._threads -= 1
                self._searching -= 1
                waiting = len(self._queue)
            logger.exception(
                "could not start a worker thread for sync background tasks: "
                "%d job(s) wait for a thread",
                waiting,
            )

    def _worker(self) -> None:
        _register_thread(self._token)
        wake = threading.Lock()
        wake.acquire()
        searching = True  # started by _wake_one
        while True:
            start_thread = saturated = False
            with self._lock:
                if searching:
                    self._searching -= 1
                    searching = False
                while self._queue and self._queue[0].dropped:
                    self._queue.popleft()
                    self._dropped -= 1
                if self._queue:
                    job = self._queue.popleft()
                    job.started = True
                    self._running[job] = None
                    if not self._queue:
                        self._saturated_since = None  # nothing waits for a thread
                    elif self._searching == 0:
                        start_thread = self._wake_one()
                        # Nobody on the way, no thread to start: they are all busy.
                        saturated = self._searching == 0 and self._note_saturated()
                elif self._closed:
                    self._threads -= 1
                    return
                else:
                    job = None
                    self._saturated_since = None
                    self._parked.append(wake)
            if start_thread:
                self._start_thread()
            if saturated:
                try:
                    self._token.run_sync_soon(self._begin_saturation)
                except trio.RunFinishedError:
                    return
            if job is None:
                if not wake.acquire(timeout=IDLE_THREAD_SECONDS):
                    with self._lock:
                        if wake in self._parked:  # nobody woke it: idle too long
                            self._parked.remove(wake)
                            self._threads -= 1
                            return
                    # Woken just as it timed out: the release has happened.
                    wake.acquire()
                searching = True
                continue
            job.run()
            with self._lock:
                del self._running[job]
                self._done.append(job)
                wake_trio = not self._wake_pending
                self._wake_pending = True
            if wake_trio:
                try:
                    self._token.run_sync_soon(self._deliver)
                except trio.RunFinishedError:
                    return  # the trio run is over: nobody is waiting any more

    def _deliver(self) -> None:
        # In the trio thread: one call resumes every task whose job is done.
        with self._lock:
            done, self._done = self._done, []
            self._wake_pending = False
        for job in done:
            if job.abandoned:
                logger.warning(
                    "abandoned background task %r finished in its worker thread", job.name
                )
            elif job.on_done is not None:
                job.on_done(job)
            else:
                assert job.task is not None
                assert job.result is not None
                trio.lowlevel.reschedule(job.task, outcome.Value(job.result))

    def close(self) -> None:
        """Lets idle threads exit; threads running abandoned jobs finish on their own."""
        with self._lock:
            self._closed = True
            while self._parked:
                self._searching += 1
                self._parked.pop().release()

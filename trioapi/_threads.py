"""Worker threads for sync background tasks, with one wake-up per batch.

``trio.to_thread.run_sync`` costs a full round trip per call (about 100 µs
on a small machine): a thread handoff, an ``Outcome``, a limiter, and a
wake-up of the trio thread for each result. Background tasks are many and
mostly short, so the runtime uses this pool instead:

- up to ``max_threads`` daemon threads, started on demand, take jobs from
  one FIFO queue; jobs beyond that wait in the queue (pending), which keeps
  the capacity limit;
- a finished job is put on a "done" list, and only the first result of a
  batch asks the trio thread to wake (``TrioToken.run_sync_soon``); that one
  callback reschedules every waiting task whose job is done;
- cancelling a task whose job has not started removes it from the queue
  (it never runs); cancelling one whose job is running abandons it: its
  thread finishes on its own, and the result is dropped with a log line.

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
import threading
from collections.abc import Callable
from typing import Any, final

import outcome
import trio

logger = logging.getLogger("trioapi.background")

IDLE_THREAD_SECONDS = 10.0
"""An idle worker thread exits after this long without work."""


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
        "func",
        "kwargs",
        "name",
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
        self.result: outcome.Outcome[Any] | None = None
        self.started = False
        self.abandoned = False

    def run(self) -> None:
        self.result = outcome.capture(self.context.run, self.func, *self.args, **self.kwargs)


@final
class ThreadPool:
    """The worker threads of one background runtime (one trio run)."""

    def __init__(self, max_threads: int, token: trio.lowlevel.TrioToken) -> None:
        self.max_threads = max_threads
        self._token = token
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queue: collections.deque[Job] = collections.deque()
        self._done: list[Job] = []
        self._wake_pending = False
        self._threads = 0
        self._idle = 0
        self._closed = False

    async def run(self, job: Job, on_abort: Callable[[Job], None]) -> Any:
        """Runs ``job`` in a worker thread and returns its result (or raises its error).

        ``on_abort(job)`` is called (in the trio thread) when the wait is
        cancelled: ``job.started`` then says whether it was abandoned mid-run
        or removed before it ran.
        """
        job.task = trio.lowlevel.current_task()
        self._submit(job)

        def abort(_: Any) -> trio.lowlevel.Abort:
            with self._lock:
                if job.result is not None:
                    # Done, its wake-up is on the way: take the result instead.
                    return trio.lowlevel.Abort.FAILED
                if job.started:
                    job.abandoned = True
                else:
                    self._queue.remove(job)
            on_abort(job)
            return trio.lowlevel.Abort.SUCCEEDED

        result: outcome.Outcome[Any] = await trio.lowlevel.wait_task_rescheduled(abort)
        return result.unwrap()

    def _submit(self, job: Job) -> None:
        start_thread = False
        with self._lock:
            if self._closed:
                msg = "the background runtime's worker threads are closed"
                raise RuntimeError(msg)
            self._queue.append(job)
            if self._idle:
                self._work.notify()
            if len(self._queue) > self._idle and self._threads < self.max_threads:
                self._threads += 1
                start_thread = True
        if start_thread:
            thread = threading.Thread(target=self._worker, name="trioapi-background", daemon=True)
            thread.start()

    def _worker(self) -> None:
        _register_thread(self._token)
        while True:
            with self._lock:
                while not self._queue:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._idle += 1
                    woke = self._work.wait(IDLE_THREAD_SECONDS)
                    self._idle -= 1
                    if not woke and not self._queue:
                        self._threads -= 1
                        return
                job = self._queue.popleft()
                job.started = True
            job.run()
            with self._lock:
                self._done.append(job)
                wake = not self._wake_pending
                self._wake_pending = True
            if wake:
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
                continue
            assert job.task is not None
            assert job.result is not None
            trio.lowlevel.reschedule(job.task, outcome.Value(job.result))

    def close(self) -> None:
        """Lets idle threads exit; threads running abandoned jobs finish on their own."""
        with self._lock:
            self._closed = True
            self._work.notify_all()

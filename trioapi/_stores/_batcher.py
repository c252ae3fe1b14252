"""One thread that owns a blocking connection and runs writes in batches.

Both stores talk to blocking clients (``sqlite3``; a Redis client) from a
single thread of their own, so the trio loop never blocks on them. Calls
queue *operations*; the thread takes every operation waiting (up to
``MAX_BATCH``) and hands the whole batch to the store's ``run_batch``, which
runs it as one transaction (SQLite) or one pipeline (Redis): a commit for
many requests at once, which is what group commit means. The loop learns of
a finished batch through one ``run_sync_soon`` call, however many waiters it
has.

An operation is a plain function ``fn(connection, *args)``. ``call`` awaits
its result; ``post`` does not wait, and ``flush`` waits until everything
posted so far has run.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, final

import trio

C = TypeVar("C")

# Operations per batch: bounds a transaction's size (and the latency of the
# first caller in it) when thousands are queued at once.
MAX_BATCH = 2048


@final
class Op:
    """One queued operation and, once run, its outcome."""

    __slots__ = ("args", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], done: trio.Event | None):
        self.fn = fn
        self.args = args
        self.done = done
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, connection: Any) -> None:
        try:
            self.result = self.fn(connection, *self.args)
        except Exception as error:
            self.error = error


_STOP = Op(lambda _: None, (), None)


def _wake(ops: list[Op]) -> None:
    for op in ops:
        assert op.done is not None
        op.done.set()


@final
class Batcher(Generic[C]):
    """The store's thread: connects, runs batches, closes.

    Args:
        name: The thread's name (seen in tracebacks and ``py-spy``).
        connect: Opens the connection, in the thread.
        run_batch: Runs a list of operations on the connection, setting
            each one's ``result`` or ``error`` (``Op.run`` does one).
        disconnect: Closes the connection, in the thread, at the end.
    """

    def __init__(
        self,
        name: str,
        connect: Callable[[], C],
        run_batch: Callable[[C, list[Op]], None],
        disconnect: Callable[[C], None],
    ) -> None:
        self._name = name
        self._connect = connect
        self._run_batch = run_batch
        self._disconnect = disconnect
        self._queue: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stopped = False
        #: Batches run so far (each one transaction or pipeline): commits
        #: divided by this is how much group commit saved.
        self.batches = 0

    async def start(self) -> None:
        """Starts the thread and waits until it is connected (raising what connecting raised)."""
        self._token = trio.lowlevel.current_trio_token()
        ready = trio.Event()
        failure: list[BaseException] = []

        def connected(error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            ready.set()

        self._thread = threading.Thread(
            target=self._main, args=(self._token, connected), name=self._name, daemon=True
        )
        self._thread.start()
        await ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs ``fn(connection, *args)`` in the thread's next batch and returns its result."""
        op = Op(fn, args, trio.Event())
        self._put(op)
        assert op.done is not None
        await op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queues ``fn(connection, *args)`` without waiting for it."""
        self._put(Op(fn, args, None))

    async def flush(self) -> None:
        """Waits until everything queued so far has run."""
        await self.call(_nothing)

    async def stop(self) -> None:
        """Runs what is queued, closes the connection and ends the thread."""
        if self._thread is None or self._stopped:
            return
        await self.flush()
        self._stopped = True
        self._queue.put(_STOP)
        thread = self._thread
        await trio.to_thread.run_sync(thread.join, abandon_on_cancel=True)

    def _put(self, op: Op) -> None:
        if self._thread is None or self._stopped:
            msg = f"the task store's thread {self._name!r} is not running (open the store first)"
            raise RuntimeError(msg)
        self._queue.put(op)

    def _main(
        self,
        token: trio.lowlevel.TrioToken,
        connected: Callable[[BaseException | None], None],
    ) -> None:
        try:
            connection = self._connect()
        except BaseException as error:
            token.run_sync_soon(connected, error)
            return
        token.run_sync_soon(connected, None)
        try:
            while True:
                ops = [self._queue.get()]
                while len(ops) < MAX_BATCH:
                    try:
                        ops.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                if _STOP in ops:
                    stop = True
                    ops = [op for op in ops if op is not _STOP]
                if ops:
                    self.batches += 1
                    try:
                        self._run_batch(connection, ops)
                    except BaseException as error:  # a bug in run_batch: fail the batch
                        for op in ops:
                            if op.error is None:
                                op.error = error
                    waiters = [op for op in ops if op.done is not None]
                    if waiters:
                        with contextlib.suppress(trio.RunFinishedError):  # nobody waits now
                            token.run_sync_soon(_wake, waiters)
                if stop:
                    return
        finally:
            self._disconnect(connection)


def _nothing(_: object) -> None:
    return None

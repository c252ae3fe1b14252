"""The task-store protocol: what the runtime asks of a durable backend.

Theory of operation
===================

A durable task is a row (SQLite) or a stream entry (Redis) holding the task's
name, its encoded arguments and its bookkeeping. The runtime talks to a store
through :class:`TaskStore` only, and a store never calls user code.

A task moves through these states in the store::

    commit(claimed=False) ──▶ QUEUED ──claim()──▶ RUNNING ──ack()──▶ (gone)
    commit(claimed=True)  ───────────────────────▶ RUNNING
                                 RUNNING ──retry()──▶ RETRYING (held, due at run_at)
                                 RUNNING | RETRYING ──release()──▶ QUEUED | RETRYING (free)
                                 RUNNING | RETRYING ──dead()──▶ DEAD ──retry_dead()──▶ QUEUED
                                 RUNNING | RETRYING ──cancel()──▶ (gone)

A task is *held* by the owner (one process: its id, host, pid and start time)
that committed it claimed or claimed it; ``RUNNING`` means held, not
necessarily started. A held task whose owner is gone (its lease ran out
without a renewal, or, on the same host, its pid is dead or belongs to a
newer process) is free again: :meth:`TaskStore.recover` frees such tasks,
and :meth:`TaskStore.claim` then hands them out like any queued task.

Writes that the runtime does not wait for (``ack``, ``retry``, ``dead``,
``release``, ``cancel``) are *posted*: a store batches them with other writes
(group commit) and :meth:`TaskStore.flush` waits until every write posted so
far is durable. ``commit`` is awaited: a request's response is sent only once
its durable tasks are stored.

Times in the store are wall-clock seconds (``time.time()``), since they are
compared across processes; the runtime schedules within its own process on
trio's clock, so tests drive it with ``MockClock``.
"""

from __future__ import annotations

import abc
import enum
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import final

import attrs

from .._exceptions import TaskStoreError as TaskStoreError


class StoredState(enum.Enum):
    """Where a durable task is, as the store records it."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DEAD = "dead"


@final
@attrs.frozen
class TaskRecord:
    """One durable task as stored.

    Attributes:
        id: The task's id, stable across attempts (the idempotency key).
        name: The registered name of the task function.
        payload: The encoded arguments (JSON text, see ``_runtime/codec.py``).
        attempt: Starts so far, counting the one this record is handed out
            for (a claimed commit or a claim counts one).
        failures: Attempts that raised (a shutdown or a crash is not one).
        enqueued_at: Wall-clock time of the commit.
        run_at: Wall-clock time before which it must not start (a retry's
            backoff, carried across a crash); 0 when due at once.
    """

    id: str
    name: str
    payload: str
    attempt: int = 1
    failures: int = 0
    enqueued_at: float = 0.0
    run_at: float = 0.0


@final
@attrs.frozen
class DeadLetter:
    """A task that used up its retries (or could not run at all)."""

    id: str
    name: str
    attempts: int
    failures: int
    error: str
    traceback: str
    payload: str
    died_at: float


@final
@attrs.frozen
class Owner:
    """The process that holds tasks: how other processes tell it is gone.

    Attributes:
        id: Unique per process start.
        host: The host name; pid checks only mean something on the same host.
        pid: The process id.
        started: The process's start time as the kernel reports it
            (``/proc/<pid>/stat``), so a reused pid is not taken for the owner.
        lease: Seconds without a renewal after which the owner counts as gone.
    """

    id: str
    host: str
    pid: int
    started: str
    lease: float

    @classmethod
    def this_process(cls, lease: float) -> Owner:
        pid = os.getpid()
        return cls(uuid.uuid4().hex, socket.gethostname(), pid, process_start(pid), lease)


def process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), "" when unknown.

    A zombie (dead, not yet reaped by its parent) counts as gone: "".
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) <= 19 or fields[0] in (b"Z", b"X"):
        return ""
    return fields[19].decode()


def owner_is_gone(host: str, pid: int, started: str, heartbeat: float, lease: float) -> bool:
    """Whether an owner seen in the store is gone: its lease expired, or its process is."""
    if heartbeat + lease < time.time():
        return True
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return started != process_start(pid)  # this process holds no other owner's tasks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    # Without a start time (no /proc here) only the lease can tell.
    return bool(started) and process_start(pid) != started


class TaskStore(abc.ABC):
    """A durable task store; one object per process, opened by the runtime.

    Every method is called from the trio thread of the run that opened it.
    Subclasses: ``SQLiteStore`` (``_stores/sqlite.py``), ``RedisStore``
    (``_stores/redis.py``).
    """

    #: The URL the store was made from, with any password hidden.
    url: str = ""

    #: Seconds a held task stays held without a renewal (the owner's lease).
    lease: float = 30.0

    #: Whether ``commit(claimed=True)`` can hold the tasks for this owner at
    #: once. When it cannot, the runtime commits them queued and claims them
    #: back (another process may take them first).
    claims_on_commit: bool = True

    @abc.abstractmethod
    async def open(self, owner: Owner) -> None:
        """Connects, creates what is missing, and registers ``owner``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flushes posted writes, unregisters the owner, disconnects. Idempotent.

        What the owner still holds is free at once (SQLite) or at the next
        ``recover`` of any process (Redis, which sees the owner unregistered).
        """

    @abc.abstractmethod
    async def commit(self, tasks: Sequence[TaskRecord], *, claimed: bool) -> None:
        """Stores new tasks durably, held by this owner when ``claimed``, else queued.

        Raises:
            TaskStoreError: They could not be stored; none of them is.
        """

    @abc.abstractmethod
    async def claim(self, limit: int) -> list[TaskRecord]:
        """Takes up to ``limit`` due tasks nobody holds, oldest first; each counts a start.

        A store may also hand out a task that is not due yet (a retry taken
        over from a dead process) with its ``run_at``; the runtime waits.
        """

    @abc.abstractmethod
    async def recover(self) -> int:
        """Frees (or takes over) the tasks of owners that are gone; returns how many.

        SQLite frees them for any process to claim; Redis hands them to this
        owner, and the next ``claim`` returns them.
        """

    @abc.abstractmethod
    async def renew(self) -> None:
        """Renews this owner's lease on everything it holds."""

    @abc.abstractmethod
    def ack(self, task_id: str) -> None:
        """Posts: the task is done; forget it."""

    def started(self, task_id: str, attempt: int) -> None:  # noqa: B027
        """Posts: a retry began (``attempt`` counts it); the first start is counted by
        ``commit(claimed=True)`` or ``claim``. A store that does not record it
        undercounts ``attempt`` by one after a crash in a retried attempt."""

    @abc.abstractmethod
    def retry(self, task_id: str, failures: int, run_at: float, error: str) -> None:
        """Posts: the attempt failed; the task stays held, due again at ``run_at``."""

    @abc.abstractmethod
    def dead(self, task_id: str, failures: int, error: str, traceback: str) -> None:
        """Posts: the task is dead-lettered with its last error."""

    @abc.abstractmethod
    def release(self, task_ids: Sequence[str]) -> None:
        """Posts: the tasks are free again (a drain cut them off); no attempt is used up."""

    @abc.abstractmethod
    def cancel(self, task_id: str) -> None:
        """Posts: the task was cancelled on purpose; forget it."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Waits until every write posted so far is durable."""

    # --- operations ---------------------------------------------------------------

    @abc.abstractmethod
    async def counts(self) -> dict[str, int]:
        """Tasks per state: ``queued``, ``running``, ``retrying``, ``dead``."""

    @abc.abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The dead letters, oldest first."""

    @abc.abstractmethod
    async def retry_dead(self, task_id: str) -> bool:
        """Queues a dead letter again with a fresh count of failures; False if no such one."""

    @abc.abstractmethod
    async def purge_dead(self) -> int:
        """Deletes every dead letter; returns how many."""

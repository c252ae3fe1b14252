"""The embedded task store: one SQLite file, written by one thread per process.

The file is in WAL mode with ``synchronous=NORMAL`` by default: a committed
transaction survives the process crashing (it is in the WAL, which the OS
holds), though not necessarily the machine losing power; ``durability="power"``
(``?durability=power``) syncs every commit to disk (``synchronous=FULL``).

Every statement of a process runs on the store's own thread
(``_stores/_batcher.py``), batch by batch, one ``BEGIN IMMEDIATE`` … ``COMMIT``
per batch: the commits of many concurrent requests share one transaction
(group commit). Several processes may share the file (``--workers N``): they
take turns for the write lock (``busy_timeout``), and each holds its tasks
under its own owner row. The file must be on a local disk: SQLite's locking
does not hold on network filesystems.

Tables: ``trioapi_tasks`` (one row per task, dead letters included, in the
order committed) and ``trioapi_owners`` (one row per live process, with the
heartbeat that ``renew`` writes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal, final

import trio

from .._exceptions import TaskStoreError
from ._batcher import Batcher, Op
from .base import DeadLetter, Owner, TaskRecord, TaskStore, owner_is_gone

logger = logging.getLogger("trioapi.background")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trioapi_tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    starts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    run_at REAL NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    error TEXT,
    traceback TEXT,
    died_at REAL
);
CREATE INDEX IF NOT EXISTS trioapi_tasks_free
    ON trioapi_tasks (run_at) WHERE owner IS NULL AND state != 'dead';
CREATE INDEX IF NOT EXISTS trioapi_tasks_held
    ON trioapi_tasks (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS trioapi_owners (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    lease REAL NOT NULL
);
"""

Durability = Literal["process", "power"]


class _PendingInsert:
    """The rows of the commits waiting for the thread's next batch."""

    __slots__ = ("error", "rows", "stored")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.stored = trio.Event()
        self.error: BaseException | None = None


@final
class SQLiteStore(TaskStore):
    """Durable tasks in a local SQLite file (the default store).

    Args:
        path: The database file (created if missing); ``":memory:"`` for a
            store that lives as long as the process (tests).
        durability: ``"process"`` (the default) survives a crash of the
            process; ``"power"`` also a power loss, at the price of an
            fsync per commit.
        lease: Seconds without a heartbeat after which another process takes
            this one's tasks over (a dead process on the same host is seen
            at once, by its pid).
        busy_timeout: Seconds a write waits for another process's write lock
            before it fails (a request's commit then answers 503).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "process",
        lease: float = 30.0,
        busy_timeout: float = 10.0,
    ) -> None:
        if durability not in ("process", "power"):
            msg = f"durability must be 'process' or 'power', not {durability!r}"
            raise ValueError(msg)
        if not lease > 0:
            msg = f"lease must be a positive number of seconds, not {lease!r}"
            raise ValueError(msg)
        self.path = os.fspath(path)
        self.durability: Durability = durability
        self.lease = lease
        self.busy_timeout = busy_timeout
        self.url = f"sqlite:///{self.path}"
        self._owner: Owner | None = None
        self._batcher: Batcher[sqlite3.Connection] | None = None
        self._acks: list[str] = []
        self._pending: _PendingInsert | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite://:memory:``.

        Options: ``?durability=power``, ``?lease=SECONDS``, ``?busy_timeout=SECONDS``.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sqlite":
            msg = f"not an SQLite URL: {url!r} (write sqlite:///path/to/tasks.db)"
            raise ValueError(msg)
        path = parts.netloc + parts.path if parts.netloc == ":memory:" else parts.path[1:]
        if not path:
            msg = f"the SQLite URL {url!r} names no file (write sqlite:///tasks.db)"
            raise ValueError(msg)
        options = dict(urllib.parse.parse_qsl(parts.query))
        unknown = set(options) - {"durability", "lease", "busy_timeout"}
        if unknown:
            known = "durability, lease, busy_timeout"
            msg = f"unknown option(s) in {url!r}: {', '.join(sorted(unknown))} (known: {known})"
            raise ValueError(msg)
        durability = options.get("durability", "process")
        if durability not in ("process", "power"):
            msg = f"durability must be 'process' or 'power', not {durability!r}"
            raise ValueError(msg)
        try:
            lease = float(options.get("lease", 30.0))
            busy = float(options.get("busy_timeout", 10.0))
        except ValueError:
            msg = f"lease and busy_timeout in {url!r} must be numbers of seconds"
            raise ValueError(msg) from None
        return cls(path, durability=durability, lease=lease, busy_timeout=busy)  # type: ignore[arg-type]

    # --- the thread ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if self.path != ":memory:":
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                connection.close()
                msg = f"SQLite refused WAL mode for {self.path!r} (it answered {mode!r})"
                raise TaskStoreError(msg)
        sync = "FULL" if self.durability == "power" else "NORMAL"
        connection.execute(f"PRAGMA synchronous = {sync}")
        connection.executescript(_SCHEMA)
        return connection

    @staticmethod
    def _run_batch(connection: sqlite3.Connection, ops: list[Op]) -> None:
        failed: BaseException | None = None
        try:
            connection.execute("BEGIN IMMEDIATE")
            for op in ops:
                op.run(connection)
                if op.error is not None:
                    failed = op.error
                    break
            else:
                connection.execute("COMMIT")
                return
        except sqlite3.Error as error:
            failed = error
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        if len(ops) > 1:
            # Say which operation failed: each one again, in a transaction of its own.
            for op in ops:
                op.error = None
                SQLiteStore._run_batch(connection, [op])
            return
        ops[0].error = _store_error(failed) if isinstance(failed, sqlite3.Error) else failed

    @staticmethod
    def _disconnect(connection: sqlite3.Connection) -> None:
        connection.close()

    def _thread(self) -> Batcher[sqlite3.Connection]:
        self._me()
        assert self._batcher is not None
        return self._batcher

    def _me(self) -> Owner:
        if self._batcher is None or self._owner is None:
            msg = "the SQLite task store is not open (the app's lifespan opens it)"
            raise RuntimeError(msg)
        return self._owner

    # --- lifecycle ---------------------------------------------------------------

    async def open(self, owner: Owner) -> None:
        if self._batcher is not None:
            msg = "the SQLite task store is open already"
            raise RuntimeError(msg)
        batcher: Batcher[sqlite3.Connection] = Batcher(
            f"trioapi task store {self.path}", self._connect, self._run_batch, self._disconnect
        )
        try:
            await batcher.start()
        except sqlite3.Error as error:
            raise _store_error(error) from error
        self._batcher = batcher
        self._owner = owner
        await batcher.call(_register, owner, time.time())

    async def close(self) -> None:
        batcher, owner = self._batcher, self._owner
        if batcher is None or owner is None:
            return
        try:
            await batcher.call(_unregister, owner.id)
        finally:
            self._batcher = None
            self._owner = None
            await batcher.stop()

    # --- the runtime's calls -------------------------------------------------------

    async def commit(self, tasks: Sequence[TaskRecord], *, claimed: bool) -> None:
        owner = self._me()
        rows = [
            (
                task.id,
                task.name,
                task.payload,
                "running" if claimed else "queued",
                owner.id if claimed else None,
                1 if claimed else 0,
                task.run_at,
                task.enqueued_at or time.time(),
            )
            for task in tasks
        ]
        # Rows of every commit made while the thread is busy go into one
        # executemany in its next batch, and their callers wait on one event:
        # group commit at the cost of a list append per request. The lock
        # makes "join the waiting group" and "the thread takes the group"
        # exclusive, so no row joins a group whose insert already ran.
        with self._lock:
            pending = self._pending
            leader = pending is None
            if pending is None:
                pending = self._pending = _PendingInsert()
            pending.rows.extend(rows)
        if leader:
            try:
                # Shielded: the others wait on this group's outcome, and the
                # insert runs whether this request is cancelled or not.
                with trio.CancelScope(shield=True):
                    await self._thread().call(self._insert_pending, pending)
            except BaseException as error:
                pending.error = error
                raise
            finally:
                pending.stored.set()
        else:
            await pending.stored.wait()
            if pending.error is not None:
                raise pending.error

    def _insert_pending(self, connection: sqlite3.Connection, pending: _PendingInsert) -> None:
        # On the store's thread, inside the batch's transaction; the batch
        # commits before the leader (and so the group) hears of it.
        with self._lock:
            if self._pending is pending:
                self._pending = None
        _insert(connection, pending.rows)

    async def claim(self, limit: int) -> list[TaskRecord]:
        rows = await self._thread().call(_claim, self._me().id, time.time(), limit)
        return [
            TaskRecord(id, name, payload, starts, failures, enqueued_at, run_at)
            for _, id, name, payload, starts, failures, enqueued_at, run_at in sorted(rows)
        ]

    async def recover(self) -> int:
        freed: int = await self._thread().call(_recover, self._me().id)
        return freed

    async def renew(self) -> None:
        await self._thread().call(_renew, self._me(), time.time())

    def ack(self, task_id: str) -> None:
        # Acks pile up in one list that a single queued operation deletes:
        # a batch of a thousand acks is one executemany, not a thousand ops.
        with self._lock:
            self._acks.append(task_id)
            first = len(self._acks) == 1
        if first:
            self._thread().post(self._delete_acked)

    def _delete_acked(self, connection: sqlite3.Connection) -> None:
        # On the store's thread. The lock makes "append" and "take the list"
        # exclusive: an ack lands in this list or the next, never in one
        # already taken; the loop thread posts this again for a fresh list.
        with self._lock:
            acked, self._acks = self._acks, []
        connection.executemany("DELETE FROM trioapi_tasks WHERE id = ?", [(i,) for i in acked])

    def cancel(self, task_id: str) -> None:
        self._thread().post(_delete, task_id)

    # Writes about a held task are fenced by the owner: a process that paused
    # past its lease, and whose tasks another process has taken over, must
    # not release, retry or dead-letter what that other process now runs.

    def started(self, task_id: str, attempt: int) -> None:
        self._thread().post(_started, self._owner_id(), task_id, attempt)

    def retry(self, task_id: str, failures: int, run_at: float, error: str) -> None:
        self._thread().post(_retry, self._owner_id(), task_id, failures, run_at, error)

    def dead(self, task_id: str, failures: int, error: str, traceback: str) -> None:
        self._thread().post(
            _dead, self._owner_id(), task_id, failures, error, traceback, time.time()
        )

    def release(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self._thread().post(_release, self._owner_id(), list(task_ids))

    def _owner_id(self) -> str:
        return self._me().id

    async def flush(self) -> None:
        await self._thread().flush()

    @property
    def batches(self) -> int:
        """Transactions run so far by this process (group commit shares them)."""
        return self._batcher.batches if self._batcher is not None else 0

    # --- operations ------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        found: dict[str, int] = await self._thread().call(_counts)
        return found

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = await self._thread().call(_dead_letters, limit)
        return letters

    async def retry_dead(self, task_id: str) -> bool:
        done: bool = await self._thread().call(_retry_dead, task_id)
        return done

    async def purge_dead(self) -> int:
        purged: int = await self._thread().call(_purge_dead)
        return purged


def _store_error(error: sqlite3.Error) -> TaskStoreError:
    failure = TaskStoreError(f"the SQLite task store failed: {error}")
    failure.__cause__ = error
    return failure


# --- statements, run on the store's thread ---------------------------------------------


def _register(connection: sqlite3.Connection, owner: Owner, now: float) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO trioapi_owners VALUES (?, ?, ?, ?, ?, ?)",
        (owner.id, owner.host, owner.pid, owner.started, now, owner.lease),
    )


def _unregister(connection: sqlite3.Connection, owner_id: str) -> None:
    # What it still holds (a drain released it already) is free for the next process.
    _free(connection, owner_id)
    connection.execute("DELETE FROM trioapi_owners WHERE id = ?", (owner_id,))


# Frees a held task: nobody's, queued again (a retry keeps its state and run_at).
_FREE = (
    "UPDATE trioapi_tasks SET owner = NULL,"
    " state = CASE WHEN state = 'retrying' THEN 'retrying' ELSE 'queued' END"
)


def _free(connection: sqlite3.Connection, owner_id: str) -> int:
    cursor = connection.execute(
        _FREE + " WHERE owner = ?",
        (owner_id,),
    )
    return cursor.rowcount


def _insert(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    connection.executemany(
        "INSERT INTO trioapi_tasks (id, name, payload, state, owner, starts, run_at, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _claim(
    connection: sqlite3.Connection, owner_id: str, now: float, limit: int
) -> list[tuple[Any, ...]]:
    return connection.execute(
        "UPDATE trioapi_tasks SET owner = ?, state = 'running', starts = starts + 1"
        " WHERE seq IN (SELECT seq FROM trioapi_tasks"
        "  WHERE owner IS NULL AND state != 'dead' AND run_at <= ? ORDER BY seq LIMIT ?)"
        " RETURNING seq, id, name, payload, starts, failures, enqueued_at, run_at",
        (owner_id, now, limit),
    ).fetchall()


def _recover(connection: sqlite3.Connection, owner_id: str) -> int:
    freed = 0
    owners = connection.execute(
        "SELECT id, host, pid, started, heartbeat, lease FROM trioapi_owners WHERE id != ?",
        (owner_id,),
    ).fetchall()
    for other, host, pid, started, heartbeat, lease in owners:
        if owner_is_gone(host, pid, started, heartbeat, lease):
            freed += _free(connection, other)
            connection.execute("DELETE FROM trioapi_owners WHERE id = ?", (other,))
    # Held by an owner with no row at all (deleted by hand, or an older file).
    cursor = connection.execute(
        _FREE + " WHERE owner IS NOT NULL AND owner NOT IN (SELECT id FROM trioapi_owners)"
    )
    return freed + cursor.rowcount


def _renew(connection: sqlite3.Connection, owner: Owner, now: float) -> None:
    cursor = connection.execute(
        "UPDATE trioapi_owners SET heartbeat = ? WHERE id = ?", (now, owner.id)
    )
    if cursor.rowcount == 0:
        # Another process took this one for dead (a pause longer than the
        # lease) and freed its tasks: those run twice, and this process's
        # writes about them are ignored (fenced by owner). Carry on, registered.
        logger.warning(
            "this process was taken for gone by another one (it paused for longer than "
            "its lease of %g s): the durable tasks it held were taken over and may run "
            "twice; a longer lease (?lease=SECONDS) avoids it",
            owner.lease,
        )
        _register(connection, owner, now)


def _delete(connection: sqlite3.Connection, task_id: str) -> None:
    connection.execute("DELETE FROM trioapi_tasks WHERE id = ?", (task_id,))


def _started(connection: sqlite3.Connection, owner_id: str, task_id: str, attempt: int) -> None:
    connection.execute(
        "UPDATE trioapi_tasks SET state = 'running', starts = max(starts, ?)"
        " WHERE id = ? AND owner = ?",
        (attempt, task_id, owner_id),
    )


def _retry(
    connection: sqlite3.Connection,
    owner_id: str,
    task_id: str,
    failures: int,
    run_at: float,
    error: str,
) -> None:
    connection.execute(
        "UPDATE trioapi_tasks SET state = 'retrying', failures = ?, run_at = ?, error = ?"
        " WHERE id = ? AND owner = ?",
        (failures, run_at, error, task_id, owner_id),
    )


def _dead(
    connection: sqlite3.Connection,
    owner_id: str,
    task_id: str,
    failures: int,
    error: str,
    traceback: str,
    now: float,
) -> None:
    connection.execute(
        "UPDATE trioapi_tasks SET state = 'dead', owner = NULL, failures = ?, error = ?,"
        " traceback = ?, died_at = ? WHERE id = ? AND (owner = ? OR owner IS NULL)",
        (failures, error, traceback, now, task_id, owner_id),
    )


def _release(connection: sqlite3.Connection, owner_id: str, task_ids: list[str]) -> None:
    connection.executemany(
        _FREE + " WHERE id = ? AND owner = ?",
        [(task_id, owner_id) for task_id in task_ids],
    )


def _counts(connection: sqlite3.Connection) -> dict[str, int]:
    counts = dict.fromkeys(("queued", "running", "retrying", "dead"), 0)
    for state, count in connection.execute(
        "SELECT state, count(*) FROM trioapi_tasks GROUP BY state"
    ):
        counts[state] = count
    return counts


def _dead_letters(connection: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    return [
        DeadLetter(*row)
        for row in connection.execute(
            "SELECT id, name, starts, failures, coalesce(error, ''), coalesce(traceback, ''),"
            " payload, coalesce(died_at, 0) FROM trioapi_tasks WHERE state = 'dead'"
            " ORDER BY seq LIMIT ?",
            (limit,),
        )
    ]


def _retry_dead(connection: sqlite3.Connection, task_id: str) -> bool:
    cursor = connection.execute(
        "UPDATE trioapi_tasks SET state = 'queued', owner = NULL, failures = 0, run_at = 0,"
        " error = NULL, traceback = NULL, died_at = NULL WHERE id = ? AND state = 'dead'",
        (task_id,),
    )
    return cursor.rowcount > 0


def _purge_dead(connection: sqlite3.Connection) -> int:
    return connection.execute("DELETE FROM trioapi_tasks WHERE state = 'dead'").rowcount

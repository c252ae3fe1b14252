"""The in-process task store: durable tasks' semantics without durability.

An app that declares durable tasks but no ``task_store`` gets this one, with
a warning at startup: retries, backoff, timeouts, dead letters and
``current_task()`` work as with a real store, but a crash loses what it
holds. Tests use it for exact virtual times: it never leaves the trio
thread, so ``MockClock``'s autojump sees everything it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, final

import attrs
import trio

from .base import DeadLetter, Owner, TaskRecord, TaskStore


@attrs.define
class _Row:
    record: TaskRecord
    state: str
    owner: str | None
    starts: int
    failures: int = 0
    run_at: float = 0.0
    error: str = ""
    traceback: str = ""
    died_at: float = 0.0


@final
class MemoryStore(TaskStore):
    """Durable tasks kept in this process's memory (lost with it)."""

    url = "memory://"

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._owner: Owner | None = None

    async def open(self, owner: Owner) -> None:
        self._owner = owner
        await trio.lowlevel.checkpoint()

    async def close(self) -> None:
        if self._owner is not None:
            self._free(self._owner.id)
        self._owner = None
        await trio.lowlevel.checkpoint()

    def _free(self, owner_id: str) -> None:
        for row in self._rows.values():
            if row.owner == owner_id:
                row.owner = None
                if row.state == "running":
                    row.state = "queued"

    def _me(self) -> str:
        if self._owner is None:
            msg = "the memory task store is not open (the app's lifespan opens it)"
            raise RuntimeError(msg)
        return self._owner.id

    async def commit(self, tasks: Sequence[TaskRecord], *, claimed: bool) -> None:
        owner = self._me()
        await trio.lowlevel.checkpoint()
        for task in tasks:
            self._rows[task.id] = _Row(
                task,
                "running" if claimed else "queued",
                owner if claimed else None,
                1 if claimed else 0,
                run_at=task.run_at,
            )

    async def claim(self, limit: int) -> list[TaskRecord]:
        owner = self._me()
        await trio.lowlevel.checkpoint()
        now = time.time()
        found: list[TaskRecord] = []
        for row in self._rows.values():
            if len(found) >= limit:
                break
            if row.owner is None and row.state != "dead" and row.run_at <= now:
                row.owner = owner
                row.state = "running"
                row.starts += 1
                found.append(
                    attrs.evolve(
                        row.record, attempt=row.starts, failures=row.failures, run_at=row.run_at
                    )
                )
        return found

    async def recover(self) -> int:
        await trio.lowlevel.checkpoint()
        return 0  # one process: nobody else to recover from

    async def renew(self) -> None:
        await trio.lowlevel.checkpoint()

    def ack(self, task_id: str) -> None:
        self._rows.pop(task_id, None)

    def cancel(self, task_id: str) -> None:
        self._rows.pop(task_id, None)

    def started(self, task_id: str, attempt: int) -> None:
        row = self._rows.get(task_id)
        if row is not None:
            row.state = "running"
            row.starts = max(row.starts, attempt)

    def retry(self, task_id: str, failures: int, run_at: float, error: str) -> None:
        row = self._rows.get(task_id)
        if row is not None:
            row.state, row.failures, row.run_at, row.error = "retrying", failures, run_at, error

    def dead(self, task_id: str, failures: int, error: str, traceback: str) -> None:
        row = self._rows.get(task_id)
        if row is not None:
            row.state, row.owner, row.failures = "dead", None, failures
            row.error, row.traceback, row.died_at = error, traceback, time.time()

    def release(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            row = self._rows.get(task_id)
            if row is not None and row.state != "dead":
                row.owner = None
                if row.state == "running":
                    row.state = "queued"

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()

    async def counts(self) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        counts = dict.fromkeys(("queued", "running", "retrying", "dead"), 0)
        for row in self._rows.values():
            counts[row.state] += 1
        return counts

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        await trio.lowlevel.checkpoint()
        rows: list[Any] = [row for row in self._rows.values() if row.state == "dead"][:limit]
        return [
            DeadLetter(
                row.record.id,
                row.record.name,
                row.starts,
                row.failures,
                row.error,
                row.traceback,
                row.record.payload,
                row.died_at,
            )
            for row in rows
        ]

    async def retry_dead(self, task_id: str) -> bool:
        await trio.lowlevel.checkpoint()
        row = self._rows.get(task_id)
        if row is None or row.state != "dead":
            return False
        row.state, row.failures, row.run_at, row.error, row.traceback = "queued", 0, 0.0, "", ""
        return True

    async def purge_dead(self) -> int:
        await trio.lowlevel.checkpoint()
        dead = [task_id for task_id, row in self._rows.items() if row.state == "dead"]
        for task_id in dead:
            del self._rows[task_id]
        return len(dead)

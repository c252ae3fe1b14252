"""Task stores for durable background tasks (``TrioAPI(task_store=...)``).

``SQLiteStore`` is the embedded default (one file, group commit, several
processes on one host); ``RedisStore`` (``pip install 'trioapi[redis]'``)
spreads tasks over machines with Redis Streams; ``MemoryStore`` keeps them in
the process (tests, and apps that declare no store). ``TaskStore`` is the
protocol a backend implements; see ``docs/durable.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._stores.base import DeadLetter as DeadLetter
from ._stores.base import Owner as Owner
from ._stores.base import TaskRecord as TaskRecord
from ._stores.base import TaskStore as TaskStore
from ._stores.memory import MemoryStore as MemoryStore
from ._stores.registry import open_url as open_url
from ._stores.sqlite import SQLiteStore as SQLiteStore

if TYPE_CHECKING:
    from ._stores.redis import RedisStore as RedisStore


def __getattr__(name: str) -> Any:
    # RedisStore's module is light, but keep the import lazy all the same.
    if name == "RedisStore":
        from ._stores.redis import RedisStore

        return RedisStore
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "DeadLetter",
    "MemoryStore",
    "Owner",
    "RedisStore",
    "SQLiteStore",
    "TaskRecord",
    "TaskStore",
    "open_url",
]

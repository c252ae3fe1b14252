"""From a ``task_store=`` value (a URL, a store, or nothing) to a store."""

from __future__ import annotations

import os

from .base import TaskStore

ENVIRONMENT = "TRIOAPI_TASK_STORE"


def store_from(value: str | TaskStore | None) -> TaskStore | None:
    """The store ``value`` names; ``TRIOAPI_TASK_STORE`` in the environment wins.

    Raises:
        ValueError: The URL's scheme is not one trioapi has a store for.
    """
    configured = os.environ.get(ENVIRONMENT) or None
    chosen = configured if configured is not None else value
    if chosen is None or isinstance(chosen, TaskStore):
        return chosen
    return open_url(chosen)


def open_url(url: str) -> TaskStore:
    """A store object for ``url`` (not yet opened)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("redis", "rediss", "valkey", "valkeys", "unix"):
        from .redis import RedisStore

        return RedisStore.from_url(url)
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    msg = (
        f"no task store for {url!r}: use sqlite:///path/to/tasks.db, "
        "redis://host:6379/0 or memory://"
    )
    raise ValueError(msg)

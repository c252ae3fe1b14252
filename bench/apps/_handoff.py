"""A bare hand-off thread for the diagnostic apps: the least a thread hop can cost.

One daemon thread takes emails from a ``queue.SimpleQueue`` and appends
their lines; nothing reports back to the event loop, nothing is capped,
nothing can be cancelled. ``stop()`` writes what is queued, then returns.
"""

from __future__ import annotations

import queue
import threading

import trio
from _task import write_notification

_STOP = object()


class HandOffThread:
    """Appends lines in a thread of its own, in the order they were handed over."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="bench-handoff", daemon=True)
        self._thread.start()

    def put(self, email: str) -> None:
        self._jobs.put(email)

    async def stop(self) -> None:
        assert self._thread is not None
        self._jobs.put(_STOP)
        await trio.to_thread.run_sync(self._thread.join)
        self._thread = None

    def _work(self) -> None:
        while (email := self._jobs.get()) is not _STOP:
            assert isinstance(email, str)
            write_notification(email)

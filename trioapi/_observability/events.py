"""The events the background runtime reports to its observers (metrics, traces).

An observer subclasses :class:`TaskObserver` and overrides what it needs;
``app.background.observe(observer)`` adds it. The runtime calls observers
only when it has any, so an app without one pays one list test per event.
Observers run in the trio thread, synchronously: they record, they do not
wait (an exporter that sends over the network does it from its own task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._runtime.background import DrainReport, TaskHandle, TaskState


class TaskNames:
    """Task names as metric labels: the first ``limit`` distinct ones, then ``"other"``.

    Labels are bounded so that an app naming its tasks by their arguments
    cannot grow a metric's series (and its memory) without end.
    """

    __slots__ = ("_limit", "_names")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._names: set[str] = set()

    def label(self, name: str) -> str:
        if name in self._names:
            return name
        if len(self._names) >= self._limit:
            return "other"
        self._names.add(name)
        return name


class TaskObserver:
    """Receives the runtime's events; every method does nothing by default."""

    def task_finished(
        self,
        handle: TaskHandle[Any],
        state: TaskState,
        duration: float | None,
        wait: float | None,
    ) -> None:
        """A task reached a final state.

        Args:
            duration: Seconds it ran (None if it never started).
            wait: Seconds from its hand-off to the runtime (the response
                sent) to its start (None if it never started, or the hand-off
                happened before the observer was added).
        """

    def task_rejected(self, reason: str) -> None:
        """``add_task`` was refused: ``"capacity"`` (the pending cap) or ``"closed"``."""

    def task_retried(self, handle: TaskHandle[Any], delay: float) -> None:
        """A durable task's attempt failed; it runs again after ``delay`` seconds."""

    def task_dead(self, handle: TaskHandle[Any]) -> None:
        """A durable task was dead-lettered."""

    def store_committed(self, tasks: int, seconds: float) -> None:
        """A request's durable tasks were committed to the store in ``seconds``."""

    def drain_finished(self, report: DrainReport) -> None:
        """The drain at shutdown ended."""

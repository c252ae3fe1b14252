"""Prometheus metrics of the background runtime (``pip install 'trioapi[prometheus]'``).

``app.add_metrics_route("/metrics")`` serves them in Prometheus's text
format. Counters and histograms are prometheus-client metric objects, updated
by the runtime's events (``events.py``); the live gauges (pending, running,
the worker threads) are read from the runtime at each scrape.

Labels are bounded: ``task`` is the task's name (its function's qualname,
``options(name=)`` or a durable task's name), never an argument, and past
``MAX_TASK_NAMES`` distinct names further ones are counted as ``"other"``.

With several worker processes (``--workers N``) set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before starting: the
counters and histograms of every worker are then summed from their files
(prometheus-client's multiprocess mode), whichever worker is scraped; the
live gauges are summed too (``livesum``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .events import TaskNames, TaskObserver

if TYPE_CHECKING:
    from .._runtime.background import BackgroundRuntime, DrainReport, TaskHandle, TaskState

MAX_TASK_NAMES = 200

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - the extra is installed for the tests
        msg = "Prometheus metrics need prometheus-client: pip install 'trioapi[prometheus]'"
        raise RuntimeError(msg) from None
    return prometheus_client


class PrometheusMetrics(TaskObserver):
    """The runtime's metrics as prometheus-client objects in a registry of their own.

    Args:
        runtime: The runtime observed (``app.background``).
        registry: Where the metrics are registered; a new ``CollectorRegistry``
            by default (so several apps in one process do not collide).
    """

    def __init__(self, runtime: BackgroundRuntime, registry: Any = None) -> None:
        client = _client()
        self.client = client
        self.runtime = runtime
        self.registry = registry if registry is not None else client.CollectorRegistry()
        self._names = TaskNames(MAX_TASK_NAMES)
        r = self.registry
        self.tasks = client.Counter(
            "trioapi_background_tasks",
            "Background tasks that ended, by task name and outcome.",
            ["task", "outcome"],
            registry=r,
        )
        self.duration = client.Histogram(
            "trioapi_background_task_duration_seconds",
            "How long background tasks ran (one attempt for durable tasks).",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.wait = client.Histogram(
            "trioapi_background_task_wait_seconds",
            "From the response sent (the hand-off) to the task's start.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.rejected = client.Counter(
            "trioapi_background_rejected",
            "add_task refusals (the request got 503), by reason: capacity or closed.",
            ["reason"],
            registry=r,
        )
        self.retries = client.Counter(
            "trioapi_background_task_retries",
            "Failed attempts of durable tasks that are retried.",
            ["task"],
            registry=r,
        )
        self.dead = client.Counter(
            "trioapi_background_dead_letters",
            "Durable tasks dead-lettered.",
            ["task"],
            registry=r,
        )
        self.commit = client.Histogram(
            "trioapi_task_store_commit_seconds",
            "Time to commit a request's durable tasks to the task store.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.drain_seconds = client.Gauge(
            "trioapi_background_drain_duration_seconds",
            "How long the last drain took.",
            registry=r,
            multiprocess_mode="max",
        )
        self.cut_off = client.Counter(
            "trioapi_background_drain_cut_off",
            "Tasks the drain did not let finish: cancelled, abandoned or resumable.",
            ["outcome"],
            registry=r,
        )
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        gauges = {
            "pending": "Background tasks admitted and not yet started.",
            "running": "Background tasks running.",
            "threads_busy": "Worker threads running a sync task.",
            "threads_queued": "Sync tasks waiting for a worker thread.",
        }
        self._gauges = {
            name: client.Gauge(
                f"trioapi_background_{name}"
                if name.startswith("threads")
                else f"trioapi_background_tasks_{name}",
                text,
                registry=r,
                multiprocess_mode="livesum",
            )
            for name, text in gauges.items()
        }
        self.threads_max = client.Gauge(
            "trioapi_background_threads_max",
            "Worker threads for sync tasks at most (max_task_threads).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.threads_max.set(runtime.max_threads)
        if not multiprocess:
            # Read at each scrape: always current, nothing to update per task.
            self._gauges["pending"].set_function(lambda: runtime.pending)
            self._gauges["running"].set_function(lambda: runtime.running)
            self._gauges["threads_busy"].set_function(self._busy)
            self._gauges["threads_queued"].set_function(self._queued)

    def _busy(self) -> float:
        pool = self.runtime._pool
        return float(pool.busy) if pool is not None else 0.0

    def _queued(self) -> float:
        pool = self.runtime._pool
        return float(pool.queued) if pool is not None else 0.0

    def refresh(self) -> None:
        """Sets the live gauges from the runtime (multiprocess mode, before a scrape)."""
        self._gauges["pending"].set(self.runtime.pending)
        self._gauges["running"].set(self.runtime.running)
        self._gauges["threads_busy"].set(self._busy())
        self._gauges["threads_queued"].set(self._queued())

    def _label(self, name: str) -> str:
        return self._names.label(name)

    # --- events --------------------------------------------------------------------------

    def task_finished(
        self,
        handle: TaskHandle[Any],
        state: TaskState,
        duration: float | None,
        wait: float | None,
    ) -> None:
        name = self._label(handle.name)
        self.tasks.labels(name, state.value).inc()
        if duration is not None:
            self.duration.labels(name).observe(duration)
        if wait is not None:
            self.wait.observe(wait)

    def task_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def task_retried(self, handle: TaskHandle[Any], delay: float) -> None:
        self.retries.labels(self._label(handle.name)).inc()

    def task_dead(self, handle: TaskHandle[Any]) -> None:
        self.dead.labels(self._label(handle.name)).inc()

    def store_committed(self, tasks: int, seconds: float) -> None:
        self.commit.observe(seconds)

    def drain_finished(self, report: DrainReport) -> None:
        self.drain_seconds.set(report.duration)
        for outcome in ("cancelled", "abandoned", "resumable"):
            count = getattr(report, outcome)
            if count:
                self.cut_off.labels(outcome).inc(count)

    # --- exposition ----------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus's text format, and its content type."""
        client = self.client
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            self.refresh()
            registry = client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return client.generate_latest(registry), client.CONTENT_TYPE_LATEST
        return client.generate_latest(self.registry), client.CONTENT_TYPE_LATEST

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every sample as ``(name, labels, value)`` (for tests and the tasks page)."""
        for family in self.registry.collect():
            for sample in family.samples:
                yield sample.name, dict(sample.labels), sample.value

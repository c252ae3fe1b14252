"""``/metrics`` under ``python -m trioapi --workers 2``: every scrape counts every worker's tasks.

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its samples to
files there and the worker that answers a scrape sums them all
(prometheus-client's multiprocess mode). Requests go out until both workers
have served some; then every scrape, whichever worker answers it, must
count all of the requests' tasks, and the live gauges must add up across
the workers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

from .test_e2e import TRIOAPI, ServerProcess, client_for, launch, wait_until

__all__ = ["launch"]  # the fixture, used by the test below

pytestmark = pytest.mark.e2e

MAX_REQUESTS = 2_000
"""Requests sent at most to reach both workers: a bound, the loop stops once both answered."""
PER_WORKER = 20
"""Requests each worker must have served before the scrapes."""


def completed(text: str) -> float:
    """The sum of ``trioapi_background_tasks_total{outcome="completed"}`` over task names."""
    pattern = r'^trioapi_background_tasks_total\{[^}]*outcome="completed"[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def test_every_scrape_sums_the_tasks_of_every_worker(
    launch: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    samples = tmp_path / "prometheus"
    samples.mkdir()
    server = launch(
        *TRIOAPI, "tests.metrics_app:app", "--workers", "2", "--bind", "127.0.0.1:0",
        env={"PROMETHEUS_MULTIPROC_DIR": str(samples)},
    )  # fmt: skip
    port = server.wait_ready(listeners=2)
    served: dict[int, int] = {}
    sent = 0
    while sent < MAX_REQUESTS and (len(served) < 2 or min(served.values()) < PER_WORKER):
        with client_for(port) as client:  # a new connection each: either worker may accept it
            answer = client.post("/work")
        assert answer.status_code == 200
        pid = answer.json()["pid"]
        served[pid] = served.get(pid, 0) + 1
        sent += 1
    assert len(served) == 2, f"one worker served all {sent} requests: {served}"
    assert min(served.values()) >= PER_WORKER, served

    def every_task_counted() -> bool:
        with client_for(port) as client:
            text = client.get("/metrics").text
        return completed(text) == sent

    wait_until(every_task_counted, 30, f"{sent} completed tasks in a scrape")
    for _ in range(40):  # scrapes on new connections: both workers answer some
        with client_for(port) as client:
            answer = client.get("/metrics")
        assert completed(answer.text) == sent, answer.text
    # Each worker wrote its own sample files (one per process and kind).
    writers = {path.stem.rsplit("_", 1)[-1] for path in samples.glob("counter_*.db")}
    assert {str(pid) for pid in served} <= writers, (served, writers)

"""Prometheus metrics of the background runtime: exact values after known work.

Under ``autojump_clock`` durations and waits are exact virtual times, so
histogram sums are asserted exactly too.
"""

import sys
from typing import Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, TrioAPI, current_task
from trioapi.stores import MemoryStore
from trioapi.testing import TestClient

pytest.importorskip("prometheus_client")


def sample(metrics: Any, name: str, **labels: str) -> float:
    for found, found_labels, value in metrics.samples():
        if found == name and found_labels == labels:
            return float(value)
    raise AssertionError(f"no sample {name} {labels}")


async def test_a_request_with_two_tasks_one_failing(autojump_clock: trio.testing.MockClock) -> None:
    app = TrioAPI()
    metrics = app.add_metrics_route()

    async def ok() -> None:
        await trio.sleep(2)

    async def broken() -> None:
        await trio.sleep(0.5)
        raise RuntimeError("no")

    @app.post("/x")
    async def endpoint(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(ok)
        background_tasks.add_task(broken)

    async with TestClient(app) as client:
        await client.post("/x")
        text = (await client.get("/metrics")).text
    assert (
        sample(metrics, "trioapi_background_tasks_total", task=ok.__qualname__, outcome="completed")
        == 1
    )
    assert (
        sample(
            metrics, "trioapi_background_tasks_total", task=broken.__qualname__, outcome="failed"
        )
        == 1
    )
    assert (
        sample(metrics, "trioapi_background_task_duration_seconds_sum", task=ok.__qualname__) == 2.0
    )
    assert (
        sample(metrics, "trioapi_background_task_duration_seconds_sum", task=broken.__qualname__)
        == 0.5
    )
    # ok started at the hand-off, broken once ok was done, 2 s later.
    assert sample(metrics, "trioapi_background_task_wait_seconds_sum") == 2.0
    assert sample(metrics, "trioapi_background_task_wait_seconds_count") == 2
    line = f'trioapi_background_tasks_total{{outcome="failed",task="{broken.__qualname__}"}} 1.0'
    assert line in text
    assert "trioapi_background_tasks_pending 0.0" in text


async def test_a_drain_that_cancels_a_task_and_the_pending_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=3, max_pending_tasks=1)
    metrics = app.add_metrics_route()

    async def forever() -> None:
        await trio.sleep_forever()

    @app.post("/x")
    async def endpoint(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(forever)
        background_tasks.add_task(forever)  # past the cap: 503

    client = TestClient(app)
    async with client:
        assert (await client.post("/x")).status_code == 503
        app.background.add_task(forever)
        await trio.testing.wait_all_tasks_blocked()
        assert sample(metrics, "trioapi_background_tasks_running") == 1
        await client.shutdown()
    assert sample(metrics, "trioapi_background_rejected_total", reason="capacity") == 1
    assert (
        sample(
            metrics, "trioapi_background_tasks_total", task=forever.__qualname__, outcome="skipped"
        )
        == 1
    )
    assert (
        sample(
            metrics,
            "trioapi_background_tasks_total",
            task=forever.__qualname__,
            outcome="cancelled",
        )
        == 1
    )
    assert sample(metrics, "trioapi_background_drain_cut_off_total", outcome="cancelled") == 1
    assert sample(metrics, "trioapi_background_drain_duration_seconds") == 3.0


async def test_a_durable_task_that_fails_once_then_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(task_store=MemoryStore())
    metrics = app.add_metrics_route()

    @app.durable_task(retries=2, backoff=1, jitter=0, name="mail.send")
    async def send() -> None:
        await trio.sleep(0.25)
        if current_task().attempt == 1:
            raise RuntimeError("smtp down")

    @app.post("/x")
    async def endpoint(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(send)

    async with TestClient(app) as client:
        await client.post("/x")
    assert sample(metrics, "trioapi_background_task_retries_total", task="mail.send") == 1
    assert (
        sample(metrics, "trioapi_background_tasks_total", task="mail.send", outcome="completed")
        == 1
    )
    # Two attempts of 0.25 s; the second waited nothing past its backoff.
    assert sample(metrics, "trioapi_background_task_duration_seconds_count", task="mail.send") == 1
    assert sample(metrics, "trioapi_background_task_duration_seconds_sum", task="mail.send") == 0.25
    assert sample(metrics, "trioapi_task_store_commit_seconds_count") == 1
    assert sample(metrics, "trioapi_background_task_wait_seconds_sum") == 0.0


async def test_task_names_past_the_bound_are_counted_as_other(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trioapi._observability import prometheus

    monkeypatch.setattr(prometheus, "MAX_TASK_NAMES", 2)
    app = TrioAPI()
    metrics = app.add_metrics_route()

    async def job() -> None:
        pass

    async with TestClient(app):
        for name in ("a", "b", "c", "d"):
            await app.background.options(name=name).add_task(job)
    assert sample(metrics, "trioapi_background_tasks_total", task="b", outcome="completed") == 1
    assert sample(metrics, "trioapi_background_tasks_total", task="other", outcome="completed") == 2


def test_import_trioapi_does_not_import_prometheus_client() -> None:
    import subprocess

    code = "import sys, trioapi; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

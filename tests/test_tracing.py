"""OpenTelemetry: the exact span tree of requests and their tasks, and the metrics.

The SDK's in-memory exporter and metric reader stand in for a collector;
everything else is real. Times come from trio's clock: exact under
``autojump_clock``.
"""

from typing import Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, TrioAPI, current_task
from trioapi.stores import MemoryStore
from trioapi.testing import TestClient

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

PROVIDER = TracerProvider()


def instrumented(app: TrioAPI) -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    app.instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
    global PROVIDER
    PROVIDER = tracer_provider
    return exporter, reader


def tree(spans: tuple[ReadableSpan, ...]) -> list[tuple[str, str, str | None]]:
    """(name, kind, parent's name) per span, in the order they ended."""
    names = {span.context.span_id: span.name for span in spans}
    return [
        (
            span.name,
            span.kind.name,
            names.get(span.parent.span_id) if span.parent is not None else None,
        )
        for span in spans
    ]


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_a_request_with_two_tasks_one_failing(autojump_clock: trio.testing.MockClock) -> None:
    app = TrioAPI()
    exporter, reader = instrumented(app)
    user_tracer = PROVIDER.get_tracer("user")

    async def notify(to: str) -> None:
        with user_tracer.start_as_current_span("smtp"):  # the user's own span, a child
            await trio.sleep(1)

    def broken() -> None:
        raise ValueError("bad row")

    @app.post("/signup/{email}")
    async def signup(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(notify, email)
        background_tasks.add_task(broken)
        return {"ok": email}

    async with TestClient(app) as client:
        response = await client.post("/signup/ada", headers={"user-agent": "test"})
        assert response.status_code == 200
    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        ("POST /signup/{email}", "SERVER", None),
        ("smtp", "INTERNAL", "trioapi.background_task"),
        ("trioapi.background_task", "INTERNAL", "POST /signup/{email}"),
        ("trioapi.background_task", "INTERNAL", "POST /signup/{email}"),
    ]
    request, _, notify_span, broken_span = spans
    assert len({span.context.trace_id for span in spans}) == 1
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/signup/{email}"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["user_agent.original"] == "test"
    # The request's span ended at its last byte: before any task started.
    assert request.end_time is not None
    assert notify_span.start_time is not None
    assert request.end_time <= notify_span.start_time
    assert notify_span.attributes["code.function.name"].endswith("notify")  # type: ignore[index]
    assert [link.context.span_id for link in notify_span.links] == [request.context.span_id]
    assert notify_span.status.status_code is StatusCode.UNSET
    assert broken_span.status.status_code is StatusCode.ERROR
    assert broken_span.attributes["error.type"] == "ValueError"  # type: ignore[index]
    assert [event.name for event in broken_span.events] == ["exception"]

    points = metric_points(reader)
    (duration,) = points["http.server.request.duration"]
    assert duration.count == 1
    assert duration.sum == 0.0  # the answer took no virtual time; the tasks do not count
    assert duration.attributes["http.route"] == "/signup/{email}"
    outcomes = {
        (
            point.attributes["trioapi.task.name"].rsplit(".", 1)[-1],
            point.attributes["trioapi.task.outcome"],
        ): point.value
        for point in points["trioapi.background.tasks"]
    }
    assert outcomes == {("notify", "completed"): 1, ("broken", "failed"): 1}
    (active,) = points["http.server.active_requests"]
    assert active.value == 0


async def test_a_drain_that_cancels_a_task_says_so_on_its_span(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=2)
    exporter, _ = instrumented(app)

    async def forever() -> None:
        await trio.sleep_forever()

    @app.post("/x")
    async def endpoint(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(forever)

    client = TestClient(app, wait_background=False)
    async with client:
        await client.post("/x")
        await client.shutdown()
    request, task = exporter.get_finished_spans()
    assert (request.name, task.name) == ("POST /x", "trioapi.background_task")
    assert [event.name for event in task.events] == ["cancelled"]
    assert "drain_timeout of 2 s expired" in task.events[0].attributes["reason"]  # type: ignore[index]
    assert task.end_time is not None
    assert task.start_time is not None
    assert task.end_time - task.start_time == 2_000_000_000  # exact: trio's virtual clock


async def test_a_durable_task_that_fails_once_is_two_consumer_spans_in_one_trace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(task_store=MemoryStore())
    exporter, _ = instrumented(app)

    @app.durable_task(retries=2, backoff=1, jitter=0, name="mail.send")
    async def send(to: str) -> None:
        if current_task().attempt == 1:
            raise ConnectionError("smtp down")

    @app.post("/signup")
    async def signup(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(send, "ada@example.com")

    async with TestClient(app) as client:
        await client.post("/signup")
    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        ("send mail.send", "PRODUCER", "POST /signup"),
        ("POST /signup", "SERVER", None),
        ("trioapi.background_task", "CONSUMER", "send mail.send"),
        ("trioapi.background_task", "CONSUMER", "send mail.send"),
    ]
    assert len({span.context.trace_id for span in spans}) == 1
    producer, _, first, second = spans
    assert [span.attributes["trioapi.task.attempt"] for span in (first, second)] == [1, 2]  # type: ignore[index]
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["error.type"] == "ConnectionError"  # type: ignore[index]
    assert second.status.status_code is StatusCode.UNSET
    assert first.attributes["messaging.message.id"] == producer.attributes["messaging.message.id"]  # type: ignore[index]
    assert first.kind is SpanKind.CONSUMER


async def test_the_task_counter_bounds_its_names_and_active_requests_go_up_and_down(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trioapi._observability import otel

    monkeypatch.setattr(otel, "MAX_TASK_NAMES", 2)
    app = TrioAPI()
    _, reader = instrumented(app)
    seen: list[int] = []

    async def job() -> None:
        pass

    @app.get("/active")
    async def active() -> None:
        # Collected while this request is served: it counts itself.
        (point,) = metric_points(reader)["http.server.active_requests"]
        seen.append(point.value)

    async with TestClient(app) as client:
        for name in ("a", "b", "c", "d"):
            await app.background.options(name=name).add_task(job)
        await client.get("/active")
    counts = {
        point.attributes["trioapi.task.name"]: point.value
        for point in metric_points(reader)["trioapi.background.tasks"]
    }
    assert counts == {"a": 1, "b": 1, "other": 2}
    assert seen == [1]
    (after,) = metric_points(reader)["http.server.active_requests"]
    assert after.value == 0
    assert after.attributes == {"http.request.method": "GET", "url.scheme": "http"}


@pytest.mark.parametrize("middleware_first", [True, False])
async def test_the_request_span_is_outside_every_middleware(middleware_first: bool) -> None:
    app = TrioAPI()

    def refuse(inner: Any) -> Any:
        async def layer(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/refused":
                await send({"type": "http.response.start", "status": 418, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await inner(scope, receive, send)

        return layer

    if middleware_first:
        app.add_middleware(refuse)
        exporter, _ = instrumented(app)
    else:
        exporter, _ = instrumented(app)
        app.add_middleware(refuse)

    @app.get("/ok")
    async def ok() -> int:
        return 1

    async with TestClient(app) as client:
        refused = await client.get("/refused")
        served = await client.get("/ok")
    assert (refused.status_code, served.status_code) == (418, 200)
    spans = exporter.get_finished_spans()
    assert [(span.name, span.attributes["http.response.status_code"]) for span in spans] == [  # type: ignore[index]
        ("GET", 418),
        ("GET /ok", 200),
    ]
    with pytest.raises(RuntimeError, match="call instrument\\(\\) first"):
        app.instrument()


def test_import_trioapi_does_not_import_opentelemetry() -> None:
    import subprocess
    import sys

    code = "import sys, trioapi; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

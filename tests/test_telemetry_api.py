"""``TrioAPI(telemetry={...})``: FastAPI 0.165's native OpenTelemetry, span for span.

The SDK's in-memory span and log exporters and metric reader stand in for a
collector; everything else is real. Times come from trio's clock, exact
under ``autojump_clock``.
"""

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, Depends, HTTPException, Request, TrioAPI, WebSocket
from trioapi.telemetry import TelemetryConfig, TelemetryData, get_telemetry_data
from trioapi.testing import TestClient

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from .test_tracing import tree


class Collector:
    """Providers with in-memory exporters, and the config that names them."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def config(self, **settings: Any) -> TelemetryConfig:
        config: TelemetryConfig = {
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
            "logger_provider": self.logger_provider,
        }
        config.update(settings)  # type: ignore[typeddict-item]
        return config

    def tree(self) -> list[tuple[str, str, str | None]]:
        """(name, kind, parent's name) per span, in the order they ended."""
        return tree(self.spans.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        (span,) = [span for span in self.spans.get_finished_spans() if span.name == name]
        return span

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Collector]:
    collector = Collector()
    yield collector
    collector.tracer_provider.shutdown()
    collector.meter_provider.shutdown()
    collector.logger_provider.shutdown()


async def test_a_request_its_operations_and_its_task_are_one_tree(
    otel: Collector, autojump_clock: trio.testing.MockClock
) -> None:
    app = TrioAPI(telemetry=otel.config())

    async def notify(to: str) -> None:
        await trio.sleep(2)

    async def user(background: BackgroundTasks) -> str:
        background.add_task(notify, "ada")
        return "ada"

    @app.get("/users/{user_id}")
    async def read(user_id: int, name: Annotated[str, Depends(user)]) -> dict[str, Any]:
        await trio.sleep(1)
        return {"id": user_id, "name": name}

    async with TestClient(app) as client:
        response = await client.get("/users/7?sig=secret&page=2", headers={"host": "api.test"})
        assert response.json() == {"id": 7, "name": "ada"}
    assert otel.tree() == [
        ("trioapi.dependencies", "INTERNAL", "GET /users/{user_id}"),
        ("trioapi.endpoint", "INTERNAL", "GET /users/{user_id}"),
        ("trioapi.serialization", "INTERNAL", "GET /users/{user_id}"),
        ("GET /users/{user_id}", "SERVER", None),
        ("trioapi.background_task", "INTERNAL", "GET /users/{user_id}"),
    ]
    server = otel.span("GET /users/{user_id}")
    assert server.attributes == {
        "url.scheme": "http",
        "http.request.method": "GET",
        "network.protocol.version": "1.1",
        "server.address": "api.test",
        "server.port": 80,
        "url.path": "/users/7",
        "url.query": "sig=REDACTED&page=2",
        "http.route": "/users/{user_id}",
        "http.response.status_code": 200,
    }
    assert server.status.status_code is StatusCode.UNSET
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.schema_url == "https://opentelemetry.io/schemas/1.44.0"
    task = otel.span("trioapi.background_task")
    assert task.attributes == {"code.function.name": f"{__name__}.{notify.__qualname__}"}
    endpoint = otel.span("trioapi.endpoint")
    assert endpoint.attributes == {"code.function.name": f"{__name__}.{read.__qualname__}"}
    # trio's clock: the endpoint's second, then the task's two, after the last byte.
    assert server.start_time is not None
    assert server.end_time is not None
    assert endpoint.end_time is not None
    assert task.start_time is not None
    assert endpoint.end_time - server.start_time == 1_000_000_000
    assert task.start_time >= server.end_time
    assert task.end_time is not None
    assert task.end_time - task.start_time == 2_000_000_000
    (duration,) = otel.points("http.server.request.duration")
    assert duration.count == 1
    assert duration.sum == 1.0  # the endpoint's second; the task is not the request's
    assert duration.attributes == {
        "url.scheme": "http",
        "http.request.method": "GET",
        "network.protocol.version": "1.1",
        "http.route": "/users/{user_id}",
        "http.response.status_code": 200,
    }
    (active,) = otel.points("http.server.active_requests")
    assert active.value == 0


async def test_an_unhandled_error_is_typed_on_span_and_metric_and_logged_once(
    otel: Collector,
) -> None:
    app = TrioAPI(telemetry=otel.config())

    class LedgerError(Exception):
        pass

    @app.get("/pay/{amount}")
    async def pay(amount: int) -> None:
        raise LedgerError("the ledger is closed")

    async with TestClient(app) as client:
        assert (await client.get("/pay/3")).status_code == 500
    expected = f"{__name__}.{LedgerError.__qualname__}"
    failed = [
        s for s in otel.spans.get_finished_spans() if s.status.status_code is StatusCode.ERROR
    ]
    assert {(s.name, s.attributes["error.type"]) for s in failed} == {  # type: ignore[index]
        ("trioapi.endpoint", expected),
        ("GET /pay/{amount}", expected),
    }
    # Spans carry no exception events: the log record has the exception.
    assert all(not s.events for s in otel.spans.get_finished_spans())
    (point,) = otel.points("http.server.request.duration")
    assert point.attributes["error.type"] == expected
    (log,) = otel.logs.get_finished_logs()
    record = log.log_record
    assert record.event_name == "http.server.request.exception"
    assert record.severity_number is SeverityNumber.ERROR
    assert record.body == "Unhandled exception in TrioAPI request"
    assert record.attributes is not None
    assert record.attributes["http.route"] == "/pay/{amount}"
    assert record.attributes["exception.message"] == "the ledger is closed"
    assert record.trace_id == otel.span("GET /pay/{amount}").context.trace_id


async def test_answers_are_not_failures_and_validation_is_a_warning_with_its_data(
    otel: Collector,
) -> None:
    seen: list[tuple[Any, Any]] = []

    class Capture(LogRecordProcessor):
        def on_emit(self, log_record: ReadWriteLogRecord) -> None:
            data = get_telemetry_data(log_record.log_record.context)
            assert data is not None
            seen.append((data.body, [error["type"] for error in data.errors or ()]))

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    otel.logger_provider.add_log_record_processor(Capture())
    app = TrioAPI(telemetry=otel.config())

    @app.post("/items/{item_id}")
    async def create(item_id: int, item: dict[str, int]) -> None:
        raise HTTPException(404, "no such shelf")

    async with TestClient(app) as client:
        assert (await client.post("/items/1", json={"n": 1})).status_code == 404
        assert (await client.post("/items/1", json={"n": "many"})).status_code == 422
    spans = otel.spans.get_finished_spans()
    assert all(span.status.status_code is StatusCode.UNSET for span in spans)
    assert [
        s.attributes["http.response.status_code"] for s in spans if s.kind is SpanKind.SERVER
    ] == [  # type: ignore[index]
        404,
        422,
    ]
    (log,) = otel.logs.get_finished_logs()
    assert log.log_record.event_name == "trioapi.validation.failed"
    assert log.log_record.severity_number is SeverityNumber.WARN
    assert log.log_record.attributes == {
        "http.route": "/items/{item_id}",
        "trioapi.validation.error_count": 1,
    }
    assert seen == [({"n": "many"}, ["int_parsing"])]


async def test_the_data_belongs_to_its_request_and_is_gone_after_it(otel: Collector) -> None:
    app = TrioAPI(telemetry=otel.config())
    kept: list[tuple[TelemetryData, Any]] = []

    @app.post("/echo")
    async def echo(request: Request, body: dict[str, str]) -> str:
        data = get_telemetry_data()
        assert data is not None
        assert data.request is request
        assert data.values is not None
        assert data.values["body"] is body
        assert data.errors == []
        kept.append((data, otel_context_now()))
        return body["word"]

    assert get_telemetry_data() is None
    async with TestClient(app) as client:
        for word in ("one", "two"):
            assert (await client.post("/echo", json={"word": word})).json() == word
    (first, first_context), (second, _) = kept
    assert first is not second
    assert get_telemetry_data(first_context) is None  # a context kept past the request


def otel_context_now() -> Any:
    from opentelemetry import context

    return context.get_current()


async def test_a_sync_endpoint_span_starts_in_its_worker_thread(otel: Collector) -> None:
    app = TrioAPI(telemetry=otel.config())
    threads: list[int] = []

    @app.get("/")
    def endpoint() -> int:
        threads.append(threading.get_ident())
        return trace.get_current_span().get_span_context().span_id

    async with TestClient(app) as client:
        span_id = (await client.get("/")).json()
    assert threads != [threading.get_ident()]
    assert otel.span("trioapi.endpoint").context.span_id == span_id


async def test_exclude_covers_mounted_apps_and_a_mount_gives_the_full_route(
    otel: Collector,
) -> None:
    child = TrioAPI(telemetry=otel.config())

    @child.get("/{name}")
    async def hello(name: str, request: Request) -> str:
        assert "trioapi.telemetry" in request.scope  # observed by the parent, not by itself
        return name

    app = TrioAPI(telemetry=otel.config(exclude=lambda scope: scope["path"] == "/child/quiet"))
    app.mount("/child", child)
    async with TestClient(app) as client:
        assert (await client.get("/child/quiet")).json() == "quiet"
        assert otel.spans.get_finished_spans() == ()
        assert (await client.get("/child/loud")).json() == "loud"
    assert otel.tree() == [
        ("trioapi.dependencies", "INTERNAL", "GET /child/{name}"),
        ("trioapi.endpoint", "INTERNAL", "GET /child/{name}"),
        ("trioapi.serialization", "INTERNAL", "GET /child/{name}"),
        ("GET /child/{name}", "SERVER", None),
    ]
    assert otel.span("GET /child/{name}").attributes["http.route"] == "/child/{name}"  # type: ignore[index]
    (point,) = otel.points("http.server.request.duration")
    assert point.count == 1


async def test_without_operation_spans_there_is_the_request_span_only(otel: Collector) -> None:
    app = TrioAPI(telemetry=otel.config(operation_spans=False))

    def task() -> None:
        pass

    @app.get("/items/{item_id}")
    async def read(item_id: int, background: BackgroundTasks) -> int:
        background.add_task(task)
        return item_id

    async with TestClient(app) as client:
        assert (await client.get("/items/3")).json() == 3
    assert otel.tree() == [("GET /items/{item_id}", "SERVER", None)]


async def test_a_websocket_session_is_one_server_span(otel: Collector) -> None:
    app = TrioAPI(telemetry=otel.config())

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        data = get_telemetry_data()
        assert data is not None
        assert data.websocket is websocket
        await websocket.accept()
        await websocket.send_text(room)
        await websocket.close()

    async with TestClient(app) as client, client.websocket_connect("/ws/lobby") as ws:
        assert await ws.receive_text() == "lobby"
    server = otel.span("WS /ws/{room}")
    assert server.kind is SpanKind.SERVER
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes is not None
    assert server.attributes["network.protocol.name"] == "websocket"
    assert server.attributes["http.route"] == "/ws/{room}"
    assert otel.points("http.server.request.duration") == []  # HTTP metrics are HTTP's


async def test_without_any_provider_the_app_has_no_telemetry_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import _logs, metrics

    # The globals as a fresh process has them: the API's placeholders.
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(metrics, "get_meter_provider", metrics._internal._ProxyMeterProvider)
    monkeypatch.setattr(_logs, "get_logger_provider", _logs._internal.ProxyLoggerProvider)
    app = TrioAPI()

    @app.get("/")
    async def root() -> str:
        return "ok"

    async with TestClient(app) as client:
        # Decided once, at startup: nothing stands between the server and the app.
        assert app._otel is None
        assert not app._observing
        assert (await client.get("/")).json() == "ok"


async def test_a_global_provider_turns_it_on_and_is_followed_per_request(
    otel: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: otel.tracer_provider)
    app = TrioAPI()
    other = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(other))
    async with TestClient(app) as client:
        assert (await client.get("/missing")).status_code == 404
        monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
        assert (await client.get("/missing")).status_code == 404
    assert [s.name for s in otel.spans.get_finished_spans()] == ["GET"]
    assert [s.attributes["http.response.status_code"] for s in other.get_finished_spans()] == [  # type: ignore[index]
        404
    ]
    provider.shutdown()


async def test_instrument_is_the_one_layer_when_both_are_asked_for(otel: Collector) -> None:
    app = TrioAPI(telemetry=otel.config())
    app.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)

    @app.get("/")
    async def root() -> str:
        return "ok"

    async with TestClient(app) as client:
        assert (await client.get("/", headers={"user-agent": "probe"})).json() == "ok"
    (span,) = otel.spans.get_finished_spans()
    assert span.name == "GET /"
    assert span.attributes is not None
    assert span.attributes["user_agent.original"] == "probe"  # instrument()'s attributes


async def test_middleware_built_before_the_decision_still_gets_the_layer(
    otel: Collector,
) -> None:
    app = TrioAPI(telemetry=otel.config())
    order: list[str] = []

    async def outer(request: Request, call_next: Any) -> Any:
        order.append(trace.get_current_span().name)  # type: ignore[attr-defined]
        return await call_next(request)

    app.middleware("http")(outer)

    @app.get("/")
    async def root() -> str:
        return "ok"

    async with TestClient(app) as client:  # the lifespan builds the stack first
        assert (await client.get("/")).json() == "ok"
    assert order == ["GET"]  # the request's span is already current in the middleware
    assert otel.tree()[-1] == ("GET /", "SERVER", None)


@pytest.mark.parametrize(
    ("telemetry", "message"),
    [
        ({"trace": True}, "unknown telemetry setting(s) 'trace'"),
        ({"tracing": "yes"}, "telemetry['tracing'] must be True or False"),
        ({"tracer_provider": object()}, "must be an OpenTelemetry tracer provider"),
        ({"exclude": "/health"}, "telemetry['exclude'] must be a function"),
        (["tracing"], "telemetry must be a dict"),
    ],
)
def test_a_config_trioapi_cannot_honour_is_refused_at_once(telemetry: Any, message: str) -> None:
    with pytest.raises(TypeError) as refused:
        TrioAPI(telemetry=telemetry)
    assert message in str(refused.value)


async def test_a_stream_error_after_the_head_is_logged_in_the_request_trace(
    otel: Collector,
) -> None:
    from trioapi.responses import StreamingResponse

    app = TrioAPI(telemetry=otel.config())

    @app.get("/feed")
    async def feed() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise ValueError("the feed broke")

        return StreamingResponse(chunks())

    async with TestClient(app) as client:
        with pytest.raises(ValueError, match="the feed broke"):
            await client.get("/feed")
    (log,) = otel.logs.get_finished_logs()
    assert log.log_record.trace_id == otel.span("GET /feed").context.trace_id
    assert log.log_record.attributes is not None
    assert log.log_record.attributes["exception.type"] == "ValueError"

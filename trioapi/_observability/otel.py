"""OpenTelemetry traces and metrics (``pip install 'trioapi[otel]'``; the API only).

``app.instrument()`` turns them on; an app that does not call it imports
nothing of OpenTelemetry and pays nothing. What is recorded:

- a SERVER span per HTTP request, ``"{method} {route}"`` with the HTTP
  semantic conventions' attributes, ended when the response's last byte was
  handed to the server: its duration never includes the background tasks;
  ``http.server.request.duration`` and ``http.server.active_requests``;
- a span per background task, ``trioapi.background_task`` with
  ``code.function.name``: a child of the request's span (so it shows in the
  request's trace, after it) with a link to it, current while the task runs
  (the task's own spans are its children); its status is ERROR with
  ``error.type`` when it fails, and an event says when it was cancelled,
  abandoned or left in the store;
- for durable tasks, a PRODUCER span when the request commits them, whose
  context is stored with the task, and a CONSUMER span per attempt, its
  child: every attempt, in whatever process and however much later, is in
  the trace of the request that committed it;
- task metrics: ``trioapi.background.tasks`` (by task and outcome),
  ``trioapi.background.task.duration``, ``trioapi.background.task.wait``.

Durations come from trio's clock, so tests under ``MockClock`` get exact values.

What it costs. With the SDK, each measurement handed to an instrument is
validated, hashed by its attributes and aggregated under a lock (about
13 us each, more than a span); a request made three, a request with a task
six. The two counters (``http.server.active_requests``, up and down for
every request, and ``trioapi.background.tasks``) are therefore kept here,
as integers per attribute set, and reported through observable instruments
whose callbacks the reader calls when it collects: the same cumulative
values, at no cost per request. Histograms cannot be observed that way
and are recorded as they happen. ``bench/run.py --frameworks
trioapi,traced`` measures the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

import trio

from .events import TaskNames, TaskObserver

if TYPE_CHECKING:
    from .._http.app import TrioAPI
    from .._runtime.background import TaskHandle, TaskState

Scope = MutableMapping[str, Any]

# Outcomes that end a task span with an event rather than an error status.
_EVENTS = {"cancelled": "cancelled", "abandoned": "abandoned", "resumable": "released"}

_LATE_ATTRIBUTES = ("http.route", "http.response.status_code", "error.type")

SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions' version the attributes follow (FastAPI 0.165's)."""

MAX_TASK_NAMES = 200
"""Distinct task names ``trioapi.background.tasks`` counts apart; more count as ``"other"``."""


def _api() -> tuple[Any, Any, Any, Any]:
    try:
        from opentelemetry import context, metrics, propagate, trace
    except ImportError:  # pragma: no cover - the extra is installed for the tests
        msg = "OpenTelemetry needs its API: pip install 'trioapi[otel]'"
        raise RuntimeError(msg) from None
    return context, metrics, propagate, trace


class Telemetry(TaskObserver):
    """Spans and instruments for one app; made by ``app.instrument()``.

    ``TrioAPI(telemetry={...})`` uses a subclass (``native.py``) that picks
    its providers per request; ``lazy`` leaves the tracer and instruments to it.
    """

    websockets = False
    """Whether the layer observes websocket sessions (``instrument()``: HTTP only)."""

    def __init__(
        self,
        app: TrioAPI,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        lazy: bool = False,
    ) -> None:
        from .. import __version__

        self._version = __version__
        self.context, metrics, self.propagate, self.trace = _api()
        from opentelemetry.trace import Link, SpanKind, StatusCode

        self.Link, self.SpanKind, self.StatusCode = Link, SpanKind, StatusCode
        # (method, scheme) -> requests being served; (name, outcome) -> tasks ended.
        self._active: dict[tuple[str, str], int] = {}
        self._ended: dict[tuple[str, str], int] = {}
        self._names = TaskNames(MAX_TASK_NAMES)
        self._observation = metrics.Observation
        self.app = app
        self._clock: tuple[Any, int] | None = None
        if lazy:
            self._use_meter(metrics.NoOpMeter("trioapi"))  # until the subclass has a meter
            return
        self.tracer = self.trace.get_tracer(
            "trioapi", __version__, tracer_provider=tracer_provider, schema_url=SCHEMA_URL
        )
        self._use_meter(
            metrics.get_meter(
                "trioapi", __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL
            )
        )

    def _use_meter(self, meter: Any, buckets: tuple[float, ...] | None = None) -> None:
        """Creates the instruments on ``meter`` (the observed counts stay the same dicts)."""
        self.request_duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP requests.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe_active],
            unit="{request}",
            description="HTTP requests being served.",
        )
        meter.create_observable_counter(
            "trioapi.background.tasks",
            callbacks=[self._observe_tasks],
            unit="{task}",
            description="Background tasks that ended, by task name and outcome.",
        )
        self.task_duration = meter.create_histogram(
            "trioapi.background.task.duration", unit="s", description="How long tasks ran."
        )
        self.task_wait = meter.create_histogram(
            "trioapi.background.task.wait",
            unit="s",
            description="From the response sent to the task's start.",
        )

    def now(self) -> int:
        """Nanoseconds since the epoch, read from trio's clock.

        Spans are timed on trio's clock (monotonic, and virtual under
        ``MockClock``, so tests see exact durations), placed on the wall clock
        by an offset taken once per trio run.
        """
        token = trio.lowlevel.current_trio_token()
        if self._clock is None or self._clock[0] is not token:
            self._clock = (token, time.time_ns() - int(trio.current_time() * 1e9))
        return self._clock[1] + int(trio.current_time() * 1e9)

    def _observe_active(self, options: Any) -> Iterable[Any]:
        # Called by the reader (its thread, or the caller of collect()); a
        # list of the items is taken at once, under the GIL.
        return [
            self._observation(count, {"http.request.method": method, "url.scheme": scheme})
            for (method, scheme), count in list(self._active.items())
        ]

    def _observe_tasks(self, options: Any) -> Iterable[Any]:
        return [
            self._observation(count, {"trioapi.task.name": name, "trioapi.task.outcome": outcome})
            for (name, outcome), count in list(self._ended.items())
        ]

    # --- requests ------------------------------------------------------------------------

    def middleware(self, app: Any) -> Any:
        """The ASGI layer that makes the SERVER span; outermost in the stack."""
        telemetry = self

        async def traced(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            await telemetry._serve(app, scope, receive, send)

        return traced

    async def _serve(self, app: Any, scope: Scope, receive: Any, send: Any) -> None:
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        method = scope.get("method", "GET")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if scope.get("query_string"):
            attributes["url.query"] = scope["query_string"].decode("latin-1")
        server = scope.get("server")
        if server:
            attributes["server.address"], attributes["server.port"] = server[0], server[1]
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        if "user-agent" in headers:
            attributes["user_agent.original"] = headers["user-agent"]
        parent = self.propagate.extract(headers)
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=self.SpanKind.SERVER,
            attributes=attributes,
            start_time=self.now(),
        )
        token = self.context.attach(self.trace.set_span_in_context(span, parent))
        active = (method, attributes["url.scheme"])
        self._active[active] = self._active.get(active, 0) + 1
        started = trio.current_time()
        status: list[int] = []
        ended = False

        def end(error: BaseException | None = None) -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            route = scope.get("route")
            template = getattr(route, "path", None)
            metric = {"http.request.method": method, "url.scheme": attributes["url.scheme"]}
            if template:
                span.update_name(f"{method} {template}")
                metric["http.route"] = template
            if status:
                metric["http.response.status_code"] = status[0]
            if error is not None or (status and status[0] >= 500):
                kind = type(error).__qualname__ if error is not None else str(status[0])
                span.set_status(self.StatusCode.ERROR)
                metric["error.type"] = kind
            # One call for the attributes learnt while serving (route, status, error).
            span.set_attributes({key: metric[key] for key in _LATE_ATTRIBUTES if key in metric})
            span.end(end_time=self.now())
            self._active[active] -= 1
            self.request_duration.record(trio.current_time() - started, metric)

        async def traced_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                end()  # the last byte is the server's: the tasks come after

        try:
            await app(scope, receive, traced_send)
        except BaseException as error:
            end(error)
            raise
        finally:
            end()
            # The tasks handed over after the response saw this span as
            # current (their parent); from here on nothing of the request runs.
            self.context.detach(token)

    # --- tasks ---------------------------------------------------------------------------

    def start(self, handle: TaskHandle[Any]) -> Any:
        """Starts the task's span, current until :meth:`detach` (called around its run)."""
        durable = handle._durable
        attributes: dict[str, Any] = {"code.function.name": handle.name}
        kind = self.SpanKind.INTERNAL
        parent = None  # the current context: the request's, copied at hand-off
        if durable is not None:
            kind = self.SpanKind.CONSUMER
            attributes.update(
                {
                    "messaging.system": "trioapi",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": durable.task.name,
                    "messaging.message.id": durable.id,
                    "trioapi.task.attempt": durable.attempt,
                }
            )
            if durable.trace is not None:
                parent = self.propagate.extract({"traceparent": durable.trace})
        current = self.trace.get_current_span(parent).get_span_context()
        links = [self.Link(current)] if current.is_valid else []
        span = self.tracer.start_span(
            "trioapi.background_task",
            context=parent,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=self.now(),
        )
        handle._span = span
        return self.context.attach(self.trace.set_span_in_context(span, parent))

    def detach(self, token: Any) -> None:
        self.context.detach(token)

    def produce(self, handles: list[TaskHandle[Any]]) -> None:
        """PRODUCER spans for durable tasks being committed; their context goes with them."""
        from .._runtime import codec

        for handle in handles:
            durable = handle._durable
            assert durable is not None
            span = self.tracer.start_span(
                f"send {durable.task.name}",
                kind=self.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "trioapi",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": durable.task.name,
                    "messaging.message.id": durable.id,
                },
                start_time=self.now(),
            )
            carrier: dict[str, str] = {}
            self.propagate.inject(carrier, context=self.trace.set_span_in_context(span))
            span.end(end_time=self.now())
            traceparent = carrier.get("traceparent")
            if traceparent:
                durable.trace = traceparent
                durable.payload = codec.with_trace(durable.payload, traceparent)

    def _end(self, handle: TaskHandle[Any], outcome: str, error: BaseException | None) -> None:
        span = handle._span
        if span is None:
            return
        handle._span = None
        if error is not None and outcome in ("failed", "retried"):
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(self.StatusCode.ERROR, str(error))
            span.record_exception(error)
        elif outcome in _EVENTS:
            span.add_event(
                _EVENTS[outcome], {"reason": handle.cancel_reason or ""}, timestamp=self.now()
            )
        span.end(end_time=self.now())

    def task_finished(
        self,
        handle: TaskHandle[Any],
        state: TaskState,
        duration: float | None,
        wait: float | None,
    ) -> None:
        self._end(handle, state.value, handle.exception)
        name = self._names.label(handle.name)
        key = (name, state.value)
        self._ended[key] = self._ended.get(key, 0) + 1
        if duration is not None:
            self.task_duration.record(duration, {"trioapi.task.name": name})
        if wait is not None:
            self.task_wait.record(wait)

    def task_retried(self, handle: TaskHandle[Any], delay: float) -> None:
        self._end(handle, "retried", handle.exception)

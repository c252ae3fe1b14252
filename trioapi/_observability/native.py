"""``TrioAPI(telemetry={...})``: FastAPI 0.165's native OpenTelemetry, on trioapi's layer.

The same layer as ``app.instrument()`` (``otel.Telemetry``: the request's
span ended at its last byte, the runtime's task spans, the metrics),
configured the way FastAPI's ``telemetry=`` is and recording what FastAPI
records:

- a SERVER span per HTTP request (``"{method} {route}"``) and websocket
  session (``"WS {route}"``), with FastAPI's attributes: ``server.address``
  from the ``Host`` header, ``url.query`` with signed-URL parameters
  redacted, ``error.type`` as ``module.QualName``;
- operation spans under it: ``trioapi.dependencies``, ``trioapi.endpoint``
  (started in the worker thread of a sync endpoint), ``trioapi.serialization``
  and ``trioapi.background_task``;
- log records: ``http.server.request.exception`` for an exception no handler
  took, ``trioapi.validation.failed`` for a request that failed validation;
- :class:`~trioapi.telemetry.TelemetryData`, in the OpenTelemetry context
  while the request is served.

Whether telemetry is on at all is decided once (``TrioAPI._decide_telemetry``,
at startup or the first request): an app without providers pays nothing per
request. Once on, the providers not given in the config are the global ones,
looked up per request (FastAPI follows a provider that changes).

Theory of the request record. A ``_Request`` is put in the scope (``RECORD``)
and in the OpenTelemetry context for the request's duration. A mounted
trioapi app that finds it observes nothing of its own; ``call_mounted``
tells the record where the request went (``mounted``), so the route is the
full one. ``RECORD`` set to ``None`` means "excluded": no app below
observes it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import parse_qsl, urlencode, urlsplit

import trio
from opentelemetry import _logs, metrics, trace
from opentelemetry import context as otel_context
from opentelemetry._logs import SeverityNumber

from .._exceptions import HTTPException, RequestValidationError
from .._runtime.anyio_threads import in_worker
from ..telemetry._api import TELEMETRY_RECORD, TelemetryConfig, TelemetryData, context_key
from ..telemetry._runtime import unconfigured
from .otel import SCHEMA_URL, Telemetry

if TYPE_CHECKING:
    from .._http.app import TrioAPI
    from .._http.params import Dependant
    from .._http.routing import APIRoute
    from .._http.solve import RequestContext
    from .._runtime.background import TaskHandle

Scope = MutableMapping[str, Any]

RECORD: Final = TELEMETRY_RECORD
"""The scope key of the request's ``_Request`` (``None``: excluded)."""

_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
# The HTTP semantic conventions' list of query parameters whose values are secrets.
_SECRET_QUERY: Final = frozenset(
    {"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "X-Goog-Signature"}
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Errors that are answers, not failures, of an operation span.
_ANSWERS: Final = (HTTPException, RequestValidationError)


def _known_methods() -> frozenset[str]:
    listed = os.environ.get("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "").strip()
    if not listed:
        return _METHODS
    return frozenset(method.strip() for method in listed.split(",") if method.strip())


def exception_type(error: BaseException) -> str:
    """``error.type``: the qualified name, without ``builtins.``."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def function_name(function: Any) -> str:
    """``code.function.name``: ``module.qualname`` of what is called."""
    module = getattr(function, "__module__", None) or type(function).__module__
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{qualname}"


def _normal_close(error: BaseException) -> bool:
    from .._http.websockets import WebSocketDisconnect

    return isinstance(error, WebSocketDisconnect) and error.code in (1000, 1001)


@final
class _Request:
    """What the layer knows of one request while it is served (see the module)."""

    __slots__ = (
        "data",
        "exceptions",
        "logger",
        "mounted",
        "now",
        "prefix",
        "scope",
        "span",
        "span_method",
        "tracer",
    )

    def __init__(
        self,
        scope: Scope,
        span: Any,
        span_method: str,
        tracer: Any,
        logger: Any,
        now: Callable[[], int],
    ) -> None:
        self.now = now  # the layer's clock (trio's, placed on the wall clock)
        self.scope = scope  # where the route is found: the innermost app's scope
        self.span = span
        self.span_method = span_method
        self.tracer = tracer  # for operation spans; None without them
        self.logger = logger
        # The app's own root path, then each mount's path on the way in.
        root = scope.get("app_root_path", scope.get("root_path", "")) or ""
        self.prefix: str = root.rstrip("/")
        self.mounted = False  # a mount took it: without a route of its own, "/{path}"
        self.data: TelemetryData | None = TelemetryData()
        self.exceptions: list[BaseException] = []

    def route(self) -> str | None:
        """The route template matched so far, with the mounts' prefixes."""
        template: str | None = getattr(self.scope.get("route"), "path", None)
        if template is not None:
            return self.prefix + template
        return self.prefix + "/{path}" if self.mounted else None

    # What the app's request path calls (through the record: no import there).

    def operation(self, name: str, function: Any) -> contextlib.AbstractContextManager[None]:
        return operation(self, name, function)

    def mounted_at(self, path: str, child: Scope) -> None:
        """``call_mounted``: the request goes on to a mounted app at ``path``."""
        self.prefix += path.rstrip("/")
        self.mounted = True
        self.scope = child

    def note(self, error: BaseException) -> None:
        """An exception no handler answered (or a handler's own): its log record, once."""
        record_exception(self, error)

    def validation_failed(self, error: Exception, body: Any) -> None:
        validation_failed(self, error, body)

    async def run(self, route: APIRoute, ctx: RequestContext) -> Any:
        """Solves the route's parameters and calls its endpoint, each in its operation span."""
        from .._http.solve import resolve, solve

        dependant = route.dependant
        assert dependant is not None
        data = self.data
        if data is not None:
            data.request = ctx.request
        with operation(self, "dependencies", dependant.call):
            errors: list[dict[str, Any]] = []
            for sub in route.extra:
                errors.extend((await resolve(sub, ctx))[1])
            values, own_errors = await solve(dependant, ctx)
            errors.extend(own_errors)
        if data is not None:
            data.values, data.errors, data.body = values, errors, ctx._body_or_none()
        if errors:
            raise RequestValidationError(errors, body=ctx._body_or_none())
        return await call_endpoint(self, dependant, values)


def record_exception(record: _Request, error: BaseException) -> None:
    if record.scope.get("type") == "websocket" and _normal_close(error):
        return
    if any(seen is error for seen in record.exceptions):
        return
    record.exceptions.append(error)
    if record.logger is None or not isinstance(error, Exception):
        return
    websocket = record.scope.get("type") == "websocket"
    route = record.route()
    record.logger.emit(
        exception=error,
        event_name="trioapi.websocket.exception" if websocket else "http.server.request.exception",
        timestamp=time.time_ns(),
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        body="Unhandled exception in TrioAPI WebSocket connection"
        if websocket
        else "Unhandled exception in TrioAPI request",
        attributes={"http.route": route} if route else None,
    )


def validation_failed(record: _Request, error: Exception, body: Any) -> None:
    """A request (or websocket) failed validation: the data, and a WARN record."""
    errors = list(getattr(error, "errors", list)())
    data = record.data
    if data is not None:
        if isinstance(error, RequestValidationError):
            data.body = body
        data.errors = errors
    if record.logger is None:
        return
    attributes: dict[str, Any] = {"trioapi.validation.error_count": len(errors)}
    route = record.route()
    if route is not None:
        attributes["http.route"] = route
    record.logger.emit(
        event_name="trioapi.validation.failed",
        timestamp=time.time_ns(),
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="Request validation failed",
        attributes=attributes,
    )


@contextlib.contextmanager
def operation(
    record: _Request, name: str, function: Any, *, threaded: bool = False
) -> Iterator[None]:
    """A ``trioapi.{name}`` span, current inside (nothing without operation spans).

    Timed on trio's clock, as the request's span is; in a worker thread,
    which cannot read it, on the wall clock (the same, but for a MockClock).
    """
    tracer = record.tracer
    if tracer is None:
        yield
        return
    now = time.time_ns if threaded else record.now
    span = tracer.start_span(
        f"trioapi.{name}",
        attributes={"code.function.name": function_name(function)},
        start_time=now(),
    )
    with trace.use_span(span, record_exception=False, set_status_on_exception=False):
        try:
            yield
        except Exception as error:
            # An answer (an HTTPException, a 422) is not the operation failing.
            if name == "background_task" or not (
                isinstance(error, _ANSWERS) or _normal_close(error)
            ):
                span.set_attribute("error.type", exception_type(error))
                span.set_status(trace.StatusCode.ERROR)
            raise
        finally:
            span.end(end_time=now())


def _call_in_span(record: _Request, function: Callable[..., Any], values: dict[str, Any]) -> Any:
    with operation(record, "endpoint", function, threaded=True):
        return function(**values)


async def call_endpoint(record: _Request, dependant: Dependant, values: dict[str, Any]) -> Any:
    """``solve.call`` inside the ``trioapi.endpoint`` span; a sync one starts it in its thread."""
    from .._http.params import CallKind

    function = dependant.call
    if dependant.kind is CallKind.ASYNC:
        with operation(record, "endpoint", function):
            return await function(**values)
    return await trio.to_thread.run_sync(
        in_worker(functools.partial(_call_in_span, record, function, values))
    )


def _server_attributes(scope: Scope) -> dict[str, Any]:
    host = None
    for name, value in scope.get("headers") or ():
        if name == b"host":
            host = value.decode("latin-1")
            break
    if host is None:
        address, port = scope.get("server") or (None, None)
    else:
        try:
            url = urlsplit("//" + host)
            address, port = url.hostname, url.port
        except ValueError:
            return {}  # a malformed Host must not fail the request
        if url.username is not None or url.path or url.query or url.fragment:
            return {}
        if port is None:
            port = _DEFAULT_PORTS.get(scope.get("scheme", "http"))
    if not address:
        return {}
    attributes: dict[str, Any] = {"server.address": address}
    if port is not None:
        attributes["server.port"] = port
    return attributes


def _query(raw: bytes) -> str:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(key, "REDACTED" if key in _SECRET_QUERY else value) for key, value in pairs])


def _carrier(scope: Scope) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers") or ():
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    if "baggage" in headers:
        # The baggage propagator reads only the first value: give it all of them.
        headers["baggage"] = [",".join(headers["baggage"])]
    return headers


_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


class ConfiguredTelemetry(Telemetry):
    """The layer as ``TrioAPI(telemetry={...})`` configures it (see the module)."""

    websockets = True

    def __init__(self, app: TrioAPI, config: TelemetryConfig) -> None:
        self.config = config
        self._methods = _known_methods()
        self._tracer_provider: Any = None
        self._meter_provider: Any = None
        self._logger_provider: Any = None
        self._logger: Any = None
        super().__init__(app, lazy=True)
        self.tracer = None

    # --- providers: the config's, or the global ones as they are now -------------

    def _current_tracer(self) -> Any:
        provider = self.config["tracer_provider"] or trace.get_tracer_provider()
        if provider is not self._tracer_provider:
            if (self.config["tracer_provider"] is None and unconfigured(provider)) or isinstance(
                provider, trace.NoOpTracerProvider
            ):
                return None
            self.tracer = provider.get_tracer("trioapi", self._version, schema_url=SCHEMA_URL)
            self._tracer_provider = provider
        return self.tracer

    def _current_meter(self) -> bool:
        provider = self.config["meter_provider"] or metrics.get_meter_provider()
        if provider is not self._meter_provider:
            if (self.config["meter_provider"] is None and unconfigured(provider)) or isinstance(
                provider, metrics.NoOpMeterProvider
            ):
                return False
            self._use_meter(
                provider.get_meter("trioapi", self._version, schema_url=SCHEMA_URL),
                _DURATION_BUCKETS,
            )
            self._meter_provider = provider
        return True

    def _current_logger(self) -> Any:
        provider = self.config["logger_provider"] or _logs.get_logger_provider()
        if provider is not self._logger_provider:
            if (self.config["logger_provider"] is None and unconfigured(provider)) or isinstance(
                provider, _logs.NoOpLoggerProvider
            ):
                return None
            self._logger = _logs.get_logger(
                "trioapi", self._version, provider, schema_url=SCHEMA_URL
            )
            self._logger_provider = provider
        return self._logger

    # --- requests ----------------------------------------------------------------

    def middleware(self, app: Any) -> Any:
        telemetry = self

        async def observed(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] in ("http", "websocket"):
                await telemetry._serve(app, scope, receive, send)
            else:
                await app(scope, receive, send)

        return observed

    async def _serve(self, app: Any, scope: Scope, receive: Any, send: Any) -> None:
        if RECORD in scope:
            await app(scope, receive, send)  # an app around this one observes it (or excluded it)
            return
        config = self.config
        exclude = config["exclude"]
        if exclude is not None and exclude(scope):
            await self._excluded(app, scope, receive, send)
            return
        websocket = scope["type"] == "websocket"
        tracer = self._current_tracer() if config["tracing"] else None
        metering = config["metrics"] and not websocket and self._current_meter()
        logger = self._current_logger() if config["logs"] else None
        if tracer is None and not metering and logger is None:
            await app(scope, receive, send)
            return
        await self._observe(app, scope, receive, send, tracer, metering, logger)

    async def _excluded(self, app: Any, scope: Scope, receive: Any, send: Any) -> None:
        scope[RECORD] = None  # and no mounted app observes it either
        # A request made from inside another one must not see the outer's record.
        token = otel_context.attach(otel_context.set_value(context_key(), None))
        try:
            await app(scope, receive, send)
        finally:
            otel_context.detach(token)
            scope.pop(RECORD, None)

    async def _observe(
        self,
        app: Any,
        scope: Scope,
        receive: Any,
        send: Any,
        tracer: Any,
        metering: bool,
        logger: Any,
    ) -> None:
        websocket = scope["type"] == "websocket"
        given = scope.get("method", "")
        method = given if given in self._methods else "_OTHER"
        span_method = "WS" if websocket else "HTTP" if method == "_OTHER" else method
        attributes: dict[str, Any] = {
            "url.scheme": scope.get("scheme", "ws" if websocket else "http")
        }
        if websocket:
            attributes["network.protocol.name"] = "websocket"
        else:
            attributes["http.request.method"] = method
            if scope.get("http_version"):
                attributes["network.protocol.version"] = scope["http_version"]
        active = (method, attributes["url.scheme"]) if metering else None
        if active is not None:
            self._active[active] = self._active.get(active, 0) + 1
        started = trio.current_time()
        span = None
        context = otel_context.get_current()
        if tracer is not None:
            context = self.propagate.extract(_carrier(scope))
            span_attributes = {**attributes, **_server_attributes(scope)}
            if not websocket:
                span_attributes["url.path"] = scope.get("path", "")
                if scope.get("query_string"):
                    span_attributes["url.query"] = _query(scope["query_string"])
                if given != method:
                    span_attributes["http.request.method_original"] = given
            span = tracer.start_span(
                span_method,
                context=context,
                kind=self.SpanKind.SERVER,
                attributes=span_attributes,
                start_time=self.now(),
            )
            context = self.trace.set_span_in_context(span, context)
        record = _Request(
            scope,
            span,
            span_method,
            tracer if self.config["operation_spans"] else None,
            logger,
            self.now,
        )
        scope[RECORD] = record
        token = otel_context.attach(otel_context.set_value(context_key(), record, context))
        status: int | None = None
        trailers = False
        disconnected = False
        ended = False

        def end(error: BaseException | None = None) -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            final = dict(attributes)
            route = record.route()
            if route is not None:
                final["http.route"] = route
            if status is not None:
                final["http.response.status_code"] = status
            failed = error is not None or (not websocket and (status is None or status >= 500))
            if failed:
                failure = error or (record.exceptions[-1] if record.exceptions else None)
                final["error.type"] = (
                    exception_type(failure)
                    if failure is not None
                    else str(status or "incomplete_response")
                )
            if span is not None:
                if route is not None:
                    span.update_name(f"{span_method} {route}")
                span.set_attributes(final)
                if failed:
                    span.set_status(self.StatusCode.ERROR)
            if active is not None:
                self.request_duration.record(trio.current_time() - started, final)
                self._active[active] -= 1
            if span is not None:
                span.end(end_time=self.now())

        async def observed_send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, trailers
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                trailers = message.get("trailers", False)
            await send(message)
            if (
                (
                    kind == "http.response.body"
                    and not message.get("more_body", False)
                    and not trailers
                )
                or (kind == "http.response.trailers" and not message.get("more_trailers", False))
                or kind == "http.response.pathsend"
            ):
                end()  # the last byte is the server's: the tasks come after

        async def observed_receive() -> MutableMapping[str, Any]:
            nonlocal disconnected
            message: MutableMapping[str, Any] = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        try:
            if websocket:
                await app(scope, receive, send)
            else:
                await app(scope, observed_receive, observed_send)
        except BaseException as error:
            record_exception(record, error)
            end(None if websocket and _normal_close(error) else error)
            raise
        finally:
            if not ended:
                end(
                    None
                    if websocket
                    else ConnectionError("Client disconnected")
                    if disconnected
                    else RuntimeError("Incomplete ASGI response")
                )
            # Nothing of the request is kept past it, even by a context kept around.
            record.data = None
            record.exceptions.clear()
            otel_context.detach(token)
            scope.pop(RECORD, None)

    # --- tasks -------------------------------------------------------------------

    def start(self, handle: TaskHandle[Any]) -> Any:
        if handle._durable is not None:
            if self.tracer is None and self._current_tracer() is None:
                return None
            return super().start(handle)
        record = otel_context.get_value(context_key())
        tracer = record.tracer if type(record) is _Request else None
        if tracer is None:
            return None  # an excluded request, or no operation spans
        current = self.trace.get_current_span().get_span_context()
        span = tracer.start_span(
            "trioapi.background_task",
            kind=self.SpanKind.INTERNAL,
            attributes={"code.function.name": function_name(handle._func)},
            links=[self.Link(current)] if current.is_valid else [],
            start_time=self.now(),
        )
        handle._span = span
        return otel_context.attach(self.trace.set_span_in_context(span))

    def detach(self, token: Any) -> None:
        if token is not None:
            otel_context.detach(token)

    def produce(self, handles: list[TaskHandle[Any]]) -> None:
        if self.tracer is not None or self._current_tracer() is not None:
            super().produce(handles)

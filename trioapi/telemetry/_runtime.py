"""``telemetry={"auto_configure": True}``: OTLP exporters from the environment.

At each lifespan startup (after a fork, so a pre-forking server gets one
exporter per worker), the signals that are enabled and have an endpoint in
the ``OTEL_EXPORTER_OTLP_*`` variables get an OTLP/HTTP exporter:

- on the provider the app was given, or else on the global one;
- when the global one is still OpenTelemetry's placeholder (nothing
  configured it), on an SDK provider made here and set as the global one.
  If another component set the global provider meanwhile, theirs wins: ours
  is shut down and the exporter goes on theirs.

Each provider gets trioapi's exporter once per process, however many apps
and lifespans. What was made here is flushed (in a worker thread) when a
lifespan ends, and shut down at exit; what the application passed in never
is. A setting that cannot be honoured is a WARNING at startup, never a
failed startup: telemetry is optional.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .._exceptions import TrioAPIError

if TYPE_CHECKING:
    from ._api import TelemetryConfig

logger = logging.getLogger("trioapi")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_lock = threading.RLock()
_owned: list[Any] = []
"""Providers and exporter components made here: flushed after a lifespan, shut down at exit."""
_configured: list[tuple[str, Any]] = []
"""(signal, provider) that already have trioapi's exporter."""

_SIGNALS: Final = ("TRACES", "METRICS", "LOGS")
_END_MESSAGES: Final = frozenset(
    {"lifespan.shutdown.complete", "lifespan.shutdown.failed", "lifespan.startup.failed"}
)
_NOT_AUTOMATIC: Final = "pass telemetry={'auto_configure': False} to TrioAPI()"

# The API's placeholders, which stand for "nothing configured yet". Only
# these: an SDK provider or a vendor's wrapper is a configured one.
_PLACEHOLDERS: Final = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


def unconfigured(provider: Any) -> bool:
    """``provider`` is OpenTelemetry's placeholder for a global provider not yet set."""
    cls = type(provider)
    return (cls.__module__, cls.__name__) in _PLACEHOLDERS


def _flush() -> None:
    for component in list(_owned):
        try:
            component.force_flush()
        except Exception:
            logger.exception("TrioAPI telemetry cleanup failed")


def _shutdown() -> None:
    with _lock:
        owned = list(_owned)
        _owned.clear()
    for component in owned:
        try:
            component.shutdown()
        except Exception:
            logger.exception("TrioAPI telemetry cleanup failed")


atexit.register(_shutdown)


def _export_endpoint(signal: str) -> str | None:
    """The OTLP/HTTP endpoint of ``signal`` (``"TRACES"``...) from the environment, if any.

    Raises:
        TrioAPIError: An exporter or protocol other than OTLP over
            HTTP/protobuf, or an endpoint that is not an absolute HTTP(S) URL.
    """
    exporter = (os.environ.get(f"OTEL_{signal}_EXPORTER") or "otlp").strip().lower()
    endpoint = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or None
    if endpoint is None:
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        # The general endpoint is a base URL: each signal has its own path under it.
        endpoint = f"{base.rstrip('/')}/v1/{signal.lower()}" if base else None
    if endpoint is None or exporter == "none":
        return None
    if exporter != "otlp":
        msg = (
            f"trioapi's automatic telemetry supports OTEL_{signal}_EXPORTER=otlp or none, "
            f"not {exporter!r}: configure other exporters yourself and {_NOT_AUTOMATIC}"
        )
        raise TrioAPIError(msg)
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        msg = (
            f"trioapi's automatic telemetry exports OTLP over http/protobuf, not {protocol!r}: "
            f"configure other transports yourself and {_NOT_AUTOMATIC}"
        )
        raise TrioAPIError(msg)
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = (
            f"invalid OTLP {signal.lower()} endpoint {endpoint!r}: "
            "use an absolute HTTP or HTTPS URL"
        )
        raise TrioAPIError(msg)
    return endpoint


def _registration_provider(provider: Any) -> Any:
    """The provider an exporter is added to: Logfire's older meter wrapper lacks the method."""
    cls = type(provider)
    if (
        cls.__module__ == "logfire._internal.metrics"
        and cls.__name__ == "ProxyMeterProvider"
        and not hasattr(provider, "add_metric_reader")
    ):
        return provider.provider
    return provider


def _sdk() -> dict[str, Callable[..., Any]]:
    """The SDK and OTLP classes, by what they are for."""
    try:
        # By name: the exporter is an optional package (and has no type stubs).
        otlp = "opentelemetry.exporter.otlp.proto.http."
        OTLPLogExporter = importlib.import_module(otlp + "_log_exporter").OTLPLogExporter
        OTLPMetricExporter = importlib.import_module(otlp + "metric_exporter").OTLPMetricExporter
        OTLPSpanExporter = importlib.import_module(otlp + "trace_exporter").OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        msg = (
            "exporting OpenTelemetry data from the environment needs the SDK and the OTLP "
            "exporter: pip install 'trioapi[opentelemetry]', or configure providers "
            f"yourself and {_NOT_AUTOMATIC} ({error})"
        )
        raise TrioAPIError(msg) from error
    return {
        "TRACES": lambda endpoint: BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)),
        "METRICS": lambda endpoint: PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint)
        ),
        "LOGS": lambda endpoint: BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint)),
        "TRACES provider": lambda component: _with(
            TracerProvider(shutdown_on_exit=False), "add_span_processor", component
        ),
        "METRICS provider": lambda component: MeterProvider(
            metric_readers=[component], shutdown_on_exit=False
        ),
        "LOGS provider": lambda component: _with(
            LoggerProvider(shutdown_on_exit=False), "add_log_record_processor", component
        ),
    }


def _with(provider: Any, method: str, component: Any) -> Any:
    getattr(provider, method)(component)
    return provider


_REGISTER: Final = {
    "TRACES": ("tracer", "add_span_processor"),
    "METRICS": ("meter", "add_metric_reader"),
    "LOGS": ("logger", "add_log_record_processor"),
}


def _globals(signal: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    from opentelemetry import _logs, metrics, trace

    if signal == "TRACES":
        return trace.get_tracer_provider, trace.set_tracer_provider
    if signal == "METRICS":
        return metrics.get_meter_provider, metrics.set_meter_provider
    return _logs.get_logger_provider, _logs.set_logger_provider


def _configure_from_environment(config: TelemetryConfig) -> None:
    """Adds the environment's OTLP exporters to the app's providers (see the module).

    Raises:
        TrioAPIError: A setting that cannot be honoured (the caller logs it).
    """
    if not config["auto_configure"] or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    enabled = {
        "TRACES": (config["tracing"], config["tracer_provider"]),
        "METRICS": (config["metrics"], config["meter_provider"]),
        "LOGS": (config["logs"], config["logger_provider"]),
    }
    with _lock:
        wanted = []
        for signal in _SIGNALS:
            on, explicit = enabled[signal]
            endpoint = _export_endpoint(signal) if on else None
            if endpoint is not None:
                wanted.append((signal, explicit, endpoint))
        if not wanted:
            return
        sdk = _sdk()
        for signal, explicit, endpoint in wanted:
            get_global, set_global = _globals(signal)
            provider = _registration_provider(explicit if explicit is not None else get_global())
            if any(done == signal and known is provider for done, known in _configured):
                continue
            if explicit is None and unconfigured(provider):
                ours = sdk[f"{signal} provider"](sdk[signal](endpoint))
                set_global(ours)
                current = get_global()
                if current is ours:
                    _configured.append((signal, ours))
                    _owned.append(ours)
                    continue
                # Someone else set the global provider first: theirs is the
                # one used, so the exporter goes there and ours is closed.
                ours.shutdown()
                provider = _registration_provider(current)
            _register(signal, provider, lambda: sdk[signal](endpoint))  # noqa: B023 - called at once


def _register(signal: str, provider: Any, make: Callable[[], Any]) -> None:
    name, method = _REGISTER[signal]
    try:
        register = getattr(provider, method, None)
    except Exception:  # a wrapper whose attribute access fails
        register = None
    if not callable(register):
        msg = (
            f"the configured OpenTelemetry {name} provider does not support adding an OTLP "
            f"exporter ({type(provider).__qualname__} has no {method}()): configure its "
            f"export yourself and {_NOT_AUTOMATIC}"
        )
        raise TrioAPIError(msg)
    component = make()
    try:
        register(component)
    except BaseException:
        component.shutdown()
        raise
    _configured.append((signal, provider))
    _owned.append(component)


def configure_at_startup(config: TelemetryConfig) -> None:
    """``_configure_from_environment``, with a failure logged rather than raised."""
    try:
        _configure_from_environment(config)
    except Exception as error:
        logger.warning("trioapi: automatic telemetry configuration failed: %s", error)


async def _in_thread(function: Callable[[], None]) -> None:
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        await trio.to_thread.run_sync(function)
    else:  # an asyncio caller (a test driving this module directly)
        import asyncio

        await asyncio.to_thread(function)


async def lifespan(
    *,
    config: TelemetryConfig,
    app: Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]],
    scope: MutableMapping[str, Any],
    receive: Receive,
    send: Send,
    started: Callable[[], None] | None = None,
) -> None:
    """Runs ``app``'s lifespan call, configuring export at startup and flushing at the end.

    Args:
        started: Called after the export is configured, before the app sees
            ``lifespan.startup`` (the app decides there whether telemetry is on).
    """

    async def receive_startup() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            configure_at_startup(config)
            if started is not None:
                started()
        return message

    async def send_flushed(message: Message) -> None:
        if message["type"] in _END_MESSAGES and _owned:
            # Exporting blocks on the network: never on the event loop.
            await _in_thread(_flush)
        await send(message)

    await app(scope, receive_startup, send_flushed)

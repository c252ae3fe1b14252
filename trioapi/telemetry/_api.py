"""The public side of ``TrioAPI(telemetry={...})``: its settings and the request data.

Nothing here imports OpenTelemetry at import time: ``import trioapi`` never
does, and an app that does not use it pays nothing. The request layer that
makes the spans, metrics and logs is ``trioapi._observability.otel``
(the same one ``app.instrument()`` uses); this module holds what it shares
with user code: the settings, ``TelemetryData`` and where it is found.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypedDict, final

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .._http.requests import Request
    from .._http.websockets import WebSocket

__all__ = ["TelemetryConfig", "TelemetryData", "get_telemetry_data"]


class TelemetryConfig(TypedDict, total=False):
    """The settings of ``TrioAPI(telemetry={...})`` (FastAPI 0.165's ``TelemetryConfig``).

    Every key is optional; a key left out keeps its default. Providers the
    application passes in are used as they are and never shut down by trioapi.

    Attributes:
        tracer_provider: The provider of the request's spans (default: the
            global one, looked up per request once telemetry is on).
        meter_provider: The provider of the HTTP metrics (default: the global one).
        logger_provider: The provider of the exception and validation log
            records (default: the global one).
        tracing: A SERVER span per HTTP request and websocket session (default True).
        metrics: ``http.server.request.duration`` and
            ``http.server.active_requests`` (default True).
        logs: A log record for each unhandled exception (with its message and
            stack trace) and each request that failed validation (default True).
        operation_spans: ``trioapi.dependencies``, ``trioapi.endpoint``,
            ``trioapi.serialization`` and ``trioapi.background_task`` spans
            under the request's span (default True).
        auto_configure: At startup, add OTLP/HTTP exporters configured by the
            ``OTEL_EXPORTER_OTLP_*`` environment variables (default False,
            or True when ``TRIOAPI_OTEL_AUTO_CONFIGURE`` or
            ``FASTAPI_OTEL_AUTO_CONFIGURE`` is ``true``).
        exclude: Called with the ASGI scope; True leaves that request or
            session out of trioapi's telemetry (mounted apps included).
    """

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    tracing: bool
    metrics: bool
    logs: bool
    operation_spans: bool
    auto_configure: bool
    exclude: Callable[[MutableMapping[str, Any]], bool] | None


TELEMETRY_RECORD: Final = "trioapi.telemetry"
"""The scope key of the request's record while ``telemetry=`` observes it (None: excluded)."""

_FLAGS: Final = ("tracing", "metrics", "logs", "operation_spans", "auto_configure")
# Each provider key, and the method every provider of its kind has.
_PROVIDERS: Final = {
    "tracer_provider": "get_tracer",
    "meter_provider": "get_meter",
    "logger_provider": "get_logger",
}
_AUTO_CONFIGURE_ENV: Final = ("TRIOAPI_OTEL_AUTO_CONFIGURE", "FASTAPI_OTEL_AUTO_CONFIGURE")


def _auto_configure_default() -> bool:
    for name in _AUTO_CONFIGURE_ENV:
        value = os.environ.get(name)
        if value:
            return value.strip().lower() == "true"
    return False


def resolve_config(telemetry: Mapping[str, Any] | None) -> TelemetryConfig:
    """``telemetry=`` checked, with every key present (the defaults filled in).

    Raises:
        TypeError: Not a mapping, an unknown key, or a value of the wrong type.
    """
    if telemetry is not None and not isinstance(telemetry, Mapping):
        msg = (
            f"telemetry must be a dict of TelemetryConfig settings or None, "
            f"not {type(telemetry).__name__}"
        )
        raise TypeError(msg)
    given = dict(telemetry or {})
    unknown = sorted(set(given) - set(TelemetryConfig.__annotations__))
    if unknown:
        known = ", ".join(TelemetryConfig.__annotations__)
        names = ", ".join(map(repr, unknown))
        msg = f"unknown telemetry setting(s) {names}: the settings are {known}"
        raise TypeError(msg)
    for key in _FLAGS:
        if key in given and not isinstance(given[key], bool):
            msg = f"telemetry[{key!r}] must be True or False, not {given[key]!r}"
            raise TypeError(msg)
    for key, method in _PROVIDERS.items():
        provider = given.get(key)
        if provider is not None and not callable(getattr(provider, method, None)):
            msg = (
                f"telemetry[{key!r}] must be an OpenTelemetry {key.replace('_', ' ')} "
                f"(with a {method}() method) or None, not {provider!r}"
            )
            raise TypeError(msg)
    exclude = given.get("exclude")
    if exclude is not None and not callable(exclude):
        msg = f"telemetry['exclude'] must be a function of the ASGI scope or None, not {exclude!r}"
        raise TypeError(msg)
    config: TelemetryConfig = {
        "tracer_provider": None,
        "meter_provider": None,
        "logger_provider": None,
        "tracing": True,
        "metrics": True,
        "logs": True,
        "operation_spans": True,
        "auto_configure": _auto_configure_default(),
        "exclude": None,
    }
    config.update(given)  # type: ignore[typeddict-item]  # checked key by key above
    return config


@final
class TelemetryData:
    """What trioapi knows of the request or websocket session being served.

    For OpenTelemetry processors that run synchronously while it is served
    (a span or log record processor that decides what to capture): read it
    with :func:`get_telemetry_data`. It is never exported on its own; treat
    it as read-only and redact before exporting any of it.

    Attributes:
        request: The request, from when its path operation starts.
        websocket: The websocket, from when its endpoint starts.
        body: The body trioapi read, before validation (set once the
            parameters are solved, or when validation fails).
        values: The endpoint's arguments, once its parameters and
            dependencies are solved.
        errors: The validation errors, with the input values; ``[]`` when
            there were none.
    """

    __slots__ = ("body", "errors", "request", "values", "websocket")

    def __init__(
        self,
        *,
        request: Request | None = None,
        websocket: WebSocket | None = None,
        body: Any = None,
        values: dict[str, Any] | None = None,
        errors: Sequence[Any] | None = None,
    ) -> None:
        self.request = request
        self.websocket = websocket
        self.body = body
        self.values = values
        self.errors = errors

    def __repr__(self) -> str:
        # Never the values themselves: they are the user's data.
        present = [name for name in self.__slots__ if getattr(self, name) is not None]
        return f"<TelemetryData with {', '.join(present) or 'nothing yet'}>"


def wants_telemetry(config: TelemetryConfig) -> bool:
    """Whether ``config`` can record anything: a provider given, or a global one configured.

    Asked once per app (at startup or its first request). Without
    OpenTelemetry imported, and no provider named in the environment, no
    global provider can have been set: nothing is imported to find that out.
    """
    signals = (
        (config["tracing"], config["tracer_provider"], "TRACER"),
        (config["metrics"], config["meter_provider"], "METER"),
        (config["logs"], config["logger_provider"], "LOGGER"),
    )
    if any(on and provider is not None for on, provider, _ in signals):
        return True
    if "opentelemetry" not in sys.modules and not any(
        on and os.environ.get(f"OTEL_PYTHON_{name}_PROVIDER") for on, _, name in signals
    ):
        return False
    from opentelemetry import _logs, metrics, trace

    from ._runtime import unconfigured

    current = {
        "TRACER": (trace.get_tracer_provider, trace.NoOpTracerProvider),
        "METER": (metrics.get_meter_provider, metrics.NoOpMeterProvider),
        "LOGGER": (_logs.get_logger_provider, _logs.NoOpLoggerProvider),
    }
    for on, _, name in signals:
        if on:
            get, noop = current[name]
            provider = get()
            if not unconfigured(provider) and not isinstance(provider, noop):
                return True
    return False


_key: Any = None


def context_key() -> Any:
    """The OpenTelemetry context key under which a request's record is found."""
    global _key
    if _key is None:
        from opentelemetry.context import create_key

        _key = create_key("trioapi.request")
    return _key


def get_telemetry_data(context: Context | None = None) -> TelemetryData | None:
    """The data of the request or websocket session served in ``context``.

    Args:
        context: An OpenTelemetry context (a log processor passes
            ``record.context``); the current one by default.

    Returns:
        The request's :class:`TelemetryData` while it is served; ``None``
        outside a request, for a request left out by ``exclude``, without
        telemetry, and once the request is over (a context kept past it
        does not keep its data).
    """
    if "opentelemetry.context" not in sys.modules:
        return None  # nothing imported OpenTelemetry: no request was observed
    from opentelemetry.context import get_value

    record = get_value(context_key(), context)
    data = getattr(record, "data", None)
    return data if isinstance(data, TelemetryData) else None

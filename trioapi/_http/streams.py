"""Path operations that ``yield``: their items streamed as JSON lines or server-sent events.

What a generator path operation (sync or async) streams depends on its
``response_class``, as in FastAPI 0.165:

- none (or a ``JSONResponse``): JSON lines, ``application/jsonl``, one
  item per line;
- ``EventSourceResponse``: server-sent events, one event per item
  (:class:`ServerSentEvent` sets the event's fields; any other item is its
  JSON ``data:``), with keep-alive comments while the generator is idle;
- another ``StreamingResponse``: the items as they are (``bytes`` or ``str``).

Items are rendered the way FastAPI renders them. When the return annotation
names the item type (``AsyncIterable[Item]``), each item is validated and
dumped as that type (``response_model_*`` options apply; a bad item is a
``ResponseValidationError``, which goes on to the server mid-stream) and
written as compact JSON. Without one, an item goes through
``jsonable_encoder`` and ``json.dumps``, with non-finite floats as ``null``.
A sync generator is advanced, and its items rendered, in worker threads.

The stream starts once the head is sent; the request's background tasks
run after its last chunk (``StreamingResponse``), and the generator is
closed as soon as the stream ends for any reason, the client leaving
included.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any, Literal, final, get_args, get_origin

import attrs

from .._exceptions import ResponseValidationError, RouteDefinitionError
from .params import CallKind, return_annotation
from .responses import (
    EventSourceResponse,
    JSONResponse,
    Response,
    StreamingResponse,
    render_json,
)

if TYPE_CHECKING:
    from .routing import APIRoute
    from .solve import RequestContext

PING_INTERVAL = 15.0
"""Seconds between keep-alive comments on an idle event stream.

The value in use is ``trioapi.routing._PING_INTERVAL``, read when a stream
starts, so tests can change it there (as FastAPI's tests do on ``fastapi.routing``).
"""

_STREAM_ORIGINS = frozenset(
    {AsyncIterable, AsyncIterator, AsyncGenerator, Iterable, Iterator, Generator}
)

# --- server-sent events --------------------------------------------------------------------


def _single_line(name: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            msg = f"SSE '{name}' must be a string, not {type(value).__name__}"
            raise ValueError(msg)  # noqa: TRY004 - a ValueError, as pydantic's in FastAPI
        if "\r" in value or "\n" in value:
            msg = f"SSE '{name}' must be a single line"
            raise ValueError(msg)

    return check


def _check_id(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and "\0" in value:
        msg = "SSE 'id' must not contain null characters"
        raise ValueError(msg)
    _single_line("id")(instance, attribute, value)


def _retry(value: Any) -> int | None:
    # pydantic's lax int, as FastAPI's model has it: 5 and 5.0 are 5; 1.5, -1 are refused.
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"SSE 'retry' must be a whole number of milliseconds, not {value!r}"
        raise ValueError(msg)  # noqa: TRY004 - a ValueError, as pydantic's in FastAPI
    if value < 0:
        msg = f"SSE 'retry' must be >= 0 milliseconds, not {value}"
        raise ValueError(msg)
    return value


def _optional_str(name: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not isinstance(value, str):
            msg = f"SSE '{name}' must be a string, not {type(value).__name__}"
            raise ValueError(msg)

    return check


@final
@attrs.frozen(kw_only=True)
class ServerSentEvent:
    """One server-sent event, to ``yield`` from an ``EventSourceResponse`` path operation.

    Args:
        data: The payload, always sent as JSON (``"hello"`` goes out as
            ``data: "hello"``): a model, dict, list, string, number...
        raw_data: A string sent as it is, instead of ``data`` (HTML, CSV...).
        event: The event type (``addEventListener(event, ...)``); one line.
        id: The event id the browser sends back as ``Last-Event-ID``; one
            line, no null characters.
        retry: The client's reconnection delay, in milliseconds (>= 0).
        comment: Comment lines (``: ...``), which clients ignore.

    Raises:
        ValueError: A field breaks the rules above, or both ``data`` and
            ``raw_data`` are set.
    """

    data: Any = None
    raw_data: str | None = attrs.field(default=None, validator=_optional_str("raw_data"))
    event: str | None = attrs.field(default=None, validator=_single_line("event"))
    id: str | None = attrs.field(default=None, validator=_check_id)
    retry: int | None = attrs.field(default=None, converter=_retry)
    comment: str | None = attrs.field(default=None, validator=_optional_str("comment"))

    def __attrs_post_init__(self) -> None:
        if self.data is not None and self.raw_data is not None:
            msg = (
                "Cannot set both 'data' and 'raw_data' on the same ServerSentEvent. Use "
                "'data' for JSON-serialized payloads or 'raw_data' for pre-formatted strings."
            )
            raise ValueError(msg)


def _sse_lines(value: str) -> list[str]:
    # The SSE line ends only (\r\n, \r, \n), not str.splitlines()'s wider set.
    return value.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def format_sse_event(
    *,
    data_str: str | None = None,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One event in the SSE wire format, from already serialized data; ends with a blank line.

    Args:
        data_str: The ``data:`` lines (one per line of the string).
        event: The ``event:`` field.
        id: The ``id:`` field.
        retry: The ``retry:`` field, in milliseconds.
        comment: ``:`` comment lines.

    Returns:
        The UTF-8 bytes of the event.
    """
    lines: list[str] = []
    if comment is not None:
        lines.extend(f": {line}" for line in _sse_lines(comment))
    if event is not None:
        lines.append(f"event: {event}")
    if data_str is not None:
        lines.extend(f"data: {line}" for line in _sse_lines(data_str))
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.extend(("", ""))
    return "\n".join(lines).encode("utf-8")


# --- rendering items ---------------------------------------------------------------------


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_finite(value) for value in data]
    return data


def _plain_json(value: Any) -> str:
    """An item without a declared type: FastAPI's ``json.dumps(jsonable_encoder(item))``."""
    from ..encoders import jsonable_encoder

    return json.dumps(_finite(jsonable_encoder(value)))


def _item_type(endpoint: Callable[..., Any]) -> Any:
    annotation = return_annotation(endpoint)
    if annotation is None or get_origin(annotation) not in _STREAM_ORIGINS:
        return None
    args = get_args(annotation)
    return args[0] if args else Any


def _json_renderer(route: APIRoute) -> Callable[[Any], str]:
    """Renders one item as JSON text, validated as the declared item type if there is one."""
    from . import pydantic_engine
    from .shaping import response_shaper, serialize_options

    item = _item_type(route.endpoint)
    if item is None or (isinstance(item, type) and issubclass(item, ServerSentEvent)):
        return _plain_json
    where = f"route {route.path!r} (its stream items)"
    options = serialize_options(route)
    shape = response_shaper(where, item, options)
    if shape is None:
        return _plain_json
    if pydantic_engine.available() and not pydantic_engine.involves_attrs(item):
        # pydantic writes the JSON itself, as FastAPI's stream does: a model's
        # ser_json_inf_nan and the like apply only there.
        return _pydantic_json(item, options)

    def typed(value: Any) -> str:
        return render_json(shape(value)).decode("utf-8")

    return typed


def _pydantic_json(item: Any, options: Any) -> Callable[[Any], str]:
    from pydantic import ValidationError

    from .pydantic_engine import _adapter, _prepare, entries_from

    adapter = _adapter(item)

    def typed(value: Any) -> str:
        try:
            validated = adapter.validate_python(_prepare(value, options), from_attributes=True)
        except ValidationError as error:
            entries = [
                {**entry, "loc": ("response", *entry["loc"])} for entry in entries_from(error)
            ]
            raise ResponseValidationError(entries, body=value) from None
        dumped: bytes = adapter.dump_json(
            validated,
            include=options.include,
            exclude=options.exclude,
            by_alias=options.by_alias,
            exclude_unset=options.exclude_unset,
            exclude_defaults=options.exclude_defaults,
            exclude_none=options.exclude_none,
        )
        return dumped.decode("utf-8")

    return typed


def _sse_renderer(route: APIRoute) -> Callable[[Any], bytes]:
    render = _json_renderer(route)

    def event(item: Any) -> bytes:
        if not isinstance(item, ServerSentEvent):
            return format_sse_event(data_str=render(item))
        # The event's own data is not validated as the item type: events
        # of several shapes may be mixed (FastAPI's rule).
        if item.raw_data is not None:
            data: str | None = item.raw_data
        elif item.data is None:
            data = None
        elif hasattr(item.data, "model_dump_json"):
            data = item.data.model_dump_json()
        else:
            data = _plain_json(item.data)
        return format_sse_event(
            data_str=data, event=item.event, id=item.id, retry=item.retry, comment=item.comment
        )

    return event


def _rendered(source: Any, render: Callable[[Any], bytes]) -> Any:
    """The generator's items, rendered; sync stays sync (advanced in worker threads)."""
    if isinstance(source, AsyncIterable):

        async def rendered_async() -> AsyncIterator[bytes]:
            async with contextlib.aclosing(source) as items:  # type: ignore[type-var]
                async for item in items:
                    yield render(item)

        return rendered_async()

    def rendered_sync() -> Iterator[bytes]:
        with contextlib.closing(source):
            for item in source:
                yield render(item)

    return rendered_sync()


# --- routes ------------------------------------------------------------------------------


@final
@attrs.frozen
class StreamPlan:
    """How a generator route streams: called with the generator, it builds the response.

    Attributes:
        kind: ``"jsonl"``, ``"sse"`` or ``"raw"`` (another ``StreamingResponse``).
        item_type: The declared item type (``AsyncIterable[Item]`` gives
            ``Item``), or None; ``ServerSentEvent`` is not an item type. For
            the OpenAPI document's ``itemSchema``.
        media_type: What the response's ``Content-Type`` says.
    """

    kind: Literal["jsonl", "sse", "raw"]
    item_type: Any
    media_type: str | None
    status_code: int | None
    _make: Callable[[Any, int], Response] = attrs.field(alias="make")

    def __call__(self, result: Any, ctx: RequestContext | None) -> Response:
        """The response streaming the generator ``result``, with the route's status and headers."""
        sub = ctx.sub_response if ctx is not None else None
        status = self.status_code or 200
        if sub is not None and sub.status_code:
            status = sub.status_code
        response = self._make(result, status)
        if sub is not None and sub.raw_headers:
            response.raw_headers.extend(sub.raw_headers)
        return response


def prepare_stream(route: APIRoute, default_class: type[Response] | None) -> None:
    """Makes a generator route stream its items (sets ``route.stream`` to its :class:`StreamPlan`).

    The endpoint is then called directly (calling a generator function only
    creates the generator), not in a worker thread.

    Raises:
        RouteDefinitionError: Its response class cannot stream (a plain
            ``Response``, ``HTMLResponse``...).
    """
    dependant = route.dependant
    assert dependant is not None
    cls = route.response_class or default_class
    make: Callable[[Any, int], Response]
    kind: Literal["jsonl", "sse", "raw"]
    media_type: str | None
    if cls is None or issubclass(cls, JSONResponse):
        kind, media_type = "jsonl", "application/jsonl"
        jsonl = _json_renderer(route)

        def line(item: Any) -> bytes:
            return jsonl(item).encode("utf-8") + b"\n"

        def make(source: Any, status: int) -> Response:
            return StreamingResponse(
                _rendered(source, line), status_code=status, media_type="application/jsonl"
            )

    elif issubclass(cls, EventSourceResponse):
        kind, media_type = "sse", cls.media_type
        event = _sse_renderer(route)
        sse_class = cls

        def make(source: Any, status: int) -> Response:
            return sse_class(_rendered(source, event), status_code=status)

    elif issubclass(cls, StreamingResponse):
        kind, media_type = "raw", cls.media_type
        raw_class = cls

        def make(source: Any, status: int) -> Response:
            return raw_class(content=source, status_code=status)

    else:
        msg = (
            f"path operation {dependant.qualname} is a generator, but its response class "
            f"{cls.__name__} cannot stream: leave response_class out (JSON lines), use "
            "EventSourceResponse or a StreamingResponse, or return a StreamingResponse"
        )
        raise RouteDefinitionError(msg)
    item = _item_type(route.endpoint) if kind != "raw" else None
    if isinstance(item, type) and issubclass(item, ServerSentEvent):
        item = None
    endpoint = dependant.call

    async def open_stream(**values: Any) -> Any:
        return endpoint(**values)

    route.dependant = attrs.evolve(dependant, call=open_stream, kind=CallKind.ASYNC)
    route.stream = StreamPlan(kind, item, media_type, route.status_code, make=make)

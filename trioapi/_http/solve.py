"""Per-request work: walk a route's precomputed plan and call things.

Everything that can be decided from a signature was decided in
:mod:`trioapi._params` at registration; this module only reads values from
the request, converts them with the chosen converters, calls dependencies
(sync ones in worker threads, async ones inline) and remembers the yield
dependencies whose teardown runs after the response.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any, final

import trio

from .._runtime.background import BackgroundTasks
from .convert import ConversionError, body_errors, error_entry
from .datastructures import QueryParams
from .params import REQUIRED, CallKind, Dependant, Field, Special, SubDependency
from .requests import Receive, Request, Scope
from .responses import Response

if TYPE_CHECKING:
    from .._runtime.background import BackgroundRuntime

logger = logging.getLogger("trioapi.error")

_NO_BODY: Any = object()
_MUTABLE_DEFAULTS = (list, dict, set, bytearray)


def sub_response() -> Response:
    """The ``response: Response`` parameter: headers, cookies, status to merge in."""
    response = Response.__new__(Response)
    response.status_code = 0  # 0: keep the route's status code
    response.body = b""
    response._raw_headers = []
    return response


@final
class RequestContext:
    """What one request has resolved so far: caches, teardowns, tasks."""

    __slots__ = (
        "_background",
        "_body",
        "_query",
        "_request",
        "_response",
        "body_timeout",
        "cache",
        "exits",
        "max_body_size",
        "path_params",
        "receive",
        "runtime",
        "scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        path_params: dict[str, str],
        runtime: BackgroundRuntime,
        max_body_size: int,
        body_timeout: float | None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self.runtime = runtime
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.cache: dict[Any, Any] = {}
        self.exits: list[tuple[CallKind, Any]] = []
        self._request: Request | None = None
        self._response: Response | None = None
        self._background: BackgroundTasks | None = None
        self._query: QueryParams | None = None
        self._body: Any = _NO_BODY

    @property
    def label(self) -> str:
        """``METHOD /path``, for logs and task reports."""
        return f"{self.scope['method']} {self.scope['path']}"

    @property
    def request(self) -> Request:
        if self._request is None:
            self._request = Request(
                self.scope,
                self.receive,
                path_params=self.path_params,
                max_body_size=self.max_body_size,
                body_timeout=self.body_timeout,
            )
        return self._request

    @property
    def response(self) -> Response:
        if self._response is None:
            self._response = sub_response()
        return self._response

    @property
    def sub_response(self) -> Response | None:
        return self._response

    @property
    def background(self) -> BackgroundTasks:
        if self._background is None:
            self._background = BackgroundTasks(self.runtime, self.label)
        return self._background

    @property
    def wants_background(self) -> bool:
        """The request asked for ``BackgroundTasks`` (it may add tasks up to teardown)."""
        return self._background is not None

    def take_background(self) -> list[Any]:
        return self._background._take() if self._background is not None else []

    def body_consumed(self) -> bool:
        """Nothing of the request body is left to receive (read, or there is none).

        Only then may the response watch ``receive`` for the client leaving
        without taking body messages someone else still wants.
        """
        if self._request is not None and self._request._body is not None:
            return True
        return not request_has_body(self.scope)

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope.get("query_string", b""))
        return self._query


def request_has_body(scope: Scope) -> bool:
    """The request announces a body (a non-zero length, or chunked)."""
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


async def call(dependant: Dependant, values: dict[str, Any]) -> Any:
    """Calls a plain (non-generator) endpoint or dependency."""
    if dependant.kind is CallKind.ASYNC:
        return await dependant.call(**values)
    return await trio.to_thread.run_sync(functools.partial(dependant.call, **values))


async def solve(
    dependant: Dependant, ctx: RequestContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Resolves every parameter of ``dependant`` for this request.

    Returns:
        The keyword arguments to call it with, and the validation errors
        (when there are errors, the arguments are incomplete: do not call).
    """
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for sub in dependant.dependencies:
        value, sub_errors = await resolve(sub, ctx)
        if sub_errors:
            errors.extend(sub_errors)
        elif sub.name is not None:
            values[sub.name] = value
    for name, special in dependant.specials:
        if special is Special.REQUEST:
            values[name] = ctx.request
        elif special is Special.BACKGROUND:
            values[name] = ctx.background
        else:
            values[name] = ctx.response
    for field in dependant.fields:
        _read_field(field, ctx, values, errors)
    if dependant.body:
        await _read_body(dependant, ctx, values, errors)
    return values, errors


async def resolve(sub: SubDependency, ctx: RequestContext) -> tuple[Any, list[dict[str, Any]]]:
    """Solves and calls one dependency (once per request when cached)."""
    dependant = sub.dependant
    if sub.use_cache and dependant.cache_key in ctx.cache:
        return ctx.cache[dependant.cache_key], []
    values, errors = await solve(dependant, ctx)
    if errors:
        return None, errors
    kind = dependant.kind
    if kind is CallKind.ASYNC_GEN:
        generator = dependant.call(**values)
        value = await generator.__anext__()
        ctx.exits.append((kind, generator))
    elif kind is CallKind.SYNC_GEN:
        generator = dependant.call(**values)
        value = await trio.to_thread.run_sync(next, generator)
        ctx.exits.append((kind, generator))
    else:
        value = await call(dependant, values)
    if sub.use_cache:
        ctx.cache[dependant.cache_key] = value
    return value, []


def _missing(field: Field, values: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    if field.default is REQUIRED:
        errors.append(error_entry("missing", [field.source, field.key], "Field required", None))
    else:
        default = field.default
        values[field.name] = (
            copy.deepcopy(default) if isinstance(default, _MUTABLE_DEFAULTS) else default
        )


def _convert(
    field: Field, raw: str, loc: list[str | int], errors: list[dict[str, Any]]
) -> tuple[bool, Any]:
    assert field.convert is not None
    try:
        value = field.convert(raw)
        if field.check is not None:
            field.check(value)
    except ConversionError as error:
        errors.append(error_entry(error.type, loc, error.msg, raw, error.ctx))
        return False, None
    return True, value


def _read_field(
    field: Field, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    source = field.source
    if field.is_list:
        if source == "query":
            raws = ctx.query.getlist(field.key)
        else:
            raws = ctx.request.headers.getlist(field.key)
        if not raws:
            _missing(field, values, errors)
            return
        items: list[Any] = []
        ok = True
        for index, raw in enumerate(raws):
            converted, value = _convert(field, raw, [source, field.key, index], errors)
            ok = ok and converted
            items.append(value)
        if ok:
            values[field.name] = items
        return
    if source == "path":
        raw_value: str | None = ctx.path_params.get(field.key)
    elif source == "query":
        raw_value = ctx.query.get(field.key)
    elif source == "header":
        raw_value = ctx.request.headers.get(field.key)
    else:
        raw_value = ctx.request.cookies.get(field.key)
    if raw_value is None:
        _missing(field, values, errors)
        return
    converted, value = _convert(field, raw_value, [source, field.key], errors)
    if converted:
        values[field.name] = value


def _is_json(ctx: RequestContext) -> bool:
    content_type = ctx.request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _no_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"the number {text[:20]} is too large"
        raise ValueError(msg)
    return value


async def _parsed_body(ctx: RequestContext, errors: list[dict[str, Any]]) -> Any:
    if ctx._body is _NO_BODY:
        raw = await ctx.request.body()
        if not raw:
            ctx._body = None
        else:
            try:
                ctx._body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
            except json.JSONDecodeError as error:
                errors.append(
                    error_entry(
                        "json_invalid",
                        ["body", error.pos],
                        "JSON decode error",
                        {},
                        {"error": error.msg},
                    )
                )
                ctx._body = _NO_BODY
                return _NO_BODY
            except UnicodeDecodeError:
                errors.append(
                    error_entry("json_invalid", ["body"], "JSON body is not valid UTF-8", {})
                )
                return _NO_BODY
            except RecursionError:
                errors.append(
                    error_entry("json_invalid", ["body"], "JSON body is nested too deeply", {})
                )
                return _NO_BODY
            except ValueError as error:  # NaN/Infinity, overflowing floats, huge integers
                errors.append(error_entry("json_invalid", ["body"], str(error), {}))
                return _NO_BODY
    return ctx._body


async def _read_body(
    dependant: Dependant, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    fields = dependant.body
    first = fields[0]
    if first.raw == "bytes":
        values[first.name] = await ctx.request.body()
        return
    if first.raw == "text" and not dependant.embed_body and not _is_json(ctx):
        raw = await ctx.request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(
                error_entry("string_unicode", ["body"], "Input should be valid UTF-8", None)
            )
            return
        if not text and first.default is not REQUIRED:
            values[first.name] = first.default
        else:
            values[first.name] = text
        return
    parsed = await _parsed_body(ctx, errors)
    if parsed is _NO_BODY:
        return
    if not dependant.embed_body:
        if parsed is None:
            if first.default is REQUIRED:
                # The whole body is this parameter: it is the body that is missing.
                errors.append(error_entry("missing", ["body"], "Field required", None))
            else:
                _missing(first, values, errors)
            return
        _structure(first, parsed, ["body"], values, errors)
        return
    if parsed is None:
        parsed = {}
    if not isinstance(parsed, dict):
        errors.append(
            error_entry("model_attributes_type", ["body"], "Input should be a valid object", parsed)
        )
        return
    for field in fields:
        if field.key not in parsed:
            _missing(field, values, errors)
        else:
            _structure(field, parsed[field.key], ["body", field.key], values, errors)


def _structure(
    field: Field,
    value: Any,
    loc: list[str | int],
    values: dict[str, Any],
    errors: list[dict[str, Any]],
) -> None:
    assert field.structure is not None
    try:
        result = field.structure(value)
        if field.check is not None:
            field.check(result)
    except ConversionError as error:
        errors.append(error_entry(error.type, loc, error.msg, value, error.ctx))
    except Exception as error:  # cattrs raises groups of per-field errors
        errors.extend(body_errors(error, loc, value))
    else:
        values[field.name] = result


async def teardown(ctx: RequestContext, error: BaseException | None) -> None:
    """Finishes yield dependencies, newest first, after the response was sent.

    The endpoint's exception (if any) is thrown into each generator, so a
    dependency can see it (``except``) and clean up accordingly. Errors raised
    here are logged: the response is already on its way.
    """
    while ctx.exits:
        kind, generator = ctx.exits.pop()
        try:
            if kind is CallKind.ASYNC_GEN:
                await _finish_async(generator, error)
            else:
                await trio.to_thread.run_sync(_finish_sync, generator, error)
        except trio.Cancelled:
            raise
        except BaseException as failure:
            if failure is error:
                continue  # re-raised the endpoint's error: nothing new to report
            if isinstance(failure, Exception):
                logger.exception("error in the teardown of a yield dependency (%s)", ctx.label)
            else:
                raise


async def _finish_async(generator: AsyncGenerator[Any, None], error: BaseException | None) -> None:
    try:
        if error is None:
            await generator.__anext__()
        else:
            await generator.athrow(error)
    except StopAsyncIteration:
        return
    await generator.aclose()
    msg = f"yield dependency {generator!r} yielded more than once"
    raise RuntimeError(msg)


def _finish_sync(generator: Generator[Any, None, None], error: BaseException | None) -> None:
    try:
        if error is None:
            next(generator)
        else:
            generator.throw(error)
    except StopIteration:
        return
    generator.close()
    msg = f"yield dependency {generator!r} yielded more than once"
    raise RuntimeError(msg)

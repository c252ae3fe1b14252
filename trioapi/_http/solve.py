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
from collections.abc import AsyncGenerator, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

import trio

from .._exceptions import HTTPException, TrioAPIError
from .._runtime.anyio_threads import in_worker
from .._runtime.background import BackgroundTasks
from ..telemetry._api import TELEMETRY_RECORD
from .convert import ConversionError, body_errors, error_entry, strip_optional
from .datastructures import QueryParams
from .forms import merge_form_limits
from .jsonmem import check_json_memory
from .markers import SecurityScopes
from .params import (
    REQUIRED,
    CallKind,
    Dependant,
    Field,
    ModelKey,
    Special,
    SubDependency,
    analyse,
)
from .pydantic_engine import Invalid
from .requests import Receive, Request, Scope
from .responses import Response
from .uploads import UploadFile

if TYPE_CHECKING:
    from .._runtime.background import BackgroundRuntime

logger = logging.getLogger("trioapi.error")

_NO_BODY: Any = object()
_EMPTY_BODY: Any = object()  # the request had no body bytes (not the same as JSON null)
# Defaults that are copied as they are (FastAPI deep-copies every default).
_ATOMIC_DEFAULTS = frozenset({type(None), bool, int, float, str, bytes})


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
        "body_min_rate",
        "body_timeout",
        "cache",
        "exits",
        "max_body_size",
        "overrides",
        "path_params",
        "receive",
        "runtime",
        "scope",
        "strict_content_type",
        "websocket",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        path_params: dict[str, str],
        runtime: BackgroundRuntime,
        max_body_size: int,
        body_timeout: float | None,
        body_min_rate: float | None,
        overrides: dict[Any, Any] | None = None,
    ) -> None:
        self.overrides = overrides
        self.strict_content_type = True
        # Set by the websocket session runner: what a WebSocket parameter gets.
        self.websocket: Any = None
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self.runtime = runtime
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.body_min_rate = body_min_rate
        self.cache: dict[Any, Any] = {}
        # (kind, generator, ends before the response): yield dependencies to finish.
        self.exits: list[tuple[CallKind, Any, bool]] = []
        self._request: Request | None = None
        self._response: Response | None = None
        self._background: BackgroundTasks | None = None
        self._query: QueryParams | None = None
        self._body: Any = _NO_BODY

    @property
    def label(self) -> str:
        """``METHOD /path``, for logs and task reports."""
        return f"{self.scope.get('method', 'WEBSOCKET')} {self.scope['path']}"

    @property
    def request(self) -> Request:
        if self._request is None:
            self._request = Request(
                self.scope,
                self.receive,
                path_params=self.path_params,
                max_body_size=self.max_body_size,
                body_timeout=self.body_timeout,
                body_min_rate=self.body_min_rate,
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
        request = self._request
        if request is not None and (
            getattr(request, "_body", None) is not None or request._stream_done
        ):
            return True
        return not request_has_body(self.scope)

    def _body_or_none(self) -> Any:
        """The parsed body, when one was read (for ``RequestValidationError.body``)."""
        return None if self._body is _NO_BODY or self._body is _EMPTY_BODY else self._body

    def has_files(self) -> bool:
        """The request parsed a form, whose uploads must be closed when it ends."""
        request = self._request
        return request is not None and request._form is not None

    async def close_files(self) -> None:
        if self._request is not None:
            await self._request.close()

    async def form(self) -> Any:
        """The request's form, parsed once (its files are closed when the request ends).

        Parsed with the route's ``form_limits`` (its own over its routers'
        and the app's), FastAPI's limits for the automatic parsing of
        ``Form``, ``File`` and ``UploadFile`` parameters; an endpoint's own
        ``request.form()`` gets the defaults or what it passes.
        """
        limits = getattr(self.scope.get("route"), "form_limits", None)
        inherited = self.scope.get("trioapi")
        if inherited:  # a mounted app: the parent apps' limits, under the route's
            limits = merge_form_limits(inherited.get("form_limits"), limits)
        return await (self.request.form(**limits) if limits else self.request.form())

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
    return await trio.to_thread.run_sync(in_worker(functools.partial(dependant.call, **values)))


async def solve(
    dependant: Dependant, ctx: RequestContext, scopes: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Resolves every parameter of ``dependant`` for this request.

    Args:
        scopes: The OAuth2 scopes the ``Security()`` dependencies on the way
            here require (for a ``SecurityScopes`` parameter).

    Returns:
        The keyword arguments to call it with, and the validation errors
        (when there are errors, the arguments are incomplete: do not call).
    """
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for sub in dependant.dependencies:
        value, sub_errors = await resolve(sub, ctx, scopes)
        if sub_errors:
            errors.extend(sub_errors)
        elif sub.name is not None:
            values[sub.name] = value
    for name, special in dependant.specials:
        if special is Special.REQUEST:
            values[name] = ctx.request
        elif special is Special.BACKGROUND:
            values[name] = ctx.background
        elif special is Special.SECURITY_SCOPES:
            values[name] = SecurityScopes(list(scopes))
        elif special is Special.WEBSOCKET:
            values[name] = ctx.websocket
        else:
            values[name] = ctx.response
    for field in dependant.fields:
        _read_field(field, ctx, values, errors)
    if dependant.body:
        await _read_body(dependant, ctx, values, errors)
    return values, errors


_override_plans: dict[tuple[Any, frozenset[str]], Dependant] = {}


def _overridden(dependant: Dependant, ctx: RequestContext) -> Dependant:
    overrides = ctx.overrides
    if not overrides:
        return dependant
    replacement = overrides.get(dependant.call)
    if replacement is None:
        return dependant
    key = (replacement, frozenset(ctx.path_params))
    plan = _override_plans.get(key)
    if plan is None:
        plan = analyse(replacement, key[1])
        _override_plans[key] = plan
    return plan


_GENERATORS = (CallKind.ASYNC_GEN, CallKind.SYNC_GEN)


async def solve_route(
    route: Any, ctx: RequestContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An HTTP or websocket route's endpoint values, after its routers' and app's
    ``dependencies=`` (``route.extra``), and every validation error of them all."""
    errors: list[dict[str, Any]] = []
    for sub in route.extra:
        errors.extend((await resolve(sub, ctx))[1])
    values, own_errors = await solve(route.dependant, ctx)
    errors.extend(own_errors)
    return values, errors


async def resolve(
    sub: SubDependency, ctx: RequestContext, scopes: tuple[str, ...] = ()
) -> tuple[Any, list[dict[str, Any]]]:
    """Solves and calls one dependency (once per request when cached)."""
    dependant = _overridden(sub.dependant, ctx)
    if sub.scopes:
        scopes = (*scopes, *(scope for scope in sub.scopes if scope not in scopes))
    cache_key = dependant.cache_key
    if scopes and (sub.scopes or dependant.uses_scopes):
        # Security(f, scopes=[...]) keeps f's value apart per set of scopes,
        # even when f never reads them (FastAPI's rule).
        cache_key = (cache_key, tuple(sorted(set(scopes))))
    marker = sub.marker
    # FastAPI caches per scope too: Depends(f, scope="function") and a
    # request-scoped Depends(f) are two calls, each ended at its own time.
    # "request" is what a yield dependency has anyway.
    if (
        marker is not None
        and marker.scope is not None
        and (marker.scope == "function" or dependant.kind not in _GENERATORS)
    ):
        cache_key = (cache_key, marker.scope)
    if sub.use_cache and cache_key in ctx.cache:
        return ctx.cache[cache_key], []
    values, errors = await solve(dependant, ctx, scopes)
    if errors:
        return None, errors
    kind = dependant.kind
    early = sub.marker is not None and sub.marker.scope == "function"
    if kind is CallKind.ASYNC_GEN:
        generator = dependant.call(**values)
        value = await generator.__anext__()
        ctx.exits.append((kind, generator, early))
    elif kind is CallKind.SYNC_GEN:
        generator = dependant.call(**values)
        value = await trio.to_thread.run_sync(in_worker(next), generator)
        ctx.exits.append((kind, generator, early))
    else:
        value = await call(dependant, values)
    if sub.use_cache:
        ctx.cache[cache_key] = value
    return value, []


def _missing(
    field: Field,
    values: dict[str, Any],
    errors: list[dict[str, Any]],
    loc: tuple[str | int, ...] | None = None,
) -> None:
    """The request did not send this value: its default, or a "missing" error.

    As in FastAPI, a default is used as it is, unless the marker asks for
    ``validate_default``; a ``default_factory`` is called once per request.
    """
    where = loc if loc is not None else (field.source, field.key)
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is REQUIRED:
        errors.append(error_entry("missing", where, "Field required", None))
        return
    else:
        default = field.default
        value = default if type(default) in _ATOMIC_DEFAULTS else copy.deepcopy(default)
    marker = field.marker
    if marker is not None and marker.validate_default:
        if field.validate is not None:
            _validated(field, value, where, values, errors)
            return
        if field.check is not None:
            try:
                field.check(value)
            except ConversionError as error:
                errors.append(error_entry(error.type, where, error.msg, value, error.ctx))
                return
    values[field.name] = value


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


def _validated(
    field: Field,
    raw: Any,
    loc: tuple[str | int, ...],
    values: dict[str, Any],
    errors: list[dict[str, Any]],
) -> None:
    assert field.validate is not None
    try:
        values[field.name] = field.validate(raw)
    except Invalid as invalid:
        errors.extend({**entry, "loc": (*loc, *entry["loc"])} for entry in invalid.entries)


def _convert_list(
    field: Field,
    raws: list[str],
    loc: tuple[str | int, ...],
    values: dict[str, Any],
    errors: list[dict[str, Any]],
) -> None:
    if field.validate is not None:
        _validated(field, raws, loc, values, errors)
        return
    items: list[Any] = []
    ok = True
    for index, raw in enumerate(raws):
        converted, value = _convert(field, raw, [*loc, index], errors)
        ok = ok and converted
        items.append(value)
    if ok:
        values[field.name] = field.container(items) if field.container is not None else items


def _source_items(field: Field, ctx: RequestContext) -> Any:
    if field.source == "query":
        return ctx.query
    if field.source == "header":
        return ctx.request.headers
    return ctx.request.cookies


_ABSENT: Any = object()


def form_value(found: list[Any], is_list: bool) -> Any:
    """FastAPI's reading of one form name: its list, or its last value; or ``_ABSENT``.

    Empty file inputs are dropped; a scalar ``""`` and an empty list count
    as absent (so the default applies), but ``""`` items of a list are kept.
    """
    if is_list:
        items = [item for item in found if not _empty_upload(item)]
        return items if items else _ABSENT
    if not found:
        return _ABSENT
    value = found[-1]
    return _ABSENT if value == "" or _empty_upload(value) else value


def pick_model_items(
    keys: Sequence[ModelKey],
    items: Iterable[tuple[str, Any]],
    *,
    form: bool,
    headers: bool = False,
) -> dict[str, Any]:
    """A model's input from a request's items (query, headers, cookies or a form).

    FastAPI's rules: each field takes the first of its wire names present
    (in a form, the first whose value is not empty), all of its values for
    a sequence field, else one; an absent or empty value is left out, so the
    model's default applies; every other key is passed on too, so the
    model's own ``extra`` policy decides about it. That includes the names
    of a field after the one it took (an unused ``AliasChoices`` choice).
    A scalar sent twice takes its last value, but in ``headers`` its first;
    there, a field's unconverted name (``x_token`` for ``x-token``) is not
    passed on as an extra either.
    """
    grouped: dict[str, list[Any]] = {}
    for key, value in items:
        grouped.setdefault(key, []).append(value)
    data: dict[str, Any] = {}
    processed: set[str] = set()
    for model_key in keys:
        pairs = model_key.pairs
        if form:
            for data_key, wire in pairs:
                # Names after the one used stay extras (for the model's policy).
                processed.add(wire)
                value = form_value(grouped.get(wire, []), model_key.is_list)
                if value is not _ABSENT:
                    data[data_key] = value
                    break
            continue
        data_key, wire = next((pair for pair in pairs if pair[1] in grouped), pairs[0])
        processed.add(wire)
        if headers:
            for name, sent_as in pairs:
                if name.lower() != sent_as:
                    processed.add(name.lower())
        found = grouped.get(wire, [])
        if found:
            data[data_key] = found if model_key.is_list else found[0 if headers else -1]
    for key, found in grouped.items():
        if key not in processed and key not in data:
            data[key] = found[0] if len(found) == 1 else found
    return data


def _supplied(field: Field, items: Mapping[str, Any], anything_sent: bool) -> bool:
    """An optional model counts as given when one of its own names (or, for a
    model that takes extras, anything at all) was sent (FastAPI's rule)."""
    if field.own_names.intersection(items):
        return True
    models = field.form_models or (strip_optional(field.annotation)[0],)
    extra = {getattr(model, "model_config", {}).get("extra") for model in models}
    return anything_sent and bool(extra & {"allow", "forbid"})


def _read_model(
    field: Field, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    """A parameter model: every declared key (and the rest, for ``extra``) in one dict."""
    assert field.model_keys is not None
    source = _source_items(field, ctx)
    if hasattr(source, "multi_items"):
        items: list[tuple[str, Any]] = source.multi_items()
    else:
        items = list(source.items())
    data = pick_model_items(field.model_keys, items, form=False, headers=field.source == "header")
    if strip_optional(field.annotation)[1] and not _supplied(field, source, bool(data)):
        _missing(field, values, errors, (field.source,))
        return
    before = len(errors)
    _validated(field, data, (field.source,), values, errors)
    if (
        field.source == "header"
        and len(errors) > before
        and getattr(strip_optional(field.annotation)[0], "model_config", {}).get(
            "loc_by_alias", True
        )
    ):
        # Report header names as sent (x-token), not as the model names them
        # (x_token); a declared alias keeps its spelling (X-Token), as in FastAPI.
        names = {
            data_key: wire
            for key in field.model_keys
            for data_key, wire in key.pairs
            if data_key.lower() != wire
        }
        for entry in errors[before:]:
            loc = entry["loc"]
            if len(loc) > 1 and loc[1] in names:
                entry["loc"] = (loc[0], names[loc[1]], *loc[2:])


def _read_aliased(
    field: Field, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    """A parameter with ``AliasChoices``: the first of its names that was sent."""
    items = _source_items(field, ctx)
    loc_name, wire = next((pair for pair in field.aliases if pair[1] in items), field.aliases[0])
    loc = (field.source, loc_name)
    if field.is_list and hasattr(items, "getlist"):
        raws: Any = items.getlist(wire)
        if not raws:
            _missing(field, values, errors, loc)
            return
    else:
        raws = items.get(wire)
        if raws is None:
            _missing(field, values, errors, loc)
            return
    if field.validate is not None:
        _validated(field, raws, loc, values, errors)
    elif isinstance(raws, list):
        _convert_list(field, raws, loc, values, errors)
    else:
        converted, value = _convert(field, raws, list(loc), errors)
        if converted:
            values[field.name] = value


def _read_field(
    field: Field, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    source = field.source
    if field.model_keys is not None:
        _read_model(field, ctx, values, errors)
        return
    if field.aliases:
        _read_aliased(field, ctx, values, errors)
        return
    if field.is_list:
        if source == "query":
            raws = ctx.query.getlist(field.key)
        else:
            raws = ctx.request.headers.getlist(field.key)
        if not raws:
            _missing(field, values, errors)
            return
        _convert_list(field, raws, (source, field.key), values, errors)
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
    if field.validate is not None:
        _validated(field, raw_value, (source, field.key), values, errors)
        return
    converted, value = _convert(field, raw_value, [source, field.key], errors)
    if converted:
        values[field.name] = value


def _is_json(ctx: RequestContext) -> bool:
    """The body is JSON: ``application/json`` or ``application/*+json``.

    Without a content type, only when the route is not strict about it
    (FastAPI's ``strict_content_type``, on by default since 0.163): a
    cross-site form post cannot send JSON unannounced.
    """
    content_type = ctx.request.headers.get("content-type")
    if not content_type:
        return not ctx.strict_content_type
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _no_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"the number {text[:20]} is too large"
        raise ValueError(msg)
    return value


# Built once: json.loads with keyword arguments builds a decoder per call.
_JSON_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def _decode_json(raw: bytes) -> Any:
    # json.loads's own detection of UTF-16/32 bodies, then the strict decoder.
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    return _JSON_DECODER.decode(text)


def _check_json_memory(ctx: RequestContext, raw: bytes) -> None:
    # Priced for the models the route's endpoint and dependencies validate into.
    route = ctx.scope.get("route")
    dependant = getattr(route, "dependant", None)
    models = dependant is None or dependant.json_models
    check_json_memory(raw, route, ctx.scope.get("app"), models)


async def _parsed_body(ctx: RequestContext, errors: list[dict[str, Any]]) -> Any:
    if ctx._body is _NO_BODY:
        raw = await ctx.request.body()
        if not raw:
            ctx._body = _EMPTY_BODY
        elif not _is_json(ctx):
            ctx._body = raw  # not JSON: validated as the bytes it is (FastAPI's rule)
        else:
            _check_json_memory(ctx, raw)
            try:
                ctx._body = _decode_json(raw)
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
            except Exception as error:
                raise HTTPException(400, "There was an error parsing the body") from error
    return ctx._body


async def _read_body(
    dependant: Dependant, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    fields = dependant.body
    if dependant.form_body:
        await _read_form(dependant, ctx, values, errors)
        return
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
        if parsed is _EMPTY_BODY:
            # The whole body is this parameter: it is the body that is missing.
            _missing(first, values, errors, ("body",))
            return
        if parsed is None and first.validate is None and first.default is not REQUIRED:
            _missing(first, values, errors, ("body",))  # cattrs: null means "not given"
            return
        _structure(first, parsed, ["body"], values, errors)
        return
    if parsed is _EMPTY_BODY or isinstance(parsed, bytes):
        parsed = {}
    if not isinstance(parsed, dict):
        # FastAPI's answer to a JSON array, number or null where fields are
        # read by name: each of them is missing, defaults or not (no body at
        # all is another matter: then the defaults apply).
        errors.extend(
            error_entry("missing", ["body", field.key], "Field required", None) for field in fields
        )
        return
    for field in fields:
        pairs = field.aliases or ((field.key, field.key),)
        loc_name, wire = next((pair for pair in pairs if pair[1] in parsed), pairs[0])
        if wire not in parsed:
            _missing(field, values, errors, ("body", loc_name))
        else:
            _structure(field, parsed[wire], ["body", loc_name], values, errors)


def _structure(
    field: Field,
    value: Any,
    loc: list[str | int],
    values: dict[str, Any],
    errors: list[dict[str, Any]],
) -> None:
    if field.validate is not None:
        _validated(field, value, tuple(loc), values, errors)
        return
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


def _empty_upload(value: Any) -> bool:
    # Browsers send an empty file part when no file was chosen.
    return isinstance(value, UploadFile) and not value.filename and not value.size


async def _read_form(
    dependant: Dependant, ctx: RequestContext, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    form = await ctx.form()
    for field in dependant.body:
        if field.form_models:
            await _read_form_model(field, form, values, errors)
            continue
        pairs = field.aliases or ((field.key, field.key),)
        loc: tuple[str | int, ...] = ("body", pairs[0][0])
        value: Any = _ABSENT
        for loc_name, wire in pairs:
            value = form_value(form.getlist(wire), field.is_list or field.upload == "files")
            if value is not _ABSENT:
                loc = ("body", loc_name)
                break
        if value is _ABSENT:
            _missing(field, values, errors, loc)
            continue
        found = value if isinstance(value, list) else [value]
        if field.upload in ("file", "files"):
            # Each value must be a file; a list reports the ones that are not by index.
            listed = field.upload == "files"
            wrong = [
                (index, item)
                for index, item in enumerate(found)
                if not isinstance(item, UploadFile)
            ]
            for index, item in wrong:
                message = f"Expected UploadFile, received: {type(item)}"
                errors.append(
                    error_entry(
                        "value_error",
                        (*loc, index) if listed else loc,
                        f"Value error, {message}",
                        item,
                        {"error": ValueError(message)},  # pydantic's ctx for a ValueError
                    )
                )
            if not wrong:
                values[field.name] = found if listed else found[-1]
            continue
        raws: list[Any] = [await _file_bytes(item) for item in found]
        if field.is_list:
            if field.validate is None and any(not isinstance(raw, str) for raw in raws):
                values[field.name] = raws
                continue
            _convert_list(field, raws, loc, values, errors)
            continue
        raw = raws[-1]
        if field.validate is not None:
            _validated(field, raw, loc, values, errors)
        elif isinstance(raw, bytes):
            values[field.name] = raw
        else:
            converted, value = _convert(field, raw, list(loc), errors)
            if converted:
                values[field.name] = value


async def _file_bytes(item: Any) -> Any:
    # A bytes parameter reads the upload without moving it for anyone else.
    if not isinstance(item, UploadFile):
        return item
    position = item.file.tell()
    try:
        return await item.read()
    finally:
        await item.seek(position)


async def _read_form_model(
    field: Field, form: Any, values: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    """A form parameter read as a model (or a union of models): its fields, by name."""
    assert field.model_keys is not None
    items = form.multi_items()
    if len(field.form_models) == 1:
        data = pick_model_items(field.model_keys, items, form=True)
    else:
        # Each branch of the union picks its own fields (params._form_branch).
        grouped: dict[str, Any] = {}
        for key, value in items:
            if key in grouped:
                previous = grouped[key]
                grouped[key] = (
                    [*previous, value] if isinstance(previous, list) else [previous, value]
                )
            else:
                grouped[key] = value
        data = grouped
    optional = strip_optional(field.annotation)[1]
    if optional and not _supplied(field, form, bool(len(form))):
        _missing(field, values, errors, ("body",))
        return
    _validated(field, data, ("body",), values, errors)


async def teardown(
    ctx: RequestContext, error: Exception | None, *, only_early: bool = False
) -> Exception | None:
    """Finishes yield dependencies, newest first.

    The endpoint's exception (if any) is thrown into each generator, so a
    dependency can see it (``except``) and clean up accordingly; an
    exception a generator raises instead goes on to the older ones, as
    through a stack of context managers.

    Args:
        error: The exception the endpoint raised, or None.
        only_early: Finish only the ``Depends(scope="function")`` ones (before
            the response is sent); the others wait for the response.

    Returns:
        The exception that replaced ``error`` (a dependency turned an
        ``OwnerError`` into an ``HTTPException``, say), or None. With
        ``only_early``, a dependency failing after a clean endpoint is
        returned too: no answer exists yet, so that error is the one answered
        (FastAPI answers an ``HTTPException(503)`` raised there with 503).
        When the response is on its way, a failure is returned as well: the
        caller raises it to the server once the request's tasks are handed
        over, as FastAPI lets it reach the server.
    """
    current: Exception | None = error
    swallowed_by: Any = None
    kept: list[tuple[CallKind, Any, bool]] = []
    while ctx.exits:
        entry = ctx.exits.pop()
        kind, generator, early = entry
        if only_early and not early:
            kept.append(entry)
            continue
        try:
            await _finish(kind, generator, current)
            if current is not None:
                # It caught the error and did not raise it again: as through a
                # stack of context managers, the error is gone, and with it the
                # only thing there was to answer.
                swallowed_by, current = generator, None
        except BaseException as failure:
            if isinstance(failure, trio.Cancelled) or not isinstance(failure, Exception):
                # Interrupted on the way (the request cancelled, say): the older
                # ones are finished with the interruption, as if it had come
                # before the teardown, and it goes on.
                ctx.exits.extend(reversed(kept))
                await teardown_interrupted(ctx, failure)
                raise
            if failure is current:
                continue  # re-raised the error it was given: nothing new
            if error is None and not only_early:
                # The response is on its way: nothing can answer this any more.
                # It goes on through the older ones, as through an exit stack,
                # and then to the server (FastAPI's rule), once the tasks are
                # handed over; the server logs it, a test client raises it.
                record = ctx.scope.get(TELEMETRY_RECORD)
                if record is not None:
                    record.note(failure)  # telemetry=: an error no handler can take
            current = failure
    ctx.exits.extend(reversed(kept))
    if error is not None and current is None:
        return _swallowed(error, swallowed_by)
    return current if current is not error else None


def _swallowed(error: Exception, generator: Any) -> TrioAPIError:
    # FastAPI raises its FastAPIError here ("Response not awaited..."): the
    # endpoint failed, and a yield dependency's except block ate the error.
    name = getattr(generator, "__qualname__", None) or repr(generator)
    failure = TrioAPIError(
        f"the endpoint raised {type(error).__name__}: {error}, and the yield dependency "
        f"{name} caught it without raising it again (a bare except, or except Exception "
        "without raise), so there is no response to send. When application code is "
        "raising an exception and a dependency with yield catches it, the dependency's "
        "except block must raise it again (or raise another)."
    )
    failure.__cause__ = error
    return failure


async def teardown_interrupted(ctx: RequestContext, interruption: BaseException) -> None:
    """Finishes the yield dependencies of a request that was interrupted, newest first.

    The request call is being cancelled (or a ``BaseException`` such as
    ``KeyboardInterrupt`` goes through it): each generator gets
    ``interruption`` thrown in, so ``with`` blocks and ``finally`` clauses run
    now, in order, rather than whenever the generator is collected. A sync
    one finishes in a worker thread shielded from the cancellation, as
    FastAPI's exit stack does; an async one in the request's task, under its
    cancelled scope (its cleanup shields what it must await). What they
    raise is logged: ``interruption`` goes on once all of them have run.
    """
    while ctx.exits:
        kind, generator, _ = ctx.exits.pop()
        try:
            await _finish(kind, generator, interruption, shielded=True)
        except BaseException as failure:
            if failure is interruption or isinstance(failure, trio.Cancelled):
                continue
            logger.exception(
                "error in the teardown of a yield dependency of an interrupted request (%s)",
                ctx.label,
            )


async def _finish(
    kind: CallKind, generator: Any, error: BaseException | None, *, shielded: bool = False
) -> None:
    """Ends one yield dependency, ``error`` thrown in: an async one in this task,
    a sync one in a worker thread (``shielded``: whatever cancels the caller)."""
    if kind is CallKind.ASYNC_GEN:
        await _finish_async(generator, error)
        return
    finishing = trio.to_thread.run_sync(in_worker(_finish_sync), generator, error)
    if shielded:
        with trio.CancelScope(shield=True):
            await finishing
    else:
        await finishing


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

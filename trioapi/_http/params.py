"""Parameter markers and signature analysis (no I/O).

A path operation's or dependency's signature is read once, at registration,
into a :class:`Dependant`: which parameter comes from the path, the query, a
header, a cookie, the body or another dependency, with its converter already
chosen. Per request, :mod:`trioapi._solve` only walks that plan. Mistakes in
a signature raise :class:`RouteDefinitionError` at import time, naming the
function and the parameter.

Where a parameter comes from, in order:

1. ``Annotated[T, marker]`` or ``= marker`` (``Query()``, ``Path()``,
   ``Header()``, ``Cookie()``, ``Body()``, ``Depends()``) says so explicitly;
2. ``Request``, ``Response`` and ``BackgroundTasks`` annotations are injected;
3. a name that appears in the path template is a path parameter;
4. a scalar (``int``, ``str``, ``bytes``, ``UUID``, an enum...) or a list of
   scalars is a query parameter (as in FastAPI; read a raw body with
   ``data: bytes = Body()``);
5. anything else (attrs classes, ``dict``, ``list[Model]``) is the body.
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, final, get_args, get_origin

import attrs

from .._exceptions import RouteDefinitionError
from .convert import (
    BodyStructurer,
    Constraints,
    StrConverter,
    body_structurer,
    is_scalar,
    sequence_item,
    string_converter,
    strip_optional,
    type_name,
)


@final
class _Required(enum.Enum):
    REQUIRED = "REQUIRED"

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required.REQUIRED
"""Marks a parameter without a default: the request must supply it."""


@attrs.frozen
class ParamMarker:
    """Common base of ``Query``, ``Path``, ``Header``, ``Cookie`` and ``Body``.

    Args:
        default: The value used when the request does not supply one; leave it
            out to make the parameter required.
        alias: The name on the wire, when it differs from the Python name.
        description: Free text for documentation.
        gt, ge, lt, le: Numeric bounds, checked after conversion.
        min_length, max_length: Length bounds for strings and lists.
        pattern: A regular expression a string must match (``re.search``).
    """

    default: Any = REQUIRED
    alias: str | None = attrs.field(default=None, kw_only=True)
    description: str | None = attrs.field(default=None, kw_only=True)
    gt: float | None = attrs.field(default=None, kw_only=True)
    ge: float | None = attrs.field(default=None, kw_only=True)
    lt: float | None = attrs.field(default=None, kw_only=True)
    le: float | None = attrs.field(default=None, kw_only=True)
    min_length: int | None = attrs.field(default=None, kw_only=True)
    max_length: int | None = attrs.field(default=None, kw_only=True)
    pattern: str | None = attrs.field(default=None, kw_only=True)

    source: typing.ClassVar[str] = ""

    def constraints(self) -> Constraints:
        return Constraints(
            gt=self.gt,
            ge=self.ge,
            lt=self.lt,
            le=self.le,
            min_length=self.min_length,
            max_length=self.max_length,
            pattern=self.pattern,
        )


@final
@attrs.frozen
class Query(ParamMarker):
    """Reads the parameter from the query string (``?name=value``)."""

    source: typing.ClassVar[str] = "query"


@final
@attrs.frozen
class Path(ParamMarker):
    """Reads the parameter from the path template (``/items/{item_id}``)."""

    source: typing.ClassVar[str] = "path"


@final
@attrs.frozen
class Header(ParamMarker):
    """Reads the parameter from a request header.

    Args:
        convert_underscores: ``user_agent`` reads the ``user-agent`` header
            (the default); set False to use the name as written.
    """

    convert_underscores: bool = attrs.field(default=True, kw_only=True)
    source: typing.ClassVar[str] = "header"


@final
@attrs.frozen
class Cookie(ParamMarker):
    """Reads the parameter from a request cookie."""

    source: typing.ClassVar[str] = "cookie"


@final
@attrs.frozen
class Body(ParamMarker):
    """Reads the parameter from the request body.

    Args:
        embed: Expect ``{"<name>": value}`` instead of the bare value, even
            when this is the only body parameter.
    """

    embed: bool = attrs.field(default=False, kw_only=True)
    source: typing.ClassVar[str] = "body"


@final
@attrs.frozen
class Depends:
    """Declares a dependency: ``db: Annotated[DB, Depends(get_db)]``.

    Args:
        dependency: The callable (function, class, generator) to call; its own
            parameters are resolved the same way. Leave it out to use the
            annotated class itself.
        use_cache: Within one request, call the dependency once and share the
            value with everyone who asks for it (the default).
    """

    dependency: Callable[..., Any] | None = None
    use_cache: bool = attrs.field(default=True, kw_only=True)


class CallKind(enum.Enum):
    ASYNC = "async"
    SYNC = "sync"
    ASYNC_GEN = "async generator"
    SYNC_GEN = "sync generator"


class Special(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"
    BACKGROUND = "background"


@attrs.frozen
class Field:
    """How to get one parameter's value from the request."""

    name: str
    source: str
    key: str
    default: Any
    convert: StrConverter | None = None
    structure: BodyStructurer | None = None
    is_list: bool = False
    raw: str | None = None  # body only: "bytes" or "text" read without JSON
    check: Callable[[Any], None] | None = None
    annotation: Any = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@attrs.frozen
class SubDependency:
    name: str | None
    dependant: Dependant
    use_cache: bool


@attrs.frozen(eq=False)
class Dependant:
    """The analysed signature of one path operation or dependency."""

    call: Callable[..., Any]
    qualname: str
    kind: CallKind
    fields: tuple[Field, ...] = ()
    body: tuple[Field, ...] = ()
    embed_body: bool = False
    dependencies: tuple[SubDependency, ...] = ()
    specials: tuple[tuple[str, Special], ...] = ()
    cache_key: Any = None

    @functools.cached_property
    def needs_body(self) -> bool:
        return bool(self.body) or any(sub.dependant.needs_body for sub in self.dependencies)

    @functools.cached_property
    def is_plain(self) -> bool:
        """No parameters at all: call it with no arguments."""
        return not (self.fields or self.body or self.dependencies or self.specials)

    def all_fields(self) -> list[Field]:
        """Every field of this dependant and its sub-dependencies, for docs and checks."""
        found = [*self.fields, *self.body]
        for sub in self.dependencies:
            found.extend(sub.dependant.all_fields())
        return found


def call_kind(call: Callable[..., Any]) -> CallKind:
    target = _unwrap(call)
    if inspect.isasyncgenfunction(target):
        return CallKind.ASYNC_GEN
    if inspect.isgeneratorfunction(target):
        return CallKind.SYNC_GEN
    if inspect.iscoroutinefunction(target):
        return CallKind.ASYNC
    if not inspect.isroutine(target) and not inspect.isclass(target):
        method = getattr(target, "__call__", None)  # noqa: B004 - instances with __call__
        if method is not None:
            return call_kind(method)
    return CallKind.SYNC


def _unwrap(call: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(call, functools.partial):
        call = call.func
    unwrapped: Callable[..., Any] = inspect.unwrap(call)
    return unwrapped


def _hints(call: Callable[..., Any], where: str) -> dict[str, Any]:
    target: Any = _unwrap(call)
    if inspect.isclass(target):
        target = target.__init__
    elif not inspect.isroutine(target) and hasattr(target, "__call__"):  # noqa: B004
        target = target.__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError) as error:
        msg = (
            f"cannot read the annotations of {where}: {error}. Define every type the "
            "signature names at module level (or import it) before the route is registered."
        )
        raise RouteDefinitionError(msg) from error


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if get_origin(annotation) is Annotated:
        args = get_args(annotation)
        return args[0], list(args[1:])
    return annotation, []


def describe(call: Callable[..., Any]) -> str:
    target = _unwrap(call)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def _specials() -> dict[type[Any], Special]:
    # Imported here: these modules import nothing from this one, but keeping
    # the import local keeps analysis importable on its own for tests.
    from .._runtime.background import BackgroundTasks
    from .requests import Request
    from .responses import Response

    return {
        Request: Special.REQUEST,
        Response: Special.RESPONSE,
        BackgroundTasks: Special.BACKGROUND,
    }


def _special_for(annotation: Any) -> Special | None:
    if not isinstance(annotation, type):
        return None
    for cls, special in _specials().items():
        if issubclass(annotation, cls):
            return special
    return None


def analyse(
    call: Callable[..., Any],
    path_params: frozenset[str] = frozenset(),
    *,
    _seen: tuple[Callable[..., Any], ...] = (),
) -> Dependant:
    """Reads ``call``'s signature into a :class:`Dependant` plan.

    Args:
        call: A path operation function or a dependency.
        path_params: The names the route's path template defines.

    Raises:
        RouteDefinitionError: The signature cannot be served as written.
    """
    where = describe(call)
    if call in _seen:
        chain = " -> ".join(describe(c) for c in (*_seen, call))
        msg = f"dependency cycle: {chain}"
        raise RouteDefinitionError(msg)
    try:
        signature = inspect.signature(call)
    except (TypeError, ValueError) as error:
        msg = f"{where} cannot be used as a path operation or dependency: {error}"
        raise RouteDefinitionError(msg) from error
    hints = _hints(call, where)

    fields: list[Field] = []
    body: list[Field] = []
    deps: list[SubDependency] = []
    specials: list[tuple[str, Special]] = []
    embed = False

    for name, parameter in signature.parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            msg = (
                f"{where}: parameter {name!r} is positional-only; trioapi passes values by "
                "name. Remove the '/' from the signature."
            )
            raise RouteDefinitionError(msg)
        annotation, extras = _split_annotated(hints.get(name, Any))
        markers = [extra for extra in extras if isinstance(extra, ParamMarker | Depends)]
        default = parameter.default
        if isinstance(default, ParamMarker | Depends):
            markers.append(default)
            default = inspect.Parameter.empty
        if len(markers) > 1:
            msg = f"{where}: parameter {name!r} has more than one marker ({markers!r}); keep one."
            raise RouteDefinitionError(msg)
        marker = markers[0] if markers else None

        if isinstance(marker, Depends):
            dependency = marker.dependency or annotation
            if not callable(dependency) or dependency is Any:
                msg = f"{where}: Depends() on {name!r} needs a callable or a class annotation."
                raise RouteDefinitionError(msg)
            sub = analyse(dependency, path_params, _seen=(*_seen, call))
            deps.append(SubDependency(name, sub, marker.use_cache))
            continue

        special = _special_for(annotation) if marker is None else None
        if special is not None:
            specials.append((name, special))
            continue

        if marker is not None and marker.default is not REQUIRED:
            if default is not inspect.Parameter.empty:
                msg = (
                    f"{where}: parameter {name!r} sets a default both in its marker and after "
                    "'='; keep the one after '='."
                )
                raise RouteDefinitionError(msg)
            default = marker.default
        if default is inspect.Parameter.empty:
            default = REQUIRED

        source = (
            marker.source if marker is not None else _infer_source(name, annotation, path_params)
        )
        if (
            source == "path"
            and name not in path_params
            and (marker is None or marker.alias is None)
        ):
            msg = f"{where}: Path parameter {name!r} does not appear in the route's path template."
            raise RouteDefinitionError(msg)
        field = _build_field(where, name, annotation, default, source, marker)
        if source == "body":
            body.append(field)
            if isinstance(marker, Body) and marker.embed:
                embed = True
        else:
            fields.append(field)

    if len(body) > 1:
        embed = True
        for field in body:
            if field.raw == "bytes":
                msg = f"{where}: a raw bytes body ({field.name!r}) must be the only body parameter."
                raise RouteDefinitionError(msg)

    return Dependant(
        call=call,
        qualname=where,
        kind=call_kind(call),
        fields=tuple(fields),
        body=tuple(body),
        embed_body=embed,
        dependencies=tuple(deps),
        specials=tuple(specials),
        cache_key=call,
    )


def _infer_source(name: str, annotation: Any, path_params: frozenset[str]) -> str:
    if name in path_params:
        return "path"
    inner, _ = strip_optional(annotation)
    if is_scalar(inner):
        return "query"
    item = sequence_item(inner)
    if item is not None and is_scalar(item):
        return "query"
    return "body"


def _build_field(
    where: str,
    name: str,
    annotation: Any,
    default: Any,
    source: str,
    marker: ParamMarker | None,
) -> Field:
    alias = marker.alias if marker is not None else None
    if source == "header":
        convert_underscores = marker.convert_underscores if isinstance(marker, Header) else True
        key = (alias or (name.replace("_", "-") if convert_underscores else name)).lower()
    else:
        key = alias or name
    constraints = marker.constraints() if marker is not None else Constraints()
    check = constraints.checker()
    inner, _ = strip_optional(annotation)

    if source == "body":
        if inner is bytes:
            return Field(
                name, source, key, default, raw="bytes", check=check, annotation=annotation
            )
        if inner is str:
            return Field(
                name,
                source,
                key,
                default,
                raw="text",
                check=check,
                structure=body_structurer(annotation),
                annotation=annotation,
            )
        try:
            structure = body_structurer(annotation)
        except Exception as error:
            msg = (
                f"{where}: cannot read body parameter {name!r} as {type_name(annotation)}: {error}"
            )
            raise RouteDefinitionError(msg) from error
        return Field(
            name, source, key, default, structure=structure, check=check, annotation=annotation
        )

    item = sequence_item(inner)
    is_list = item is not None and source in ("query", "header")
    target = item if is_list else inner
    try:
        convert = string_converter(target)
    except TypeError:
        msg = (
            f"{where}: parameter {name!r} is read from the {source}, where values are "
            f"strings, but {type_name(annotation)} cannot be built from a string. Use a "
            "scalar type (str, int, float, bool, UUID, an Enum...) or read it from the body."
        )
        raise RouteDefinitionError(msg) from None
    return Field(
        name,
        source,
        key,
        default,
        convert=convert,
        is_list=is_list,
        check=check,
        annotation=annotation,
    )

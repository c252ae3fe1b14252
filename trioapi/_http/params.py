"""Signature analysis (no I/O).

A path operation's or dependency's signature is read once, at registration,
into a :class:`Dependant`: which parameter comes from the path, the query, a
header, a cookie, the body, a form or another dependency, with its validator
already chosen. Per request, :mod:`trioapi._http.solve` only walks that plan.
Mistakes in a signature raise :class:`RouteDefinitionError` at import time,
naming the function and the parameter. The markers themselves live in
:mod:`trioapi._http.markers`.

Where a parameter comes from, in order (FastAPI's rules):

1. ``Annotated[T, marker]`` or ``= marker`` (``Query()``, ``Path()``,
   ``Header()``, ``Cookie()``, ``Body()``, ``Form()``, ``File()``,
   ``Depends()``, ``Security()``) says so explicitly; with several markers
   in one ``Annotated``, the last one decides and the constraints of all apply;
2. ``Request``, ``Response``, ``BackgroundTasks`` and ``SecurityScopes``
   annotations are injected;
3. a name that appears in the path template is a path parameter;
4. ``UploadFile`` (or a list of them) is a file of a multipart form;
5. a scalar (``int``, ``str``, ``bytes``, ``UUID``, an enum...) is a query
   parameter (a list of scalars is one only when marked ``Query()``);
6. anything else (models, ``dict``, ``list[int]``) is the body.

Each value then goes through one of two engines, chosen here: trioapi's own
converters and cattrs (always for attrs classes, and for everything when
pydantic is not installed), or pydantic (see
:mod:`trioapi._http.pydantic_engine`).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, get_args, get_origin

import attrs

from .._exceptions import RouteDefinitionError
from . import pydantic_engine
from .markers import (
    MARKER_TYPES,
    REQUIRED,
    Body,
    Cookie,
    Depends,
    FieldMarker,
    Form,
    Header,
    Path,
    Query,
    Security,
    SecurityScopes,
)
from .pydantic_engine import Invalid

__all__ = ["REQUIRED", "Body", "Cookie", "Depends", "Form", "Header", "Path", "Query", "Security"]
from .convert import (
    BodyStructurer,
    Constraints,
    ConversionError,
    StrConverter,
    body_structurer,
    error_entry,
    is_scalar,
    sequence_item,
    string_converter,
    strip_optional,
    type_name,
)


class CallKind(enum.Enum):
    ASYNC = "async"
    SYNC = "sync"
    ASYNC_GEN = "async generator"
    SYNC_GEN = "sync generator"


class Special(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"
    BACKGROUND = "background"
    SECURITY_SCOPES = "security scopes"
    WEBSOCKET = "websocket"


@attrs.frozen
class Field:
    """How to get one parameter's value from the request.

    Exactly one way to turn the raw value into the argument is set:
    ``convert`` (a string converter, then ``check``), ``structure`` (cattrs,
    then ``check``), ``validate`` (pydantic; raises ``Invalid``) or ``raw``
    (the body as bytes or text).
    """

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
    validate: Callable[[Any], Any] | None = None
    default_factory: Callable[[], Any] | None = None
    container: Any = None  # set/frozenset/tuple: the list of items becomes one
    model_keys: tuple[ModelKey, ...] | None = None  # parameter and form models
    form_models: tuple[Any, ...] = ()  # form parameters read as pydantic models
    own_names: frozenset[str] = frozenset()  # parameter and form models: their wire names
    aliases: tuple[tuple[str, str], ...] = ()  # (loc name, wire name): AliasChoices
    metadata: tuple[Any, ...] = ()  # the Annotated extras that are not markers (for docs)
    upload: str | None = None  # form fields: "file", "files", "bytes", "bytes_list"
    marker: FieldMarker | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.default_factory is None


@attrs.frozen
class SubDependency:
    name: str | None
    dependant: Dependant
    use_cache: bool
    marker: Depends | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.marker.scopes) if isinstance(self.marker, Security) else ()


@attrs.frozen(eq=False)
class Dependant:
    """The analysed signature of one path operation or dependency."""

    call: Callable[..., Any]
    qualname: str
    kind: CallKind
    fields: tuple[Field, ...] = ()
    body: tuple[Field, ...] = ()
    embed_body: bool = False
    form_body: bool = False
    dependencies: tuple[SubDependency, ...] = ()
    specials: tuple[tuple[str, Special], ...] = ()
    cache_key: Any = None

    @functools.cached_property
    def needs_body(self) -> bool:
        return bool(self.body) or any(sub.dependant.needs_body for sub in self.dependencies)

    @functools.cached_property
    def uses_scopes(self) -> bool:
        """The OAuth2 scopes on the way here change what this dependency returns.

        Then (as in FastAPI) its cached value is kept apart per set of scopes;
        otherwise one call serves every ``Security()`` that asks for it.
        """
        from ..security.base import SecurityBase

        if any(special is Special.SECURITY_SCOPES for _, special in self.specials):
            return True
        if isinstance(inspect.unwrap(_impartial(self.call)), SecurityBase):
            return True
        return any(sub.scopes or sub.dependant.uses_scopes for sub in self.dependencies)

    @functools.cached_property
    def json_models(self) -> bool:
        """A JSON body read here or below is validated into models (see ``jsonmem.py``)."""
        from .jsonmem import builds_models

        return any(builds_models(field.annotation) for field in self.body) or any(
            sub.dependant.json_models for sub in self.dependencies
        )

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


def _impartial(call: Any) -> Any:
    while isinstance(call, functools.partial):
        call = call.func
    return call


def _kind_candidates(call: Callable[..., Any]) -> list[Any]:
    """What to ask "is it async?": the callable itself (without partials) and what
    ``functools.wraps`` wrapped, then, for an instance, its ``__call__`` both ways.

    FastAPI asks the same questions, so a sync wrapper around an async
    function (or the other way round) is called the way FastAPI calls it.
    """
    direct = _impartial(call)
    unwrapped = inspect.unwrap(direct)
    candidates = [direct, unwrapped]
    if inspect.isclass(unwrapped):
        return candidates
    for owner in (direct, unwrapped):
        method = getattr(owner, "__call__", None)  # noqa: B004 - instances with __call__
        if method is not None and not inspect.isroutine(owner):
            candidates.extend((_impartial(method), inspect.unwrap(_impartial(method))))
    return candidates


def call_kind(call: Callable[..., Any]) -> CallKind:
    candidates = _kind_candidates(call)
    # An async generator first: an async wrapper around a sync generator (one
    # that iterates it in a thread) is called as what it is, as in FastAPI.
    if any(inspect.isasyncgenfunction(candidate) for candidate in candidates):
        return CallKind.ASYNC_GEN
    if any(inspect.isgeneratorfunction(candidate) for candidate in candidates):
        return CallKind.SYNC_GEN
    if any(inspect.iscoroutinefunction(candidate) for candidate in candidates):
        return CallKind.ASYNC
    return CallKind.SYNC


def _unwrap(call: Callable[..., Any]) -> Callable[..., Any]:
    unwrapped: Callable[..., Any] = inspect.unwrap(_impartial(call))
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
        # Only the parameters matter here: a return annotation that names a
        # type imported under TYPE_CHECKING (AsyncGenerator) is left out.
        annotations = getattr(target, "__annotations__", None)
        if isinstance(annotations, dict) and "return" in annotations:
            parameters_only = types.SimpleNamespace(
                __annotations__={k: v for k, v in annotations.items() if k != "return"},
                __globals__=getattr(target, "__globals__", {}),
            )
            try:
                return typing.get_type_hints(parameters_only, include_extras=True)
            except (NameError, TypeError):
                pass
        msg = (
            f"cannot read the annotations of {where}: {error}. Define every type the "
            "signature names at module level (or import it) before the route is registered."
        )
        raise RouteDefinitionError(msg) from error


def _unalias(annotation: Any) -> Any:
    """A ``type X = ...`` alias (PEP 695, or typing_extensions' TypeAliasType) is what it names."""
    while type(annotation).__name__ == "TypeAliasType" and not getattr(
        annotation, "__type_params__", ()
    ):
        annotation = annotation.__value__
    return annotation


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
    from .websockets import WebSocket

    return {
        WebSocket: Special.WEBSOCKET,
        Request: Special.REQUEST,
        Response: Special.RESPONSE,
        BackgroundTasks: Special.BACKGROUND,
        SecurityScopes: Special.SECURITY_SCOPES,
    }


def _special_for(annotation: Any) -> Special | None:
    if not isinstance(annotation, type):
        return None
    for cls, special in _specials().items():
        if issubclass(annotation, cls):
            return special
    return None


def return_annotation(call: Callable[..., Any]) -> Any:
    """The endpoint's return annotation, or None when it has none."""
    target: Any = _unwrap(call)
    if not inspect.isroutine(target) and hasattr(target, "__call__"):  # noqa: B004
        target = target.__call__
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError):
        return None
    annotation = hints.get("return")
    return None if annotation is type(None) else annotation


def _merge(markers: list[FieldMarker]) -> FieldMarker:
    """Several markers in one ``Annotated``: the last decides, constraints add up."""
    last = markers[-1]
    if len(markers) == 1:
        return last
    changes: dict[str, Any] = {}
    for earlier in markers[:-1]:
        for field in attrs.fields(type(earlier)):
            name = field.name
            if name in ("default", "extra") or not hasattr(last, name):
                continue
            value = getattr(earlier, name)
            if value is not None and getattr(last, name) is None and name not in changes:
                changes[name] = value
    return attrs.evolve(last, **changes) if changes else last


def analyse(
    call: Callable[..., Any],
    path_params: frozenset[str] = frozenset(),
    *,
    scope: str | None = None,
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
        full_annotation = _unalias(hints.get(name, Any))
        annotation, extras = _split_annotated(full_annotation)
        metadata = tuple(extra for extra in extras if not isinstance(extra, MARKER_TYPES))
        depends_markers = [extra for extra in extras if isinstance(extra, Depends)]
        field_markers = [extra for extra in extras if isinstance(extra, FieldMarker)]
        default = parameter.default
        for extra in field_markers:
            if extra.default is not REQUIRED:
                # FastAPI's rule and words: in Annotated, the default goes after '='.
                msg = (
                    f"{where}: `{type(extra).__name__}` default value cannot be set in "
                    f"`Annotated` for {name!r}. Set the default value with `=` instead."
                )
                raise RouteDefinitionError(msg)
        if isinstance(default, MARKER_TYPES):
            if depends_markers or field_markers:
                if isinstance(default, Depends) and depends_markers:
                    said = "`Depends` in `Annotated` and default value"
                elif isinstance(default, Depends):
                    said = "a TrioAPI annotation in `Annotated` and `Depends` as a default value"
                else:
                    said = "TrioAPI annotations in `Annotated` and default value"
                msg = f"{where}: Cannot specify {said} together for {name!r}; keep one."
                raise RouteDefinitionError(msg)
            if isinstance(default, Depends):
                depends_markers.append(default)
            else:
                field_markers.append(default)
            default = inspect.Parameter.empty
        if depends_markers and field_markers:
            msg = f"{where}: parameter {name!r} has both Depends() and a value marker; keep one."
            raise RouteDefinitionError(msg)

        if depends_markers:
            marker_dep = depends_markers[-1]
            dependency = marker_dep.dependency or annotation
            if not callable(dependency) or dependency is Any:
                msg = f"{where}: Depends() on {name!r} needs a callable or a class annotation."
                raise RouteDefinitionError(msg)
            if (
                marker_dep.scope == "function"
                and scope != "function"
                and call_kind(call) in (CallKind.ASYNC_GEN, CallKind.SYNC_GEN)
            ):
                # Its teardown runs after the response, when the function-scoped
                # one it uses has already ended (FastAPI refuses this too).
                call_name = getattr(call, "__name__", "<unnamed_callable>")
                msg = (
                    f'The dependency "{call_name}" has a scope of "request", it cannot '
                    'depend on dependencies with scope "function".'
                )
                raise RouteDefinitionError(msg)
            sub = analyse(dependency, path_params, scope=marker_dep.scope, _seen=(*_seen, call))
            deps.append(SubDependency(name, sub, marker_dep.use_cache, marker_dep))
            continue

        marker = _merge(field_markers) if field_markers else None
        special = _special_for(annotation) if marker is None else None
        if special is not None:
            specials.append((name, special))
            continue

        if marker is not None and marker.default is not REQUIRED:
            default = marker.default  # ``x: int = Query(3)``: the marker is the default
        if default is inspect.Parameter.empty or default is ...:
            default = REQUIRED

        source = (
            marker.source if marker is not None else _infer_source(name, annotation, path_params)
        )
        marker = _with_metadata_settings(marker, source, metadata)
        wire = _wire_key(name, source, marker)
        choices = getattr(getattr(marker, "validation_alias", None), "choices", ())
        if (
            source == "path"
            and wire not in path_params
            and name not in path_params
            and not any(choice in path_params for choice in choices if isinstance(choice, str))
        ):
            msg = f"{where}: Path parameter {name!r} does not appear in the route's path template."
            raise RouteDefinitionError(msg)
        if source == "path":
            default = REQUIRED  # a path parameter is always there
        field = _build_field(
            where, name, annotation, metadata, default, source, marker, path_params
        )
        if source in ("body", "form", "file"):
            body.append(field)
            if isinstance(marker, Body) and marker.embed:
                embed = True
        else:
            fields.append(field)

    form_body = any(field.source in ("form", "file") for field in body)
    if form_body:
        # Form fields are always read by name; a single form *model* is the exception.
        embed = not (len(body) == 1 and body[0].form_models)
    elif len(body) > 1:
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
        form_body=form_body,
        dependencies=tuple(deps),
        specials=tuple(specials),
        cache_key=call,
    )


_MARKER_FOR_SOURCE = {
    "query": Query,
    "path": Path,
    "header": Header,
    "cookie": Cookie,
    "body": Body,
    "form": Form,
    "file": Form,
}


def _with_metadata_settings(
    marker: FieldMarker | None, source: str, metadata: tuple[Any, ...]
) -> FieldMarker | None:
    """``Annotated[int, Field(alias="wire"), Query()]``: pydantic's alias names the wire.

    Its ``default_factory``, ``validate_default`` and documentation (title,
    description, examples, deprecated, ``json_schema_extra``) apply too. What
    the marker sets itself wins, None included (``Query(alias=None)`` clears
    the field's alias); ``json_schema_extra`` dicts are merged, the marker's
    keys winning.
    """
    settings = pydantic_engine.metadata_settings(metadata)
    if not settings:
        return marker
    if marker is None:
        return _MARKER_FOR_SOURCE[source](**settings)  # type: ignore[no-any-return]
    changes: dict[str, Any] = {}
    for key, value in settings.items():
        if not marker.explicitly_set(key) and getattr(marker, key) is None:
            changes[key] = value
        elif key == "json_schema_extra" and isinstance(value, dict):
            own = marker.json_schema_extra
            if isinstance(own, dict):
                changes[key] = {**value, **own}
    return attrs.evolve(marker, **changes) if changes else marker


def _is_upload(tp: Any) -> bool:
    from .uploads import UploadFile

    inner, _ = strip_optional(tp)
    if isinstance(inner, type) and issubclass(inner, UploadFile):
        return True
    item = sequence_item(inner)
    return isinstance(item, type) and issubclass(item, UploadFile)


def _infer_source(name: str, annotation: Any, path_params: frozenset[str]) -> str:
    if name in path_params:
        return "path"
    if _is_upload(annotation):
        return "file"
    inner, _ = strip_optional(annotation)
    if is_scalar(inner) or _scalar_like(inner):
        return "query"
    return "body"


def _scalar_like(tp: Any) -> bool:
    """FastAPI's "scalar": not a model, a mapping or a sequence (``HttpUrl`` is one)."""
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return all(_scalar_like(arg) or arg is type(None) for arg in get_args(tp))
    if get_origin(tp) is Annotated:
        return _scalar_like(get_args(tp)[0])
    return isinstance(tp, type) and _string_like(tp)


def _wire_key(name: str, source: str, marker: FieldMarker | None) -> str:
    alias = marker.wire_alias if marker is not None else None
    if source == "header":
        convert_underscores = marker.convert_underscores if isinstance(marker, Header) else True
        return (alias or (name.replace("_", "-") if convert_underscores else name)).lower()
    return alias or name


def _fixed_tuple(tp: Any) -> tuple[Any, ...] | None:
    """The item types of ``tuple[X, Y]`` (a type per position), else None (``tuple[X, ...]``)."""
    if get_origin(tp) is not tuple:
        return None
    args = get_args(tp)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return None
    return args


def _positional(
    where: str, name: str, annotation: Any, items: tuple[Any, ...], source: str
) -> Callable[[list[str]], tuple[Any, ...]]:
    """Validates repeated string values as ``tuple[X, Y, ...]``, with pydantic's 422 entries."""
    converters: list[StrConverter] = []
    for item in items:
        try:
            converters.append(string_converter(item))
        except TypeError:
            msg = (
                f"{where}: parameter {name!r} is read from the {source}, where values are "
                f"strings, but {type_name(item)} (in {type_name(annotation)}) cannot be built "
                "from a string without pydantic: pip install 'trioapi[pydantic]', or use "
                "scalar types"
            )
            raise RouteDefinitionError(msg) from None
    size = len(converters)

    def validate(raws: list[str]) -> tuple[Any, ...]:
        if len(raws) > size:
            noun = "item" if size == 1 else "items"
            text = f"Tuple should have at most {size} {noun} after validation, not {len(raws)}"
            ctx = {"field_type": "Tuple", "max_length": size, "actual_length": len(raws)}
            raise Invalid([error_entry("too_long", (), text, raws, ctx)])
        values: list[Any] = []
        errors: list[dict[str, Any]] = []
        for index, convert in enumerate(converters):
            if index >= len(raws):
                errors.append(error_entry("missing", (index,), "Field required", raws))
                continue
            try:
                values.append(convert(raws[index]))
            except ConversionError as error:
                errors.append(error_entry(error.type, (index,), error.msg, raws[index], error.ctx))
        if errors:
            raise Invalid(errors)
        return tuple(values)

    return validate


def _container(tp: Any) -> Any:
    origin = get_origin(tp) or tp
    if origin in (set, frozenset, tuple):
        return origin
    return None


def _pydantic_for(annotation: Any, marker: FieldMarker | None, metadata: tuple[Any, ...]) -> bool:
    """Does this value go through pydantic (see the module docstring)?"""
    if not pydantic_engine.available() or pydantic_engine.involves_attrs(annotation):
        return False
    return bool(metadata) or (
        (marker is not None and marker.needs_pydantic())
        or pydantic_engine.involves_pydantic(annotation)
        or pydantic_engine.is_structured(strip_optional(annotation)[0])
    )


def _pydantic_validator(
    where: str,
    name: str,
    annotation: Any,
    metadata: tuple[Any, ...],
    marker: FieldMarker | None,
) -> Callable[[Any], Any]:
    kwargs = marker.pydantic_field_kwargs() if marker is not None else {}
    try:
        return pydantic_engine.validator(
            annotation, metadata=metadata, field_kwargs=kwargs, where=where
        )
    except Exception as error:
        msg = f"{where}: cannot validate parameter {name!r} as {type_name(annotation)}: {error}"
        raise RouteDefinitionError(msg) from error


@attrs.frozen
class ModelKey:
    """One field of a parameter or form model: where to look, and how to pass it on.

    ``pairs`` are ``(data key, wire name)`` in preference order (several
    with ``AliasChoices``); the first wire name present wins, and its value
    goes into the model's input under its data key.
    """

    pairs: tuple[tuple[str, str], ...]
    is_list: bool


def param_aliases(
    name: str,
    alias: str | None,
    validation_alias: Any,
    *,
    convert_underscores: bool = False,
    config: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """FastAPI's ``(validation alias, request key)`` pairs for one field, in preference order."""
    main = validation_alias if isinstance(validation_alias, str) and validation_alias else None
    main = main or alias or name
    request = main.replace("_", "-") if convert_underscores and main == name else main
    pairs = [(main, request)]
    choices = getattr(validation_alias, "choices", None)
    if hasattr(validation_alias, "path") or (
        choices is not None and not all(isinstance(choice, str) for choice in choices)
    ):
        return pairs  # an AliasPath: looked up in the data, not a name of its own
    if choices is not None:
        pairs = [(choice, choice) for choice in choices]
    config = config or {}
    by_name = config.get("validate_by_name", config.get("populate_by_name", False))
    if config.get("validate_by_alias") is False or by_name:
        request_name = name.replace("_", "-") if convert_underscores else name
        if config.get("validate_by_alias") is False:
            return [(name, request_name)]
        if name not in [key for key, _ in pairs]:
            pairs.append((name, request_name))
    return pairs


def field_config(model: Any, info: Any) -> Mapping[str, Any] | None:
    """The config that decides how a model's field is named (FastAPI's rule).

    A field that is itself a model, a dict or a dataclass is named by its
    alias alone: the outer model's ``validate_by_name`` does not reach it.
    """
    annotation = info.annotation
    if dataclasses.is_dataclass(annotation) or (
        isinstance(annotation, type)
        and (pydantic_engine.is_pydantic_model(annotation) or issubclass(annotation, dict))
    ):
        return None
    config: Mapping[str, Any] = getattr(model, "model_config", {})
    return config


def _is_sequence(tp: Any) -> bool:
    inner, _ = strip_optional(tp)
    return sequence_item(inner) is not None and not is_scalar(inner)


def _model_keys(model: Any, source: str, marker: FieldMarker | None) -> tuple[ModelKey, ...]:
    """For a parameter or form model: how to find each of its fields in the request."""
    default_convert = not isinstance(marker, Header) or marker.convert_underscores
    keys: list[ModelKey] = []
    for field_name, info in model.model_fields.items():
        convert = source == "header" and getattr(info, "convert_underscores", default_convert)
        pairs = param_aliases(
            field_name,
            info.alias,
            info.validation_alias,
            convert_underscores=bool(convert),
            config=field_config(model, info),
        )
        if source == "header":
            pairs = [(key, wire.lower()) for key, wire in pairs]
        keys.append(ModelKey(tuple(pairs), _is_sequence(info.annotation)))
    return tuple(keys)


def _own_names(keys: Iterable[ModelKey]) -> frozenset[str]:
    """Every wire name a model's fields are read under (is any of them sent?)."""
    return frozenset(wire for key in keys for _, wire in key.pairs)


def _form_models(annotation: Any) -> tuple[Any, ...]:
    """The pydantic models a form parameter is read as: one, one or None, or a union."""
    inner, _ = strip_optional(annotation)
    if pydantic_engine.is_pydantic_model(inner):
        return (inner,)
    origin = get_origin(inner)
    if origin is typing.Union or origin is types.UnionType:
        models = []
        for arg in get_args(inner):
            base, _ = _split_annotated(arg)
            if not pydantic_engine.is_pydantic_model(base):
                return ()
            models.append(base)
        return tuple(models)
    return ()


def _build_field(
    where: str,
    name: str,
    annotation: Any,
    metadata: tuple[Any, ...],
    default: Any,
    source: str,
    marker: FieldMarker | None,
    path_params: frozenset[str] = frozenset(),
) -> Field:
    pydantic_engine.check_not_v1(annotation, f"the parameter {name!r} of {where}")
    key = _wire_key(name, source, marker)
    aliases: tuple[tuple[str, str], ...] = ()
    choices = getattr(marker.validation_alias, "choices", None) if marker is not None else None
    if source == "path" and choices is not None:
        # The first choice the template names is the path parameter, else the
        # alias (FastAPI's rule); choices with an AliasPath are not names at all.
        fallback = (marker.alias if marker is not None else None) or name
        if all(isinstance(choice, str) for choice in choices):
            key = next((choice for choice in choices if choice in path_params), fallback)
        else:
            key = fallback
        choices = None
    if choices is not None and marker is not None:
        pairs = param_aliases(name, marker.alias, marker.validation_alias)
        if source == "header":
            pairs = [(loc, wire.lower()) for loc, wire in pairs]
        aliases = tuple(pairs)
        key = aliases[0][1]
    constraints = marker.constraints() if marker is not None else Constraints()
    check = constraints.checker()
    inner, _ = strip_optional(annotation)
    factory = marker.default_factory if marker is not None else None
    common: dict[str, Any] = {
        "annotation": annotation,
        "default_factory": factory,
        "marker": marker,
        "aliases": aliases,
        "metadata": metadata,
    }

    if source != "body" and pydantic_engine.is_json_text(metadata):
        # Json[list[str]], Json[Model]: one string holding JSON, which pydantic
        # decodes and validates; neither a list of values nor a parameter model.
        validate = _pydantic_validator(where, name, annotation, metadata, marker)
        return Field(name, source, key, default, validate=validate, **common)

    if source in ("form", "file"):
        upload = _upload_kind(inner)
        if upload is not None:
            return Field(name, source, key, default, upload=upload, check=check, **common)
        models = _form_models(annotation) if not (marker and getattr(marker, "embed", None)) else ()
        if source == "form" and models:
            keys = _model_keys(models[0], source, marker) if len(models) == 1 else ()
            target = annotation if len(models) == 1 else _normalising_union(annotation, models)
            validate = _pydantic_validator(where, name, target, metadata, marker)
            return Field(
                name,
                source,
                key,
                default,
                validate=validate,
                model_keys=keys,
                form_models=models,
                own_names=_own_names(
                    key for model in models for key in _model_keys(model, source, marker)
                ),
                **common,
            )
        # A form value is a string (or several): validate it as a query value is.
        item = sequence_item(inner)
        if item is None and get_origin(inner) is tuple:
            item = Any
        return _string_field(
            where, name, annotation, metadata, default, source, key, marker, item, check, common
        )

    if source == "body":
        if inner is bytes and not metadata:
            return Field(name, source, key, default, raw="bytes", check=check, **common)
        plain_str = inner is str and not metadata and not (marker and marker.needs_pydantic())
        if not plain_str and (
            _pydantic_for(annotation, marker, metadata)
            or (pydantic_engine.available() and not pydantic_engine.involves_attrs(annotation))
        ):
            validate = _pydantic_validator(where, name, annotation, metadata, marker)
            return Field(name, source, key, default, validate=validate, check=None, **common)
        if inner is str:
            return Field(
                name,
                source,
                key,
                default,
                raw="text",
                check=check,
                structure=body_structurer(annotation),
                **common,
            )
        try:
            structure = body_structurer(annotation)
        except Exception as error:
            msg = (
                f"{where}: cannot read body parameter {name!r} as {type_name(annotation)}: {error}"
            )
            raise RouteDefinitionError(msg) from error
        return Field(name, source, key, default, structure=structure, check=check, **common)

    if source in ("query", "header", "cookie") and pydantic_engine.is_pydantic_model(inner):
        keys = _model_keys(inner, source, marker)
        validate = _pydantic_validator(where, name, annotation, metadata, marker)
        return Field(
            name,
            source,
            key,
            default,
            validate=validate,
            model_keys=keys,
            own_names=_own_names(keys),
            **common,
        )

    if source in ("path", "query") and _structured(annotation):
        # What a URL cannot carry, with FastAPI's words (pydantic would take it).
        if source == "path" and not _plain_value(annotation):
            _unsupported(where, "Path", name, annotation, "a scalar")
        if source == "query" and not (_plain_value(annotation) or _plain_sequence(annotation)):
            _unsupported(
                where, "Query", name, annotation, "a scalar, a list of scalars or a pydantic model"
            )
    item = sequence_item(inner)
    if item is None and get_origin(inner) is tuple and marker is not None:
        item = Any  # tuple[int, str]: each value in order, validated as the tuple
    return _string_field(
        where, name, annotation, metadata, default, source, key, marker, item, check, common
    )


def _unsupported(where: str, kind: str, name: str, annotation: Any, supported: str) -> None:
    # FastAPI's words for the same mistake ("... must be one of the supported types").
    msg = (
        f"{where}: {kind} parameter {name!r} must be one of the supported types ({supported}), "
        f"not {type_name(annotation)}: a URL carries strings. Read it from the body (Body()) "
        "instead."
    )
    raise RouteDefinitionError(msg)


def _structured(tp: Any) -> bool:
    """FastAPI's "complex" annotation: a model, a mapping, a sequence, a dataclass, a file."""
    from .uploads import UploadFile

    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_structured(arg) for arg in get_args(tp))
    if origin is Annotated:
        return _structured(get_args(tp)[0])
    for candidate in (tp, origin):
        if candidate is None:
            continue
        if dataclasses.is_dataclass(candidate) or hasattr(candidate, "__pydantic_core_schema__"):
            return True
        if isinstance(candidate, type) and (
            pydantic_engine.is_pydantic_model(candidate)
            or attrs.has(candidate)
            or issubclass(candidate, Mapping | UploadFile)
            or _is_collection(candidate)
        ):
            return True
    return False


def _is_collection(tp: Any) -> bool:
    """A sequence or set class, not a string."""
    return (
        isinstance(tp, type)
        and issubclass(tp, Sequence | set | frozenset)
        and not issubclass(tp, str | bytes)
    )


def _plain_value(tp: Any) -> bool:
    """What a single path segment or query value can hold, as FastAPI decides it."""
    return tp is Ellipsis or not _structured(tp)


def _plain_sequence(tp: Any) -> bool:
    """A sequence of plain values (or a union with one and only plain values besides)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _plain_sequence(get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        found = False
        for arg in get_args(tp):
            if _plain_sequence(arg):
                found = True
            elif not _plain_value(arg):
                return False
        return found
    if not _is_collection(origin if origin is not None else tp):
        return False
    return all(_plain_value(arg) for arg in get_args(tp))


def _string_like(tp: Any) -> bool:
    """Not a container or a model: FastAPI's test for what a URL or header can carry."""
    if tp is None or pydantic_engine.involves_attrs(tp) or pydantic_engine.is_structured(tp):
        return False
    if pydantic_engine.is_pydantic_model(tp):
        return False
    origin = get_origin(tp) or tp
    return not (isinstance(origin, type) and issubclass(origin, Mapping | Sequence | set))


def _upload_kind(inner: Any) -> str | None:
    from .uploads import UploadFile

    if isinstance(inner, type) and issubclass(inner, UploadFile):
        return "file"
    if inner is bytes:
        return None
    item = sequence_item(inner)
    if isinstance(item, type) and issubclass(item, UploadFile):
        return "files"
    return None


def _string_field(
    where: str,
    name: str,
    annotation: Any,
    metadata: tuple[Any, ...],
    default: Any,
    source: str,
    key: str,
    marker: FieldMarker | None,
    item: Any,
    check: Callable[[Any], None] | None,
    common: dict[str, Any],
) -> Field:
    is_list = item is not None and source in ("query", "header", "form", "file")
    inner, _ = strip_optional(annotation)
    fixed = _fixed_tuple(inner) if is_list else None
    if _pydantic_for(annotation, marker, metadata) or (
        fixed is not None
        and pydantic_engine.available()
        and not pydantic_engine.involves_attrs(annotation)
    ):
        validate = _pydantic_validator(where, name, annotation, metadata, marker)
        return Field(name, source, key, default, validate=validate, is_list=is_list, **common)
    if fixed is not None:
        # tuple[int, str] without pydantic: one value per position, in order.
        validate = _positional(where, name, annotation, fixed, source)
        return Field(name, source, key, default, validate=validate, is_list=True, **common)
    target = item if is_list else inner
    try:
        convert = string_converter(target)
    except TypeError:
        if pydantic_engine.available() and _string_like(target):
            # A type pydantic builds from a string (timedelta, IPv4Address...).
            validate = _pydantic_validator(where, name, annotation, metadata, marker)
            return Field(name, source, key, default, validate=validate, is_list=is_list, **common)
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
        container=_container(inner) if is_list else None,
        **common,
    )


def _normalising_union(annotation: Any, models: tuple[Any, ...]) -> Any:
    """A union of form models: each branch first picks its own fields from the form.

    The branches keep their own metadata; each is tagged (for the errors'
    ``loc``) with its own ``Tag``, or else its model's name.
    """
    from pydantic import BeforeValidator, Tag

    del models
    choices: list[Any] = []
    for choice in get_args(annotation):
        if choice is type(None):
            choices.append(choice)
            continue
        model, metadata = _split_annotated(choice)
        keys = _model_keys(model, "form", None)
        tag = next(
            (item for item in reversed(metadata) if isinstance(item, Tag)), Tag(model.__name__)
        )
        choices.append(
            Annotated[choice, BeforeValidator(functools.partial(_form_branch, keys=keys)), tag]
        )
    return typing.Union[tuple(choices)]  # noqa: UP007 - built from parts at runtime


def _form_branch(value: Any, *, keys: tuple[ModelKey, ...]) -> Any:
    if not isinstance(value, dict):
        return value
    from .solve import pick_model_items

    items = [
        (key, item)
        for key, found in value.items()
        for item in (found if isinstance(found, list) else [found])
    ]
    picked = pick_model_items(keys, items, form=True)
    for key, item in value.items():
        if item is None or (isinstance(item, list) and not item):
            picked[key] = item
    return picked

"""The OpenAPI 3.1 document of an app, the one FastAPI writes for the same app (no I/O).

Theory of operation. :func:`build_document` works in two passes over the
routes, because the schemas of all values must be generated together (a
model used by several routes is one entry of ``components.schemas``, and
its name depends on the others):

1. *Plan*: each route that is in the schema becomes a :class:`_Operation`:
   its parameters (from the endpoint and every dependency, each dependency
   once, in FastAPI's order: the endpoint's own, then the route's
   ``dependencies=``, then the endpoint's ``Depends()``, depth first), its
   body (one value, or a made-up ``Body_<operationId>`` model when several
   values or an embedded one make up the body), its response models and its
   security requirements. Every value to describe goes into a
   :class:`~trioapi._openapi.schemas.SchemaSet`, which hands back a handle.
2. *Write*: the schema set generates every schema at once; each operation
   is then written out as FastAPI writes it (``operationId``, summary,
   parameters, ``requestBody``, responses with the 422 entry, callbacks,
   ``openapi_extra`` merged last).

The result goes through the JSON encoder with ``exclude_none``, as FastAPI's
does: a key whose value is None never appears.
"""

from __future__ import annotations

import copy
import enum
import http.client
import inspect
import re
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._http import pydantic_engine
from .._http.convert import strip_optional
from .._http.markers import REQUIRED, Body, FieldMarker, Header
from .._http.params import (
    Dependant,
    Field,
    Special,
    SubDependency,
    analyse,
    field_config,
    param_aliases,
    return_annotation,
)
from .._http.routing import UNSET, APIRoute
from .schemas import (
    REF_PREFIX,
    FormPart,
    Model,
    SchemaSet,
    Value,
    form_model_annotation,
    title_for,
)

METHODS_WITH_BODY = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})
"""The methods whose operations may document a request body (FastAPI's set)."""

VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {
            "title": "Location",
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
        "input": {"title": "Input"},
        "ctx": {"title": "Context", "type": "object"},
    },
    "required": ["loc", "msg", "type"],
}
"""One entry of a 422 ``detail`` list, as the document describes it."""

HTTP_VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {
            "title": "Detail",
            "type": "array",
            "items": {"$ref": REF_PREFIX + "ValidationError"},
        }
    },
}
"""The body of a 422 answer, as the document describes it."""

STATUS_RANGES = {
    "1XX": "Information",
    "2XX": "Success",
    "3XX": "Redirection",
    "4XX": "Client Error",
    "5XX": "Server Error",
    "DEFAULT": "Default Response",
}

_PARAM_SOURCES = ("path", "query", "header", "cookie")

# Marker keywords that pydantic's Field() takes as they are.
_FIELD_KEYWORDS = (
    "title",
    "description",
    "gt",
    "ge",
    "lt",
    "le",
    "min_length",
    "max_length",
    "discriminator",
    "strict",
    "multiple_of",
    "allow_inf_nan",
    "max_digits",
    "decimal_places",
    "examples",
    "deprecated",
    "json_schema_extra",
    "union_mode",
    "fail_fast",
    "validate_default",
)


# The Field() keywords that describe a value rather than constrain it.
_DESCRIPTIVE_KEYWORDS = frozenset(
    {
        "title",
        "description",
        "examples",
        "deprecated",
        "json_schema_extra",
        "validate_default",
        "default",
        "default_factory",
    }
)


def generate_unique_id(route: Any) -> str:
    """The default ``operationId``: the route's name, path and first method.

    ``read_item`` on ``GET /items/{item_id}`` gives
    ``read_item_items__item_id__get``; every character that is not a letter,
    digit or underscore becomes ``_``.

    Args:
        route: The route (an :class:`~trioapi.routing.APIRoute`).

    Returns:
        The operation id.
    """
    operation_id = re.sub(r"\W", "_", f"{route.name}{route.path_format}")
    return f"{operation_id}_{next(iter(route.methods)).lower()}"


def deep_update(target: dict[Any, Any], update: Mapping[Any, Any]) -> None:
    """Merges ``update`` into ``target``: dicts merge, lists concatenate, the rest replaces."""
    for key, value in update.items():
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            deep_update(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            target[key] = current + value
        else:
            target[key] = value


def body_allowed(status_code: int | str | None) -> bool:
    """Whether a response with this status may have a body (no 1xx, 204, 205, 304)."""
    if status_code is None or status_code in ("default", "1XX", "2XX", "3XX", "4XX", "5XX"):
        return True
    code = int(status_code)
    return not (code < 200 or code in (204, 205, 304))


# --- pass 1: plans ---------------------------------------------------------------------


@attrs.define
class _Param:
    entry: dict[str, Any]
    handle: int
    title: str


@attrs.define
class _Body:
    handle: int
    title: str | None
    media_type: str
    required: bool
    examples: Any = None
    example: Any = None


@attrs.define
class _Operation:
    route: Any
    unique_id: str
    params: list[_Param]
    has_params: bool
    body: _Body | None
    response: int | None
    response_title: str
    extra_responses: dict[Any, tuple[int, str]]
    security: list[tuple[Any, list[str]]]
    callbacks: list[_Operation]
    stream: _Stream | None = None


@attrs.define
class _Stream:
    # A generator route's JSON lines or server-sent events: an itemSchema,
    # with the declared item type's schema (handle) when there is one.
    kind: str  # "jsonl" or "sse", as in the route's StreamPlan
    media_type: str
    handle: int | None
    title: str


def _unwrap(call: Any) -> Any:
    import functools

    while isinstance(call, functools.partial):
        call = call.func
    return inspect.unwrap(call) if callable(call) else call


def _security_base() -> type[Any] | None:
    try:
        from ..security.base import SecurityBase
    except ImportError:  # pragma: no cover - the package is part of trioapi
        return None
    return SecurityBase


def _is_scheme(call: Any) -> bool:
    base = _security_base()
    target = _unwrap(call)
    if base is not None and isinstance(target, base):
        return True
    return (
        not inspect.isclass(target) and hasattr(target, "scheme_name") and hasattr(target, "model")
    )


def _analysed(route: Any) -> tuple[Dependant, tuple[SubDependency, ...]]:
    """The route's dependant and route-level dependencies (analysed now if not yet)."""
    dependant = getattr(route, "dependant", None)
    if dependant is not None:
        return dependant, tuple(getattr(route, "extra", ()))
    names = frozenset(re.findall(r"{([^}:]*)(?::[^}]*)?}", route.path))
    dependant = analyse(route.endpoint, names)
    extra = tuple(
        SubDependency(None, analyse(marker.dependency, names), marker.use_cache, marker)
        for marker in getattr(route, "dependencies", ())
        if marker.dependency is not None
    )
    return dependant, extra


def _uses_scopes(dependant: Dependant, own: Sequence[str], seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if id(dependant) in seen:
        return False
    seen.add(id(dependant))
    if own or _is_scheme(dependant.call):
        return True
    if any(special is Special.SECURITY_SCOPES for _, special in dependant.specials):
        return True
    return any(_uses_scopes(sub.dependant, sub.scopes, seen) for sub in dependant.dependencies)


@attrs.define
class _Flat:
    params: dict[str, list[Field]] = attrs.Factory(lambda: {s: [] for s in _PARAM_SOURCES})
    body: list[Field] = attrs.Factory(list)
    security: list[tuple[Any, list[str]]] = attrs.Factory(list)


def _flatten(dependant: Dependant, extra: Sequence[SubDependency]) -> _Flat:
    flat = _Flat()
    # Parameters and security: each dependency once (per scopes, as FastAPI
    # caches it), depth first, the endpoint's own before its dependencies'.
    visited: set[Any] = set()
    stack: list[tuple[Dependant, list[str], bool, Sequence[SubDependency]]] = [
        (dependant, [], True, (*extra, *dependant.dependencies))
    ]
    while stack:
        current, scopes, is_root, children = stack.pop()
        key = (
            _unwrap(current.call),
            tuple(sorted(set(scopes))) if _uses_scopes(current, scopes) else (),
        )
        if key in visited:
            continue
        visited.add(key)
        for field in current.fields:
            if field.source in flat.params:
                flat.params[field.source].append(field)
        if not is_root and _is_scheme(current.call):
            flat.security.append((_unwrap(current.call), scopes))
        for sub in reversed(children):
            child_scopes = list(scopes)
            child_scopes.extend(s for s in sub.scopes if s not in child_scopes)
            stack.append((sub.dependant, child_scopes, False, sub.dependant.dependencies))
    # Body values: every one, in the same order (FastAPI does not skip repeats here).
    pending: list[Dependant] = [dependant]
    first = True
    while pending:
        current = pending.pop()
        flat.body.extend(current.body)
        children = (*extra, *current.dependencies) if first else current.dependencies
        first = False
        pending.extend(sub.dependant for sub in reversed(children))
    return flat


def _field_keywords(field: Field, *, alias: bool) -> dict[str, Any]:
    """``pydantic.Field`` keywords that describe ``field`` as its marker says."""
    marker = field.marker
    keywords: dict[str, Any] = {}
    if marker is not None:
        for key in _FIELD_KEYWORDS:
            value = getattr(marker, key, None)
            if value is not None:
                keywords[key] = value
        if marker.effective_pattern is not None:
            keywords["pattern"] = marker.effective_pattern
        if alias:
            for key in ("alias", "validation_alias", "serialization_alias"):
                value = getattr(marker, key, None)
                if value is not None:
                    keywords[key] = value
    if field.default_factory is not None:
        keywords["default_factory"] = field.default_factory
    elif field.default is not REQUIRED:
        keywords["default"] = field.default
    return keywords


def _metadata(field: Field, dependant_call: Any) -> tuple[Any, ...]:
    """The ``Annotated`` metadata of the parameter that is not a trioapi marker.

    Less what the marker took over from a pydantic ``Field`` (its alias and
    documentation: ``params._with_metadata_settings``).
    """
    return pydantic_engine.without_marker_settings(_own_metadata(field, dependant_call))


def _own_metadata(field: Field, dependant_call: Any) -> tuple[Any, ...]:
    stored = getattr(field, "metadata", None)
    if stored is not None:
        return tuple(stored)
    from .._http.markers import MARKER_TYPES

    if _marker_is_default(dependant_call, field.name):
        # ``x: Annotated[T, meta] = Query()``: FastAPI documents T alone.
        return ()
    hints = _hints(dependant_call)
    annotation = hints.get(field.name)
    if typing.get_origin(annotation) is not typing.Annotated:
        return ()
    return tuple(
        extra for extra in typing.get_args(annotation)[1:] if not isinstance(extra, MARKER_TYPES)
    )


def _marker_is_default(call: Any, name: str) -> bool:
    try:
        parameter = inspect.signature(call).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and isinstance(parameter.default, FieldMarker)


def _hints(call: Any) -> dict[str, Any]:
    target = _unwrap(call)
    if inspect.isclass(target):
        target = target.__init__
    elif not inspect.isroutine(target) and hasattr(target, "__call__"):  # noqa: B004
        target = target.__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        return {}


def _first_alias(
    name: str,
    alias: str | None,
    validation_alias: Any,
    *,
    source: str,
    convert_underscores: bool,
    path_names: frozenset[str] = frozenset(),
    config: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """``(alias, name on the wire)`` as the document names a parameter: FastAPI's first choice.

    A string ``validation_alias`` wins over ``alias``; of ``AliasChoices``
    the first (for a path parameter, the one in the path template); a header
    without an alias has its underscores turned into dashes.
    """
    chosen = validation_alias if isinstance(validation_alias, str) and validation_alias else None
    chosen = chosen or alias or name
    wire = chosen
    if source == "header" and convert_underscores and chosen == name:
        wire = chosen.replace("_", "-")
    choices = getattr(validation_alias, "choices", None)
    if choices is not None and all(isinstance(choice, str) for choice in choices):
        if source == "path":
            for choice in choices:
                if choice in path_names:
                    return choice, choice
            return chosen, wire
        return choices[0], choices[0]
    if choices is not None or source == "path":
        return chosen, wire
    config = config or {}
    if config.get("validate_by_alias") is False:
        field_name = name.replace("_", "-") if source == "header" and convert_underscores else name
        return name, field_name
    return chosen, wire


def _doc_name(field: Field, path_names: frozenset[str]) -> tuple[str, str]:
    """The parameter's alias and its name in the document (not lowered, unlike the wire key)."""
    marker = field.marker
    convert = marker.convert_underscores if isinstance(marker, Header) else True
    alias = marker.alias if marker is not None else None
    if not alias and field.source == "header" and convert:
        alias = field.name.replace("_", "-")
    return _first_alias(
        field.name,
        alias,
        marker.validation_alias if marker is not None else None,
        source=field.source,
        convert_underscores=convert,
        path_names=path_names,
    )


def _owner_calls(dependant: Dependant, extra: Sequence[SubDependency]) -> dict[int, Any]:
    """Which callable each field belongs to (for its ``Annotated`` metadata)."""
    owners: dict[int, Any] = {}
    pending: list[Dependant] = [dependant, *(sub.dependant for sub in extra)]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for field in (*current.fields, *current.body):
            owners.setdefault(id(field), current.call)
        pending.extend(sub.dependant for sub in current.dependencies)
    return owners


class _Planner:
    def __init__(self, schemas: SchemaSet) -> None:
        self.schemas = schemas
        self.path_names: frozenset[str] = frozenset()

    def route(self, route: Any) -> _Operation:
        dependant, extra = _analysed(route)
        self.path_names = frozenset(re.findall(r"{([^}:]*)(?::[^}]*)?}", route.path))
        owners = _owner_calls(dependant, extra)
        flat = _flatten(dependant, extra)
        unique_id = _unique_id(route)
        params: list[_Param] = []
        has_params = False
        for source in _PARAM_SOURCES:
            for field in flat.params[source]:
                has_params = True
                params.extend(self._params(field, owners.get(id(field))))
        body = self._body(flat.body, unique_id, owners)
        stream = self._stream(route, unique_id)
        if stream is not None:
            response, response_title = None, title_for("Response_" + unique_id)
        else:
            response, response_title = self._response(route, unique_id)
        extra_responses: dict[Any, tuple[int, str]] = {}
        for code, spec in (route.responses or {}).items():
            model = spec.get("model") if isinstance(spec, Mapping) else None
            if model:
                name = f"Response_{code}_{unique_id}"
                handle = self.schemas.add(Value(model, "serialization"))
                extra_responses[code] = (handle, title_for(name))
        callbacks = [
            self.route(callback)
            for callback in (route.callbacks or ())
            if isinstance(callback, APIRoute) or hasattr(callback, "endpoint")
        ]
        return _Operation(
            route=route,
            unique_id=unique_id,
            params=params,
            has_params=has_params,
            body=body,
            response=response,
            response_title=response_title,
            extra_responses=extra_responses,
            security=flat.security,
            callbacks=callbacks,
            stream=stream,
        )

    def _stream(self, route: Any, unique_id: str) -> _Stream | None:
        # As FastAPI documents them: JSON lines and server-sent events with
        # an itemSchema; other streaming classes are plain strings.
        plan = getattr(route, "stream", None)
        if plan is None or plan.kind not in ("jsonl", "sse"):
            return None
        handle = None
        if plan.item_type is not None:
            handle = self.schemas.add(Value(plan.item_type, "serialization"))
        return _Stream(plan.kind, plan.media_type, handle, title_for("StreamItem_" + unique_id))

    def _params(self, field: Field, owner: Any) -> list[_Param]:
        marker = field.marker
        if marker is not None and not marker.include_in_schema:
            return []
        model, optional = _parameter_model(field)
        if model is not None:
            return self._model_params(field, model, optional)
        metadata = _metadata(field, owner) if owner is not None else ()
        handle = self.schemas.add(
            Value(field.annotation, "validation", _field_keywords(field, alias=False), metadata)
        )
        alias, name = _doc_name(field, self.path_names)
        entry: dict[str, Any] = {
            "name": name,
            "in": field.source,
            "required": field.source == "path" or field.required,
        }
        if marker is not None:
            if marker.description:
                entry["description"] = marker.description
            if marker.openapi_examples:
                entry["examples"] = marker.openapi_examples
            elif marker.example is not None:
                entry["example"] = marker.example
            if marker.deprecated:
                entry["deprecated"] = True
        title = (marker.title if marker is not None else None) or title_for(alias)
        return [_Param(entry, handle, title)]

    def _model_params(self, field: Field, model: Any, optional: bool) -> list[_Param]:
        marker = field.marker
        convert = not (isinstance(marker, Header) and not marker.convert_underscores)
        config = getattr(model, "model_config", None)
        found: list[_Param] = []
        for name, info in model.model_fields.items():
            alias, wire = _first_alias(
                name,
                info.alias,
                info.validation_alias,
                source=field.source,
                convert_underscores=convert,
                config=config,
            )
            handle = self.schemas.add(
                Value(info.annotation, "validation", {}, (info,), _field_config(info, config))
            )
            entry: dict[str, Any] = {
                "name": wire,
                "in": field.source,
                "required": info.is_required() and not optional,
            }
            if info.description:
                entry["description"] = info.description
            if info.deprecated:
                entry["deprecated"] = True
            found.append(_Param(entry, handle, info.title or title_for(alias)))
        return found

    def _body(self, fields: list[Field], unique_id: str, owners: Mapping[int, Any]) -> _Body | None:
        if not fields:
            return None
        first = fields[0]
        embed = _embed(fields)
        if any(field.form_models for field in fields) and (
            embed or any(_nullable_group(field) for field in fields)
        ):
            return self._form_body(fields, unique_id, owners, embed=embed)
        if not embed:
            marker = first.marker
            metadata = _metadata(first, owners[id(first)]) if id(first) in owners else ()
            handle = self.schemas.add(
                Value(first.annotation, "validation", _field_keywords(first, alias=False), metadata)
            )
            alias = (marker.wire_alias if marker is not None else None) or first.name
            return _Body(
                handle=handle,
                title=(marker.title if marker is not None else None) or title_for(alias),
                media_type=_media_type(first),
                required=first.required,
                examples=marker.openapi_examples if marker is not None else None,
                example=marker.example if marker is not None else None,
            )
        members: dict[str, Value] = {}
        for field in fields:
            metadata = _metadata(field, owners[id(field)]) if id(field) in owners else ()
            keywords = _field_keywords(field, alias=True)
            if field.marker is None or field.marker.alias is None:
                keywords.setdefault("alias", field.name)
            members.setdefault(
                field.name, Value(field.annotation, "validation", keywords, metadata)
            )
        name = "Body_" + unique_id
        handle = self.schemas.add_model(Model(name, tuple(members.items())))
        return _Body(
            handle=handle,
            title=None,
            media_type=_embedded_media_type(fields),
            required=any(field.required for field in fields),
        )

    def _form_body(
        self, fields: list[Field], unique_id: str, owners: Mapping[int, Any], *, embed: bool
    ) -> _Body:
        """A form body with form models in it: ``Body_<operationId>``, laid out as FastAPI does.

        Each parameter is a member of its own (``field_0``...), even when two
        share a name; the schema then shows the plain fields as properties
        and each form model as a condition (see ``schemas.FormPart``). An
        optional form model makes this model even for a lone parameter.
        """
        members: list[tuple[str, Value]] = []
        parts: list[FormPart] = []
        for index, field in enumerate(fields):
            member = f"field_{index}"
            metadata = _metadata(field, owners[id(field)]) if id(field) in owners else ()
            keywords = _field_keywords(field, alias=False)
            keywords["alias"] = member
            keywords["title"] = keywords.get("title") or field.name.replace("_", " ").title()
            annotation = field.annotation
            if not field.form_models:
                alias = _form_alias(field)
                parts.append(FormPart(member, alias, field.required))
            else:
                if len(field.form_models) == 1:
                    model = field.form_models[0]
                    annotation = form_model_annotation(model, _form_renames(model))
                    if field.annotation is not model:
                        annotation = annotation | None
                    elif field.marker is None or field.marker.title is None:
                        # FastAPI's made-up title does not reach a bare model's $ref.
                        del keywords["title"]
                parts.append(
                    FormPart(
                        member,
                        None,
                        field.required,
                        nullable=_nullable_group(field),
                        absent=_absent(field),
                    )
                )
            members.append((member, Value(annotation, "validation", keywords, metadata)))
        model = Model("Body_" + unique_id, tuple(members), form_parts=tuple(parts))
        if not embed:
            # The lone parameter's own description of the body (its default...).
            # Its constraints and discriminator are the parameter's, not the made-up model's.
            first = fields[0]
            keywords = {
                key: value
                for key, value in _field_keywords(first, alias=False).items()
                if key in _DESCRIPTIVE_KEYWORDS
            }
            handle = self.schemas.add(Value(model, "validation", keywords))
            return _Body(
                handle=handle,
                title=None,
                media_type=_media_type(first),
                required=first.required,
            )
        handle = self.schemas.add_model(model)
        return _Body(
            handle=handle,
            title=None,
            media_type=_embedded_media_type(fields),
            required=any(field.required for field in fields),
        )

    def _response(self, route: Any, unique_id: str) -> tuple[int | None, str]:
        model = _response_model(route)
        name = "Response_" + unique_id
        if not model:
            return None, title_for(name)
        return self.schemas.add(Value(model, "serialization")), title_for(name)


def _field_config(info: Any, config: Any) -> Any:
    annotation = info.annotation
    if isinstance(annotation, type) and (
        pydantic_engine.is_pydantic_model(annotation) or issubclass(annotation, dict)
    ):
        return None
    return config


def _parameter_model(field: Field) -> tuple[Any, bool]:
    """A pydantic model read from the query, headers or cookies, and whether it is optional."""
    if field.model_keys is None or field.source not in _PARAM_SOURCES:
        return None, False
    inner, _ = strip_optional(field.annotation)
    if not pydantic_engine.is_pydantic_model(inner):
        return None, False
    return inner, inner is not field.annotation and not field.required


def _is_form(field: Field) -> bool:
    return field.source in ("form", "file")


def _nullable_group(field: Field) -> bool:
    """A form model (or a union of them) that may be left out: ``Model | None``."""
    return bool(field.form_models) and strip_optional(field.annotation)[1]


def _form_alias(field: Field) -> str:
    """A plain form field's first name in the form (its first alias choice)."""
    marker = field.marker
    if marker is None:
        return field.name
    return param_aliases(field.name, marker.alias, marker.validation_alias)[0][0]


def _model_names(model: Any) -> list[tuple[Any, list[str]]]:
    """Each field of a form model: the name its schema gives it, and its names in a form."""
    found: list[tuple[Any, list[str]]] = []
    for name, info in model.model_fields.items():
        validation_alias = info.validation_alias
        choices = getattr(validation_alias, "choices", None)
        if choices is not None:
            schema_name = choices[0]
        elif isinstance(validation_alias, str) and validation_alias:
            schema_name = validation_alias
        else:
            schema_name = info.alias or name
        pairs = param_aliases(name, info.alias, validation_alias, config=field_config(model, info))
        found.append((schema_name, [alias for alias, _ in pairs]))
    return found


def _form_renames(model: Any) -> dict[str, list[str]]:
    return {
        schema_name: names
        for schema_name, names in _model_names(model)
        if isinstance(schema_name, str)
    }


def _absent(field: Field) -> dict[str, Any]:
    """The schema of a form that sends none of the form models' fields."""
    models = field.form_models
    if any(
        getattr(model, "model_config", {}).get("extra") in ("allow", "forbid") for model in models
    ):
        return {"maxProperties": 0}
    names = sorted({name for model in models for _, names in _model_names(model) for name in names})
    return {"not": {"anyOf": [{"required": [name]} for name in names]}} if names else {}


def _embed(fields: list[Field]) -> bool:
    """FastAPI's rule: several body values, ``Body(embed=True)``, or plain form fields."""
    if len({field.name for field in fields}) > 1:
        return True
    first = fields[0]
    if first.form_models and any(
        not field.form_models or field.annotation is not first.annotation for field in fields[1:]
    ):
        return True  # dependencies name different form models alike
    if isinstance(first.marker, Body) and first.marker.embed:
        return True
    return _is_form(first) and first.model_keys is None


def _media_type(field: Field) -> str:
    if isinstance(field.marker, Body):
        return field.marker.media_type
    return "multipart/form-data" if field.source == "file" else "application/json"


def _embedded_media_type(fields: list[Field]) -> str:
    if any(field.source == "file" for field in fields):
        return "multipart/form-data"
    forms = [field for field in fields if field.source == "form"]
    if forms:
        types = [_media_type(field) for field in forms]
        if "multipart/form-data" in types:
            return "multipart/form-data"
        return types[0] if len(set(types)) == 1 else "application/x-www-form-urlencoded"
    types = [_media_type(field) for field in fields]
    return types[0] if len(set(types)) == 1 else "application/json"


def _response_model(route: Any) -> Any:
    from .._http.responses import Response

    model = getattr(route, "response_model", UNSET)
    if model is UNSET:
        model = return_annotation(route.endpoint)
        if isinstance(model, type) and issubclass(model, Response):
            return None
    return model


def _unique_id(route: Any) -> str:
    if route.operation_id:
        return str(route.operation_id)
    generate: Callable[[Any], str] = route.generate_unique_id_function or generate_unique_id
    return generate(route)


# --- pass 2: writing -------------------------------------------------------------------


def _description(route: Any) -> str:
    text = route.description or inspect.cleandoc(getattr(route.endpoint, "__doc__", None) or "")
    return str(text).split("\f")[0].strip()


def _status_code(route: Any, response_class: Any) -> str | None:
    status = route.status_code
    if status is not None:
        return str(int(status) if isinstance(status, enum.IntEnum) else status)
    try:
        parameter = inspect.signature(response_class.__init__).parameters.get("status_code")
    except (TypeError, ValueError):
        return None
    if parameter is not None and isinstance(parameter.default, int):
        return str(parameter.default)
    return None


def _security_model(scheme: Any) -> Any:
    from ..encoders import jsonable_encoder

    return jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)


class _Writer:
    def __init__(self, schemas: SchemaSet, operation_ids: set[str]) -> None:
        self.schemas = schemas
        self.operation_ids = operation_ids
        self.security_schemes: dict[str, Any] = {}
        self.validation_errors = False

    def path_item(self, plan: _Operation) -> dict[str, Any]:
        route = plan.route
        if not route.include_in_schema:
            return {}
        from .._http.responses import JSONResponse

        response_class = route.response_class or JSONResponse
        media_type = getattr(response_class, "media_type", None)
        item: dict[str, Any] = {}
        for method in _methods(route):
            operation = self._metadata(route, plan.unique_id)
            security = self._security(plan.security)
            if security:
                operation["security"] = security
            parameters = self._parameters(plan.params)
            if parameters:
                operation["parameters"] = parameters
            if method in METHODS_WITH_BODY and plan.body is not None:
                operation["requestBody"] = self._request_body(plan.body)
            if route.callbacks:
                operation["callbacks"] = self._callbacks(plan.callbacks)
            responses = operation.setdefault("responses", {})
            status = _status_code(route, response_class)
            if status is not None:
                responses.setdefault(status, {})["description"] = route.response_description
                if body_allowed(route.status_code) and plan.stream is not None:
                    content = responses[status].setdefault("content", {})
                    content[plan.stream.media_type] = {"itemSchema": self._item_schema(plan.stream)}
                elif body_allowed(route.status_code) and media_type:
                    schema: dict[str, Any] = {"type": "string"}
                    if isinstance(response_class, type) and issubclass(
                        response_class, JSONResponse
                    ):
                        schema = self._schema(plan.response, plan.response_title)
                    content = responses[status].setdefault("content", {})
                    content.setdefault(media_type, {})["schema"] = schema
            self._additional_responses(plan, responses, media_type)
            if (plan.has_params or plan.body is not None) and not any(
                status in responses for status in ("422", "4XX", "default")
            ):
                responses["422"] = {
                    "description": "Validation Error",
                    "content": {
                        "application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}
                    },
                }
                self.validation_errors = True
            if route.openapi_extra:
                deep_update(operation, route.openapi_extra)
            item[method.lower()] = operation
        return item

    def _item_schema(self, stream: _Stream) -> dict[str, Any]:
        item = self._schema(stream.handle, stream.title) if stream.handle is not None else None
        if stream.kind == "jsonl":
            return item or {}
        properties: dict[str, Any] = {
            "data": {"type": "string"},
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        }
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if item is not None:
            # Each event's data is the item as JSON.
            properties["data"] = {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": item,
            }
            schema["required"] = ["data"]
        return schema

    def _callbacks(self, callbacks: list[_Operation]) -> dict[str, Any]:
        # As in FastAPI, what a callback would add to the components (its
        # security schemes, the 422 schemas) is not added.
        saved = (dict(self.security_schemes), self.validation_errors)
        written = {
            callback.route.name: {callback.route.path: self.path_item(callback)}
            for callback in callbacks
        }
        self.security_schemes, self.validation_errors = saved
        return written

    def _metadata(self, route: Any, unique_id: str) -> dict[str, Any]:
        operation: dict[str, Any] = {}
        if route.tags:
            operation["tags"] = list(route.tags)
        operation["summary"] = route.summary or str(route.name).replace("_", " ").title()
        description = _description(route)
        if description:
            operation["description"] = description
        if unique_id in self.operation_ids:
            endpoint_name = getattr(route.endpoint, "__name__", "<unnamed_endpoint>")
            message = f"Duplicate Operation ID {unique_id} for function {endpoint_name}"
            file_name = getattr(route.endpoint, "__globals__", {}).get("__file__")
            if file_name:
                message += f" at {file_name}"
            warnings.warn(message, stacklevel=1)
        self.operation_ids.add(unique_id)
        operation["operationId"] = unique_id
        if route.deprecated:
            operation["deprecated"] = route.deprecated
        return operation

    def _security(self, requirements: list[tuple[Any, list[str]]]) -> list[dict[str, list[str]]]:
        merged: dict[str, list[str]] = {}
        for scheme, scopes in requirements:
            name = scheme.scheme_name
            self.security_schemes[name] = _security_model(scheme)
            found = merged.setdefault(name, [])
            found.extend(scope for scope in scopes if scope not in found)
        return [{name: scopes} for name, scopes in merged.items()]

    def _schema(self, handle: int | None, title: str | None) -> dict[str, Any]:
        if handle is None:
            return {}
        schema = self.schemas.get(handle)
        if "$ref" not in schema and title is not None:
            schema["title"] = title
        return schema

    def _parameters(self, params: list[_Param]) -> list[dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for param in params:
            entry = dict(param.entry)
            entry["schema"] = self._schema(param.handle, param.title)
            key = (entry["in"], entry["name"])
            # A required declaration of the same parameter wins over an optional one.
            if key not in found or entry["required"]:
                found[key] = entry
        return list(found.values())

    def _request_body(self, body: _Body) -> dict[str, Any]:
        content: dict[str, Any] = {"schema": self._schema(body.handle, body.title)}
        if body.examples:
            content["examples"] = body.examples
        elif body.example is not None:
            content["example"] = body.example
        request_body: dict[str, Any] = {}
        if body.required:
            request_body["required"] = True
        request_body["content"] = {body.media_type: content}
        return request_body

    def _additional_responses(
        self, plan: _Operation, responses: dict[str, Any], media_type: str | None
    ) -> None:
        for code, spec in (plan.route.responses or {}).items():
            if not isinstance(spec, Mapping):
                msg = f"route {plan.route.path!r}: an additional response must be a dict"
                raise TypeError(msg)
            extra = copy.deepcopy(dict(spec))
            extra.pop("model", None)
            key = str(code).upper()
            if key == "DEFAULT":
                key = "default"
            response = responses.setdefault(key, {})
            if code in plan.extra_responses:
                handle, title = plan.extra_responses[code]
                schema = (
                    extra.setdefault("content", {})
                    .setdefault(media_type or "application/json", {})
                    .setdefault("schema", {})
                )
                deep_update(schema, self._schema(handle, title))
            status_text = _status_text(code)
            description = (
                extra.get("description")
                or response.get("description")
                or status_text
                or "Additional Response"
            )
            deep_update(response, extra)
            response["description"] = description


def _status_text(code: Any) -> str | None:
    text = STATUS_RANGES.get(str(code).upper())
    if text:
        return text
    try:
        status = int(code)
    except (TypeError, ValueError):
        msg = (
            f"responses={{{code!r}: ...}}: a response key must be a status code (404), "
            "a range ('4XX') or 'default'"
        )
        raise ValueError(msg) from None
    return http.client.responses.get(status)


def _methods(route: Any) -> list[str]:
    return list(route.methods)


def _routes_in_schema(routes: Iterable[Any]) -> list[Any]:
    return [route for route in routes if isinstance(route, APIRoute) or _is_api_route(route)]


def _is_api_route(route: Any) -> bool:
    return all(hasattr(route, name) for name in ("endpoint", "methods", "path_format"))


def build_document(
    *,
    title: str,
    version: str,
    openapi_version: str = "3.1.0",
    summary: str | None = None,
    description: str | None = None,
    routes: Sequence[Any],
    webhooks: Sequence[Any] | None = None,
    tags: list[dict[str, Any]] | None = None,
    servers: list[dict[str, Any]] | None = None,
    terms_of_service: str | None = None,
    contact: dict[str, Any] | None = None,
    license_info: dict[str, Any] | None = None,
    separate_input_output_schemas: bool = True,
    external_docs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OpenAPI document for ``routes`` (and ``webhooks``), as JSON data.

    The keywords are those of :func:`trioapi.openapi.utils.get_openapi`.
    """
    info: dict[str, Any] = {"title": title, "version": version}
    if summary:
        info["summary"] = summary
    if description:
        info["description"] = description
    if terms_of_service:
        info["termsOfService"] = terms_of_service
    if contact:
        info["contact"] = contact
    if license_info:
        info["license"] = license_info
    output: dict[str, Any] = {"openapi": openapi_version, "info": info}
    if servers:
        output["servers"] = servers

    schemas = SchemaSet(separate_input_output_schemas=separate_input_output_schemas)
    planner = _Planner(schemas)
    route_plans = [
        planner.route(route) for route in _routes_in_schema(routes) if route.include_in_schema
    ]
    webhook_plans = [
        planner.route(route)
        for route in _routes_in_schema(webhooks or ())
        if route.include_in_schema
    ]
    schemas.generate()

    writer = _Writer(schemas, set())
    paths: dict[str, dict[str, Any]] = {}
    for plan in route_plans:
        item = writer.path_item(plan)
        if item:
            paths.setdefault(plan.route.path_format, {}).update(item)
    webhook_paths: dict[str, dict[str, Any]] = {}
    for plan in webhook_plans:
        item = writer.path_item(plan)
        if item:
            webhook_paths.setdefault(plan.route.path_format, {}).update(item)

    definitions = dict(schemas.definitions)
    if writer.validation_errors:
        definitions.setdefault("ValidationError", copy.deepcopy(VALIDATION_ERROR_SCHEMA))
        definitions.setdefault("HTTPValidationError", copy.deepcopy(HTTP_VALIDATION_ERROR_SCHEMA))
    components: dict[str, Any] = {}
    if writer.security_schemes:
        components["securitySchemes"] = writer.security_schemes
    if definitions:
        components["schemas"] = {name: definitions[name] for name in sorted(definitions)}
    if components:
        output["components"] = components
    output["paths"] = paths
    if webhook_paths:
        output["webhooks"] = webhook_paths
    if tags:
        output["tags"] = tags
    if external_docs:
        output["externalDocs"] = external_docs
    return _finish(output)


def _finish(output: dict[str, Any]) -> dict[str, Any]:
    from ..encoders import jsonable_encoder

    data = jsonable_encoder(output, by_alias=True, exclude_none=True)
    assert isinstance(data, dict)
    return data


__all__ = [
    "HTTP_VALIDATION_ERROR_SCHEMA",
    "METHODS_WITH_BODY",
    "REF_PREFIX",
    "VALIDATION_ERROR_SCHEMA",
    "FieldMarker",
    "body_allowed",
    "build_document",
    "deep_update",
    "generate_unique_id",
]

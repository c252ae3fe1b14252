"""Response models: what a route's return value becomes before it is rendered (no I/O).

A route's response model is ``response_model=`` or, when that is left out,
the endpoint's return annotation (FastAPI's rule; ``response_model=None``
turns it off). The model always filters: the value is turned into plain
data, validated *as the model*, and dumped from the validated result, so a
field the model does not declare never reaches the client, whatever class
the value had (a ``UserIn`` returned where ``UserOut`` is declared loses its
``password_hash``). A value that does not fit the model is the server's
error: :class:`ResponseValidationError`, answered 500.

Two engines, chosen per route at registration: cattrs for models that are
or contain attrs classes, or when pydantic is not installed; pydantic
(FastAPI's own behaviour, ``response_model_*`` options included) otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, get_args

import attrs

from .._exceptions import ResponseValidationError, RouteDefinitionError
from . import pydantic_engine
from .convert import ConversionError, body_converter, body_errors, strip_optional

if TYPE_CHECKING:
    from .routing import APIRoute

Shaper = Callable[[Any], Any]


def serialize_options(route: APIRoute) -> pydantic_engine.SerializeOptions:
    return pydantic_engine.SerializeOptions(
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )


def _is_response_type(tp: Any) -> bool:
    # Only a Response class itself means "no model": a union holding one
    # (``-> Response | dict``) is refused, as FastAPI refuses it.
    from .responses import Response

    return isinstance(tp, type) and issubclass(tp, Response)


def response_shaper(
    where: str, model: Any, options: pydantic_engine.SerializeOptions, *, to_json: bool = False
) -> Shaper | None:
    """The function shaping a route's return values, or None when nothing is to be done.

    With ``to_json``, one that returns the response's JSON bytes, and only
    where pydantic handles ``model`` (None otherwise: attrs classes, no
    pydantic); for a value pydantic cannot write as UTF-8, it returns its
    JSON data, which the caller renders with the response class. FastAPI
    answers a response model with the default response class this way, so
    the bytes are the ones FastAPI sends.

    Raises:
        RouteDefinitionError: The model cannot be validated or dumped.
    """
    if model is None or model is Any or model is type(None) or _is_response_type(model):
        return None
    pydantic_engine.check_not_v1(model, "the response model")
    if pydantic_engine.involves_attrs(model) or not pydantic_engine.available():
        return None if to_json else _native_shaper(where, model, options)
    try:
        shape = pydantic_engine.response_shaper(model, options, where, to_json=to_json)
    except Exception as error:
        msg = (
            f"{where}: cannot use {model!r} as the response model: it is not a valid "
            f"Pydantic field type ({error}). Set the route's parameter response_model=None "
            "to return the value as it is."
        )
        raise RouteDefinitionError(msg) from error
    return _raising(shape)


def _raising(shape: Shaper) -> Shaper:
    def run(value: Any) -> Any:
        try:
            return shape(value)
        except pydantic_engine.Invalid as invalid:
            raise ResponseValidationError(
                [{**entry, "loc": ("response", *entry["loc"])} for entry in invalid.entries],
                body=value,
            ) from None

    return run


def _declares_fields(tp: Any, _depth: int = 0) -> bool:
    """``tp`` is or holds a class with declared fields (what a response model filters)."""
    if _depth > 20:
        return False
    if isinstance(tp, type) and (
        attrs.has(tp) or dataclasses.is_dataclass(tp) or pydantic_engine.is_pydantic_model(tp)
    ):
        return True
    return any(_declares_fields(arg, _depth + 1) for arg in get_args(tp) if arg is not Ellipsis)


def _native_shaper(
    where: str, model: Any, options: pydantic_engine.SerializeOptions
) -> Shaper | None:
    _, optional = strip_optional(model)
    try:
        hook = body_converter.get_structure_hook(model)
    except Exception as error:
        if not _declares_fields(model):
            # dict[str, str | int] and the like: nothing to filter, and cattrs
            # (without pydantic) has no hook for a union of plain types.
            return None
        msg = f"{where}: cannot use {model!r} as the response model: {error}"
        raise RouteDefinitionError(msg) from error
    exclude_none = options.exclude_none

    def shape(value: Any) -> Any:
        if value is None and optional:
            return None
        data = to_data(value)
        try:
            structured = hook(data, model)
        except ConversionError as error:
            entries = [{"type": error.type, "loc": ("response",), "msg": error.msg, "input": data}]
            raise ResponseValidationError(entries, body=value) from None
        except Exception as error:
            entries = [
                {**entry, "loc": tuple(entry["loc"])}
                for entry in body_errors(error, ["response"], data)
            ]
            raise ResponseValidationError(entries, body=value) from None
        dumped = body_converter.unstructure(structured, unstructure_as=model)
        return _drop_none(dumped) if exclude_none else dumped

    return shape


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_none(item) for item in value]
    return value


def to_data(value: Any) -> Any:
    """Any model instance (attrs, dataclass, pydantic) as plain dicts and lists."""
    if isinstance(value, dict):
        return {key: to_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_data(item) for item in value]
    cls = type(value)
    if attrs.has(cls):
        return {field.name: to_data(getattr(value, field.name)) for field in attrs.fields(cls)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_data(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if pydantic_engine.is_pydantic_model(cls):
        return to_data(value.model_dump())
    if isinstance(value, Mapping):
        return {key: to_data(item) for key, item in value.items()}
    return value

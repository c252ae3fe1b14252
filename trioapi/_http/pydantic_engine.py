"""The pydantic validation engine, used when pydantic v2 is installed (``trioapi[pydantic]``).

Nothing here imports pydantic at module level: :func:`available` asks
whether it is installed, and everything else imports it on first use, at
route registration. An app whose routes need no pydantic never loads it.

Which engine a value goes through is decided per parameter at registration
(:func:`wants`): attrs classes always go through cattrs (pydantic does not
know them); with pydantic installed, bodies, pydantic models, dataclasses,
TypedDicts, constrained or annotated types and every keyword only pydantic
enforces go through pydantic, so they validate, fail and serialise exactly
as in FastAPI; plain scalars in the URL and headers keep trioapi's own
converters, which give the same results and error entries for less.

A validator returns the value or raises :class:`Invalid`, whose entries are
FastAPI's 422 entries with ``loc`` relative to the value; the caller puts
the source and name in front.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Annotated, Any, get_args, get_origin

import attrs

from .._exceptions import TrioAPIError

Validator = Callable[[Any], Any]


class Invalid(ValueError):
    """A value failed validation; ``entries`` are 422 entries relative to it."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__(entries)
        self.entries = entries


@functools.cache
def available() -> bool:
    """pydantic (v2) can be imported; checked without importing it."""
    if "pydantic" in sys.modules:
        return True
    return importlib.util.find_spec("pydantic") is not None


def loaded() -> bool:
    """Some code already imported pydantic (so its types can appear in annotations)."""
    return "pydantic" in sys.modules


def is_pydantic_model(tp: Any) -> bool:
    """``tp`` is a pydantic ``BaseModel`` subclass (without importing pydantic)."""
    if not loaded() or not isinstance(tp, type):
        return False
    from pydantic import BaseModel

    return issubclass(tp, BaseModel)


def check_not_v1(tp: Any, what: str, _depth: int = 0) -> None:
    """Refuses ``pydantic.v1`` models, as FastAPI does: only pydantic 2 models work.

    Raises:
        PydanticV1NotSupportedError: ``tp`` is or contains a ``pydantic.v1`` model.
    """
    v1 = sys.modules.get("pydantic.v1")
    if v1 is None or _depth > 20:
        return
    if isinstance(tp, type) and issubclass(tp, v1.BaseModel):
        from ..encoders import PydanticV1NotSupportedError

        msg = (
            f"pydantic.v1 models are no longer supported by trioapi. Please update {what} "
            f"{tp!r} to a pydantic 2 model (from pydantic import BaseModel)."
        )
        raise PydanticV1NotSupportedError(msg)
    for arg in get_args(tp):
        check_not_v1(arg, what, _depth + 1)


def involves_attrs(tp: Any, _depth: int = 0) -> bool:
    """``tp`` is, or contains, an attrs class (which only cattrs can structure)."""
    if _depth > 20:
        return False
    if isinstance(tp, type) and attrs.has(tp):
        return True
    return any(involves_attrs(arg, _depth + 1) for arg in get_args(tp) if arg is not Ellipsis)


def involves_pydantic(tp: Any, _depth: int = 0) -> bool:
    """``tp`` names a pydantic type or carries annotation metadata for pydantic."""
    if not loaded() or _depth > 20:
        return False
    if get_origin(tp) is Annotated:
        return True
    if isinstance(tp, type):
        module = getattr(tp, "__module__", "") or ""
        if module.startswith(("pydantic", "pydantic_core", "pydantic_extra_types")):
            return True
        if is_pydantic_model(tp) or getattr(tp, "__pydantic_validator__", None) is not None:
            return True
    return any(involves_pydantic(arg, _depth + 1) for arg in get_args(tp) if arg is not Ellipsis)


def is_structured(tp: Any) -> bool:
    """A dataclass or TypedDict: pydantic validates them; cattrs would need hooks."""
    return (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or typing.is_typeddict(tp)


def is_json_text(metadata: tuple[Any, ...]) -> bool:
    """``Annotated`` metadata holds pydantic's ``Json`` (``Json[T]`` is ``Annotated[T, Json]``)."""
    if not loaded() or not metadata:
        return False
    from pydantic import Json

    return any(item is Json or isinstance(item, Json) for item in metadata)


def metadata_settings(metadata: tuple[Any, ...]) -> dict[str, Any]:
    """What pydantic ``Field()`` objects in ``Annotated`` say about the parameter itself.

    Their ``alias``/``validation_alias`` (the wire name), ``default_factory``
    and ``validate_default``: FastAPI honours them as if the marker said so.
    """
    if not loaded() or not metadata:
        return {}
    from pydantic.fields import FieldInfo

    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            if item.alias is not None:
                found["alias"] = item.alias
            if item.validation_alias is not None and item.validation_alias != item.alias:
                # Only one given as such: pydantic copies alias into it, and a
                # marker's own alias= must then win over that copy.
                found["validation_alias"] = item.validation_alias
            if item.default_factory is not None:
                found["default_factory"] = item.default_factory
            if item.validate_default is not None:
                found["validate_default"] = item.validate_default
            for name in _DOCUMENTATION:
                value = getattr(item, name, None)
                if value is not None:
                    found[name] = value
    return found


_DOCUMENTATION = ("title", "description", "examples", "deprecated", "json_schema_extra")

_MOVED_TO_MARKER = frozenset(
    {
        "alias",
        "validation_alias",
        "serialization_alias",
        "alias_priority",
        "default_factory",
        "validate_default",
        *_DOCUMENTATION,
    }
)


def without_marker_settings(metadata: tuple[Any, ...]) -> tuple[Any, ...]:
    """``metadata`` with what :func:`metadata_settings` moved into the marker left out.

    For the schema: the marker then says alone what the parameter's alias and
    documentation are (an explicit ``title=None`` on it clears the field's).
    """
    if not loaded() or not metadata:
        return metadata
    from pydantic import Field
    from pydantic.fields import FieldInfo

    kept: list[Any] = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            given = getattr(item, "_attributes_set", None)
            if given is None:  # pragma: no cover - pydantic moved its record
                kept.append(item)
                continue
            rest = {key: value for key, value in given.items() if key not in _MOVED_TO_MARKER}
            if rest:
                kept.append(Field(**rest))
            continue
        kept.append(item)
    return tuple(kept)


def _adapter(annotation: Any) -> Any:
    from pydantic import TypeAdapter

    with warnings.catch_warnings():
        # pydantic warns about Field() keywords that have no meaning for a bare
        # type (an alias on a TypeAdapter, say); they are documentation here.
        warnings.simplefilter("ignore")
        return TypeAdapter(annotation)


def _annotated(annotation: Any, metadata: tuple[Any, ...], field_kwargs: Mapping[str, Any]) -> Any:
    if not metadata and not field_kwargs:
        return annotation
    extra: tuple[Any, ...] = metadata
    if field_kwargs:
        from pydantic import Field

        extra = (*metadata, Field(**field_kwargs))
    return Annotated[(annotation, *extra)]


def entries_from(error: Any) -> list[dict[str, Any]]:
    """pydantic's ``ValidationError`` as FastAPI's 422 entries (``loc`` a tuple)."""
    return [
        {**entry, "loc": tuple(entry.get("loc", ()))} for entry in error.errors(include_url=False)
    ]


def validator(
    annotation: Any,
    *,
    metadata: tuple[Any, ...] = (),
    field_kwargs: Mapping[str, Any] | None = None,
    where: str = "",
) -> Validator:
    """Returns a function validating one value as ``annotation`` (FastAPI's lax Python mode).

    Raises:
        TrioAPIError: pydantic cannot build a schema for the annotation.
    """
    from pydantic import ValidationError
    from pydantic.errors import PydanticSchemaGenerationError

    try:
        adapter = _adapter(_annotated(annotation, metadata, field_kwargs or {}))
    except (PydanticSchemaGenerationError, TypeError) as error:
        msg = f"{where}: pydantic cannot validate {annotation!r}: {error}"
        raise TrioAPIError(msg) from error
    validate = adapter.validate_python

    def run(value: Any) -> Any:
        try:
            return validate(value, from_attributes=True)
        except ValidationError as error:
            raise Invalid(entries_from(error)) from None

    return run


@attrs.frozen
class SerializeOptions:
    """The ``response_model_*`` options of a route."""

    include: Any = None
    exclude: Any = None
    by_alias: bool = True
    exclude_unset: bool = False
    exclude_defaults: bool = False
    exclude_none: bool = False


def response_shaper(
    annotation: Any, options: SerializeOptions, where: str, *, to_json: bool = False
) -> Callable[[Any], Any]:
    """For a response model: validates the return value as it, then dumps it to JSON data.

    As in FastAPI, a model instance is first dumped (honouring
    ``exclude_unset`` and the like) and then validated as the declared
    model, so fields the model does not declare never reach the client,
    whatever class the value was; a value that does not fit raises
    :class:`Invalid` (the app answers 500).
    """
    from pydantic import ValidationError

    adapter = _adapter(annotation)
    dump_options = {
        "include": options.include,
        "exclude": options.exclude,
        "by_alias": options.by_alias,
        "exclude_unset": options.exclude_unset,
        "exclude_defaults": options.exclude_defaults,
        "exclude_none": options.exclude_none,
    }

    def validate(value: Any) -> Any:
        try:
            return adapter.validate_python(_prepare(value, options), from_attributes=True)
        except ValidationError as error:
            raise Invalid(entries_from(error)) from None

    dump = adapter.dump_python
    if to_json:
        # The JSON bytes themselves, from pydantic's core: FastAPI's own fast
        # path for a response model and the default response class. Where its
        # UTF-8 cannot hold a value (a lone surrogate), the JSON data instead,
        # for the response class's encoder, which escapes it.
        from pydantic_core import PydanticSerializationError

        dump_json = adapter.dump_json

        def shape_json(value: Any) -> Any:
            validated = validate(value)
            try:
                return dump_json(validated, **dump_options)
            except PydanticSerializationError:
                return dump(validated, mode="json", **dump_options)

        return shape_json

    def shape(value: Any) -> Any:
        return dump(validate(value), mode="json", **dump_options)

    return shape


def _prepare(value: Any, options: SerializeOptions) -> Any:
    # pydantic reads a returned model (of any class) by its attributes, as
    # FastAPI 0.165 validates it, keeping what was set for exclude_unset.
    # attrs values (which pydantic cannot read where the model says Any)
    # and dataclasses become plain data first.
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value  # read as it is; checking it for attrs first is slow
    if isinstance(value, list):
        return [_prepare(item, options) for item in value]
    if isinstance(value, dict):
        return {key: _prepare(item, options) for key, item in value.items()}
    if attrs.has(type(value)):
        return _prepare(attrs.asdict(value, recurse=False), options)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Read by its fields, so a dataclass of another class than the
        # model's is filtered to the model (FastAPI answers 500 there).
        return _prepare(
            {field.name: getattr(value, field.name) for field in dataclasses.fields(value)},
            options,
        )
    return value


def dump_json_data(value: Any) -> Any:
    """A pydantic model (or anything holding one) as plain JSON data."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)

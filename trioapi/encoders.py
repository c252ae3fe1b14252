"""Turn any object into data the ``json`` module can encode.

:func:`jsonable_encoder` gives FastAPI's results for the same input: code
that calls ``fastapi.encoders.jsonable_encoder`` runs unchanged against it.
The result depends on the order of the checks, so here is the order
(the first that matches wins):

1. ``custom_encoder``: the object's exact type, then each key in the
   mapping's order, by ``isinstance``;
2. a pydantic model: ``model_dump(mode="json", ...)``, whose result is then
   filtered again (``exclude_none``, ``sqlalchemy_safe``);
3. a dataclass (``dataclasses.asdict``) or an attrs instance (its fields):
   encoded as the dict of its fields, with ``include``/``exclude``;
4. an enum member: its value, as it is; a ``PurePath``: ``str``;
5. ``str``, ``int``, ``float``, ``None`` (and subclasses): as they are;
   pydantic's ``Undefined``: ``None``;
6. a ``dict``: keys and values encoded, keys filtered by ``include``,
   ``exclude``, ``exclude_none`` and ``sqlalchemy_safe``;
7. ``list``, ``tuple``, ``set``, ``frozenset``, ``deque``, a generator:
   a list, each item encoded with the same ``include``/``exclude``;
8. the scalar types of :data:`_ENCODER_GROUPS` (bytes, IP addresses, UUID,
   dates and times, ``timedelta``, ``Decimal``, ``re.Pattern``, and
   pydantic's URL, secret, e-mail and colour types);
9. anything else: ``dict(obj)``, else ``vars(obj)``, encoded as a dict;
   an object that allows neither raises ``ValueError``.

pydantic is optional, and importing this module does not import it. A value
can be a pydantic object only once the module defining its class has been
imported, so each pydantic check first looks that module up in
``sys.modules`` and is skipped when it is absent.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import sys
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import PurePath
from types import GeneratorType
from typing import Any, TypeAlias, final
from uuid import UUID

import attrs

from ._exceptions import TrioAPIError

__all__ = ["IncEx", "PydanticV1NotSupportedError", "jsonable_encoder"]

IncEx: TypeAlias = set[int] | set[str] | Mapping[int, "IncEx | bool"] | Mapping[str, "IncEx | bool"]
"""The shape of ``include`` and ``exclude``: field names, or pydantic's nested mappings."""


@final
class PydanticV1NotSupportedError(TrioAPIError, RuntimeError):
    """A ``pydantic.v1`` model was given where only pydantic v2 models work.

    Port the model to ``pydantic.BaseModel`` (pydantic v2).
    """


_Encoder: TypeAlias = Callable[[Any], Any]


def _decode_bytes(value: bytes) -> str:
    return value.decode()


def _isoformat(value: datetime.date | datetime.time) -> str:
    return value.isoformat()


def _total_seconds(value: datetime.timedelta) -> float:
    return value.total_seconds()


def _encode_decimal(value: Decimal) -> int | float:
    # A whole number (``Decimal("10")``, ``Decimal("1E+2")``) stays an int so
    # that it parses back to the same number; the rest (and NaN, whose
    # exponent is a letter) becomes a float.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def _pattern_source(value: re.Pattern[Any]) -> Any:
    return value.pattern


# Scalar types, in the order FastAPI tries them with ``isinstance``: an object
# of a class deriving from two of them gets the first group's encoding.
_STR_TYPES: tuple[type[Any], ...] = (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    UUID,
)
_ENCODER_GROUPS: tuple[tuple[tuple[type[Any], ...], _Encoder], ...] = (
    ((bytes,), _decode_bytes),
    (_STR_TYPES, str),
    ((datetime.date, datetime.time), _isoformat),
    ((datetime.timedelta,), _total_seconds),
    ((Decimal,), _encode_decimal),
    ((re.Pattern,), _pattern_source),
)
_ENCODER_BY_TYPE: dict[type[Any], _Encoder] = {
    type_: encoder for types, encoder in _ENCODER_GROUPS for type_ in types
}
_SEQUENCE_TYPES = (list, set, frozenset, GeneratorType, tuple, deque)

# pydantic's classes that encode as ``str``, by the module defining each.
_PYDANTIC_STR_CLASSES = (
    ("pydantic.color", "Color"),
    ("pydantic_extra_types.color", "Color"),
    ("pydantic.networks", "NameEmail"),
    ("pydantic.types", "SecretBytes"),
    ("pydantic.types", "SecretStr"),
    ("pydantic_core", "Url"),
    ("pydantic.networks", "AnyUrl"),
)


def _loaded_class(module_name: str, class_name: str) -> type[Any] | None:
    # Only modules already imported: looking up the class never imports one.
    module = sys.modules.get(module_name)
    found = getattr(module, class_name, None) if module is not None else None
    return found if isinstance(found, type) else None


def _pydantic_str_classes() -> tuple[type[Any], ...]:
    found = (_loaded_class(module, name) for module, name in _PYDANTIC_STR_CLASSES)
    return tuple(cls for cls in found if cls is not None)


def _is_instance_of_loaded(obj: Any, module_name: str, class_name: str) -> bool:
    cls = _loaded_class(module_name, class_name)
    return cls is not None and isinstance(obj, cls)


def _scalar_encoder(obj: Any) -> _Encoder | None:
    encoder = _ENCODER_BY_TYPE.get(type(obj))
    if encoder is not None:
        return encoder
    pydantic_str = _pydantic_str_classes()
    for types, group_encoder in _ENCODER_GROUPS:
        if group_encoder is str:
            types += pydantic_str
        if isinstance(obj, types):
            return group_encoder
    return None


def _as_key_set(keys: Any) -> Any:
    # FastAPI accepts any iterable of names; sets and dicts pass through.
    if keys is None or isinstance(keys, set | dict):
        return keys
    return set(keys)


@attrs.frozen
class _Options:
    by_alias: bool
    exclude_unset: bool
    exclude_defaults: bool
    exclude_none: bool
    custom_encoder: Mapping[Any, _Encoder]
    sqlalchemy_safe: bool


def jsonable_encoder(
    obj: Any,
    include: IncEx | None = None,
    exclude: IncEx | None = None,
    by_alias: bool = True,
    exclude_unset: bool = False,
    exclude_defaults: bool = False,
    exclude_none: bool = False,
    custom_encoder: dict[Any, Callable[[Any], Any]] | None = None,
    sqlalchemy_safe: bool = True,
) -> Any:
    """Converts an object to data made of dicts, lists, str, int, float, bool and None.

    This is what a path operation's return value goes through before it is
    sent as JSON; call it yourself to store an object in a JSON column, or
    to build a ``JSONResponse`` from models. The module docstring lists, in
    order, how each kind of object is converted.

    Args:
        obj: The object to convert.
        include: The field or key names to keep (a set, or any iterable of
            names; pydantic's nested mappings for pydantic models). Applies
            to the top-level object: the keys of a dict, the fields of a model,
            dataclass or attrs instance, and of each item of a list.
        exclude: The field or key names to drop, in the same forms as
            ``include``.
        by_alias: Whether a pydantic model's fields use their alias.
        exclude_unset: Whether to leave out a pydantic model's fields that
            were not set explicitly.
        exclude_defaults: Whether to leave out a pydantic model's fields
            equal to their default.
        exclude_none: Whether to leave out fields and dict entries whose
            value is ``None``, at every depth.
        custom_encoder: Encoders by type, tried before everything else: the
            object's exact type first, then every key in order by
            ``isinstance``. Not applied inside pydantic models, which
            encode themselves.
        sqlalchemy_safe: Whether to leave out string keys starting with
            ``_sa`` (SQLAlchemy's instance state), at every depth.

    Returns:
        The converted data, which ``json.dumps`` accepts (except that floats
        may be NaN or infinite, as with ``Decimal("NaN")``).

    Raises:
        ValueError: ``obj`` or a value in it is of no known type and allows
            neither ``dict(obj)`` nor ``vars(obj)``; its argument is the list
            of the two errors. Pass ``custom_encoder={ItsType: ...}``.
        PydanticV1NotSupportedError: ``obj`` is a ``pydantic.v1`` model.
    """
    options = _Options(
        by_alias=by_alias,
        exclude_unset=exclude_unset,
        exclude_defaults=exclude_defaults,
        exclude_none=exclude_none,
        custom_encoder=custom_encoder or {},
        sqlalchemy_safe=sqlalchemy_safe,
    )
    return _encode(obj, include, exclude, options)


def _encode(obj: Any, include: Any, exclude: Any, options: _Options) -> Any:
    custom = options.custom_encoder
    if custom:
        if type(obj) in custom:
            return custom[type(obj)](obj)
        for type_, encoder in custom.items():
            if isinstance(obj, type_):
                return encoder(obj)
    include = _as_key_set(include)
    exclude = _as_key_set(exclude)

    if _is_instance_of_loaded(obj, "pydantic.main", "BaseModel"):
        return _encode_pydantic_model(obj, include, exclude, options)
    if dataclasses.is_dataclass(obj):
        if isinstance(obj, type):
            msg = (
                f"jsonable_encoder() got the dataclass {obj.__qualname__} itself:"
                " pass an instance of it"
            )
            raise TypeError(msg)
        return _encode(dataclasses.asdict(obj), include, exclude, options)
    if attrs.has(type(obj)):
        # Only the top level: nested attrs instances are encoded in turn, so
        # that custom_encoder sees them.
        return _encode(attrs.asdict(obj, recurse=False), include, exclude, options)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, PurePath):
        return str(obj)
    if obj is None or isinstance(obj, str | int | float):
        return obj
    if _is_instance_of_loaded(obj, "pydantic_core", "PydanticUndefinedType"):
        return None
    if isinstance(obj, dict):
        return _encode_dict(obj, include, exclude, options)
    if isinstance(obj, _SEQUENCE_TYPES):
        return [_encode(item, include, exclude, options) for item in obj]

    scalar_encoder = _scalar_encoder(obj)
    if scalar_encoder is not None:
        return scalar_encoder(obj)
    if _is_instance_of_loaded(obj, "pydantic.v1.main", "BaseModel"):
        msg = (
            f"pydantic.v1 models are not supported: port the model {obj!r}"
            " to pydantic v2 (pydantic.BaseModel)"
        )
        raise PydanticV1NotSupportedError(msg)
    if _is_instance_of_loaded(obj, "trioapi._http.uploads", "UploadFile"):
        # Starlette's UploadFile is encoded by vars() (a 422 entry's input
        # can be one); trioapi's has __slots__ instead: the same attributes.
        data = {name: getattr(obj, name) for name in ("filename", "file", "size", "headers")}
        return _encode(data, include, exclude, options)
    try:
        data = dict(obj)
    except Exception as dict_error:
        try:
            data = vars(obj)
        except Exception as vars_error:
            error = ValueError([dict_error, vars_error])
            error.add_note(
                f"jsonable_encoder() cannot encode a {type(obj).__qualname__} object:"
                " pass custom_encoder={" + type(obj).__qualname__ + ": ...} to convert it"
            )
            raise error from vars_error
    return _encode(data, include, exclude, options)


def _encode_pydantic_model(model: Any, include: Any, exclude: Any, options: _Options) -> Any:
    data = model.model_dump(
        mode="json",
        include=include,
        exclude=exclude,
        by_alias=options.by_alias,
        exclude_unset=options.exclude_unset,
        exclude_none=options.exclude_none,
        exclude_defaults=options.exclude_defaults,
    )
    # The dump is JSON data already; what remains is dropping None values and
    # ``_sa`` keys at every depth, without the caller's custom encoders.
    plain = _Options(
        by_alias=True,
        exclude_unset=False,
        exclude_defaults=options.exclude_defaults,
        exclude_none=options.exclude_none,
        custom_encoder={},
        sqlalchemy_safe=options.sqlalchemy_safe,
    )
    return _encode(data, None, None, plain)


def _encode_dict(obj: dict[Any, Any], include: Any, exclude: Any, options: _Options) -> Any:
    allowed: set[Any] | None = None
    if include is not None or exclude is not None:
        allowed = set(obj)
        if include is not None:
            allowed &= set(include)
        if exclude is not None:
            allowed -= set(exclude)
    encoded = {}
    for key, value in obj.items():
        if options.sqlalchemy_safe and isinstance(key, str) and key.startswith("_sa"):
            continue
        if value is None and options.exclude_none:
            continue
        if allowed is not None and key not in allowed:
            continue
        # include and exclude apply to this dict's keys only, not below.
        encoded[_encode(key, None, None, options)] = _encode(value, None, None, options)
    return encoded

"""Value conversion: strings from the URL and headers, JSON into attrs classes.

Pure functions, no I/O. Everything here is looked up once, when a route is
registered: :func:`string_converter` returns a ready function for one
annotation, :func:`body_structurer` returns cattrs' compiled hook for one. At
request time a conversion is one call, and a failure is a
:class:`ConversionError` that knows its pydantic-compatible error ``type`` and
message, so the 422 body reads the way FastAPI clients expect.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

StrConverter = Callable[[str], Any]
BodyStructurer = Callable[[Any], Any]


class ConversionError(ValueError):
    """One value failed to convert.

    Attributes:
        type: The machine-readable error type (``int_parsing``, ``missing``...).
        msg: The human-readable message.
        ctx: Extra context for the error entry (limits, expected values).
    """

    def __init__(self, type: str, msg: str, ctx: Mapping[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.type = type
        self.msg = msg
        self.ctx = dict(ctx) if ctx else None


def error_entry(
    type: str,
    loc: Sequence[str | int],
    msg: str,
    input: Any,
    ctx: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Builds one entry of a 422 ``detail`` list."""
    entry: dict[str, Any] = {"type": type, "loc": list(loc), "msg": msg, "input": input}
    if ctx:
        entry["ctx"] = dict(ctx)
    return entry


# --- annotations -------------------------------------------------------------

_NONE_TYPE = type(None)


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """Returns ``(inner, True)`` for ``X | None`` / ``Optional[X]``, else ``(tp, False)``."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [arg for arg in get_args(tp) if arg is not _NONE_TYPE]
        if len(args) < len(get_args(tp)):
            if len(args) == 1:
                return args[0], True
            return Union[tuple(args)], True  # noqa: UP007 - rebuilt from parts at runtime
    return tp, False


def sequence_item(tp: Any) -> Any | None:
    """Returns the item type of ``list[X]``/``tuple[X, ...]``/``set[X]``, else None.

    Also through ``Annotated`` (``Annotated[set[str], Field(max_length=3)]``).
    """
    origin = get_origin(tp)
    if origin is Annotated:
        return sequence_item(get_args(tp)[0])
    if tp in (list, tuple, set, frozenset):
        return str
    if origin in (list, set, frozenset, Sequence, typing.Sequence):
        args = get_args(tp)
        return args[0] if args else str
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def is_scalar(tp: Any) -> bool:
    """True for the types a single string (path segment, query value) can hold."""
    tp, _ = strip_optional(tp)
    if tp in _SCALARS or tp is Any:
        return True
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return True
    origin = get_origin(tp)
    if origin is Literal:
        return True
    if origin is Union or origin is types.UnionType:
        return all(is_scalar(arg) for arg in get_args(tp))
    return False


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


# --- strings -> values ---------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def _to_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConversionError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        ) from None


def _to_float(value: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise ConversionError(
            "float_parsing", "Input should be a valid number, unable to parse string as a number"
        ) from None
    if not math.isfinite(result):  # "nan", "inf": no JSON response could carry them back
        raise ConversionError("finite_number", "Input should be a finite number")
    return result


def _to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConversionError(
        "bool_parsing", "Input should be a valid boolean, unable to interpret input"
    )


def _to_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ConversionError("uuid_parsing", "Input should be a valid UUID") from None


def _to_decimal(value: str) -> decimal.Decimal:
    try:
        result = decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise ConversionError("decimal_parsing", "Input should be a valid decimal") from None
    if not result.is_finite():
        raise ConversionError("finite_number", "Input should be a finite number")
    return result


def _iso(kind: type[Any], error_type: str, label: str) -> StrConverter:
    parse = kind.fromisoformat

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError:
            raise ConversionError(error_type, f"Input should be a valid {label}") from None

    return convert


def _identity(value: str) -> str:
    return value


def _to_bytes(value: str) -> bytes:
    return value.encode("utf-8")


_SCALARS: dict[Any, StrConverter] = {
    str: _identity,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    uuid.UUID: _to_uuid,
    decimal.Decimal: _to_decimal,
    bytes: _to_bytes,
    datetime.datetime: _iso(datetime.datetime, "datetime_parsing", "datetime"),
    datetime.date: _iso(datetime.date, "date_parsing", "date"),
    datetime.time: _iso(datetime.time, "time_parsing", "time"),
}


def _expected(choices: Iterable[Any]) -> str:
    """pydantic's list of allowed values: ``'a', 'b' or 'c'``, each as its repr."""
    shown = [repr(choice) for choice in choices]
    if len(shown) < 2:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} or {shown[-1]}"


def _enum_converter(tp: type[enum.Enum]) -> StrConverter:
    by_text = {str(member.value): member for member in tp}
    expected = _expected(member.value for member in tp)

    def convert(value: str) -> enum.Enum:
        try:
            return by_text[value]
        except KeyError:
            raise ConversionError(
                "enum", f"Input should be {expected}", {"expected": expected}
            ) from None

    return convert


def _literal_converter(choices: tuple[Any, ...]) -> StrConverter:
    options: dict[str, Any] = {}
    for choice in choices:
        if isinstance(choice, bool):
            options[str(choice).lower()] = choice
        elif isinstance(choice, enum.Enum):
            options[str(choice.value)] = choice
        else:
            options[str(choice)] = choice
    expected = _expected(choices)

    def convert(value: str) -> Any:
        try:
            return options[value]
        except KeyError:
            raise ConversionError(
                "literal_error", f"Input should be {expected}", {"expected": expected}
            ) from None

    return convert


def _union_converter(converters: list[StrConverter]) -> StrConverter:
    def convert(value: str) -> Any:
        first: ConversionError | None = None
        for converter in converters:
            try:
                return converter(value)
            except ConversionError as error:
                first = first or error
        assert first is not None
        raise first

    return convert


def string_converter(tp: Any) -> StrConverter:
    """Returns the function that turns one string into a value of type ``tp``.

    Raises:
        TypeError: ``tp`` cannot be built from a single string.
    """
    tp, _ = strip_optional(tp)
    if tp is Any or tp is object:
        return _identity
    found = _SCALARS.get(tp)
    if found is not None:
        return found
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_converter(tp)
    if isinstance(tp, type) and issubclass(tp, bool):
        return _to_bool
    if isinstance(tp, type):
        for base, converter in _SCALARS.items():
            # str/int subclasses (NewType-like classes): convert, then wrap.
            if base in (str, int, float) and issubclass(tp, base):
                return _wrap(converter, tp)
    origin = get_origin(tp)
    if origin is Literal:
        return _literal_converter(get_args(tp))
    if origin is Union or origin is types.UnionType:
        members = get_args(tp)
        if str in members:
            # pydantic's "smart" union mode (FastAPI's default): a string is an
            # exact match for str, whatever comes before it (int | str keeps "123").
            return _identity
        return _union_converter([string_converter(arg) for arg in members])
    supertype = getattr(tp, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return string_converter(supertype)
    msg = f"cannot convert a string to {type_name(tp)}"
    raise TypeError(msg)


def _wrap(converter: StrConverter, tp: type[Any]) -> StrConverter:
    def convert(value: str) -> Any:
        return tp(converter(value))

    return convert


# --- constraints ---------------------------------------------------------------


@attrs.frozen
class Constraints:
    """Limits declared on a parameter marker (``Query(ge=1, max_length=50)``)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None

    def is_empty(self) -> bool:
        return self == _NO_CONSTRAINTS

    def checker(self) -> Callable[[Any], None] | None:
        """Returns a function raising :class:`ConversionError` on a violation."""
        if self.is_empty():
            return None
        gt, ge, lt, le = self.gt, self.ge, self.lt, self.le
        min_length, max_length = self.min_length, self.max_length
        regex = re.compile(self.pattern) if self.pattern is not None else None

        def check(value: Any) -> None:
            if gt is not None and not value > gt:
                raise ConversionError(
                    "greater_than", f"Input should be greater than {gt}", {"gt": gt}
                )
            if ge is not None and not value >= ge:
                raise ConversionError(
                    "greater_than_equal",
                    f"Input should be greater than or equal to {ge}",
                    {"ge": ge},
                )
            if lt is not None and not value < lt:
                raise ConversionError("less_than", f"Input should be less than {lt}", {"lt": lt})
            if le is not None and not value <= le:
                raise ConversionError(
                    "less_than_equal", f"Input should be less than or equal to {le}", {"le": le}
                )
            if min_length is not None and len(value) < min_length:
                raise _length_error(value, "short", "at least", "min_length", min_length)
            if max_length is not None and len(value) > max_length:
                raise _length_error(value, "long", "at most", "max_length", max_length)
            if regex is not None and not regex.search(value):
                raise ConversionError(
                    "string_pattern_mismatch",
                    f"String should match pattern '{regex.pattern}'",
                    {"pattern": regex.pattern},
                )

        return check


_NO_CONSTRAINTS = Constraints()


def _length_error(
    value: Any, kind: str, bound_text: str, bound_name: str, bound: int
) -> ConversionError:
    # pydantic's wording: strings count characters, everything else items.
    if isinstance(value, str):
        code, subject, noun = f"string_too_{kind}", "String", "character"
    else:
        code, subject, noun = f"too_{kind}", "List", "item"
    count = f"{bound} {noun}" if bound == 1 else f"{bound} {noun}s"
    return ConversionError(code, f"{subject} should have {bound_text} {count}", {bound_name: bound})


# --- JSON bodies -----------------------------------------------------------------


def _enum_member(tp: type[enum.Enum], value: Any) -> Any:
    try:
        return tp(value)
    except (ValueError, TypeError):
        expected = " or ".join(repr(member.value) for member in tp)
        raise ConversionError(
            "enum", f"Input should be {expected}", {"expected": expected}
        ) from None


def _strict_int(value: Any, tp: Any) -> int:
    if tp is not int and issubclass(tp, enum.Enum):  # IntEnum dispatches here
        member: int = _enum_member(tp, value)
        return member
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise ConversionError("int_type", "Input should be a valid integer")


def _strict_float(value: Any, _: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise ConversionError("float_type", "Input should be a valid number")


def _strict_str(value: Any, tp: Any) -> str:
    if tp is not str and issubclass(tp, enum.Enum):  # StrEnum dispatches here
        member: str = _enum_member(tp, value)
        return member
    if type(value) is str:
        return value
    raise ConversionError("string_type", "Input should be a valid string")


def _strict_bool(value: Any, _: Any) -> bool:
    if type(value) is bool:
        return value
    raise ConversionError("bool_type", "Input should be a valid boolean")


def _from_string(target: Any) -> Callable[[Any, Any], Any]:
    convert = string_converter(target)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not str:
            raise ConversionError("string_type", "Input should be a valid string")
        return convert(value)

    return structure


def _strict_dict(value: Any, _: Any) -> dict[Any, Any]:
    if type(value) is dict:
        return value
    raise ConversionError("dict_type", "Input should be a valid dictionary")


def _strict_list(value: Any, _: Any) -> list[Any]:
    if type(value) is list:
        return value
    raise ConversionError("list_type", "Input should be a valid list")


def _any(value: Any, _: Any) -> Any:
    return value


def _is_typed_list(tp: Any) -> bool:
    origin: Any = get_origin(tp)
    return origin in (list, Sequence, MutableSequence)


def _is_typed_dict(tp: Any) -> bool:
    origin: Any = get_origin(tp)
    return origin in (dict, Mapping, MutableMapping)


def _make_body_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(dict, _strict_dict)
    converter.register_structure_hook(list, _strict_list)
    converter.register_structure_hook(Any, _any)
    for target in (uuid.UUID, datetime.datetime, datetime.date, datetime.time):
        converter.register_structure_hook(target, _from_string(target))

    def structure_decimal(value: Any, _: Any) -> decimal.Decimal:
        if type(value) in (int, float, str):
            return _to_decimal(str(value))
        raise ConversionError("decimal_type", "Input should be a valid decimal")

    converter.register_structure_hook(decimal.Decimal, structure_decimal)

    def enum_hook_factory(tp: type[enum.Enum]) -> Callable[[Any, Any], Any]:
        members = {member.value: member for member in tp}
        expected = " or ".join(repr(key) for key in members)

        def structure(value: Any, _: Any) -> Any:
            try:
                return members[value]
            except (KeyError, TypeError):
                raise ConversionError(
                    "enum", f"Input should be {expected}", {"expected": expected}
                ) from None

        return structure

    converter.register_structure_hook_factory(
        lambda tp: isinstance(tp, type) and issubclass(tp, enum.Enum), enum_hook_factory
    )

    def typed_list(tp: Any) -> Callable[[Any, Any], Any]:
        items = list_structure_factory(tp, converter)

        def structure(value: Any, target: Any) -> Any:
            if type(value) is not list:
                raise ConversionError("list_type", "Input should be a valid list")
            return items(value, target)

        return structure

    def typed_dict(tp: Any) -> Callable[[Any, Any], Any]:
        entries = converter.gen_structure_mapping(tp)

        def structure(value: Any, target: Any) -> Any:
            if type(value) is not dict:
                raise ConversionError("dict_type", "Input should be a valid dictionary")
            return entries(value, target)

        return structure

    # cattrs iterates any iterable into list[X] ("abc" -> ["a", "b", "c"]) and
    # any mapping-like into dict[K, V]: JSON bodies must say what they mean.
    converter.register_structure_hook_factory(_is_typed_list, typed_list)
    converter.register_structure_hook_factory(_is_typed_dict, typed_dict)
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_unstructure_hook(decimal.Decimal, str)
    for iso in (datetime.datetime, datetime.date, datetime.time):
        converter.register_unstructure_hook(iso, iso.isoformat)
    return converter


body_converter = _make_body_converter()
"""The cattrs converter for request bodies and attrs responses; users may add hooks."""


def body_structurer(tp: Any) -> BodyStructurer:
    """Returns the compiled function that structures parsed JSON into ``tp``."""
    inner, _ = strip_optional(tp)
    if inner is Any or inner is object:
        return lambda value: value
    if inner is bytes:
        msg = "bytes bodies are read raw, not structured from JSON"
        raise TypeError(msg)
    hook = body_converter.get_structure_hook(tp)

    def structure(value: Any) -> Any:
        return hook(value, tp)

    return structure


def body_errors(error: BaseException, loc: Sequence[str | int], value: Any) -> list[dict[str, Any]]:
    """Flattens a cattrs structuring error into 422 entries rooted at ``loc``."""
    entries: list[dict[str, Any]] = []
    _walk(error, list(loc), value, entries)
    return entries


def _child(value: Any, key: str | int) -> Any:
    try:
        return value[key]
    except (KeyError, IndexError, TypeError):
        return None


_NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"


def _walk(
    error: BaseException, loc: list[str | int], value: Any, out: list[dict[str, Any]]
) -> None:
    if isinstance(error, ClassValidationError) and not isinstance(value, Mapping):
        # One entry for "this is not an object", not one per missing field.
        out.append(error_entry("model_attributes_type", loc, _NOT_AN_OBJECT, value))
        return
    if isinstance(error, ClassValidationError | IterableValidationError):
        with_notes, without = error.group_exceptions()
        for sub, note in with_notes:
            key: str | int = note.name if hasattr(note, "name") else note.index
            if isinstance(sub, KeyError):
                out.append(error_entry("missing", [*loc, key], "Field required", value))
            else:
                _walk(sub, [*loc, key], _child(value, key), out)
        for sub in without:
            _walk(sub, loc, value, out)
        return
    if isinstance(error, ConversionError):
        out.append(error_entry(error.type, loc, error.msg, value, error.ctx))
    elif isinstance(error, ForbiddenExtraKeysError):
        for key in sorted(error.extra_fields):
            out.append(
                error_entry(
                    "extra_forbidden",
                    [*loc, key],
                    "Extra inputs are not permitted",
                    _child(value, key),
                )
            )
    elif isinstance(error, AttributeError | TypeError) and not isinstance(value, Mapping):
        out.append(error_entry("model_attributes_type", loc, _NOT_AN_OBJECT, value))
    elif isinstance(error, KeyError):
        out.append(error_entry("missing", loc, "Field required", value))
    else:
        # attrs validators and user converters: their message is the best we have.
        out.append(error_entry("value_error", loc, f"Value error, {error}", value))

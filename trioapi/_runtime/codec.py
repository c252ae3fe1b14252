"""How a durable task's arguments are stored: JSON, plus tags for what JSON lacks.

A task's arguments become one JSON document ``{"a": [...], "k": {...}}``
(and ``"t"``, the W3C trace context of the span that committed it, when
tracing is on).
Values JSON has (None, bool, int, float, str, lists, dicts with str keys)
are written as they are; every other supported value is an object with a
``"$"`` tag::

    {"$": "tuple", "v": [...]}          tuple, set, frozenset
    {"$": "datetime", "v": "2026-12-02T10:00:00+00:00"}   also date, time
    {"$": "timedelta", "v": 1.5}        seconds
    {"$": "uuid", "v": "…"}  {"$": "decimal", "v": "1.10"}  {"$": "bytes", "v": base64}
    {"$": "path", "v": "/tmp/x"}        pathlib paths (as PurePath's class)
    {"$": "enum", "c": "module:Class", "v": <value>}
    {"$": "attrs", "c": "module:Class", "v": {init-name: value}}   also dataclasses
    {"$": "pydantic", "c": "module:Class", "v": model_dump(mode="json")}
    {"$": "dict", "v": [[key, value], ...]}   a dict with a "$" key or non-str keys

Classes are stored by import path and must be importable by it (module
level, not defined in a function); an argument that cannot be stored raises
``TypeError`` in ``add_task``, naming the task and the argument, so the
request fails then rather than the task later.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import importlib
import json
import pathlib
import sys
import uuid
from typing import Any

import attrs

_PLAIN = frozenset({str, int, float, bool, type(None)})
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: In every payload that holds a tagged value, and in no other: one that
#: lacks it is plain JSON, which reads back as it was written.
TAG = '"$"'

_CLASSES: dict[type, str] = {}


class _Unstorable(TypeError):
    def __init__(self, where: str, value: Any, why: str = "") -> None:
        self.where = where
        self.value = value
        self.why = why
        super().__init__(where)


def encode(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The JSON payload for ``name(*args, **kwargs)``.

    Raises:
        TypeError: An argument cannot be stored; the message names it.
    """
    try:
        if all(type(value) in _PLAIN for value in args) and all(
            type(value) in _PLAIN for value in kwargs.values()
        ):
            # The common case, strings and numbers: nothing to tag or check.
            document: dict[str, Any] = {"a": args, "k": kwargs}
        else:
            document = {
                "a": [_encode(value, f"argument {index + 1}") for index, value in enumerate(args)],
                "k": {key: _encode(value, f"argument {key}=") for key, value in kwargs.items()},
            }
    except _Unstorable as error:
        kind = type(error.value)
        why = f" ({error.why})" if error.why else ""
        msg = (
            f"durable task {name!r}: {error.where} is a {kind.__module__}.{kind.__qualname__}, "
            f"which cannot be stored{why}; pass JSON values, datetime, date, time, timedelta, "
            "UUID, Decimal, bytes, paths, enums, attrs classes, dataclasses or pydantic models "
            "defined at module level (or an id to look the object up by in the task)"
        )
        raise TypeError(msg) from None
    return _dumps(document)


def decode(payload: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments stored by :func:`encode`.

    Raises:
        ValueError: The payload is not one ``encode`` wrote, or names a class
            this process cannot import.
    """
    document = json.loads(payload)
    if not isinstance(document, dict) or not {"a", "k"} <= set(document) <= {"a", "k", "t"}:
        msg = "not a durable task payload (expected an object with 'a' and 'k')"
        raise ValueError(msg)
    args = tuple(_decode(value) for value in document["a"])
    kwargs = {key: _decode(value) for key, value in document["k"].items()}
    return args, kwargs


def with_trace(payload: str, traceparent: str) -> str:
    """The payload with the trace context of the span that committed it (key ``t``)."""
    return f"{payload[:-1]},{json.dumps('t')}:{json.dumps(traceparent)}}}"


def trace_of(payload: str) -> str | None:
    """The trace context stored with the payload, if any."""
    if '"t":' not in payload:
        return None
    found = json.loads(payload).get("t")
    return found if isinstance(found, str) else None


def _encode(value: Any, where: str) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_encode(item, where) for item in value]
    if kind is dict:
        if all(type(key) is str for key in value) and "$" not in value:
            return {key: _encode(item, where) for key, item in value.items()}
        return {
            "$": "dict",
            "v": [[_encode(key, where), _encode(item, where)] for key, item in value.items()],
        }
    if isinstance(value, enum.Enum):
        return {"$": "enum", "c": _class_path(kind, value, where), "v": _encode(value.value, where)}
    if kind is tuple or kind is set or kind is frozenset:
        return {"$": kind.__name__, "v": [_encode(item, where) for item in value]}
    if kind is datetime.datetime or kind is datetime.date or kind is datetime.time:
        return {"$": kind.__name__, "v": value.isoformat()}
    if kind is datetime.timedelta:
        return {"$": "timedelta", "v": value.total_seconds()}
    if kind is uuid.UUID:
        return {"$": "uuid", "v": str(value)}
    if kind is decimal.Decimal:
        return {"$": "decimal", "v": str(value)}
    if kind is bytes or kind is bytearray:
        return {"$": "bytes", "v": base64.b64encode(value).decode("ascii")}
    if isinstance(value, pathlib.PurePath):
        return {"$": "path", "c": kind.__name__, "v": str(value)}
    if attrs.has(kind):
        fields = {
            field.alias: _encode(getattr(value, field.name), f"{where} .{field.name}")
            for field in attrs.fields(kind)
            if field.init
        }
        return {"$": "attrs", "c": _class_path(kind, value, where), "v": fields}
    if dataclasses.is_dataclass(value):
        fields = {
            field.name: _encode(getattr(value, field.name), f"{where} .{field.name}")
            for field in dataclasses.fields(value)
            if field.init
        }
        return {"$": "attrs", "c": _class_path(kind, value, where), "v": fields}
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        path = _class_path(kind, value, where)
        return {"$": "pydantic", "c": path, "v": value.model_dump(mode="json", by_alias=True)}
    raise _Unstorable(where, value)


def _class_path(kind: type, value: Any, where: str) -> str:
    path = _CLASSES.get(kind)
    if path is None:
        path = f"{kind.__module__}:{kind.__qualname__}"
        if "<locals>" in kind.__qualname__:
            raise _Unstorable(where, value, "its class is defined inside a function")
        try:
            found = _import(path)
        except (ImportError, AttributeError):
            found = None
        if found is not kind:
            raise _Unstorable(where, value, f"its class is not importable as {path}")
        _CLASSES[kind] = path
    return path


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


_PATHS: dict[str, type[pathlib.PurePath]] = {
    kind.__name__: kind
    for kind in (
        pathlib.Path,
        pathlib.PurePath,
        pathlib.PosixPath,
        pathlib.WindowsPath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
    )
}


def _decode(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [_decode(item) for item in value]
    if kind is not dict:
        return value
    tag = value.get("$")
    if tag is None:
        return {key: _decode(item) for key, item in value.items()}
    inner = value.get("v")
    if tag == "dict":
        return {_decode(key): _decode(item) for key, item in inner}
    if tag == "tuple":
        return tuple(_decode(item) for item in inner)
    if tag == "set":
        return {_decode(item) for item in inner}
    if tag == "frozenset":
        return frozenset(_decode(item) for item in inner)
    if tag == "datetime":
        return datetime.datetime.fromisoformat(inner)
    if tag == "date":
        return datetime.date.fromisoformat(inner)
    if tag == "time":
        return datetime.time.fromisoformat(inner)
    if tag == "timedelta":
        return datetime.timedelta(seconds=inner)
    if tag == "uuid":
        return uuid.UUID(inner)
    if tag == "decimal":
        return decimal.Decimal(inner)
    if tag == "bytes":
        return base64.b64decode(inner)
    if tag == "path":
        return _PATHS.get(value.get("c", ""), pathlib.PurePath)(inner)
    if tag in ("enum", "attrs", "pydantic"):
        path = value.get("c", "")
        try:
            cls = _import(path)
        except (ImportError, AttributeError) as error:
            msg = f"the stored argument's class {path!r} cannot be imported here: {error}"
            raise ValueError(msg) from error
        if tag == "enum":
            return cls(_decode(inner))
        if tag == "pydantic":
            return cls.model_validate(inner)
        return cls(**{key: _decode(item) for key, item in inner.items()})
    msg = f"unknown tag {tag!r} in a durable task payload"
    raise ValueError(msg)

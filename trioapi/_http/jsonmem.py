"""What a JSON body costs in memory once decoded, known before decoding it.

The body's byte limit (16 MiB) does not bound its memory: ``[{},{},...]``
is 3 bytes per empty dict in the body and about 100 bytes per dict in
Python (the dict, its slot in the list, its share of the decoded text), and
validated into pydantic models about 550 bytes each. One 15 MB body of it
raised a server's peak RSS by 324 to 387 MB; into a list of models it is
gigabytes. So before a JSON body is decoded, the app counts its structural
bytes (``{``, ``[``, ``,``, ``:``, ``"``: one C-speed ``bytes.count`` each)
and prices them with the per-token costs below, which bound what CPython
3.11+ allocates for each (measured with ``tracemalloc`` on arrays of every
shape in ``tests/test_json_memory.py``). A body whose price is over
``max_json_memory`` gets 413 without being decoded.

The price includes the body's own bytes, the text ``json`` decodes them to
(1 byte a character for ASCII, up to 4 otherwise), every string's
characters (as many again, or 4 bytes each when the body holds non-ASCII
text or ``\\u`` escapes) and each container's and value's object. It errs
high: typical records (``{"id": 1, "name": "...", "price": 1.5}``) are
priced at about twice what they take, a plain long string at what it takes.

The price bounds what Python allocates; a process's resident memory grows
by up to a third more (the allocator keeps the freed receive buffers, and a
growing list's old array, as pages of the process). Hence the default of
48 MiB: measured with the real server (``bench/json_memory.py``), no JSON
body under the default limits raised one request's peak RSS by more than
64 MiB (``docs/reliability.md`` has the table).

Bodies so small that even the costliest shape could not reach the limit are
not counted at all (:func:`needs_counting`): below about 230 KiB for the
default limit, every request pays nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from .._exceptions import MalformedRequestError

DEFAULT_MAX_JSON_MEMORY = 48 * 1024 * 1024
"""The price over which a JSON body gets 413 (``TrioAPI(max_json_memory=)``, per route too)."""

OBJECT = 64
"""Per ``{``: an empty dict (64 bytes in CPython 3.11)."""

MODEL = 512
"""Per ``{`` when the body is validated into models (pydantic, dataclasses, attrs):
the instance, its ``__dict__`` and pydantic's fields-set (about 370 to 480 bytes)."""

ARRAY = 64
"""Per ``[``: an empty list (56) and its over-allocation."""

ITEM = 32
"""Per ``,``: the next value's slot (8) and its object (a float: 24; an int
beyond the small-int cache: 28 to 36)."""

ENTRY = 64
"""Per ``:``: a dict entry, with the table's growth (dicts double)."""

QUOTE = 28
"""Per ``"``: half a string's header (a str object is 40 to 72 bytes before its characters)."""

COSTLIEST_BYTE = (OBJECT + MODEL + ITEM) // 3 + 1 + 9
"""The most one byte of valid JSON can be priced at: ``{},`` repeated, into
models, plus the 9 bytes of the body itself, its text and its characters."""


def price(raw: bytes, models: bool) -> int:
    """An upper bound on the bytes decoding ``raw`` (and validating it into models) takes."""
    size = len(raw)
    if raw.isascii():
        text = size
        characters = 4 * size if b"\\u" in raw else size
    else:
        text = characters = 4 * size
    objects = raw.count(b"{")
    return (
        size
        + text
        + characters
        + objects * (OBJECT + MODEL if models else OBJECT)
        + raw.count(b"[") * ARRAY
        + raw.count(b",") * ITEM
        + raw.count(b":") * ENTRY
        + raw.count(b'"') * QUOTE
    )


def most_it_could_cost(size: int) -> int:
    """The highest price of any JSON body of ``size`` bytes (+2: a last ``{}`` needs no ``,``)."""
    return (size + 2) * COSTLIEST_BYTE


def needs_counting(size: int, limit: float) -> bool:
    """Whether a body of ``size`` bytes could be priced over ``limit`` at all."""
    return most_it_could_cost(size) > limit


def json_memory_limit(route: Any, app: Any) -> float | None:
    """The limit on a route's JSON bodies: its own (or its router's), else the app's.

    A route's ``None`` means "the app's"; the app's ``None`` means no limit
    (a route lifts it with ``max_json_memory=math.inf``).
    """
    limit = getattr(route, "max_json_memory", None)
    if limit is None:
        limit = getattr(app, "max_json_memory", DEFAULT_MAX_JSON_MEMORY)
    return limit


def check_json_memory(raw: bytes, route: Any, app: Any, models: bool) -> None:
    """Refuses a JSON body whose price is over the route's limit, before it is decoded.

    Raises:
        MalformedRequestError: 413, naming the price and the limit.
    """
    limit = json_memory_limit(route, app)
    if limit is None or not needs_counting(len(raw), limit):
        return
    cost = price(raw, models)
    if cost > limit:
        raise MalformedRequestError(too_costly_message(cost, limit), status_code=413)


def too_costly_message(cost: int, limit: float) -> str:
    return (
        f"the JSON body would take about {_mib(cost)} of memory to decode, more than "
        f"this endpoint accepts ({_mib(limit)}, max_json_memory)"
    )


def _mib(size: float) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def builds_models(annotation: Any) -> bool:
    """Whether validating into ``annotation`` makes an object per JSON object.

    True when a pydantic model, a dataclass or an attrs class appears
    anywhere in it (``list[Item]``, ``dict[str, Item]``, ``Item | None``...).
    """
    return _builds_models(annotation, 0)


def _builds_models(annotation: Any, depth: int) -> bool:
    if depth > 20:
        return True  # a recursive alias: assume the worst
    if isinstance(annotation, type) and (
        hasattr(annotation, "model_fields")
        or dataclasses.is_dataclass(annotation)
        or hasattr(annotation, "__attrs_attrs__")
    ):
        return True
    return any(_builds_models(arg, depth + 1) for arg in get_args(annotation))

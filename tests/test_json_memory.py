"""A JSON body's memory is bounded before it is decoded (``max_json_memory``).

The price (``trioapi/_http/jsonmem.py``) is calibrated here against
``tracemalloc``: for every shape of body, what decoding it (and validating
it, through the route's own validator) allocates at its peak is at most its
price, and for the shapes that cost the most it is not far below. The rest
goes through the app: 413 with a message naming the limit, per app, router
and route, for ``request.json()`` too, and the body is never decoded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tracemalloc
from collections.abc import Callable
from typing import Annotated, Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioapi import APIRouter, Body, Request, TrioAPI
from trioapi._http.jsonmem import (
    DEFAULT_MAX_JSON_MEMORY,
    most_it_could_cost,
    needs_counting,
    price,
)
from trioapi._http.solve import _decode_json
from trioapi.testing import TestClient

MIB = 1024 * 1024
SIZE = 400_000
"""Calibration bodies' size: large enough that the decoded objects dominate the peak."""


try:
    import pydantic
except ImportError:  # the tests-without-pydantic session
    pydantic = None

needs_pydantic = pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")

if pydantic is not None:

    class Empty(pydantic.BaseModel):
        pass

    class One(pydantic.BaseModel):
        a: int

    class Item(pydantic.BaseModel):
        id: int
        name: str
        price: float

else:
    Empty = One = Item = None  # type: ignore[assignment,misc]


@dataclasses.dataclass
class Nothing:
    pass


@attrs.define
class AttrsItem:
    id: int
    name: str
    price: float


@dataclasses.dataclass
class DataItem:
    id: int
    name: str
    price: float


def array(item: bytes, size: int = SIZE) -> bytes:
    return b"[" + b",".join([item] * (size // (len(item) + 1))) + b"]"


RECORD = b'{"id":123,"name":"abcdef","price":12.5}'

# (shape, body, the endpoint's body annotation, whether the price must be tight)
SHAPES: list[Any] = [
    ("empty dicts", array(b"{}"), Any, True),
    ("empty lists", array(b"[]"), Any, True),
    ("nested lists", array(b"[[]]"), Any, True),
    ("pairs", array(b"[1,2]"), Any, True),
    ("small ints", array(b"0"), Any, False),  # cached ints: only their slots
    ("big ints", array(b"12345678901"), Any, True),
    ("floats", array(b"1.5"), Any, True),
    ("booleans", array(b"true"), Any, False),  # singletons: only their slots
    ("nulls", array(b"null"), Any, False),
    ("short strings", array(b'"ab"'), Any, True),
    ("escaped strings", array(b'"\\u00e9a"'), Any, True),
    ("non-ASCII strings", array('"éa"'.encode()), Any, True),
    ("one-key dicts", array(b'{"a":0}'), Any, True),
    ("records", array(RECORD), Any, True),
    (
        "distinct keys",
        b"{" + b",".join(b'"k%d":0' % i for i in range(SIZE // 10)) + b"}",
        Any,
        True,
    ),
    ("one string", b'"' + b"x" * SIZE + b'"', Any, True),
    ("one string and an emoji", b'"' + b"x" * SIZE + "\U0001f600".encode() + b'"', Any, True),
    pytest.param("empty models", array(b"{}"), list[Empty], True, marks=needs_pydantic),
    pytest.param("one-field models", array(b'{"a":0}'), list[One], True, marks=needs_pydantic),
    pytest.param("models", array(RECORD), list[Item], True, marks=needs_pydantic),
    pytest.param(
        "models by key",
        b"{" + b",".join(b'"k%d":%s' % (i, RECORD) for i in range(SIZE // 48)) + b"}",
        dict[str, Item],
        True,
        marks=needs_pydantic,
    ),
    ("empty dataclasses", array(b"{}"), list[Nothing], False),  # smaller than pydantic's
    ("attrs instances", array(RECORD), list[AttrsItem], False),  # slotted: smaller
    ("dataclass instances", array(RECORD), list[DataItem], False),  # plain: smaller
]


def route_validator(annotation: Any) -> tuple[Callable[[Any], Any], bool]:
    """trioapi's validator for a body of this type, and whether it is priced with models."""
    app = TrioAPI()

    async def endpoint(payload: Any) -> None:
        pass

    endpoint.__annotations__ = {"payload": Annotated[annotation, Body()], "return": None}
    app.post("/")(endpoint)
    route = app.routes[-1]
    dependant = route.dependant
    assert dependant is not None
    field = dependant.body[0]
    convert = field.validate or field.structure
    if convert is None:
        return (lambda value: value), dependant.json_models
    return convert, dependant.json_models


@pytest.mark.parametrize(
    ("shape", "body", "annotation", "tight"),
    SHAPES,
    ids=[(s.values if hasattr(s, "values") else s)[0] for s in SHAPES],
)
def test_decoding_a_body_takes_at_most_its_price(
    shape: str, body: bytes, annotation: Any, tight: bool
) -> None:
    convert, models = route_validator(annotation)
    assert models is (annotation is not Any)
    tracemalloc.start()
    try:
        value = convert(_decode_json(body))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del value
    cost = price(body, models)
    assert peak <= cost, f"{shape}: peak {peak} over price {cost} ({peak / len(body):.1f}x)"
    if tight:
        # Errs high, but not so high that ordinary bodies are refused.
        assert cost <= 3 * peak, f"{shape}: price {cost} over 3x the peak {peak}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans())
def test_no_json_body_is_priced_over_the_most_its_size_could_cost(
    value: Any, ensure_ascii: bool
) -> None:
    # What lets bodies too small to reach the limit go uncounted.
    raw = json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":")).encode()
    bound = most_it_could_cost(len(raw))
    assert price(raw, models=True) <= bound
    assert not needs_counting(len(raw), bound)
    assert needs_counting(len(raw), bound - 1)


def test_bodies_below_200_kb_are_never_counted_under_the_default() -> None:
    assert not needs_counting(200_000, DEFAULT_MAX_JSON_MEMORY)
    assert needs_counting(16 * MIB, DEFAULT_MAX_JSON_MEMORY)


def json_app(**options: Any) -> tuple[TrioAPI, list[str]]:
    app = TrioAPI(**options)
    called: list[str] = []
    router = APIRouter(max_json_memory=200 * MIB)

    @app.post("/any")
    async def any_json(payload: Annotated[Any, Body()]) -> int:
        called.append("any")
        return len(payload)

    @app.post("/models")
    async def models(payload: list[Nothing]) -> int:
        called.append("models")
        return len(payload)

    @app.post("/unlimited", max_json_memory=math.inf)
    async def unlimited(payload: Annotated[Any, Body()]) -> int:
        called.append("unlimited")
        return len(payload)

    @app.post("/lower", max_json_memory=1 * MIB)
    async def lower(payload: Annotated[Any, Body()]) -> int:
        called.append("lower")
        return len(payload)

    @router.post("/raised")
    async def raised(payload: list[Nothing]) -> int:
        called.append("raised")
        return len(payload)

    @app.post("/request")
    async def from_request(request: Request) -> int:
        called.append("request")
        return len(await request.json())

    app.include_router(router)
    return app, called


async def test_the_15_mb_body_that_took_387_mb_gets_413_without_being_decoded() -> None:
    app, called = json_app()
    body = array(b"{}", 15_000_000)
    async with TestClient(app) as client:
        tracemalloc.start()
        try:
            response = await client.post(
                "/any", content=body, headers={"content-type": "application/json"}
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail.startswith("the JSON body would take about ")
    assert detail.endswith("more than this endpoint accepts (48.0 MiB, max_json_memory)")
    assert called == []
    # Client and server copies of the body, not the 25x of its decoded objects.
    assert peak < 8 * len(body), f"{peak / len(body):.1f}x the body"


async def test_the_limit_is_the_routes_then_the_routers_then_the_apps() -> None:
    app, called = json_app(max_json_memory=8 * MIB)
    big = array(b"{}", 1_000_000)  # priced at 35 MB as values
    middling = array(b"{}", 200_000)  # 7 MB as values, 41 MB as models
    headers = {"content-type": "application/json"}

    async def status(path: str, body: bytes) -> int:
        return (await client.post(path, content=body, headers=headers)).status_code

    async with TestClient(app) as client:
        answers = {
            "/any": await status("/any", big),
            "/unlimited": await status("/unlimited", big),
            "/request": await status("/request", big),
            "/models": await status("/models", middling),
            "/raised": await status("/raised", middling),
        }
        lower = await client.post("/lower", content=array(b"{}", 100_000), headers=headers)
        fits = await client.post("/lower", content=array(b"{}", 20_000), headers=headers)
    assert answers == {
        "/any": 413,
        "/unlimited": 200,
        "/request": 413,
        "/models": 413,
        "/raised": 200,
    }
    assert called == ["unlimited", "request", "raised", "lower"]  # /request reads it itself
    assert lower.status_code == 413, "a route may lower the app's limit"
    assert "(1.0 MiB, max_json_memory)" in lower.json()["detail"]
    assert fits.json() == 20_000 // 3


async def test_models_are_priced_as_models() -> None:
    app, called = json_app(max_json_memory=16 * MIB)
    body = array(b"{}", 300_000)
    headers = {"content-type": "application/json"}
    async with TestClient(app) as client:
        as_values = await client.post("/any", content=body, headers=headers)
        as_models = await client.post("/models", content=body, headers=headers)
    assert (as_values.status_code, as_models.status_code) == (200, 413)
    assert price(body, models=False) < 16 * MIB < price(body, models=True)
    assert called == ["any"]


def test_the_app_and_router_defaults() -> None:
    assert TrioAPI().max_json_memory == DEFAULT_MAX_JSON_MEMORY == 48 * MIB
    assert TrioAPI(max_json_memory=None).max_json_memory is None
    assert APIRouter().max_json_memory is None  # the app's, once included
    with pytest.raises(ValueError, match="max_json_memory must be > 0 bytes or None"):
        TrioAPI(max_json_memory=0)


async def test_a_router_without_a_limit_has_the_apps() -> None:
    app = TrioAPI(max_json_memory=1 * MIB)
    router = APIRouter()

    @router.post("/routed")
    async def routed(payload: Annotated[Any, Body()]) -> int:
        return len(payload)

    app.include_router(router)
    async with TestClient(app) as client:
        response = await client.post(
            "/routed", content=array(b"{}", 100_000), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert "(1.0 MiB, max_json_memory)" in response.json()["detail"]

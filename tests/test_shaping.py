"""Response models on trioapi's own engine (attrs classes, cattrs): they filter, and they refuse.

These run with or without pydantic: attrs models never go through it.
"""

import dataclasses
from typing import Any

import attrs
import pytest

from trioapi import RouteDefinitionError, TrioAPI
from trioapi.testing import TestClient


@attrs.define
class Public:
    name: str
    nickname: str | None = None


@attrs.define
class Private:
    name: str
    nickname: str | None
    password_hash: str


@dataclasses.dataclass
class Row:
    name: str
    password_hash: str


async def answer(app: TrioAPI, url: str) -> Any:
    async with TestClient(app) as client:
        return await client.get(url)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(Private("a", None, "secret"), {"name": "a", "nickname": None}, id="attrs"),
        pytest.param(Row("a", "secret"), {"name": "a", "nickname": None}, id="a dataclass"),
        pytest.param(
            {"name": "a", "password_hash": "secret"}, {"name": "a", "nickname": None}, id="a dict"
        ),
    ],
)
async def test_an_attrs_response_model_keeps_only_its_own_fields(value: Any, expected: Any) -> None:
    app = TrioAPI()

    @app.get("/user", response_model=Public)
    async def read() -> Any:
        return value

    response = await answer(app, "/user")
    assert (response.status_code, response.json()) == (200, expected)


async def test_exclude_none_and_an_optional_model_returning_none() -> None:
    app = TrioAPI()

    @app.get("/some", response_model=Public, response_model_exclude_none=True)
    async def some() -> Any:
        return [Private("a", None, "secret")][0]

    @app.get("/none", response_model=Public | None)
    async def none() -> Any:
        return None

    async with TestClient(app) as client:
        assert (await client.get("/some")).json() == {"name": "a"}
        assert (await client.get("/none")).json() is None


async def test_a_value_that_does_not_fit_is_a_plain_500() -> None:
    app = TrioAPI()

    @app.get("/wrong", response_model=Public)
    async def wrong() -> Any:
        return {"nickname": "no name"}

    @app.get("/not-an-object", response_model=list[Public])
    async def not_an_object() -> Any:
        return 5

    async with TestClient(app) as client:
        for url in ("/wrong", "/not-an-object"):
            response = await client.get(url)
            assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_a_model_nothing_can_build_is_refused_when_the_route_is_declared() -> None:
    class Opaque:
        def __init__(self, secret: object) -> None:
            self.secret = secret

    @attrs.define
    class Holder:
        value: Opaque

    app = TrioAPI()
    with pytest.raises(RouteDefinitionError, match="as the response model"):

        @app.get("/opaque", response_model=dict[str, Holder | int])
        async def opaque() -> Any:
            return {}


def test_a_return_annotation_pydantic_cannot_take_is_refused_with_fastapi_s_hint() -> None:
    pytest.importorskip("pydantic")
    from trioapi.responses import Response

    app = TrioAPI()
    with pytest.raises(RouteDefinitionError) as caught:

        @app.get("/")
        def read_root() -> Response | None:
            return Response(content="Foo")  # pragma: no cover

    # FastAPI's own test looks for these two phrases.
    assert "valid Pydantic field type" in str(caught.value)
    assert "parameter response_model=None" in str(caught.value)

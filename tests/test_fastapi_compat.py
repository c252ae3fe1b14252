"""FastAPI's behaviour, case by case: each test is a FastAPI app whose answer we match.

The expected answers are what FastAPI 0.165 gives for the same app (run
side by side while writing these). The response-model tests are the
security promise: a field the model does not declare never reaches the
client, for every shape, whether the model comes from ``response_model=``
or from the return annotation.
"""

import dataclasses
from typing import Annotated, Any

import attrs
import pytest

from trioapi import Body, Cookie, Depends, Header, HTTPException, Query, Request, TrioAPI
from trioapi.responses import RedirectResponse
from trioapi.testing import TestClient

pydantic = pytest.importorskip("pydantic")
BaseModel = pydantic.BaseModel
PydanticField = pydantic.Field


class UserOut(BaseModel):
    name: str


class UserIn(BaseModel):
    name: str
    password_hash: str


@attrs.define
class AttrsOut:
    name: str


@attrs.define
class AttrsIn:
    name: str
    password_hash: str


@dataclasses.dataclass
class DataOut:
    name: str


@dataclasses.dataclass
class DataIn:
    name: str
    password_hash: str


async def get(app: TrioAPI, url: str, **kwargs: Any) -> Any:
    async with TestClient(app) as client:
        return await client.get(url, **kwargs)


async def post(app: TrioAPI, url: str, **kwargs: Any) -> Any:
    async with TestClient(app) as client:
        return await client.post(url, **kwargs)


# --- the response model always filters ------------------------------------------------

SECRET = {"name": "a", "password_hash": "secret"}


@pytest.mark.parametrize(
    ("model", "value", "expected"),
    [
        pytest.param(UserOut, UserIn(**SECRET), {"name": "a"}, id="pydantic"),
        pytest.param(list[UserOut], [UserIn(**SECRET)], [{"name": "a"}], id="list[pydantic]"),
        pytest.param(
            dict[str, UserOut], {"k": UserIn(**SECRET)}, {"k": {"name": "a"}}, id="dict[pydantic]"
        ),
        pytest.param(UserOut | None, UserIn(**SECRET), {"name": "a"}, id="optional pydantic"),
        pytest.param(UserOut, dict(SECRET), {"name": "a"}, id="a dict as pydantic"),
        pytest.param(UserOut, AttrsIn(**SECRET), {"name": "a"}, id="an attrs value as pydantic"),
        pytest.param(DataOut, DataIn(**SECRET), {"name": "a"}, id="dataclass"),
        pytest.param(list[DataOut], [DataIn(**SECRET)], [{"name": "a"}], id="list[dataclass]"),
        pytest.param(AttrsOut, AttrsIn(**SECRET), {"name": "a"}, id="attrs"),
        pytest.param(list[AttrsOut], [AttrsIn(**SECRET)], [{"name": "a"}], id="list[attrs]"),
        pytest.param(AttrsOut, dict(SECRET), {"name": "a"}, id="a dict as attrs"),
        pytest.param(
            dict[str, AttrsOut], {"k": AttrsIn(**SECRET)}, {"k": {"name": "a"}}, id="dict[attrs]"
        ),
    ],
)
@pytest.mark.parametrize("declared", ["response_model", "return annotation"])
async def test_a_field_the_response_model_does_not_declare_never_reaches_the_client(
    model: Any, value: Any, expected: Any, declared: str
) -> None:
    app = TrioAPI()
    if declared == "response_model":

        @app.get("/user", response_model=model)
        async def read() -> Any:
            return value

    else:

        async def annotated() -> Any:
            return value

        annotated.__annotations__["return"] = model
        app.get("/user")(annotated)

    response = await get(app, "/user")
    assert (response.status_code, response.json()) == (200, expected)
    assert b"secret" not in response.content


async def test_response_model_none_turns_the_return_annotation_off() -> None:
    app = TrioAPI()

    @app.get("/raw", response_model=None)
    async def raw() -> dict[str, Any]:
        return {"kept": True, "extra": 1}

    assert (await get(app, "/raw")).json() == {"kept": True, "extra": 1}


async def test_response_model_options_shape_the_output_as_fastapi_does() -> None:
    class Item(BaseModel):
        name: str
        description: str | None = None
        tax: float = 10.5

    app = TrioAPI()

    @app.get("/unset", response_model=Item, response_model_exclude_unset=True)
    async def unset() -> Item:
        return Item(name="foo")

    @app.get("/include", response_model=Item, response_model_include={"name"})
    async def include() -> Item:
        return Item(name="foo", description="d")

    @app.get("/none", response_model=Item, response_model_exclude_none=True)
    async def none() -> Item:
        return Item(name="foo")

    async with TestClient(app) as client:
        assert (await client.get("/unset")).json() == {"name": "foo"}
        assert (await client.get("/include")).json() == {"name": "foo"}
        assert (await client.get("/none")).json() == {"name": "foo", "tax": 10.5}


async def test_a_return_value_the_model_rejects_is_a_plain_500() -> None:
    app = TrioAPI()

    @app.get("/bad")
    async def bad() -> UserOut:
        return {"nom": "x"}  # type: ignore[return-value]

    response = await get(app, "/bad")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


async def test_an_unhandled_error_is_raised_to_the_client_that_asks_for_it() -> None:
    app = TrioAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("boom")

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(ZeroDivisionError):
            await client.get("/boom")


# --- pydantic request bodies --------------------------------------------------------------


class Item(BaseModel):
    name: str
    price: float = PydanticField(gt=0)
    tags: list[str] = []  # noqa: RUF012 - a pydantic default, copied per instance


async def test_a_pydantic_body_validates_and_reports_as_in_fastapi() -> None:
    app = TrioAPI()

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    async with TestClient(app) as client:
        ok = await client.post("/items", json={"name": "x", "price": "2", "extra": 1})
        bad = await client.post("/items", json={"price": "abc"})
        negative = await client.post("/items", json={"name": "x", "price": -1})
        missing = await client.post("/items")
    assert (ok.status_code, ok.json()) == (200, {"name": "x", "price": 2.0, "tags": []})
    assert bad.json()["detail"] == [
        {
            "type": "missing",
            "loc": ["body", "name"],
            "msg": "Field required",
            "input": {"price": "abc"},
        },
        {
            "type": "float_parsing",
            "loc": ["body", "price"],
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": "abc",
        },
    ]
    assert negative.json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["body", "price"],
            "msg": "Input should be greater than 0",
            "input": -1,
            "ctx": {"gt": 0.0},
        }
    ]
    assert missing.json()["detail"] == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    ]


async def test_embedded_and_several_pydantic_bodies_are_read_by_name() -> None:
    app = TrioAPI()

    @app.put("/items/{item_id}")
    async def update(
        item_id: int, item: Annotated[Item, Body(embed=True)], importance: Annotated[int, Body()]
    ) -> dict[str, Any]:
        return {"id": item_id, "name": item.name, "importance": importance}

    response = await post_put(app, "/items/3", {"item": {"name": "n", "price": 1}, "importance": 5})
    assert response.json() == {"id": 3, "name": "n", "importance": 5}


async def post_put(app: TrioAPI, url: str, body: Any) -> Any:
    async with TestClient(app) as client:
        return await client.put(url, json=body)


async def test_a_parameter_model_reads_the_whole_query() -> None:
    class Filters(BaseModel):
        limit: int = PydanticField(100, gt=0, le=100)
        tags: list[str] = []  # noqa: RUF012 - a pydantic default

    app = TrioAPI()

    @app.get("/items")
    async def items(filters: Annotated[Filters, Query()]) -> Filters:
        return filters

    async with TestClient(app) as client:
        ok = await client.get("/items?limit=5&tags=a&tags=b")
        bad = await client.get("/items?limit=500")
    assert ok.json() == {"limit": 5, "tags": ["a", "b"]}
    assert [(e["type"], e["loc"]) for e in bad.json()["detail"]] == [
        ("less_than_equal", ["query", "limit"])
    ]


# --- FastAPI's rules where trioapi used to differ ---------------------------------------


async def test_a_query_marker_with_ellipsis_is_required() -> None:
    app = TrioAPI()

    @app.get("/q")
    async def read(client_id: str = Query(...)) -> dict[str, str]:
        return {"client_id": client_id}

    response = await get(app, "/q")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "client_id"]


async def test_a_redirect_response_class_answers_with_its_own_status() -> None:
    app = TrioAPI()

    @app.get("/go", response_class=RedirectResponse)
    async def go() -> str:
        return "https://example.com/"

    response = await get(app, "/go")
    assert (response.status_code, response.headers["location"]) == (307, "https://example.com/")


async def test_request_client_and_url_have_their_parts() -> None:
    app = TrioAPI()

    @app.get("/where")
    async def where(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"host": request.client.host, "path": request.url.path}

    assert (await get(app, "/where?x=1")).json() == {"host": "127.0.0.1", "path": "/where"}


async def test_a_yield_dependency_can_turn_the_endpoint_error_into_an_http_error() -> None:
    class OwnerError(Exception):
        pass

    def get_username() -> Any:
        try:
            yield "Rick"
        except OwnerError as error:
            raise HTTPException(400, detail=f"Owner error: {error}") from error

    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def read(item_id: str, username: Annotated[str, Depends(get_username)]) -> str:
        raise OwnerError(username)

    response = await get(app, "/items/plumbus")
    assert (response.status_code, response.json()) == (400, {"detail": "Owner error: Rick"})


async def test_http_exception_with_a_bodiless_status_has_no_body() -> None:
    app = TrioAPI()

    @app.get("/gone")
    async def gone() -> None:
        raise HTTPException(204)

    response = await get(app, "/gone")
    assert (response.status_code, response.content) == (204, b"")


async def test_an_unmarked_list_parameter_is_the_body() -> None:
    app = TrioAPI()

    @app.post("/sum")
    async def total(numbers: list[int]) -> int:
        return sum(numbers)

    assert (await post(app, "/sum", json=[1, 2, 3])).json() == 6


async def test_a_dict_body_converts_its_keys() -> None:
    app = TrioAPI()

    @app.post("/weights")
    async def weights(weights: dict[int, float]) -> dict[int, float]:
        return weights

    assert (await post(app, "/weights", json={"1": 2.2})).json() == {"1": 2.2}


async def test_a_frozenset_query_drops_duplicates() -> None:
    app = TrioAPI()

    @app.get("/q")
    async def read(query: frozenset[int] = Query()) -> list[int]:
        assert isinstance(query, frozenset)
        return sorted(query)

    assert (await get(app, "/q?query=1&query=1&query=2")).json() == [1, 2]


async def test_two_query_markers_in_annotated_add_their_constraints() -> None:
    app = TrioAPI()

    @app.get("/r")
    async def ranged(q: Annotated[int, Query(gt=2), Query(lt=10)]) -> int:
        return q

    async with TestClient(app) as client:
        assert (await client.get("/r?q=5")).json() == 5
        assert (await client.get("/r?q=1")).status_code == 422
        assert (await client.get("/r?q=10")).status_code == 422


async def test_dependency_overrides_replace_sub_dependencies_and_can_be_cleared() -> None:
    def real() -> str:
        return "real"

    def needs_real(value: Annotated[str, Depends(real)]) -> str:
        return value

    def fake(q: str = "fake") -> str:
        return q

    app = TrioAPI()

    @app.get("/")
    async def read(value: Annotated[str, Depends(needs_real)]) -> str:
        return value

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == "real"
        app.dependency_overrides[real] = fake
        assert (await client.get("/?q=over")).json() == "over"
        app.dependency_overrides.clear()
        assert (await client.get("/")).json() == "real"


def test_importing_trioapi_does_not_import_pydantic_or_multipart() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trioapi, trioapi.responses, trioapi.encoders, trioapi.params; "
        "print(sorted(m for m in ('pydantic', 'python_multipart') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- aliases, parameter models and form models, as FastAPI reads them ----------------------


async def test_alias_choices_read_the_first_name_sent() -> None:
    from pydantic import AliasChoices

    app = TrioAPI()

    @app.get("/")
    async def read(
        value: Annotated[int, Query(validation_alias=AliasChoices("first", "second"))],
    ) -> int:
        return value

    async with TestClient(app) as client:
        assert (await client.get("/?second=2")).json() == 2
        assert (await client.get("/?first=1&second=2")).json() == 1
        missing = await client.get("/")
    assert missing.json()["detail"][0]["loc"] == ["query", "first"]


async def test_a_header_model_names_headers_as_sent_and_an_unsent_optional_model_is_none() -> None:
    class Tracing(BaseModel):
        x_request_id: str
        x_attempt: int = 1

    app = TrioAPI()

    @app.get("/trace")
    async def trace(tracing: Annotated[Tracing, Header()]) -> Tracing:
        return tracing

    @app.get("/maybe")
    async def maybe(tracing: Annotated[Tracing | None, Header()] = None) -> bool:
        return tracing is None

    async with TestClient(app) as client:
        ok = await client.get("/trace", headers={"x-request-id": "r1", "x-attempt": "3"})
        bad = await client.get("/trace", headers={"x-request-id": "r1", "x-attempt": "x"})
        unsent = await client.get("/maybe")
    assert ok.json() == {"x_request_id": "r1", "x_attempt": 3}
    assert [e["loc"] for e in bad.json()["detail"]] == [["header", "x-attempt"]]
    assert unsent.json() is True


async def test_header_models_and_cookies_read_repeated_and_aliased_names_as_fastapi() -> None:
    from pydantic import AliasChoices, ConfigDict, Field

    class Tags(BaseModel):
        model_config = ConfigDict(validate_by_name=True)
        x_value: Annotated[int, Field(validation_alias=AliasChoices("X-First", "X-Second"))]
        x_items: list[int] = Field(default_factory=list)

    app = TrioAPI()

    @app.get("/headers")
    async def headers(tags: Annotated[Tags, Header()]) -> Tags:
        return tags

    @app.get("/cookie")
    async def cookie(session: Annotated[str, Cookie()]) -> str:
        return session

    async with TestClient(app) as client:
        # A scalar header sent twice: its first value (a list takes them all).
        twice = await client.get(
            "/headers", headers=[("x-second", "1"), ("x-second", "2"), ("x-items", "3")]
        )
        # A declared alias is reported as declared, not lower-cased.
        bad = await client.get("/headers", headers={"x-first": "nope"})
        # The field's unconverted name is no way in, even with validate_by_name.
        unconverted = await client.get("/headers", headers=[("x-first", "1"), ("x_items", "5")])
        # A cookie sent twice: its last value.
        last = await client.get("/cookie", headers={"cookie": "session=old; session=new"})

    class ByName(BaseModel):
        model_config = ConfigDict(loc_by_alias=False)
        int_val: int

    @app.get("/by-name")
    async def by_name(names: Annotated[ByName, Header()]) -> ByName:
        return names

    async with TestClient(app) as client:
        # loc_by_alias=False: errors name the model's field, not the header.
        named = await client.get("/by-name", headers={"int-val": "x"})
    assert [e["loc"] for e in named.json()["detail"]] == [["header", "int_val"]]
    assert twice.json() == {"x_value": 1, "x_items": [3]}
    assert [e["loc"] for e in bad.json()["detail"]] == [["header", "X-First"]]
    assert unconverted.json() == {"x_value": 1, "x_items": []}
    assert last.json() == "new"


async def test_pydantic_field_defaults_and_validate_default_apply_to_parameters() -> None:
    from pydantic import Field

    calls: list[int] = []

    def fresh() -> int:
        calls.append(1)
        return 5

    app = TrioAPI()

    @app.get("/factory")
    async def factory(value: Annotated[int, Field(default_factory=fresh)]) -> int:
        return value

    @app.get("/checked")
    async def checked(value: Annotated[int, Query(gt=0, validate_default=True)] = -1) -> int:
        return value

    @app.get("/unchecked")
    async def unchecked(value: Annotated[int, Query(gt=0)] = -1) -> int:
        return value

    async with TestClient(app) as client:
        assert (await client.get("/factory")).json() == 5
        assert (await client.get("/factory?value=10")).json() == 10
        refused = await client.get("/checked")
        assert (await client.get("/checked?value=1")).json() == 1
        assert (await client.get("/unchecked")).json() == -1  # defaults are trusted by default
    assert calls == [1]  # once, for the request that sent no value
    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["query", "value"],
            "msg": "Input should be greater than 0",
            "input": -1,
            "ctx": {"gt": 0},
        }
    ]


async def test_body_parameters_are_counted_across_the_dependency_tree() -> None:
    class Item(BaseModel):
        data: str

    def other(item2: Item) -> Item:
        return item2

    def same(item: Item) -> Item:
        return item

    app = TrioAPI()

    @app.post("/two")
    async def two(item: Item, item2: Annotated[Item, Depends(other)]) -> list[Item]:
        return [item, item2]

    @app.post("/shared")
    async def shared(item: Item, again: Annotated[Item, Depends(same)]) -> list[Item]:
        return [item, again]

    async with TestClient(app) as client:
        # Two names in the tree: each is read by name, the dependency's too.
        both = await client.post("/two", json={"item": {"data": "a"}, "item2": {"data": "b"}})
        missing = await client.post("/two", json={"item": {"data": "a"}})
        # One name declared twice counts once: the whole body is that item.
        one = await client.post("/shared", json={"data": "a"})
    assert both.json() == [{"data": "a"}, {"data": "b"}]
    assert missing.json()["detail"] == [
        {"type": "missing", "loc": ["body", "item2"], "msg": "Field required", "input": None}
    ]
    assert one.json() == [{"data": "a"}, {"data": "a"}]


async def test_json_typed_parameters_are_one_string_of_json() -> None:
    from pydantic import Json

    from trioapi import Form

    class Filter(BaseModel):
        value: int

    app = TrioAPI()

    @app.get("/query")
    async def query(items: Annotated[Json[list[str]], Query()]) -> list[str]:
        return items

    @app.get("/model")
    async def model(data: Annotated[Json[Filter], Query()], limit: int = 10) -> list[int]:
        return [data.value, limit]

    @app.post("/form")
    async def form(items: Annotated[Json[list[int]], Form()]) -> list[int]:
        return items

    async with TestClient(app) as client:
        listed = await client.get("/query", params={"items": '["a", "b"]'})
        modelled = await client.get("/model", params={"data": '{"value": 2}', "limit": "3"})
        posted = await client.post("/form", data={"items": "[1, 2]"})
        broken = await client.get("/query", params={"items": "[not json"})
    assert listed.json() == ["a", "b"]
    assert modelled.json() == [2, 3]
    assert posted.json() == [1, 2]
    assert [e["type"] for e in broken.json()["detail"]] == ["json_invalid"]


async def test_a_constrained_sequence_alias_is_still_a_list_of_values() -> None:
    from pydantic import Field

    Tags = Annotated[set[str], Field(max_length=2)]
    app = TrioAPI()

    @app.get("/")
    async def read(tags: Annotated[Tags | None, Query()] = None) -> list[str] | None:
        return sorted(tags) if tags is not None else None

    async with TestClient(app) as client:
        two = await client.get("/", params=[("tags", "b"), ("tags", "a"), ("tags", "a")])
        three = await client.get("/", params=[("tags", "a"), ("tags", "b"), ("tags", "c")])
        none = await client.get("/")
    assert two.json() == ["a", "b"]
    assert [e["type"] for e in three.json()["detail"]] == ["too_long"]
    assert none.json() is None


async def test_path_alias_choices_fall_back_to_the_alias_and_ignore_alias_paths() -> None:
    from pydantic import AliasChoices, AliasPath

    from trioapi import Path

    app = TrioAPI()

    @app.get("/legacy/{legacy}")
    async def legacy(
        value: Annotated[int, Path(alias="legacy", validation_alias=AliasChoices("a", "b"))],
    ) -> int:
        return value

    @app.get("/pair/{first}/{value}")
    async def pair(
        value: Annotated[int, Path(validation_alias=AliasChoices("first", AliasPath("value")))],
        first: int,
    ) -> list[int]:
        return [value, first]

    async with TestClient(app) as client:
        assert (await client.get("/legacy/1")).json() == 1
        assert (await client.get("/pair/1/2")).json() == [2, 1]


async def test_a_response_model_is_written_by_pydantic_as_fastapi_writes_it() -> None:
    from trioapi.responses import JSONResponse

    class Reading(BaseModel):
        value: float
        label: str

    app = TrioAPI()

    @app.get("/model", response_model=Reading)
    async def model() -> Any:
        return {"value": 1e-05, "label": "héllo", "secret": "dropped"}

    @app.get("/plain")
    async def plain() -> Any:  # no model: the response class encodes it
        return {"value": 1e-05}

    @app.get("/explicit", response_model=Reading, response_class=JSONResponse)
    async def explicit() -> Any:
        return {"value": 1e-05, "label": "x"}

    @app.get("/surrogate", response_model=Reading)
    async def surrogate() -> Any:
        return {"value": 1.0, "label": "\ud800"}  # pydantic's UTF-8 cannot hold it

    async with TestClient(app) as client:
        written = await client.get("/model")
        unmodelled = await client.get("/plain")
        explicit_class = await client.get("/explicit")
        escaped = await client.get("/surrogate")
    # pydantic's own JSON (FastAPI 0.165's fast path): 0.00001, UTF-8, compact.
    assert written.content == '{"value":0.00001,"label":"héllo"}'.encode()
    assert written.headers["content-type"] == "application/json"
    assert unmodelled.content == b'{"value":1e-05}'  # Python's json, as JSONResponse writes
    # Named explicitly, JSONResponse still gets pydantic's bytes (docs/compatibility.md).
    assert explicit_class.content == b'{"value":0.00001,"label":"x"}'
    assert escaped.status_code == 200
    assert escaped.json() == {"value": 1.0, "label": "\ud800"}


async def test_a_markers_own_alias_wins_over_one_in_a_pydantic_field() -> None:
    from pydantic import Field

    Count = Annotated[int, Field(alias="original")]
    app = TrioAPI()

    @app.get("/")
    async def read(
        kept: Annotated[Count, Query()], replaced: Annotated[Count, Query(alias="replacement")]
    ) -> list[int]:
        return [kept, replaced]

    async with TestClient(app) as client:
        answer = await client.get("/", params={"original": "1", "replacement": "2"})
    assert answer.json() == [1, 2]


async def test_form_models_and_unions_of_them_pick_their_own_fields() -> None:
    from trioapi import Form

    class Login(BaseModel):
        username: str
        remember: bool = False

    class Email(BaseModel):
        email: str

    class Phone(BaseModel):
        phone: str

    app = TrioAPI()

    @app.post("/login")
    async def login(data: Annotated[Login, Form()]) -> Login:
        return data

    @app.post("/contact")
    async def contact(way: Annotated[Email | Phone, Form()]) -> dict[str, str]:
        return way.model_dump()

    async with TestClient(app) as client:
        ok = await client.post("/login", data={"username": "ann", "remember": "on"})
        missing = await client.post("/login", data={"remember": ""})
        phone = await client.post("/contact", data={"phone": "555"})
    assert ok.json() == {"username": "ann", "remember": True}
    assert [(e["type"], e["loc"]) for e in missing.json()["detail"]] == [
        ("missing", ["body", "username"])
    ]
    assert phone.json() == {"phone": "555"}


async def test_a_default_is_validated_only_when_the_marker_asks() -> None:
    from pydantic import BeforeValidator

    doubled = Annotated[int, BeforeValidator(lambda value: int(value) * 2)]
    app = TrioAPI()

    @app.get("/plain")
    async def plain(value: Annotated[doubled, Query()] = 10) -> int:
        return value

    @app.get("/validated")
    async def validated(value: Annotated[doubled, Query(validate_default=True)] = 10) -> int:
        return value

    async with TestClient(app) as client:
        assert (await client.get("/plain")).json() == 10
        assert (await client.get("/plain?value=3")).json() == 6
        assert (await client.get("/validated")).json() == 20


async def test_a_json_null_body_is_validated_not_taken_as_missing() -> None:
    app = TrioAPI()

    @app.post("/maybe")
    async def maybe(item: Item | None = None) -> bool:
        return item is None

    @app.post("/needed")
    async def needed(item: Item) -> str:
        return item.name

    async with TestClient(app) as client:
        null = await client.post(
            "/maybe", content="null", headers={"content-type": "application/json"}
        )
        required = await client.post(
            "/needed", content="null", headers={"content-type": "application/json"}
        )
    assert null.json() is True
    assert [e["type"] for e in required.json()["detail"]] == ["model_attributes_type"]

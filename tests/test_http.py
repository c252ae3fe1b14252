"""Requests in, responses out, through the test client: parameters, bodies, 422s, routers.

Types named in annotations live at module level: annotations are read with
``typing.get_type_hints``, which sees module globals only.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any, Optional

import attrs
import httpx
import pytest

from trioapi import (
    APIRouter,
    Body,
    Cookie,
    Depends,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    TrioAPI,
)
from trioapi.testing import TestClient


class Fruit(enum.StrEnum):
    APPLE = "apple"
    PEAR = "pear"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@attrs.define
class Tag:
    label: str


@attrs.define
class Item:
    name: str
    price: float
    tags: list[Tag] = attrs.Factory(list)
    description: str | None = None
    quantity: int = 1


@attrs.define
class User:
    username: str


def detail(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"detail"}
    entries: list[dict[str, Any]] = body["detail"]
    for entry in entries:
        assert (
            {"type", "loc", "msg", "input"} <= set(entry) <= {"type", "loc", "msg", "input", "ctx"}
        )
    return entries


def locs(response: httpx.Response) -> list[list[str | int]]:
    return [entry["loc"] for entry in detail(response)]


# --- path parameters -----------------------------------------------------------------


async def test_path_parameters_are_converted_by_annotation() -> None:
    app = TrioAPI()

    @app.get("/int/{v}")
    async def as_int(v: int) -> Any:
        return [v, type(v).__name__]

    @app.get("/float/{v}")
    async def as_float(v: float) -> Any:
        return [v, type(v).__name__]

    @app.get("/str/{v}")
    async def as_str(v: str) -> Any:
        return [v, type(v).__name__]

    @app.get("/bool/{v}")
    async def as_bool(v: bool) -> Any:
        return [v, type(v).__name__]

    @app.get("/uuid/{v}")
    async def as_uuid(v: uuid.UUID) -> Any:
        return [str(v), type(v).__name__]

    @app.get("/fruit/{v}")
    async def as_fruit(v: Fruit) -> Any:
        return [v.value, type(v).__name__]

    @app.get("/size/{v}")
    async def as_size(v: Size) -> Any:
        return [v.name, type(v).__name__]

    some_id = "a8098c1a-f86e-11da-bd1a-00112444be1e"
    async with TestClient(app) as client:
        assert (await client.get("/int/42")).json() == [42, "int"]
        assert (await client.get("/float/2.5")).json() == [2.5, "float"]
        assert (await client.get("/str/42")).json() == ["42", "str"]
        assert (await client.get("/bool/true")).json() == [True, "bool"]
        assert (await client.get("/bool/0")).json() == [False, "bool"]
        assert (await client.get(f"/uuid/{some_id}")).json() == [some_id, "UUID"]
        assert (await client.get("/fruit/pear")).json() == ["pear", "Fruit"]
        assert (await client.get("/size/2")).json() == ["LARGE", "Size"]


@pytest.mark.parametrize(
    ("path", "error_type", "raw"),
    [
        ("/int/4.5", "int_parsing", "4.5"),
        ("/float/x", "float_parsing", "x"),
        ("/bool/maybe", "bool_parsing", "maybe"),
        ("/uuid/123", "uuid_parsing", "123"),
        ("/fruit/plum", "enum", "plum"),
    ],
)
async def test_unconvertible_path_parameter_is_a_422_at_its_location(
    path: str, error_type: str, raw: str
) -> None:
    app = TrioAPI()

    @app.get("/int/{v}")
    async def as_int(v: int) -> None: ...

    @app.get("/float/{v}")
    async def as_float(v: float) -> None: ...

    @app.get("/bool/{v}")
    async def as_bool(v: bool) -> None: ...

    @app.get("/uuid/{v}")
    async def as_uuid(v: uuid.UUID) -> None: ...

    @app.get("/fruit/{v}")
    async def as_fruit(v: Fruit) -> None: ...

    async with TestClient(app) as client:
        [entry] = detail(await client.get(path))
    assert entry["type"] == error_type
    assert entry["loc"] == ["path", "v"]
    assert entry["input"] == raw


async def test_path_parameter_error_has_the_fastapi_message() -> None:
    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def read(item_id: int) -> None: ...

    async with TestClient(app) as client:
        response = await client.get("/items/abc")
    assert response.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["path", "item_id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            }
        ]
    }


async def test_catch_all_path_parameter_takes_the_rest_with_slashes() -> None:
    app = TrioAPI()

    @app.get("/files/{file_path:path}")
    async def read(file_path: str) -> str:
        return file_path

    async with TestClient(app) as client:
        assert (await client.get("/files/home/ann/notes.txt")).json() == "home/ann/notes.txt"
        assert (await client.get("/files/a%20b/c")).json() == "a b/c"


async def test_path_parameters_are_percent_decoded() -> None:
    app = TrioAPI()

    @app.get("/users/{name}")
    async def read(name: str) -> str:
        return name

    async with TestClient(app) as client:
        assert (await client.get("/users/J%C3%B6rg")).json() == "Jörg"
        assert (await client.get("/users/a%2Fb")).json() == "a/b"
        assert (await client.get("/users/100%25")).json() == "100%"


async def test_percent_encoded_request_path_finds_a_static_route() -> None:
    app = TrioAPI()

    @app.get("/café")
    async def cafe() -> str:
        return "coffee"

    @app.get("/items")
    async def items() -> str:
        return "items"

    async with TestClient(app) as client:
        # A browser sends /café as /caf%C3%A9; any character may be escaped.
        assert (await client.get("/caf%C3%A9")).json() == "coffee"
        assert (await client.get("/item%73")).json() == "items"


async def test_path_constraint_violation_is_a_422() -> None:
    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def read(item_id: Annotated[int, Path(ge=1, le=100)]) -> int:
        return item_id

    async with TestClient(app) as client:
        assert (await client.get("/items/100")).json() == 100
        [low] = detail(await client.get("/items/0"))
        [high] = detail(await client.get("/items/101"))
    assert (low["type"], low["loc"], low["input"], low["ctx"]) == (
        "greater_than_equal",
        ["path", "item_id"],
        "0",
        {"ge": 1},
    )
    assert (high["type"], high["ctx"]) == ("less_than_equal", {"le": 100})


async def test_literal_route_wins_over_parameter_route_registered_first() -> None:
    app = TrioAPI()

    @app.get("/users/{user_id}")
    async def by_id(user_id: int) -> str:
        return "by id"

    @app.get("/users/me")
    async def me() -> str:
        return "me"

    async with TestClient(app) as client:
        assert (await client.get("/users/me")).json() == "me"
        assert (await client.get("/users/3")).json() == "by id"


async def test_missing_trailing_slash_redirects_with_the_query_kept() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items() -> str:
        return "items"

    @app.get("/folders/")
    async def folders() -> str:
        return "folders"

    async with TestClient(app) as client:
        to_bare = await client.get("/items/", params={"page": "2"})
        to_slashed = await client.get("/folders")
    # Absolute, from the request's scheme and host, as Starlette's redirect is.
    assert (to_bare.status_code, to_bare.headers["location"]) == (
        307,
        "http://testserver/items?page=2",
    )
    assert (to_slashed.status_code, to_slashed.headers["location"]) == (
        307,
        "http://testserver/folders/",
    )


async def test_slash_redirects_can_be_turned_off() -> None:
    app = TrioAPI(redirect_slashes=False)

    @app.get("/items")
    async def items() -> str:
        return "items"

    async with TestClient(app) as client:
        assert (await client.get("/items/")).status_code == 404


# --- query parameters ----------------------------------------------------------------


async def test_query_parameters_with_defaults_and_optionals() -> None:
    app = TrioAPI()

    @app.get("/search")
    async def search(
        q: str,
        limit: int = 10,
        offset: Optional[int] = None,  # noqa: UP045 - both spellings on purpose
        flag: bool | None = None,
    ) -> Any:
        return {"q": q, "limit": limit, "offset": offset, "flag": flag}

    async with TestClient(app) as client:
        defaults = await client.get("/search", params={"q": "pen"})
        given = await client.get("/search?q=pen&limit=3&offset=6&flag=yes")
    assert defaults.json() == {"q": "pen", "limit": 10, "offset": None, "flag": None}
    assert given.json() == {"q": "pen", "limit": 3, "offset": 6, "flag": True}


async def test_missing_required_query_parameter_is_a_422() -> None:
    app = TrioAPI()

    @app.get("/search")
    async def search(q: str) -> str:
        return q

    async with TestClient(app) as client:
        response = await client.get("/search")
    assert response.json() == {
        "detail": [
            {"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}
        ]
    }


async def test_empty_query_value_is_a_value_not_a_missing_parameter() -> None:
    app = TrioAPI()

    @app.get("/search")
    async def search(q: str = "default") -> str:
        return q

    async with TestClient(app) as client:
        assert (await client.get("/search?q=")).json() == ""


async def test_repeated_query_keys_fill_a_list() -> None:
    app = TrioAPI()

    @app.get("/tags")
    async def tags(tag: Annotated[list[str], Query()] = []) -> list[str]:  # noqa: B006
        tag.append("end")
        return tag

    @app.get("/ids")
    async def ids(id: Annotated[list[int], Query()]) -> list[int]:
        return id

    async with TestClient(app) as client:
        assert (await client.get("/tags?tag=a&tag=b")).json() == ["a", "b", "end"]
        # The mutable default is not shared between requests.
        assert (await client.get("/tags")).json() == ["end"]
        assert (await client.get("/tags")).json() == ["end"]
        assert (await client.get("/ids", params=[("id", "1"), ("id", "2")])).json() == [1, 2]
        bad = detail(await client.get("/ids?id=1&id=x&id=y"))
        missing = detail(await client.get("/ids"))
    assert [(e["loc"], e["input"]) for e in bad] == [
        (["query", "id", 1], "x"),
        (["query", "id", 2], "y"),
    ]
    assert missing[0]["loc"] == ["query", "id"]


async def test_a_fixed_length_tuple_takes_one_value_per_position_as_fastapi_does() -> None:
    # tuple[int, str] used to pass its strings through unconverted and
    # unchecked. The 422 entries are pydantic's (FastAPI's), with pydantic
    # installed or not.
    app = TrioAPI()

    @app.get("/pair")
    async def pair(values: Annotated[tuple[int, str], Query()]) -> list[Any]:
        return [values, type(values).__name__]

    @app.get("/point")
    async def point(x_at: Annotated[tuple[float, bool], Header()]) -> list[Any]:
        return list(x_at)

    async with TestClient(app) as client:
        ok = (await client.get("/pair?values=1&values=x")).json()
        header = (await client.get("/point", headers=[("x-at", "1.5"), ("x-at", "yes")])).json()
        too_long = detail(await client.get("/pair?values=1&values=x&values=y"))
        too_short = detail(await client.get("/pair?values=1"))
        not_int = detail(await client.get("/pair?values=a&values=x"))
    assert ok == [[1, "x"], "tuple"]
    assert header == [1.5, True]
    assert too_long == [
        {
            "type": "too_long",
            "loc": ["query", "values"],
            "msg": "Tuple should have at most 2 items after validation, not 3",
            "input": ["1", "x", "y"],
            "ctx": {"field_type": "Tuple", "max_length": 2, "actual_length": 3},
        }
    ]
    assert too_short == [
        {"type": "missing", "loc": ["query", "values", 1], "msg": "Field required", "input": ["1"]}
    ]
    assert [(e["type"], e["loc"], e["input"]) for e in not_int] == [
        ("int_parsing", ["query", "values", 0], "a")
    ]


async def test_a_bare_param_marker_reads_the_query_as_in_fastapi() -> None:
    from trioapi.params import Param

    app = TrioAPI()

    @app.get("/items")
    async def items(q: str | None = Param(default=None)) -> dict[str, str | None]:
        return {"q": q}

    async with TestClient(app) as client:
        given = (await client.get("/items?q=foo")).json()
        absent = (await client.get("/items")).json()
    assert given == {"q": "foo"}
    assert absent == {"q": None}
    [parameter] = app.openapi()["paths"]["/items"]["get"]["parameters"]
    assert (parameter["name"], parameter["in"]) == ("q", "query")


async def test_query_alias_is_the_name_on_the_wire() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items(item_query: Annotated[str, Query(alias="item-query")]) -> str:
        return item_query

    async with TestClient(app) as client:
        assert (await client.get("/items?item-query=pen")).json() == "pen"
        assert locs(await client.get("/items?item_query=pen")) == [["query", "item-query"]]


async def test_query_numeric_bounds_are_enforced() -> None:
    app = TrioAPI()

    @app.get("/page")
    async def page(size: Annotated[int, Query(ge=1, lt=50)] = 10) -> int:
        return size

    async with TestClient(app) as client:
        assert (await client.get("/page?size=49")).json() == 49
        [entry] = detail(await client.get("/page?size=50"))
    assert entry == {
        "type": "less_than",
        "loc": ["query", "size"],
        "msg": "Input should be less than 50",
        "input": "50",
        "ctx": {"lt": 50},
    }


async def test_query_string_length_limit_reads_like_fastapi() -> None:
    app = TrioAPI()

    @app.get("/search")
    async def search(q: Annotated[str, Query(max_length=3)]) -> str:
        return q

    async with TestClient(app) as client:
        assert (await client.get("/search?q=abc")).json() == "abc"
        [entry] = detail(await client.get("/search?q=abcd"))
    assert entry == {
        "type": "string_too_long",
        "loc": ["query", "q"],
        "msg": "String should have at most 3 characters",
        "input": "abcd",
        "ctx": {"max_length": 3},
    }


async def test_query_pattern_is_enforced() -> None:
    app = TrioAPI()

    @app.get("/search")
    async def search(code: Annotated[str, Query(pattern=r"^[A-Z]{3}$")]) -> str:
        return code

    async with TestClient(app) as client:
        assert (await client.get("/search?code=EUR")).json() == "EUR"
        [entry] = detail(await client.get("/search?code=euro"))
    assert (entry["type"], entry["loc"], entry["ctx"]) == (
        "string_pattern_mismatch",
        ["query", "code"],
        {"pattern": "^[A-Z]{3}$"},
    )


# --- headers and cookies -------------------------------------------------------------


async def test_header_names_convert_underscores_to_dashes() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read(
        x_request_id: Annotated[str, Header()],
        user_agent: Annotated[str, Header()],
        raw_name: Annotated[str | None, Header(convert_underscores=False)] = None,
    ) -> Any:
        return [x_request_id, user_agent, raw_name]

    async with TestClient(app) as client:
        response = await client.get(
            "/", headers={"X-Request-ID": "r-1", "User-Agent": "probe", "raw_name": "kept"}
        )
        missing = await client.get("/", headers={"User-Agent": "probe"})
    assert response.json() == ["r-1", "probe", "kept"]
    assert locs(missing) == [["header", "x-request-id"]]


async def test_header_alias_and_conversion() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read(
        key: Annotated[str, Header(alias="X-API-Key")], n: Annotated[int, Header()] = 0
    ) -> Any:
        return [key, n]

    async with TestClient(app) as client:
        assert (await client.get("/", headers={"x-api-key": "k", "n": "7"})).json() == ["k", 7]
        [entry] = detail(await client.get("/", headers={"x-api-key": "k", "n": "seven"}))
    assert (entry["type"], entry["loc"], entry["input"]) == (
        "int_parsing",
        ["header", "n"],
        "seven",
    )


async def test_repeated_header_lines_fill_a_list() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read(x_token: Annotated[list[str] | None, Header()] = None) -> Any:
        return x_token

    async with TestClient(app) as client:
        repeated = await client.get(
            "/", headers=httpx.Headers([("x-token", "a"), ("x-token", "b")])
        )
        absent = await client.get("/")
    assert repeated.json() == ["a", "b"]
    assert absent.json() is None


async def test_cookie_parameters_are_read_and_converted() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read(session: Annotated[str, Cookie()], visits: Annotated[int, Cookie()] = 0) -> Any:
        return [session, visits]

    async with TestClient(app, cookies={"session": "abc", "visits": "3"}) as client:
        assert (await client.get("/")).json() == ["abc", 3]
    async with TestClient(app) as client:
        assert locs(await client.get("/")) == [["cookie", "session"]]
        bad = await client.get("/", headers={"cookie": "session=x; visits=many"})
    [entry] = detail(bad)
    assert (entry["type"], entry["loc"], entry["input"]) == (
        "int_parsing",
        ["cookie", "visits"],
        "many",
    )


async def test_per_request_cookies_reach_the_app() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read(session: Annotated[str, Cookie()]) -> str:
        return session

    async with TestClient(app) as client:
        assert (await client.get("/", cookies={"session": "per-call"})).json() == "per-call"


# --- the Request object --------------------------------------------------------------


async def test_request_exposes_method_url_headers_query_and_cookies() -> None:
    app = TrioAPI()

    @app.api_route("/inspect/{thing}", methods=["GET", "PUT"])
    async def inspect(request: Request) -> Any:
        return {
            "method": request.method,
            "url": request.url,
            "path": request.path,
            "path_params": request.path_params,
            "header": request.headers["x-custom"],
            "query": request.query_params.getlist("a"),
            "cookies": request.cookies,
            "client": list(request.client or ()),
        }

    async with TestClient(app) as client:
        response = await client.put(
            "/inspect/lamp?a=1&a=2",
            headers={"X-Custom": "yes", "cookie": "c1=v1; c2=v2"},
        )
    assert response.json() == {
        "method": "PUT",
        "url": "http://testserver/inspect/lamp?a=1&a=2",
        "path": "/inspect/lamp",
        "path_params": {"thing": "lamp"},
        "header": "yes",
        "query": ["1", "2"],
        "cookies": {"c1": "v1", "c2": "v2"},
        "client": ["127.0.0.1", 50000],
    }


async def test_request_body_and_json_can_both_be_read() -> None:
    app = TrioAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        raw = await request.body()
        again = await request.body()
        return {"raw": raw.decode(), "same": raw == again, "json": await request.json()}

    async with TestClient(app) as client:
        response = await client.post("/echo", json={"a": [1, 2]})
    assert response.json() == {"raw": '{"a": [1, 2]}', "same": True, "json": {"a": [1, 2]}}


async def test_request_json_on_invalid_json_is_a_400() -> None:
    app = TrioAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return await request.json()

    async with TestClient(app) as client:
        response = await client.post("/echo", content=b"{nope")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


async def test_request_state_carries_values_from_a_dependency_to_the_endpoint() -> None:
    app = TrioAPI()

    async def authenticate(request: Request) -> None:
        request.state.user = request.headers.get("x-user", "anonymous")

    @app.get("/whoami", dependencies=[Depends(authenticate)])
    async def whoami(request: Request) -> str:
        return str(request.state.user)

    async with TestClient(app) as client:
        assert (await client.get("/whoami", headers={"x-user": "ann"})).json() == "ann"
        # A new request starts with fresh state.
        assert (await client.get("/whoami")).json() == "anonymous"


# --- request bodies ------------------------------------------------------------------


async def test_attrs_body_with_nested_classes_optional_fields_and_defaults() -> None:
    app = TrioAPI()

    @app.post("/items")
    async def create(item: Item) -> Any:
        assert isinstance(item, Item)
        assert all(isinstance(tag, Tag) for tag in item.tags)
        return item

    async with TestClient(app) as client:
        full = await client.post(
            "/items",
            json={
                "name": "pen",
                "price": 2,
                "tags": [{"label": "blue"}, {"label": "cheap"}],
                "description": None,
                "quantity": 5,
            },
        )
        minimal = await client.post("/items", json={"name": "pen", "price": 1.5})
    assert full.json() == {
        "name": "pen",
        "price": 2.0,
        "tags": [{"label": "blue"}, {"label": "cheap"}],
        "description": None,
        "quantity": 5,
    }
    assert minimal.json() == {
        "name": "pen",
        "price": 1.5,
        "tags": [],
        "description": None,
        "quantity": 1,
    }


async def test_list_of_attrs_instances_as_the_body() -> None:
    app = TrioAPI()

    @app.post("/users")
    async def create(users: list[User]) -> list[str]:
        return [user.username for user in users]

    async with TestClient(app) as client:
        ok = await client.post("/users", json=[{"username": "a"}, {"username": "b"}])
        bad = await client.post("/users", json=[{"username": "a"}, {"name": "b"}])
    assert ok.json() == ["a", "b"]
    assert locs(bad) == [["body", 1, "username"]]


async def test_dict_and_list_bodies() -> None:
    app = TrioAPI()

    @app.post("/dict")
    async def as_dict(payload: dict[str, int]) -> Any:
        return sum(payload.values())

    @app.post("/list")
    async def as_list(numbers: Annotated[list[float], Body()]) -> Any:
        return sum(numbers)

    async with TestClient(app) as client:
        assert (await client.post("/dict", json={"a": 1, "b": 2})).json() == 3
        assert (await client.post("/list", json=[1, 2.5])).json() == 3.5
        assert locs(await client.post("/dict", json={"a": "x"})) == [["body", "a"]]
        assert locs(await client.post("/list", json=[1, "x"])) == [["body", 1]]


async def test_bytes_body_is_the_raw_request_body() -> None:
    app = TrioAPI()

    @app.post("/upload")
    async def upload(data: Annotated[bytes, Body()]) -> Any:
        return [len(data), data.hex()]

    async with TestClient(app) as client:
        response = await client.post("/upload", content=b"\x00\xff{")
    assert response.json() == [3, "00ff7b"]


async def test_str_body_is_raw_text_unless_sent_as_json() -> None:
    app = TrioAPI()

    @app.post("/note")
    async def note(text: Annotated[str, Body()]) -> str:
        return text

    async with TestClient(app) as client:
        raw = await client.post(
            "/note", content='héllo "world"', headers={"content-type": "text/plain"}
        )
        as_json = await client.post("/note", json="héllo")
        wrong_json = await client.post("/note", json=5)
        not_utf8 = await client.post(
            "/note", content=b"\xff", headers={"content-type": "text/plain"}
        )
    assert raw.json() == 'héllo "world"'
    assert as_json.json() == "héllo"
    assert [(e["type"], e["loc"]) for e in detail(wrong_json)] == [("string_type", ["body"])]
    assert not_utf8.status_code == 422


async def test_several_body_parameters_are_embedded_by_name() -> None:
    app = TrioAPI()

    @app.put("/items/{item_id}")
    async def update(
        item_id: int, item: Item, user: User, importance: Annotated[int, Body()]
    ) -> Any:
        return [item_id, item.name, user.username, importance]

    async with TestClient(app) as client:
        ok = await client.put(
            "/items/3",
            json={
                "item": {"name": "pen", "price": 1},
                "user": {"username": "ann"},
                "importance": 5,
            },
        )
        missing = await client.put("/items/3", json={"item": {"name": "pen", "price": 1}})
        not_object = await client.put("/items/3", json=[1])
        null = await client.put(
            "/items/3", content=b"null", headers={"content-type": "application/json"}
        )
    assert ok.json() == [3, "pen", "ann", 5]
    assert [(e["type"], e["loc"]) for e in detail(missing)] == [
        ("missing", ["body", "user"]),
        ("missing", ["body", "importance"]),
    ]
    # FastAPI's answer to a JSON array where fields are read by name: each is missing.
    # And to an explicit null (no body at all would let defaults apply).
    for answer in (not_object, null):
        assert [(e["type"], e["loc"]) for e in detail(answer)] == [
            ("missing", ["body", "item"]),
            ("missing", ["body", "user"]),
            ("missing", ["body", "importance"]),
        ]


async def test_an_explicit_null_body_is_not_an_object_even_when_fields_have_defaults() -> None:
    app = TrioAPI()

    @app.post("/")
    async def create(
        value: Annotated[int | None, Body()] = 10, other: Annotated[int | None, Body()] = 20
    ) -> list[int | None]:
        return [value, other]

    async with TestClient(app) as client:
        null = await client.post("/", content=b"null", headers={"content-type": "application/json"})
        nothing = await client.post("/")
        empty = await client.post("/", json={})
    assert [(e["type"], e["loc"]) for e in detail(null)] == [
        ("missing", ["body", "value"]),
        ("missing", ["body", "other"]),
    ]
    assert nothing.json() == empty.json() == [10, 20]


async def test_a_json_body_needs_a_json_content_type_unless_the_route_relaxes_it() -> None:
    app = TrioAPI()

    @app.post("/strict")
    async def strict(item: Item) -> str:
        return item.name

    @app.post("/lax", strict_content_type=False)
    async def lax(item: Item) -> str:
        return item.name

    body = '{"name": "pen", "price": 1}'
    async with TestClient(app) as client:
        unannounced = await client.post("/strict", content=body)
        as_text = await client.post("/strict", content=body, headers={"content-type": "text/plain"})
        vendor = await client.post(
            "/strict", content=body, headers={"content-type": "application/vnd.x+json"}
        )
        relaxed = await client.post("/lax", content=body)
    assert [(e["type"], e["loc"]) for e in detail(unannounced)] == [
        ("model_attributes_type", ["body"])
    ]
    assert as_text.status_code == 422
    assert (vendor.status_code, relaxed.status_code) == (200, 200)


async def test_body_embed_wraps_a_single_body_parameter() -> None:
    app = TrioAPI()

    @app.post("/items")
    async def create(item: Annotated[Item, Body(embed=True)]) -> str:
        return item.name

    async with TestClient(app) as client:
        assert (
            await client.post("/items", json={"item": {"name": "pen", "price": 1}})
        ).json() == "pen"
        bare = await client.post("/items", json={"name": "pen", "price": 1})
    assert [(e["type"], e["loc"]) for e in detail(bare)] == [("missing", ["body", "item"])]


async def test_optional_body_may_be_left_out() -> None:
    app = TrioAPI()

    @app.post("/items")
    async def create(item: Item | None = None) -> Any:
        return None if item is None else item.name

    async with TestClient(app) as client:
        assert (await client.post("/items")).json() is None
        assert (await client.post("/items", json={"name": "pen", "price": 1})).json() == "pen"


async def test_missing_required_body_is_a_422_at_the_body() -> None:
    app = TrioAPI()

    @app.post("/items")
    async def create(item: Item) -> None: ...

    async with TestClient(app) as client:
        response = await client.post("/items")
    assert response.json() == {
        "detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    }


async def test_body_field_errors_are_located_inside_the_document() -> None:
    app = TrioAPI()

    @app.post("/items")
    async def create(item: Item) -> None: ...

    async with TestClient(app) as client:
        response = await client.post(
            "/items", json={"name": 5, "tags": [{"label": "ok"}, {"label": None}]}
        )
    assert detail(response) == [
        {
            "type": "string_type",
            "loc": ["body", "name"],
            "msg": "Input should be a valid string",
            "input": 5,
        },
        {
            "type": "missing",
            "loc": ["body", "price"],
            "msg": "Field required",
            "input": {"name": 5, "tags": [{"label": "ok"}, {"label": None}]},
        },
        {
            "type": "string_type",
            "loc": ["body", "tags", 1, "label"],
            "msg": "Input should be a valid string",
            "input": None,
        },
    ]


async def test_errors_from_every_source_are_reported_together() -> None:
    app = TrioAPI()

    @app.post("/things/{thing_id}")
    async def create(
        thing_id: int,
        q: int,
        x_token: Annotated[int, Header()],
        session: Annotated[int, Cookie()],
        item: Item,
    ) -> None: ...

    async with TestClient(app) as client:
        response = await client.post(
            "/things/a?q=b",
            headers={"x-token": "c", "cookie": "session=d"},
            json={"name": "pen", "price": "e"},
        )
    assert [(e["loc"], e["input"]) for e in detail(response)] == [
        (["path", "thing_id"], "a"),
        (["query", "q"], "b"),
        (["header", "x-token"], "c"),
        (["cookie", "session"], "d"),
        (["body", "price"], "e"),
    ]


async def test_path_query_and_body_together() -> None:
    app = TrioAPI()

    @app.put("/items/{item_id}")
    async def update(item_id: int, item: Item, notify: bool = False) -> Any:
        return {"id": item_id, "name": item.name, "notify": notify}

    async with TestClient(app) as client:
        response = await client.put("/items/9?notify=on", json={"name": "pen", "price": 1})
    assert response.json() == {"id": 9, "name": "pen", "notify": True}


# --- routers and app-level dependencies ----------------------------------------------


async def test_router_prefix_tags_and_dependencies_apply_to_its_routes() -> None:
    calls: list[str] = []

    async def require_token(x_token: Annotated[str, Header()]) -> None:
        calls.append(x_token)
        if x_token != "secret":
            raise HTTPException(401, "bad token")

    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_token)])

    @router.get("/stats")
    async def stats() -> str:
        return "stats"

    app = TrioAPI()
    app.include_router(router)

    async with TestClient(app) as client:
        ok = await client.get("/admin/stats", headers={"x-token": "secret"})
        refused = await client.get("/admin/stats", headers={"x-token": "guess"})
        missing = await client.get("/admin/stats")
        unprefixed = await client.get("/stats", headers={"x-token": "secret"})
    assert ok.json() == "stats"
    assert (refused.status_code, refused.json()) == (401, {"detail": "bad token"})
    assert locs(missing) == [["header", "x-token"]]
    assert unprefixed.status_code == 404
    assert calls == ["secret", "guess"]
    [route] = [r for r in app.routes if r.path == "/admin/stats"]
    assert route.tags == ("admin",)


async def test_nested_routers_are_served_under_every_prefix() -> None:
    seen: list[str] = []

    def mark(name: str) -> Any:
        def dependency() -> None:
            seen.append(name)

        return dependency

    items = APIRouter(prefix="/items", dependencies=[Depends(mark("items"))])

    @items.get("/{item_id}")
    async def read(item_id: int) -> int:
        return item_id

    api = APIRouter(prefix="/api", dependencies=[Depends(mark("api"))])
    api.include_router(items, prefix="/v1", dependencies=[Depends(mark("include"))])
    app = TrioAPI(dependencies=[Depends(mark("app"))])
    app.include_router(api)

    async with TestClient(app) as client:
        response = await client.get("/api/v1/items/4")
    assert response.json() == 4
    assert seen == ["app", "api", "include", "items"]


async def test_app_dependencies_run_for_every_route_and_can_refuse() -> None:
    seen: list[str] = []

    async def gate(request: Request, closed: bool = False) -> None:
        seen.append(request.path)
        if closed:
            raise HTTPException(503, "closed")

    app = TrioAPI(dependencies=[Depends(gate)])

    @app.get("/a")
    async def a() -> str:
        return "a"

    router = APIRouter()

    @router.get("/b")
    async def b() -> str:
        return "b"

    app.include_router(router)

    async with TestClient(app) as client:
        assert (await client.get("/a")).json() == "a"
        assert (await client.get("/b")).json() == "b"
        refused = await client.get("/a?closed=true")
    assert (refused.status_code, refused.json()) == (503, {"detail": "closed"})
    assert seen == ["/a", "/b", "/a"]


async def test_router_dependency_values_are_discarded_but_errors_count() -> None:
    def needs_int(n: int) -> int:
        return n

    router = APIRouter(dependencies=[Depends(needs_int)])

    @router.get("/x")
    async def x() -> str:
        return "x"

    app = TrioAPI()
    app.include_router(router, prefix="/r")
    async with TestClient(app) as client:
        assert (await client.get("/r/x?n=1")).json() == "x"
        assert locs(await client.get("/r/x?n=one")) == [["query", "n"]]

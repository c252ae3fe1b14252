"""Responses, exception handling, and every kind of malformed input getting a 4xx.

Annotations here are evaluated eagerly (no ``from __future__ import
annotations``), so endpoints may name things local to a test.
"""

import datetime
import enum
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Annotated, Any

import attrs
import httpx
import pytest
import trio

from trioapi import (
    APIRouter,
    Body,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    RequestValidationError,
    Response,
    StreamingResponse,
    TrioAPI,
    status,
)
from trioapi.testing import TestClient


@attrs.define
class Point:
    x: int
    y: int


@attrs.define
class Shape:
    name: str
    points: list[Point]


class Color(enum.Enum):
    RED = "red"


def encoded_default(value: Any) -> Any:
    """How trioapi documents rendering the types JSON lacks."""
    if isinstance(value, frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


async def get_returning(value: Any) -> httpx.Response:
    """The response to ``GET /`` from an app whose endpoint returns ``value``."""
    app = TrioAPI()

    @app.get("/")
    async def read() -> Any:
        return value

    async with TestClient(app) as client:
        return await client.get("/")


def cyclic() -> dict[str, Any]:
    content: dict[str, Any] = {"items": []}
    content["items"].append(content)
    return content


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(cyclic(), "Circular reference detected", id="a cycle"),
        pytest.param([1.0, float("nan")], "Out of range float values", id="NaN"),
    ],
)
async def test_content_json_cannot_encode_is_a_500_whose_log_says_why(
    value: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await get_returning(value)
    assert response.status_code == 500
    [record] = error_records(caplog)
    assert record.exc_info is not None
    assert reason in str(record.exc_info[1])


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


# --- plain return values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ({"a": 1, "b": [True, None]}, b'{"a":1,"b":[true,null]}'),
        ([1, "two", 3.5], b'[1,"two",3.5]'),
        (
            Shape("tri", [Point(0, 0), Point(1, 2)]),
            b'{"name":"tri","points":[{"x":0,"y":0},{"x":1,"y":2}]}',
        ),
        (None, b"null"),
        ("plain text", b'"plain text"'),
        ("ünïcode", '"ünïcode"'.encode()),
        ({"t": (1, 2), "s": frozenset({"x"}), "big": 10**30, "f": 1e100}, None),
        (
            [uuid.UUID(int=1), datetime.date(2026, 11, 24), Color.RED, b"\xff", "\u2028"],
            None,
        ),
    ],
)
async def test_plain_return_values_are_sent_as_json(value: Any, body: bytes | None) -> None:
    if body is None:  # what the standard library's encoder makes of it, with our defaults
        body = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, default=encoded_default
        ).encode()
    response = await get_returning(value)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == body
    assert response.headers["content-length"] == str(len(body))


async def test_status_code_on_the_decorator() -> None:
    app = TrioAPI()

    @app.post("/items", status_code=status.HTTP_201_CREATED)
    async def create() -> dict[str, int]:
        return {"id": 1}

    async with TestClient(app) as client:
        response = await client.post("/items")
    assert (response.status_code, response.json()) == (201, {"id": 1})


async def test_204_has_no_body_and_no_content_length() -> None:
    app = TrioAPI()

    @app.delete("/items/{item_id}", status_code=204)
    async def remove(item_id: int) -> dict[str, str]:
        return {"ignored": "because 204 has no body"}

    async with TestClient(app) as client:
        response = await client.delete("/items/1")
    assert response.status_code == 204
    assert response.content == b""
    assert "content-length" not in response.headers


def test_status_constants_have_their_codes() -> None:
    assert status.HTTP_200_OK == 200
    assert status.HTTP_201_CREATED == 201
    assert status.HTTP_204_NO_CONTENT == 204
    assert status.HTTP_307_TEMPORARY_REDIRECT == 307
    assert status.HTTP_404_NOT_FOUND == 404
    assert status.HTTP_413_REQUEST_ENTITY_TOO_LARGE == status.HTTP_413_CONTENT_TOO_LARGE == 413
    assert status.HTTP_422_UNPROCESSABLE_ENTITY == status.HTTP_422_UNPROCESSABLE_CONTENT == 422
    assert status.HTTP_500_INTERNAL_SERVER_ERROR == 500
    for name in dir(status):
        if name.startswith("HTTP_"):
            assert getattr(status, name) == int(name.split("_")[1]), name


# --- response classes --------------------------------------------------------------------


async def test_response_classes_set_body_and_media_type() -> None:
    app = TrioAPI()

    @app.get("/raw")
    async def raw() -> Response:
        return Response(b"\x00\x01", status_code=202, media_type="application/octet-stream")

    @app.get("/json")
    async def as_json() -> Response:
        return JSONResponse({"ok": True}, status_code=201, headers={"X-One": "1"})

    @app.get("/text")
    async def text() -> Response:
        return PlainTextResponse("héllo")

    @app.get("/html")
    async def html() -> Response:
        return HTMLResponse("<h1>hi</h1>")

    async with TestClient(app) as client:
        raw_r = await client.get("/raw")
        json_r = await client.get("/json")
        text_r = await client.get("/text")
        html_r = await client.get("/html")
    assert (raw_r.status_code, raw_r.content) == (202, b"\x00\x01")
    assert raw_r.headers["content-type"] == "application/octet-stream"
    assert (json_r.status_code, json_r.json(), json_r.headers["x-one"]) == (201, {"ok": True}, "1")
    assert text_r.headers["content-type"] == "text/plain; charset=utf-8"
    assert text_r.content == "héllo".encode()
    assert text_r.headers["content-length"] == str(len("héllo".encode()))
    assert html_r.headers["content-type"] == "text/html; charset=utf-8"
    assert html_r.text == "<h1>hi</h1>"


async def test_redirect_response_defaults_to_307() -> None:
    app = TrioAPI()

    @app.get("/old")
    async def old() -> Response:
        return RedirectResponse("/new")

    @app.get("/moved")
    async def moved() -> Response:
        return RedirectResponse("https://example.com/x", status_code=301)

    async with TestClient(app) as client:
        temporary = await client.get("/old")
        permanent = await client.get("/moved")
    assert (temporary.status_code, temporary.headers["location"]) == (307, "/new")
    assert (permanent.status_code, permanent.headers["location"]) == (301, "https://example.com/x")


async def test_streaming_response_from_an_async_iterator() -> None:
    app = TrioAPI()

    @app.get("/stream")
    async def stream() -> Response:
        async def numbers() -> AsyncIterator[str]:
            for n in range(3):
                await trio.lowlevel.checkpoint()
                yield f"{n}\n"

        return StreamingResponse(numbers(), media_type="text/plain")

    async with TestClient(app) as client:
        response = await client.get("/stream")
    assert response.text == "0\n1\n2\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_streaming_response_from_a_sync_iterator_runs_it_off_the_trio_thread() -> None:
    trio_thread = threading.get_ident()
    threads: set[int] = set()
    app = TrioAPI()

    @app.get("/stream")
    async def stream() -> Response:
        def chunks() -> Iterator[bytes | str]:
            for piece in (b"ab", "cd", b""):
                threads.add(threading.get_ident())
                yield piece

        return StreamingResponse(chunks(), status_code=206, headers={"X-Stream": "yes"})

    async with TestClient(app) as client:
        response = await client.get("/stream")
    assert (response.status_code, response.content) == (206, b"abcd")
    assert response.headers["x-stream"] == "yes"
    assert threads
    assert trio_thread not in threads


async def test_response_parameter_sets_status_headers_and_cookies() -> None:
    app = TrioAPI()

    @app.post("/login")
    async def login(response: Response) -> dict[str, bool]:
        response.status_code = 201
        response.headers["X-Session"] = "new"
        response.set_cookie("session", "abc", max_age=60, httponly=True, secure=True)
        return {"ok": True}

    @app.get("/plain")
    async def plain(response: Response) -> str:
        response.headers["X-Only-Header"] = "1"
        return "kept"

    async with TestClient(app) as client:
        login_r = await client.post("/login")
        plain_r = await client.get("/plain")
    assert (login_r.status_code, login_r.json()) == (201, {"ok": True})
    assert login_r.headers["x-session"] == "new"
    assert login_r.headers["content-type"] == "application/json"
    [cookie] = login_r.headers.get_list("set-cookie")
    assert cookie.startswith("session=abc; ")
    assert {"HttpOnly", "Max-Age=60", "Path=/", "SameSite=lax", "Secure"} <= set(cookie.split("; "))
    assert (plain_r.status_code, plain_r.json(), plain_r.headers["x-only-header"]) == (
        200,
        "kept",
        "1",
    )


async def test_set_cookie_repeats_and_delete_cookie_expires_it() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read() -> Response:
        response = JSONResponse("ok")
        response.set_cookie("a", "1", path=None, samesite=None)
        response.set_cookie("b", "2", domain="example.com", samesite="strict")
        response.delete_cookie("old", path="/app")
        return response

    async with TestClient(app) as client:
        response = await client.get("/")
    first, second, deleted = response.headers.get_list("set-cookie")
    assert first == "a=1"
    assert set(second.split("; ")) == {"b=2", "Domain=example.com", "Path=/", "SameSite=strict"}
    parts = deleted.split("; ")
    assert parts[0] == 'old=""'
    assert {"Max-Age=0", "Path=/app"} <= set(parts)
    assert any(part.startswith("expires=") for part in parts)


async def test_head_sends_the_get_headers_without_a_body() -> None:
    app = TrioAPI()

    @app.get("/doc")
    async def doc() -> dict[str, str]:
        return {"content": "x" * 20}

    async with TestClient(app) as client:
        get = await client.get("/doc")
        head = await client.head("/doc")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == "application/json"


async def test_unknown_path_is_404_and_wrong_method_405_with_allow() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items() -> list[int]:
        return []

    @app.post("/items")
    async def create() -> None: ...

    async with TestClient(app) as client:
        missing = await client.get("/nothing")
        wrong = await client.delete("/items")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    assert wrong.headers["allow"] == "GET, HEAD, POST"


# --- HTTPException and exception handlers ------------------------------------------------


async def test_http_exception_sets_status_detail_and_headers() -> None:
    app = TrioAPI()

    @app.get("/private")
    async def private() -> None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail={"reason": "expired", "at": [1, 2]},
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418)

    async with TestClient(app) as client:
        private_r = await client.get("/private")
        teapot_r = await client.get("/teapot")
    assert private_r.status_code == 401
    assert private_r.json() == {"detail": {"reason": "expired", "at": [1, 2]}}
    assert private_r.headers["www-authenticate"] == "Bearer"
    assert (teapot_r.status_code, teapot_r.json()) == (418, {"detail": "I'm a Teapot"})


async def test_http_exception_from_a_sync_endpoint() -> None:
    app = TrioAPI()

    @app.get("/gone")
    def gone() -> None:
        raise HTTPException(410, "gone for good")

    async with TestClient(app) as client:
        response = await client.get("/gone")
    assert (response.status_code, response.json()) == (410, {"detail": "gone for good"})


class OutOfStock(Exception):
    def __init__(self, item: str) -> None:
        super().__init__(item)
        self.item = item


class Backorder(OutOfStock):
    pass


async def test_exception_handler_by_type_handles_subclasses_too() -> None:
    app = TrioAPI()

    @app.exception_handler(OutOfStock)
    async def out_of_stock(request: Request, exc: OutOfStock) -> Response:
        return JSONResponse(
            {"missing": exc.item, "path": request.path, "kind": type(exc).__name__},
            status_code=409,
        )

    @app.get("/buy/{item}")
    async def buy(item: str) -> None:
        raise OutOfStock(item)

    @app.get("/order/{item}")
    def order(item: str) -> None:
        raise Backorder(item)

    async with TestClient(app) as client:
        bought = await client.get("/buy/pen")
        ordered = await client.get("/order/ink")
    assert (bought.status_code, bought.json()) == (
        409,
        {"missing": "pen", "path": "/buy/pen", "kind": "OutOfStock"},
    )
    assert ordered.json() == {"missing": "ink", "path": "/order/ink", "kind": "Backorder"}


async def test_exception_handler_by_status_code_covers_routing_and_raised_errors() -> None:
    app = TrioAPI()

    @app.exception_handler(404)
    def not_found(request: Request, exc: HTTPException) -> Response:
        return PlainTextResponse(f"nothing at {request.path}: {exc.detail}", status_code=404)

    @app.get("/items/{item_id}")
    async def read(item_id: int) -> None:
        raise HTTPException(404, "no such item")

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise HTTPException(403)

    async with TestClient(app) as client:
        unrouted = await client.get("/elsewhere")
        raised = await client.get("/items/3")
        other = await client.get("/forbidden")
    assert (unrouted.status_code, unrouted.text) == (404, "nothing at /elsewhere: Not Found")
    assert raised.text == "nothing at /items/3: no such item"
    assert (other.status_code, other.json()) == (403, {"detail": "Forbidden"})


async def test_validation_error_handler_can_be_replaced() -> None:
    app = TrioAPI()

    @app.exception_handler(RequestValidationError)
    async def flat(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"bad": [e["loc"][-1] for e in exc.errors()]}, status_code=400)

    @app.get("/")
    async def read(n: int, m: int) -> None: ...

    async with TestClient(app) as client:
        response = await client.get("/?n=x")
    assert (response.status_code, response.json()) == (400, {"bad": ["n", "m"]})


async def test_exception_handlers_given_to_the_constructor() -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled", status_code=400)

    app = TrioAPI(exception_handlers={KeyError: handle})

    @app.get("/")
    async def read() -> None:
        raise KeyError("k")

    async with TestClient(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (400, "handled")


async def test_exception_handler_that_raises_gives_a_500_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI()

    @app.exception_handler(OutOfStock)
    async def broken(request: Request, exc: OutOfStock) -> Response:
        raise RuntimeError("handler bug")

    @app.get("/")
    async def read() -> None:
        raise OutOfStock("pen")

    with caplog.at_level(logging.ERROR, logger="trioapi.error"):
        async with TestClient(app) as client:
            response = await client.get("/")
    assert (response.status_code, response.json()) == (500, {"detail": "Internal Server Error"})
    [record] = error_records(caplog)
    assert record.name == "trioapi.error"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_exception_handler_returning_a_non_response_gives_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI()

    @app.exception_handler(OutOfStock)
    async def sloppy(request: Request, exc: OutOfStock) -> Any:
        return {"not": "a response"}

    @app.get("/")
    async def read() -> None:
        raise OutOfStock("pen")

    with caplog.at_level(logging.ERROR, logger="trioapi.error"):
        async with TestClient(app) as client:
            response = await client.get("/")
    assert response.status_code == 500
    assert [r.name for r in error_records(caplog)] == ["trioapi.error"]


@pytest.mark.parametrize("sync", [True, False])
async def test_unhandled_exception_is_a_bare_500_with_the_traceback_logged(
    caplog: pytest.LogCaptureFixture, sync: bool
) -> None:
    app = TrioAPI()

    def explode() -> None:
        raise ZeroDivisionError("secret-internal-state 0xdeadbeef")

    if sync:

        @app.get("/boom")
        def boom() -> None:
            explode()

    else:

        @app.get("/boom")
        async def boom() -> None:
            explode()

    with caplog.at_level(logging.ERROR, logger="trioapi.error"):
        async with TestClient(app) as client:
            response = await client.get("/boom")
            after = await client.get("/boom")
    assert response.status_code == after.status_code == 500
    assert response.text == "Internal Server Error"
    assert b"secret" not in response.content
    assert b"ZeroDivision" not in response.content
    records = error_records(caplog)
    assert len(records) == 2
    record = records[0]
    assert record.name == "trioapi.error"
    assert "GET /boom" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError
    assert "explode" in caplog.text  # the traceback reaches the log


async def test_unserialisable_return_value_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI()

    @app.get("/")
    async def read() -> Any:
        return {"when": object()}

    with caplog.at_level(logging.ERROR, logger="trioapi.error"):
        async with TestClient(app) as client:
            response = await client.get("/")
    # FastAPI's answer to an error that is the server's: plain text.
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert error_records(caplog)


# --- malformed input: always a 4xx with its exact status, never a 500 ------------------


def malformed_app(max_body_size: int = 16 * 1024 * 1024) -> TrioAPI:
    app = TrioAPI(max_body_size=max_body_size)

    @app.post("/shape")
    async def shape(s: Shape) -> str:
        return s.name

    @app.post("/echo")
    async def echo(payload: Annotated[Any, Body()]) -> Any:
        return payload

    @app.post("/text")
    async def text(t: Annotated[str, Body()]) -> str:
        return t

    @app.post("/raw-json")
    async def raw_json(request: Request) -> Any:
        return await request.json()

    @app.post("/bytes")
    async def raw(data: Annotated[bytes, Body()]) -> int:
        return len(data)

    @app.post("/big", max_body_size=1000)
    async def big(data: Annotated[bytes, Body()]) -> int:
        return len(data)

    @app.post("/tiny", max_body_size=4)
    async def tiny(request: Request) -> int:
        return len(await request.body())

    @app.get("/users/{name}")
    async def user(name: str) -> str:
        return name

    @app.get("/search")
    async def search(q: str = "", n: int = 0) -> list[Any]:
        return [q, n]

    return app


@pytest.fixture
def clean_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if anything was logged at ERROR: client mistakes are not server errors."""
    with caplog.at_level(logging.WARNING):
        yield
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def json_post(content: bytes) -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": "application/json"}}


@pytest.mark.usefixtures("clean_log")
async def test_invalid_json_body_is_a_422_with_the_error_position() -> None:
    async with TestClient(malformed_app()) as client:
        response = await client.post("/shape", **json_post(b'{"name": "x",}'))
    assert response.status_code == 422
    [entry] = response.json()["detail"]
    assert (entry["type"], entry["loc"], entry["msg"]) == (
        "json_invalid",
        ["body", 13],
        "JSON decode error",
    )
    assert entry["ctx"]["error"].startswith("Expecting property name")


@pytest.mark.usefixtures("clean_log")
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"name": 1, "points": []}, [("string_type", ["body", "name"])]),
        ({"name": "x", "points": [{"x": "1", "y": 2}]}, [("int_type", ["body", "points", 0, "x"])]),
        ({"name": "x", "points": {"x": 1}}, [("list_type", ["body", "points"])]),
        ({"name": "x", "points": "abc"}, [("list_type", ["body", "points"])]),
        ([{"name": "x"}], [("model_attributes_type", ["body"])]),
        ("shape", [("model_attributes_type", ["body"])]),
        (42, [("model_attributes_type", ["body"])]),
    ],
    ids=[
        "int-for-str",
        "str-for-int-in-list-item",
        "object-for-list",
        "string-for-list",
        "list-for-object",
        "string-for-object",
        "number-for-object",
    ],
)
async def test_wrong_json_types_are_a_422_at_the_exact_location(
    payload: Any, expected: list[tuple[str, list[Any]]]
) -> None:
    async with TestClient(malformed_app()) as client:
        response = await client.post("/shape", json=payload)
    assert response.status_code == 422
    assert [(e["type"], e["loc"]) for e in response.json()["detail"]] == expected


@pytest.mark.usefixtures("clean_log")
async def test_non_utf8_json_body_is_a_422() -> None:
    async with TestClient(malformed_app()) as client:
        model = await client.post("/shape", **json_post(b'{"name": "\xff\xfe", "points": []}'))
        anything = await client.post("/echo", **json_post(b'"\xc3\x28"'))
        text = await client.post(
            "/text", content=b"\xc3\x28", headers={"content-type": "text/plain"}
        )
    for response in (model, anything, text):
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.usefixtures("clean_log")
async def test_invalid_json_read_through_request_json_is_a_400() -> None:
    async with TestClient(malformed_app()) as client:
        response = await client.post("/raw-json", content=b"\xff not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


@pytest.mark.usefixtures("clean_log")
async def test_deeply_nested_json_body_is_a_422() -> None:
    depth = 100_000
    nested = b"[" * depth + b"]" * depth
    async with TestClient(malformed_app()) as client:
        as_body = await client.post("/echo", **json_post(nested))
        as_model = await client.post("/shape", **json_post(b'{"name": ' + nested + b"}"))
    for response in (as_body, as_model):
        assert response.status_code == 422
        [entry] = response.json()["detail"]
        assert (entry["type"], entry["loc"]) == ("json_invalid", ["body"])


@pytest.mark.usefixtures("clean_log")
async def test_deeply_nested_json_read_through_request_json_is_a_400() -> None:
    depth = 100_000
    async with TestClient(malformed_app()) as client:
        response = await client.post("/raw-json", content=b'{"a":' * depth + b"1" + b"}" * depth)
    assert response.status_code == 400


@pytest.mark.usefixtures("clean_log")
async def test_lone_surrogates_in_json_strings_still_encode_in_the_response() -> None:
    async with TestClient(malformed_app()) as client:
        echoed = await client.post("/echo", **json_post(b'{"k\\udc00": "a\\ud800b"}'))
        text = await client.post("/text", **json_post(b'"\\udfff"'))
    assert echoed.status_code == 200
    assert echoed.json() == {"k\udc00": "a\ud800b"}
    assert echoed.content.isascii()
    assert text.status_code == 200
    assert text.json() == "\udfff"


@pytest.mark.usefixtures("clean_log")
async def test_lone_surrogate_in_a_422_input_still_encodes() -> None:
    async with TestClient(malformed_app()) as client:
        response = await client.post(
            "/shape", **json_post(b'{"name": "\\ud800", "points": [{"x": "\\udc00", "y": 1}]}')
        )
    assert response.status_code == 422
    [entry] = response.json()["detail"]
    assert (entry["loc"], entry["input"]) == (["body", "points", 0, "x"], "\udc00")


@pytest.mark.usefixtures("clean_log")
@pytest.mark.parametrize("segment", ["%FF", "caf%E9", "%ED%A0%80", "%C3"])
async def test_percent_encoded_non_utf8_path_segment_is_a_400(segment: str) -> None:
    async with TestClient(malformed_app()) as client:
        response = await client.get(f"/users/{segment}")
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]


@pytest.mark.usefixtures("clean_log")
async def test_bad_percent_encoding_in_the_path_is_taken_literally() -> None:
    async with TestClient(malformed_app()) as client:
        literal = await client.get("/users/%zz")
        half = await client.get("/users/100%")
    assert (literal.status_code, literal.json()) == (200, "%zz")
    assert (half.status_code, half.json()) == (200, "100%")


@pytest.mark.usefixtures("clean_log")
@pytest.mark.parametrize("query", ["q=%FF", "q=caf%E9", "%FF=1", "q=%ED%A0%80"])
async def test_non_utf8_query_string_is_a_400(query: str) -> None:
    async with TestClient(malformed_app()) as client:
        response = await client.get(f"/search?{query}")
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]


@pytest.mark.usefixtures("clean_log")
async def test_bad_percent_encoding_in_the_query_is_handled() -> None:
    async with TestClient(malformed_app()) as client:
        as_text = await client.get("/search?q=%zz")
        as_int = await client.get("/search?n=%zz")
        lone_percent = await client.get("/search?q=100%")
    assert (as_text.status_code, as_text.json()) == (200, ["%zz", 0])
    assert as_int.status_code == 422
    assert as_int.json()["detail"][0]["loc"] == ["query", "n"]
    assert (lone_percent.status_code, lone_percent.json()) == (200, ["100%", 0])


@pytest.mark.usefixtures("clean_log")
async def test_body_over_the_app_limit_is_a_413() -> None:
    async with TestClient(malformed_app(max_body_size=100)) as client:
        at_limit = await client.post("/bytes", content=b"x" * 100)
        over = await client.post("/bytes", content=b"x" * 101)
        over_json = await client.post("/shape", json={"name": "x" * 200, "points": []})
    assert (at_limit.status_code, at_limit.json()) == (200, 100)
    assert over.status_code == over_json.status_code == 413
    assert "100 bytes" in over.json()["detail"]


@pytest.mark.usefixtures("clean_log")
async def test_route_max_body_size_overrides_the_app_limit_both_ways() -> None:
    async with TestClient(malformed_app(max_body_size=100)) as client:
        raised = await client.post("/big", content=b"x" * 1000)
        too_big = await client.post("/big", content=b"x" * 1001)
        lowered = await client.post("/tiny", content=b"12345")
        fits = await client.post("/tiny", content=b"1234")
    assert (raised.status_code, raised.json()) == (200, 1000)
    assert too_big.status_code == 413
    assert lowered.status_code == 413
    assert fits.json() == 4


async def test_body_over_the_limit_without_content_length_is_a_413_while_streaming() -> None:
    app = malformed_app(max_body_size=10)
    chunks = [b"12345", b"67890", b"X", b"never read"]
    received = 0
    start: dict[str, Any] = {}
    body = bytearray()

    async def receive() -> MutableMapping[str, Any]:
        nonlocal received
        chunk = chunks[received]
        received += 1
        return {"type": "http.request", "body": chunk, "more_body": received < len(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        else:
            body.extend(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/bytes",
        "raw_path": b"/bytes",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
    }
    await app(scope, receive, send)
    assert start["status"] == 413
    assert received == 3  # stopped reading as soon as the limit was passed
    assert httpx.Response(413, content=bytes(body)).json()["detail"].endswith("(10 bytes)")


@pytest.mark.parametrize("value", [-1, True, 1.5, "5"])
def test_a_max_body_size_that_is_not_a_byte_count_is_refused_where_it_is_set(value: Any) -> None:
    from trioapi import APIRouter
    from trioapi.routing import APIRoute

    def echo() -> None: ...

    made = [
        lambda: TrioAPI(max_body_size=value),
        lambda: APIRouter(max_body_size=value),
        lambda: TrioAPI().post("/", max_body_size=value)(echo),
        lambda: TrioAPI().include_router(APIRouter(), max_body_size=value),
        lambda: APIRoute("/", echo, max_body_size=value),
    ]
    for make in made:
        with pytest.raises(ValueError, match="max_body_size must be a non-negative integer"):
            make()


async def test_max_body_size_none_on_the_app_means_no_limit_and_zero_only_empty_bodies() -> None:
    # FastAPI's meaning; trioapi's own default stays a limit (DEFAULT_MAX_BODY_SIZE).
    from trioapi._http.requests import DEFAULT_MAX_BODY_SIZE

    async def take(request: Request) -> int:
        return len(await request.body())

    for limit, size, expected in ((None, DEFAULT_MAX_BODY_SIZE + 1, 200), (0, 0, 200), (0, 1, 413)):
        app = TrioAPI(max_body_size=limit)
        app.post("/")(take)
        async with TestClient(app) as client:
            response = await client.post("/", content=b"x" * size)
        assert response.status_code == expected, (limit, size)


# --- response_model and FastAPI's documentation keywords ---------------------------


@attrs.define
class PublicUser:
    name: str
    age: int = 0


async def test_response_model_shapes_a_returned_dict_and_drops_extra_keys() -> None:
    app = TrioAPI()

    @app.get("/users/{name}", response_model=PublicUser)
    async def user(name: str) -> dict[str, Any]:
        return {"name": name, "age": 41, "password_hash": "secret"}

    @app.get("/me", response_model=PublicUser)
    async def me() -> PublicUser:
        return PublicUser("ann", 3)

    async with TestClient(app) as client:
        assert (await client.get("/users/bob")).json() == {"name": "bob", "age": 41}
        assert (await client.get("/me")).json() == {"name": "ann", "age": 3}


async def test_a_return_value_that_does_not_fit_the_response_model_is_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI()

    @app.get("/broken", response_model=PublicUser)
    async def broken() -> dict[str, Any]:
        return {"age": "not a number"}

    async with TestClient(app) as client:
        response = await client.get("/broken")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert "unhandled error in GET /broken" in caplog.text


async def test_fastapi_documentation_keywords_are_accepted_and_kept() -> None:
    router = APIRouter(prefix="/v1")

    @router.get(
        "/items",
        responses={404: {"description": "Not found"}},
        deprecated=True,
        operation_id="list_items",
        response_description="The items",
        summary="List items",
        response_model=None,
    )
    async def items() -> list[int]:
        return [1, 2]

    app = TrioAPI()
    app.include_router(router)
    route = next(r for r in app.routes if r.path == "/v1/items")
    assert route.deprecated is True
    assert route.operation_id == "list_items"
    assert route.responses == {404: {"description": "Not found"}}
    assert (route.summary, route.response_description) == ("List items", "The items")
    async with TestClient(app) as client:
        assert (await client.get("/v1/items")).json() == [1, 2]


# --- which endpoint a validation error came from ------------------------------------------


def _capture(app: TrioAPI, kind: type[Exception], seen: list[Exception]) -> None:
    async def keep(request: Any, exc: Exception) -> Any:
        seen.append(exc)
        return JSONResponse({"detail": "kept"}, status_code=422)

    app.add_exception_handler(kind, keep)


def get_user(user_id: int) -> dict[str, int]:
    return {"user_id": user_id}


def get_item() -> dict[str, str]:
    return {"name": "no id"}


@attrs.define
class Item:
    id: int
    name: str


async def test_a_validation_error_names_its_endpoint_file_line_and_route() -> None:
    from trioapi.exceptions import ResponseValidationError

    app, sub = TrioAPI(), TrioAPI()
    app.get("/users/{user_id}")(get_user)
    sub.get("/items/", response_model=Item)(get_item)
    app.mount("/sub", sub)
    seen: list[Exception] = []
    _capture(app, RequestValidationError, seen)
    _capture(sub, ResponseValidationError, seen)
    async with TestClient(app) as client:
        assert (await client.get("/users/x")).json() == {"detail": "kept"}
        assert (await client.get("/sub/items/")).json() == {"detail": "kept"}
    request_error, response_error = seen
    assert request_error.endpoint_ctx == {  # type: ignore[attr-defined]
        "path": "GET /users/{user_id}",
        "function": "get_user",
        "file": __file__,
        "line": get_user.__code__.co_firstlineno,
    }
    text = str(request_error)
    assert text.startswith("1 validation error:\n  {'type': 'int_parsing'")
    assert text.endswith(
        f'  File "{__file__}", line {get_user.__code__.co_firstlineno}, in get_user\n'
        "    GET /users/{user_id}"
    )
    assert str(response_error).endswith("in get_item\n    GET /sub/items/")  # under its mount


def test_a_validation_error_made_by_hand_shows_what_context_it_has() -> None:
    errors = [{"type": "missing", "loc": ("body", "name"), "msg": "Field required"}] * 2
    assert str(RequestValidationError(errors, endpoint_ctx={"path": "GET /api"})) == (
        "2 validation errors:\n"
        "  {'type': 'missing', 'loc': ('body', 'name'), 'msg': 'Field required'}\n"
        "  {'type': 'missing', 'loc': ('body', 'name'), 'msg': 'Field required'}\n"
        "  Endpoint: GET /api"
    )
    assert "Endpoint" not in str(RequestValidationError(errors[:1]))

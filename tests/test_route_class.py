"""Custom route classes: ``route_class=`` and ``APIRoute.get_route_handler()``, as in FastAPI.

FastAPI's "Custom Request and APIRoute class" recipes: a route class whose
handler swaps in a ``Request`` subclass (gzip bodies), catches validation
errors to log the body, or times the answer. The app still sends the
response, ends the yield dependencies after it, and runs the request's
background tasks after the last byte.
"""

import gzip
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

import pytest

from trioapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Depends,
    HTTPException,
    Request,
    Response,
    TrioAPI,
)
from trioapi.exceptions import RequestValidationError
from trioapi.routing import APIRoute
from trioapi.testing import TestClient

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class GzipRequest(Request):
    """FastAPI's recipe, word for word in what it relies on: ``hasattr(self, "_body")``."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            body = await super().body()
            if "gzip" in self.headers.getlist("Content-Encoding"):
                body = gzip.decompress(body)
            self._body = body
        return self._body


class GzipRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await original(GzipRequest(request.scope, request.receive))

        return handler


class LoggingRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except RequestValidationError as exc:
                body = await request.body()
                detail = {"errors": len(exc.errors()), "body": body.decode()}
                raise HTTPException(422, detail) from exc

        return handler


events: list[str] = []


class TimedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            events.append("handler in")
            response = await original(request)
            events.append("handler out")
            response.headers["X-Handled-By"] = type(self).__name__
            return response

        return handler


def total(numbers: Annotated[list[int], Body()]) -> dict[str, int]:
    return {"sum": sum(numbers)}


async def test_a_gzip_route_reads_the_body_through_its_own_request() -> None:
    app = TrioAPI()
    app.router.route_class = GzipRoute
    app.post("/sum")(total)
    plain = json.dumps([1, 2, 3]).encode()
    async with TestClient(app) as client:
        zipped = await client.post(
            "/sum",
            content=gzip.compress(plain),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        unzipped = await client.post(
            "/sum", content=plain, headers={"Content-Type": "application/json"}
        )
    assert (zipped.status_code, zipped.json()) == (200, {"sum": 6})
    assert unzipped.json() == {"sum": 6}
    assert isinstance(app.routes[-1], GzipRoute)


async def test_a_route_handler_sees_the_validation_error_and_may_answer_another() -> None:
    router = APIRouter(route_class=LoggingRoute)
    router.post("/sum")(total)
    app = TrioAPI()
    app.include_router(router)
    async with TestClient(app) as client:
        answer = await client.post("/sum", content=b'["a"]')
    assert answer.status_code == 422
    assert answer.json() == {"detail": {"errors": 1, "body": '["a"]'}}


async def test_the_app_still_ends_dependencies_and_runs_tasks_after_the_wrapped_answer() -> None:
    events.clear()

    def resource() -> Iterator[str]:
        events.append("dependency in")
        yield "r"
        events.append("dependency out")

    def task() -> None:
        events.append("task")

    router = APIRouter(route_class=TimedRoute)

    @router.get("/")
    def endpoint(value: Annotated[str, Depends(resource)], tasks: BackgroundTasks) -> str:
        tasks.add_task(task)
        events.append("endpoint")
        return value

    app = TrioAPI()
    app.include_router(router)
    async with TestClient(app) as client:
        answer = await client.get("/")
    assert (answer.json(), answer.headers["x-handled-by"]) == ("r", "TimedRoute")
    assert events == [
        "handler in",
        "dependency in",
        "endpoint",
        "handler out",
        "dependency out",
        "task",
    ]


def test_routers_make_routes_of_their_class_and_inclusions_keep_it() -> None:
    class RouteA(APIRoute):
        pass

    class RouteB(APIRoute):
        pass

    inner = APIRouter(route_class=RouteB)
    inner.get("/b")(total)
    outer = APIRouter(route_class=RouteA)
    outer.get("/a")(total)
    outer.include_router(inner)
    app = TrioAPI()
    app.include_router(outer, prefix="/x")
    app.get("/plain")(total)
    classes = {route.path: type(route) for route in app.routes if route.path.startswith("/")}
    assert classes["/x/a"] is RouteA
    assert classes["/x/b"] is RouteB
    assert classes["/plain"] is APIRoute
    # A subclass that does not override get_route_handler keeps the app's own path.
    assert all(route.handler is None for route in app.routes if isinstance(route, APIRoute))


async def test_a_handler_that_returns_no_response_is_a_500_that_names_it() -> None:
    class Broken(APIRoute):
        def get_route_handler(self) -> Any:
            async def handler(request: Request) -> Any:
                return {"not": "a response"}

            return handler

    app = TrioAPI()
    app.router.route_class = Broken
    app.get("/")(lambda: None)
    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(TypeError, match=r"Broken.get_route_handler\) returned"):
            await client.get("/")


# --- Starlette-style routes: router.route / add_route ----------------------------------


async def test_a_starlette_style_route_gets_the_request_and_is_not_documented() -> None:
    from trioapi.responses import JSONResponse, PlainTextResponse

    router = APIRouter()

    @router.route("/items/{item}", methods=["GET", "POST"])
    def items(request: Request) -> JSONResponse:  # sync: in a worker thread
        return JSONResponse({"item": request.path_params["item"], "method": request.method})

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.query_params['name']}")

    app = TrioAPI()
    app.include_router(router)
    app.add_route("/hello", hello)
    async with TestClient(app) as client:
        got = await client.get("/items/a")
        posted = await client.post("/items/b")
        greeted = await client.get("/hello", params={"name": "trio"})
        head = await client.head("/hello", params={"name": "trio"})
        refused = await client.put("/items/c")
    assert got.json() == {"item": "a", "method": "GET"}
    assert posted.json() == {"item": "b", "method": "POST"}
    assert greeted.text == "hello trio"
    assert (head.status_code, head.content) == (200, b"")
    assert refused.status_code == 405
    assert app.openapi()["paths"] == {}

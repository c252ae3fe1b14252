"""Middleware: the stack and its order, ``call_next``, the four middlewares, wrapped apps.

Background-task promises with middleware in place (one test each, with a
middleware that wraps ``send``): tasks start only after the last byte reached
the server, and no middleware can make the response wait for them.

Tests that hold a message or a task do it with ``trio.Event``s and look with
``wait_all_tasks_blocked``; deadlines (``fail_after``) run on the autojump
clock, so a response that waits for a task fails the test instead of hanging.
The app a wrapping middleware serves from the command line is at the end
(``wrapped_e2e_app``), for the end-to-end tests.
"""

import gzip
import logging
import re
import signal
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trioapi
from tests.e2e_app import app as e2e_inner
from trioapi import BackgroundTasks, HTTPException, Request, TrioAPI
from trioapi._server.harness import InMemoryServer
from trioapi.middleware import Middleware
from trioapi.middleware.base import BaseHTTPMiddleware
from trioapi.middleware.cors import CORSMiddleware
from trioapi.middleware.gzip import GZipMiddleware
from trioapi.middleware.httpsredirect import HTTPSRedirectMiddleware
from trioapi.middleware.trustedhost import TrustedHostMiddleware
from trioapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from trioapi.testing import TestClient

from ._asgi import http_scope
from .test_e2e import EXIT_MARGIN, HYPERCORN, TRIOAPI, ServerProcess, client_for
from .test_e2e import launch as launch_server  # noqa: F401 - the fixture, by this name
from .test_harness import slow_reader_request

Message = dict[str, Any]


# --- helpers -------------------------------------------------------------------------------


class Recorder:
    """A pure ASGI middleware that notes when a request passes it, on the way in and out."""

    def __init__(self, app: Any, name: str, log: list[str]) -> None:
        self.app = app
        self.name = name
        self.log = log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.log.append(f"{self.name} {scope['type']} in")
        await self.app(scope, receive, send)
        self.log.append(f"{self.name} {scope['type']} out")


class Stamp:
    """A third-party pure ASGI middleware: adds ``x-stamp`` to every HTTP response."""

    def __init__(self, app: Any, value: str = "outer") -> None:
        self.app = app
        self.value = value.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-stamp", self.value)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)


class HoldFinal:
    """Wraps ``send`` and holds the response's final message until ``release`` is set."""

    def __init__(self, app: Any, release: trio.Event, events: list[str]) -> None:
        self.app = app
        self.release = release
        self.events = events

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def held(message: Message) -> None:
            final = message["type"] == "http.response.body" and not message.get("more_body")
            if final:
                self.events.append("final message held")
                await self.release.wait()
            await send(message)
            if final:
                self.events.append("final message forwarded")

        await self.app(scope, receive, held)


class RawServer:
    """The server side of one direct ASGI call: a request body, and what the app sent."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body
        self.messages: list[Message] = []
        self.done = trio.Event()
        self._sent_body = False

    async def receive(self) -> Message:
        if not self._sent_body:
            self._sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.done.set()

    @property
    def chunks(self) -> list[bytes]:
        return [m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"]


def scope_with(path: str = "/", method: str = "GET", **headers: str) -> dict[str, Any]:
    scope = http_scope(path, method)
    scope["headers"] = [*scope["headers"]] + [
        (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
    ]
    return scope


# --- the stack: order, registration ---------------------------------------------------------


async def test_the_last_added_middleware_is_the_outermost() -> None:
    log: list[str] = []
    app = TrioAPI(
        middleware=[Middleware(Recorder, "first", log), Middleware(Recorder, "second", log)]
    )
    app.add_middleware(Recorder, "added", log)

    @app.middleware("http")
    async def decorated(request: Request, call_next: Any) -> Response:
        log.append("decorated in")
        response = await call_next(request)
        log.append("decorated out")
        return response

    @app.get("/")
    async def root() -> dict[str, str]:
        log.append("endpoint")
        return {"ok": "yes"}

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.json() == {"ok": "yes"}
    assert [entry for entry in log if "lifespan" not in entry] == [
        "decorated in",
        "added http in",
        "first http in",
        "second http in",
        "endpoint",
        # call_next returns with the response's head, before the app's call returns.
        "decorated out",
        "second http out",
        "first http out",
        "added http out",
    ]


async def test_the_lifespan_passes_through_the_middleware() -> None:
    log: list[str] = []
    app = TrioAPI()
    app.add_middleware(Recorder, "outer", log)
    started: list[bool] = []
    app.on_startup.append(lambda: started.append(True))

    async with TestClient(app) as client:
        assert started == [True]
        assert log == ["outer lifespan in"]
        report = await client.shutdown()
    assert report.completed == 0
    assert log == ["outer lifespan in", "outer lifespan out"]


async def test_adding_middleware_once_the_app_started_is_refused() -> None:
    app = TrioAPI()
    async with TestClient(app):
        with pytest.raises(RuntimeError, match="after an application has started"):
            app.add_middleware(Stamp)
    assert app.user_middleware == []

    served = TrioAPI()
    served.add_middleware(Stamp)
    await TestClient(served).get("/")  # no lifespan: the first request builds the stack
    assert served.middleware_stack is not None
    with pytest.raises(RuntimeError, match="after an application has started"):
        served.add_middleware(Stamp, value="again")


def test_only_http_middleware_functions_exist() -> None:
    app = TrioAPI()
    with pytest.raises(ValueError, match="only middleware\\('http'\\)"):
        app.middleware("websocket")


def test_middleware_records_its_class_and_options() -> None:
    entry = Middleware(GZipMiddleware, 100, compresslevel=5)
    cls, args, kwargs = entry
    assert (cls, args, kwargs) == (GZipMiddleware, (100,), {"compresslevel": 5})
    assert repr(entry) == "Middleware(GZipMiddleware, 100, compresslevel=5)"


async def test_an_app_without_middleware_builds_no_stack() -> None:
    app = TrioAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == {"ok": True}
    assert app.middleware_stack is None


# --- call_next ----------------------------------------------------------------------------


async def test_call_next_streams_the_body_as_the_app_produces_it() -> None:
    app = TrioAPI()
    next_chunk = trio.Event()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await next_chunk.wait()
            yield b"second"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.middleware("http")
    async def passthrough(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["x-through"] = "yes"
        return response

    server = RawServer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, http_scope("/stream"), server.receive, server.send)
        await trio.testing.wait_all_tasks_blocked()
        # The first chunk is at the server while the app still waits to make the second.
        assert server.messages[0]["type"] == "http.response.start"
        assert (b"x-through", b"yes") in server.messages[0]["headers"]
        assert server.chunks == [b"first"]
        next_chunk.set()
    assert b"".join(server.chunks) == b"firstsecond"
    assert not server.messages[-1].get("more_body")


async def test_a_middleware_can_change_the_status_headers_and_body() -> None:
    app = TrioAPI()
    done: list[str] = []

    @app.get("/")
    async def root(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(done.append, "task")
        return {"message": "hello"}

    @app.middleware("http")
    async def rewrite(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])
        return PlainTextResponse(
            body.decode().upper(),
            status_code=201,
            headers={"x-original": str(response.status_code)},
        )

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 201
    assert response.text == '{"MESSAGE":"HELLO"}'
    assert response.headers["x-original"] == "200"
    assert done == ["task"]


async def test_a_body_the_middleware_read_still_reaches_the_endpoint() -> None:
    app = TrioAPI()
    seen: list[bytes] = []

    @app.middleware("http")
    async def read_first(request: Request, call_next: Any) -> Response:
        seen.append(await request.body())
        return await call_next(request)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, str]:
        return {"body": (await request.body()).decode()}

    async with TestClient(app) as client:
        response = await client.post("/echo", content=b"payload")
    assert response.json() == {"body": "payload"}
    assert seen == [b"payload"]


async def test_request_state_set_in_a_middleware_reaches_the_endpoint() -> None:
    app = TrioAPI()

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        request.state.user = request.headers.get("x-user", "nobody")
        return await call_next(request)

    @app.get("/me")
    async def me(request: Request) -> dict[str, str]:
        return {"user": request.state.user, "app": type(request.app).__name__}

    async with TestClient(app) as client:
        response = await client.get("/me", headers={"x-user": "ada"})
    assert response.json() == {"user": "ada", "app": "TrioAPI"}


async def test_a_middleware_that_answers_itself_never_calls_the_app() -> None:
    app = TrioAPI()
    called: list[str] = []

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        if "authorization" not in request.headers:
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return await call_next(request)

    @app.get("/")
    async def root() -> dict[str, bool]:
        called.append("endpoint")
        return {"ok": True}

    async with TestClient(app) as client:
        refused = await client.get("/")
        allowed = await client.get("/", headers={"authorization": "yes"})
        head = await client.head("/")
    assert (refused.status_code, refused.json()) == (401, {"detail": "log in first"})
    assert allowed.json() == {"ok": True}
    assert (head.status_code, head.content) == (401, b"")
    assert called == ["endpoint"]


async def test_a_middleware_can_answer_with_a_stream_of_its_own() -> None:
    app = TrioAPI()

    @app.middleware("http")
    async def maintenance(request: Request, call_next: Any) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"back "
            yield b"soon"

        return StreamingResponse(chunks(), status_code=503, media_type="text/plain")

    async with TestClient(app) as client:
        response = await client.get("/anything")
    assert (response.status_code, response.text) == (503, "back soon")


async def test_call_next_runs_the_app_once() -> None:
    app = TrioAPI()

    @app.middleware("http")
    async def twice(request: Request, call_next: Any) -> Response:
        await call_next(request)
        return await call_next(request)

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 500


async def test_a_subclass_of_base_http_middleware_dispatches() -> None:
    class Timing(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            response = await call_next(request)
            response.headers["x-path"] = request.url.path
            return response

    app = TrioAPI()
    app.add_middleware(Timing)

    @app.get("/items")
    async def items() -> list[int]:
        return [1]

    async with TestClient(app) as client:
        response = await client.get("/items")
    assert response.headers["x-path"] == "/items"


# --- errors and exception handlers -------------------------------------------------------


class Teapot(Exception):
    pass


def erroring_app() -> TrioAPI:
    app = TrioAPI()

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"detail": "short and stout"}, status_code=418)

    @app.get("/teapot")
    async def teapot_route() -> None:
        raise Teapot

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(404, "no such thing")

    @app.get("/bug")
    async def bug() -> None:
        raise ZeroDivisionError("a bug")

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.middleware("http")
    async def mark(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["x-seen-by-middleware"] = str(response.status_code)
        return response

    return app


async def test_exception_handlers_answer_errors_raised_inside_call_next() -> None:
    app = erroring_app()
    async with TestClient(app) as client:
        teapot = await client.get("/teapot")
        missing = await client.get("/missing")
        no_route = await client.get("/nowhere")
    assert (teapot.status_code, teapot.json()) == (418, {"detail": "short and stout"})
    assert teapot.headers["x-seen-by-middleware"] == "418"
    assert (missing.status_code, missing.json()) == (404, {"detail": "no such thing"})
    assert missing.headers["x-seen-by-middleware"] == "404"
    assert no_route.headers["x-seen-by-middleware"] == "404"


async def test_an_unhandled_error_inside_call_next_is_answered_500_and_raised_on() -> None:
    app = erroring_app()
    async with TestClient(app) as client:
        response = await client.get("/bug")
    assert (response.status_code, response.text) == (500, "Internal Server Error")

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(ZeroDivisionError, match="a bug"):
            await client.get("/bug")


async def test_an_http_exception_raised_in_a_middleware_is_a_server_error() -> None:
    # As in FastAPI: exception handlers cover what runs inside call_next, not the middleware.
    app = TrioAPI()

    @app.middleware("http")
    async def refuse(request: Request, call_next: Any) -> Response:
        raise HTTPException(403, "no")

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(HTTPException):
            await client.get("/")
    async with TestClient(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


async def test_an_error_in_a_middleware_goes_to_the_500_handler() -> None:
    app = TrioAPI()
    seen: list[str] = []

    @app.exception_handler(Exception)
    async def everything(request: Request, exc: Exception) -> JSONResponse:
        seen.append(f"{type(exc).__name__} at {request.url.path}")
        return JSONResponse({"detail": "sorry"}, status_code=500)

    @app.middleware("http")
    async def broken(request: Request, call_next: Any) -> Response:
        raise KeyError("config")

    async with TestClient(app) as client:
        response = await client.get("/somewhere")
    assert (response.status_code, response.json()) == (500, {"detail": "sorry"})
    assert seen == ["KeyError at /somewhere"]


async def test_a_body_over_the_limit_read_in_a_middleware_gets_413() -> None:
    app = TrioAPI(max_body_size=4)

    @app.middleware("http")
    async def read_first(request: Request, call_next: Any) -> Response:
        await request.body()
        return await call_next(request)

    @app.post("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    async with TestClient(app, raise_server_exceptions=True) as client:
        too_big = await client.post("/", content=b"12345")
        small = await client.post("/", content=b"1234")
    assert too_big.status_code == 413
    assert small.json() == {"ok": True}


async def test_an_error_after_the_response_started_goes_to_the_server() -> None:
    class FailAfterStart:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)
            if scope["type"] == "http":
                raise LookupError("after the response")

    app = TrioAPI()
    app.add_middleware(FailAfterStart)

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    server = RawServer()
    with pytest.raises(LookupError):
        await app(http_scope("/"), server.receive, server.send)
    # The response is the app's, untouched: no second one was started.
    assert [m["type"] for m in server.messages] == ["http.response.start", "http.response.body"]
    assert server.messages[0]["status"] == 200


# --- the background-task promises with a middleware wrapping send ------------------------


def app_with_task(events: list[str]) -> TrioAPI:
    app = TrioAPI()

    async def record() -> None:
        events.append("task ran")

    @app.post("/jobs")
    async def job(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(record)
        return {"queued": True}

    return app


@pytest.mark.parametrize("with_call_next", [False, True])
async def test_tasks_start_only_after_the_last_byte_went_past_a_wrapping_middleware(
    with_call_next: bool,
) -> None:
    events: list[str] = []
    release = trio.Event()
    app = app_with_task(events)
    if with_call_next:
        # Inside the one holding the final message: its app must wait for that too.
        @app.middleware("http")
        async def passthrough(request: Request, call_next: Any) -> Response:
            return await call_next(request)

    app.add_middleware(HoldFinal, release=release, events=events)
    responses: list[httpx.Response] = []
    async with TestClient(app, wait_background=False) as client:
        async with trio.open_nursery() as nursery:

            async def post() -> None:
                responses.append(await client.post("/jobs"))

            nursery.start_soon(post)
            await trio.testing.wait_all_tasks_blocked()
            while_held = list(events)  # asserted once released: the hold is shielded
            release.set()
        await app.background.wait_idle()
    assert while_held == ["final message held"]
    assert responses[0].json() == {"queued": True}
    assert events == ["final message held", "final message forwarded", "task ran"]


@pytest.mark.parametrize("server", [False, True])
async def test_a_middleware_cannot_make_the_response_wait_for_tasks(
    autojump_clock: trio.testing.MockClock, server: bool
) -> None:
    finish = trio.Event()
    events: list[str] = []
    app = TrioAPI()

    async def slow() -> None:
        events.append("task started")
        await finish.wait()
        events.append("task finished")

    @app.post("/jobs")
    async def job(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(slow)
        return {"queued": True}

    @app.middleware("http")
    async def passthrough(request: Request, call_next: Any) -> Response:
        return await call_next(request)

    app.add_middleware(Stamp)
    async with TestClient(app, wait_background=False, server=server) as client:
        with trio.fail_after(10):  # virtual seconds: a response held by its task fails here
            response = await client.post("/jobs")
        assert (response.status_code, response.headers["x-stamp"]) == (200, "outer")
        await trio.testing.wait_all_tasks_blocked()
        assert events == ["task started"]
        finish.set()
        report = await client.shutdown()
    assert events == ["task started", "task finished"]
    assert report.completed == 1


async def test_tasks_are_skipped_when_the_middleware_response_does_not_go_out() -> None:
    events: list[str] = []
    app = app_with_task(events)

    class BrokenFinal:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def broken(message: Message) -> None:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    raise OSError("the proxy in front went away")
                await send(message)

            await self.app(scope, receive, broken if scope["type"] == "http" else send)

    @app.middleware("http")
    async def passthrough(request: Request, call_next: Any) -> Response:
        return await call_next(request)

    app.add_middleware(BrokenFinal)
    async with TestClient(app) as client:
        with pytest.raises(OSError, match="went away"):
            await client.post("/jobs")  # no complete response: the client gets the error
        report = await client.shutdown()
    assert events == []
    assert (report.completed, report.skipped) == (0, 1)


async def test_tasks_run_when_a_middleware_sends_its_own_response_instead() -> None:
    events: list[str] = []
    release = trio.Event()
    app = app_with_task(events)

    @app.middleware("http")
    async def replace(request: Request, call_next: Any) -> Response:
        await call_next(request)  # the app's body is never read
        return PlainTextResponse("replaced")

    app.add_middleware(HoldFinal, release=release, events=events)
    async with TestClient(app) as client, trio.open_nursery() as nursery:
        responses: list[httpx.Response] = []

        async def post() -> None:
            responses.append(await client.post("/jobs"))

        nursery.start_soon(post)
        await trio.testing.wait_all_tasks_blocked()
        while_held = list(events)
        release.set()
    assert while_held == ["final message held"]
    assert responses[0].text == "replaced"
    assert events == ["final message held", "final message forwarded", "task ran"]


def order_app_behind(stack: str) -> TrioAPI:
    app = TrioAPI()

    async def noop() -> None:
        pass

    @app.get("/order")
    async def order(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(noop)
        return {"status": "placed"}

    if stack == "call_next":

        @app.middleware("http")
        async def passthrough(request: Request, call_next: Any) -> Response:
            return await call_next(request)

    else:
        app.add_middleware(Stamp)
    return app


@pytest.mark.parametrize("stack", ["pure ASGI", "call_next"])
@pytest.mark.parametrize("read_head", [True, False], ids=["body blocked", "head blocked"])
async def test_under_hypercorn_a_response_through_middleware_is_whole_iff_its_task_runs(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    stack: str,
    read_head: bool,
) -> None:
    # hypercorn cancels the request at graceful_timeout (t=3) while its write
    # waits for a client that reads only at t=5. The send the app gets is a
    # middleware's, never trusted as hypercorn's own: the final message is
    # shielded (the app's, and call_next's), so the body goes out at t=5,
    # and a response that went out has its task.
    app = order_app_behind(stack)
    async with InMemoryServer(app) as server:
        head, rest = await slow_reader_request(server, "/order", read_head=read_head)
        report = await server.shutdown()
    assert report is not None
    raw = head + rest
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b'\r\n\r\n{"status":"placed"}')
    assert (report.completed, report.skipped) == (1, 0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- CORS ---------------------------------------------------------------------------------


def cors_app(**options: Any) -> TrioAPI:
    app = TrioAPI()
    app.add_middleware(CORSMiddleware, **options)

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"message": "hello"}

    @app.post("/items")
    async def create() -> dict[str, bool]:
        return {"created": True}

    return app


PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}


async def test_cors_preflight_allowed() -> None:
    app = cors_app(
        allow_origins=["https://app.example"],
        allow_methods=["GET", "POST"],
        allow_headers=["X-Token"],
        max_age=60,
    )
    async with TestClient(app) as client:
        response = await client.options(
            "/items", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-token, accept"}
        )
    assert (response.status_code, response.text) == (200, "OK")
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert response.headers["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Token"
    )
    assert response.headers["access-control-max-age"] == "60"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"].startswith("Origin, Access-Control-Request-Method")


async def test_cors_preflight_refused_says_what() -> None:
    app = cors_app(allow_origins=["https://app.example"], allow_headers=["X-Token"])
    headers = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "X-Other",
    }
    async with TestClient(app) as client:
        response = await client.options("/items", headers=headers)
    assert (response.status_code, response.text) == (400, "Disallowed CORS origin, method, headers")
    assert "access-control-allow-origin" not in response.headers


async def test_cors_simple_requests() -> None:
    app = cors_app(allow_origins=["https://app.example"], expose_headers=["X-Count"])
    async with TestClient(app) as client:
        allowed = await client.get("/", headers={"Origin": "https://app.example"})
        other = await client.get("/", headers={"Origin": "https://evil.example"})
        plain = await client.get("/")
        options_without_method = await client.options(
            "/", headers={"Origin": "https://app.example"}
        )
    assert allowed.json() == {"message": "hello"}
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-expose-headers"] == "X-Count"
    assert allowed.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in plain.headers
    assert plain.headers["vary"] == "Origin"
    # Not a preflight: it goes to the app (no OPTIONS route there).
    assert options_without_method.status_code == 405


async def test_cors_any_origin_and_credentials() -> None:
    anyone = cors_app(allow_origins=["*"], allow_headers=["*"], allow_methods=["*"])
    with_credentials = cors_app(allow_origins=["*"], allow_credentials=True)
    async with TestClient(anyone) as client:
        simple = await client.get("/", headers={"Origin": "https://a.example"})
        preflight = await client.options(
            "/items", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Anything"}
        )
    assert simple.headers["access-control-allow-origin"] == "*"
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-headers"] == "X-Anything"
    assert "QUERY" in preflight.headers["access-control-allow-methods"]
    async with TestClient(with_credentials) as client:
        simple = await client.get("/", headers={"Origin": "https://a.example"})
        preflight = await client.options(
            "/items", headers={**PREFLIGHT, "Access-Control-Request-Method": "GET"}
        )
    # With credentials the origin is named, never "*".
    assert simple.headers["access-control-allow-origin"] == "https://a.example"
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["vary"] == "Origin"
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"


async def test_cors_origin_regex_and_private_network() -> None:
    app = cors_app(allow_origin_regex=r"https://[a-z]+\.example", allow_private_network=True)
    refusing = cors_app(allow_origins=["https://app.example"])
    private = {
        **PREFLIGHT,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Private-Network": "true",
    }
    async with TestClient(app) as client:
        matching = await client.get("/", headers={"Origin": "https://shop.example"})
        longer = await client.get("/", headers={"Origin": "https://shop.example.evil"})
        preflight = await client.options("/", headers=private)
    async with TestClient(refusing) as client:
        refused = await client.options("/", headers=private)
    assert matching.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in longer.headers
    assert preflight.headers["access-control-allow-private-network"] == "true"
    assert (refused.status_code, refused.text) == (400, "Disallowed CORS private-network")


async def test_cors_keeps_the_vary_header_the_app_set() -> None:
    app = TrioAPI()
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    shared = PlainTextResponse("same object", headers={"Vary": "Accept"})

    @app.get("/")
    async def root() -> Response:
        return shared

    async with TestClient(app) as client:
        first = await client.get("/", headers={"Origin": "https://app.example"})
        second = await client.get("/", headers={"Origin": "https://app.example"})
    assert first.headers["vary"] == second.headers["vary"] == "Accept, Origin"
    assert shared.headers.getlist("vary") == ["Accept"]


# --- GZip ---------------------------------------------------------------------------------


def gzip_app(**options: Any) -> TrioAPI:
    app = TrioAPI()
    app.add_middleware(GZipMiddleware, **options)

    @app.get("/large")
    async def large() -> PlainTextResponse:
        return PlainTextResponse("x" * 4000)

    @app.get("/small")
    async def small() -> PlainTextResponse:
        return PlainTextResponse("tiny")

    @app.get("/image")
    async def image() -> Response:
        return Response(b"\x89PNG" + b"0" * 4000, media_type="image/png")

    @app.get("/encoded")
    async def encoded() -> Response:
        return Response(b"y" * 4000, headers={"Content-Encoding": "br"})

    return app


async def test_gzip_compresses_large_bodies_for_clients_that_accept_it() -> None:
    app = gzip_app(minimum_size=1000, compresslevel=5)
    async with TestClient(app) as client:
        response = await client.get("/large", headers={"Accept-Encoding": "gzip, deflate"})
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < 4000
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.text == "x" * 4000  # httpx decodes it


async def test_gzip_leaves_small_refused_and_excluded_bodies_alone() -> None:
    app = gzip_app(minimum_size=1000)
    async with TestClient(app) as client:
        small = await client.get("/small", headers={"Accept-Encoding": "gzip"})
        refused = await client.get("/large", headers={"Accept-Encoding": "gzip;q=0, identity"})
        absent = await client.get("/large", headers={"Accept-Encoding": "identity"})
        image = await client.get("/image", headers={"Accept-Encoding": "gzip"})
        encoded = await client.get("/encoded", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert "vary" not in small.headers
    assert small.text == "tiny"
    for response in (refused, absent):
        assert "content-encoding" not in response.headers
        assert response.headers["content-length"] == "4000"
        assert response.headers["vary"] == "Accept-Encoding"  # a gzip client would get another
    assert "content-encoding" not in image.headers
    assert encoded.headers["content-encoding"] == "br"
    assert encoded.headers["content-length"] == "4000"


async def test_gzip_streams_each_chunk_decodable_as_it_comes() -> None:
    app = TrioAPI()
    app.add_middleware(GZipMiddleware, minimum_size=10_000)
    next_chunk = trio.Event()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            yield "first chunk "
            await next_chunk.wait()
            yield "second chunk"

        return StreamingResponse(chunks(), media_type="text/plain")

    server = RawServer()
    scope = scope_with("/stream", accept_encoding="gzip")
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, server.receive, server.send)
        await trio.testing.wait_all_tasks_blocked()
        start = dict(server.messages[0])
        headers = dict(start["headers"])
        assert headers[b"content-encoding"] == b"gzip"
        assert b"content-length" not in headers
        assert decoder.decompress(b"".join(server.chunks)) == b"first chunk "
        next_chunk.set()
    assert decoder.decompress(b"".join(server.chunks[1:])) + decoder.flush() == b"second chunk"
    assert gzip.decompress(b"".join(server.chunks)) == b"first chunk second chunk"


async def test_gzip_compresses_a_large_body_in_a_worker_thread() -> None:
    app = gzip_app(thread_minimum_size=1024)
    async with TestClient(app) as client:
        response = await client.get("/large", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "x" * 4000


# --- trusted hosts, HTTPS redirects -------------------------------------------------------


def hosts_app(**options: Any) -> TrioAPI:
    app = TrioAPI()
    app.add_middleware(TrustedHostMiddleware, **options)

    @app.get("/page")
    async def page() -> dict[str, bool]:
        return {"ok": True}

    return app


async def test_trusted_host_allows_listed_hosts_and_refuses_others() -> None:
    app = hosts_app(allowed_hosts=["example.com", "*.example.com"])
    async with TestClient(app) as client:
        statuses = {
            host: (await client.get("/page", headers={"Host": host})).status_code
            for host in (
                "example.com",
                "EXAMPLE.com:8080",
                "api.example.com",
                "deep.api.example.com",
                "example.org",
                "badexample.com",
                "exa mple.com",
            )
        }
        refused = await client.get("/page", headers={"Host": "example.org"})
    assert statuses == {
        "example.com": 200,
        "EXAMPLE.com:8080": 200,
        "api.example.com": 200,
        "deep.api.example.com": 200,
        "example.org": 400,
        "badexample.com": 400,
        "exa mple.com": 400,
    }
    assert refused.text == "Invalid host header"


async def test_trusted_host_redirects_to_the_www_host() -> None:
    app = hosts_app(allowed_hosts=["www.example.com"])
    no_redirect = hosts_app(allowed_hosts=["www.example.com"], www_redirect=False)
    async with TestClient(app, base_url="https://example.com") as client:
        response = await client.get("/page?q=1")
    assert response.status_code == 307
    assert response.headers["location"] == "https://www.example.com/page?q=1"
    async with TestClient(no_redirect, base_url="https://example.com") as client:
        assert (await client.get("/page")).status_code == 400


def test_trusted_host_patterns_are_checked() -> None:
    for pattern in ("*example.com", "api.*.example.com", "**.example.com"):
        with pytest.raises(ValueError, match="not a valid pattern"):
            TrustedHostMiddleware(TrioAPI(), allowed_hosts=[pattern])


async def test_https_redirect_sends_plain_http_to_https() -> None:
    app = TrioAPI()
    app.add_middleware(HTTPSRedirectMiddleware)

    @app.get("/page")
    async def page() -> dict[str, bool]:
        return {"ok": True}

    async with TestClient(app, base_url="http://example.com") as client:
        default_port = await client.get("/page?x=1&y=2")
        port_80 = await client.get("/page", headers={"Host": "example.com:80"})
        other_port = await client.get("/page", headers={"Host": "example.com:8080"})
    async with TestClient(app, base_url="https://example.com") as client:
        secure = await client.get("/page")
    assert default_port.status_code == 307
    assert default_port.headers["location"] == "https://example.com/page?x=1&y=2"
    assert port_80.headers["location"] == "https://example.com/page"
    assert other_port.headers["location"] == "https://example.com:8080/page"
    assert secure.json() == {"ok": True}


def websocket_scope(host: str, **extensions: Any) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host.encode())],
        "server": ("testserver", 80),
        "extensions": extensions,
    }


async def test_websockets_are_refused_or_redirected_before_the_app() -> None:
    refused: list[Message] = []
    denied: list[Message] = []
    redirected: list[Message] = []
    hosts = TrioAPI()
    hosts.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com"])
    secure = TrioAPI()
    secure.add_middleware(HTTPSRedirectMiddleware)

    async def connect() -> Message:
        return {"type": "websocket.connect"}

    async def record(into: list[Message], message: Message) -> None:
        into.append(message)

    await hosts(websocket_scope("evil.example"), connect, lambda m: record(refused, m))
    denial = {"websocket.http.response": {}}
    await hosts(websocket_scope("evil.example", **denial), connect, lambda m: record(denied, m))
    await secure(websocket_scope("example.com", **denial), connect, lambda m: record(redirected, m))
    assert refused == [{"type": "websocket.close", "code": 1008}]
    assert [m["type"] for m in denied] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert (denied[0]["status"], denied[1]["body"]) == (400, b"Invalid host header")
    assert redirected[0]["status"] == 307
    assert (b"location", b"wss://example.com/ws") in redirected[0]["headers"]


# --- a wrapped app: app = SomeMiddleware(app) ------------------------------------------------


def wrapped_app_with_task(events: list[str]) -> tuple[Stamp, TrioAPI]:
    inner = app_with_task(events)
    return Stamp(inner), inner


@pytest.mark.parametrize("server", [False, True])
async def test_the_trio_test_client_serves_a_wrapped_app(server: bool) -> None:
    events: list[str] = []
    wrapped, inner = wrapped_app_with_task(events)
    async with TestClient(wrapped, server=server) as client:
        response = await client.post("/jobs")
        assert (response.json(), response.headers["x-stamp"]) == ({"queued": True}, "outer")
        assert events == ["task ran"]
        report = await client.shutdown()
    assert report.completed == 1
    assert report is inner.background.last_report


def test_the_sync_test_client_serves_a_wrapped_app() -> None:
    from trioapi.testclient import TestClient as SyncTestClient

    events: list[str] = []
    wrapped, inner = wrapped_app_with_task(events)
    with SyncTestClient(wrapped) as client:
        response = client.post("/jobs")
        assert response.headers["x-stamp"] == "outer"
        assert events == ["task ran"]
    report = inner.background.last_report
    assert report is not None
    assert report.completed == 1


async def test_serve_serves_a_wrapped_app_and_reports_its_drain(nursery: trio.Nursery) -> None:
    events: list[str] = []
    wrapped, inner = wrapped_app_with_task(events)
    inner.background.drain_timeout = 2.0
    server = await nursery.start(trioapi.serve, wrapped, "127.0.0.1:0")
    assert server.app is wrapped
    url = f"http://127.0.0.1:{server.port}/jobs"
    response = await trio.to_thread.run_sync(lambda: httpx.post(url, timeout=5))
    assert response.headers["x-stamp"] == "outer"
    report = await server.shutdown()
    assert report is not None
    assert report.completed == 1
    assert events == ["task ran"]


def test_the_command_line_loads_and_configures_a_wrapped_app() -> None:
    from trioapi._server.cli import build_parser, configure, load_app

    app = load_app("tests.test_middleware:wrapped_e2e_app")
    assert app is wrapped_e2e_app
    args = build_parser().parse_args(
        ["tests.test_middleware:wrapped_e2e_app", "--drain-timeout", "7", "--body-timeout", "9"]
    )
    config = configure(app, args)
    assert (e2e_inner.background.drain_timeout, e2e_inner.body_timeout) == (7.0, 9.0)
    assert config.shutdown_timeout > 7.0
    with pytest.raises(SystemExit, match="not a TrioAPI application nor an ASGI app"):
        load_app("tests.test_middleware:NOT_AN_APP")
    # The settings went to the TrioAPI inside; put back what the e2e app had.
    e2e_inner.background.drain_timeout, e2e_inner.body_timeout = 25.0, 60.0


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["trioapi", "hypercorn"])
def test_a_wrapped_app_serves_and_drains_from_the_command_line(
    launch_server: Callable[..., ServerProcess],  # noqa: F811 - the fixture imported above
    command: str,
) -> None:
    argv = (
        [*TRIOAPI, E2E_WRAPPED, "--drain-timeout", "1"]
        if command == "trioapi"
        else [*HYPERCORN, E2E_WRAPPED]
    )
    server = launch_server(*argv, "--bind", "127.0.0.1:0", env={"TRIOAPI_DRAIN_TIMEOUT": "1"})
    port = server.wait_ready()
    with client_for(port) as client:
        quick = client.post("/task", params={"seconds": 0, "name": "quick"})
        slow = client.post("/task", params={"seconds": 30, "name": "slow"})
    assert quick.headers["x-stamp"] == slow.headers["x-stamp"] == "outer"
    code, _ = server.signal_and_wait(signal.SIGTERM, 3.0 + 1.0 + EXIT_MARGIN)
    assert code == 0
    assert server.task_lines == ["start quick", "quick", "start slow"]
    stderr = server.stderr
    # The drain report of the TrioAPI inside: a warning, so plain hypercorn shows it too.
    assert re.search(
        r"background drain finished in 1\.\d+ s: 1 completed, 0 failed, 1 cancelled, "
        r"0 abandoned, 0 skipped; cancelled: slow\n",
        stderr,
    ), stderr
    assert "Traceback" not in stderr


# --- what the command line serves: the e2e app inside a third-party middleware -------------

E2E_WRAPPED = "tests.test_middleware:wrapped_e2e_app"
wrapped_e2e_app = Stamp(e2e_inner)
NOT_AN_APP = 42

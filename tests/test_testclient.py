"""The synchronous TestClient (``trioapi.testclient``): FastAPI's interface, the app on trio.

These tests are plain functions: the client runs the app in a trio run of its
own, in a thread of its own. Annotations are evaluated eagerly (no ``from
__future__ import annotations``), so endpoints may name things local to a test.
"""

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
import trio
import trio.testing

from trioapi import (
    BackgroundTasks,
    Body,
    Cookie,
    Header,
    HTTPException,
    JSONResponse,
    RedirectResponse,
    Request,
    TrioAPI,
)
from trioapi.testclient import TestClient

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def send_text(send: Send, text: str, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": text.encode()})


def raw_app(
    http: Callable[[dict[str, Any], Receive, Send], Awaitable[None]],
    *,
    startup: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    log: list[str] | None = None,
) -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    """A plain ASGI app: ``http`` serves requests; the lifespan runs the hooks."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await http(scope, receive, send)
            return
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if log is not None:
                log.append(message["type"])
            if message["type"] == "lifespan.startup":
                if startup is not None:
                    await startup(scope["state"])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if shutdown is not None:
                    await shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


@pytest.fixture(autouse=True)
def no_client_thread_outlives_its_test() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("trioapi-testclient")]
    assert left == []


def thread_recorder() -> tuple[TrioAPI, list[threading.Thread]]:
    """An app whose ``/where`` records the thread (and so the trio run) it runs on."""
    app = TrioAPI()
    threads: list[threading.Thread] = []

    @app.get("/where")
    async def where() -> str:
        threads.append(threading.current_thread())
        return threading.current_thread().name

    return app, threads


# --- requests and responses ---------------------------------------------------------------


def test_get_with_query_parameters_returns_the_json_response() -> None:
    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def read(item_id: int, q: str, limit: int = 10) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "limit": limit}

    client = TestClient(app)
    response = client.get("/items/3", params={"q": "pen", "limit": 2})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"item_id": 3, "q": "pen", "limit": 2}
    assert client.get("/items/x", params={"q": "pen"}).status_code == 422


def test_post_json_body_and_http_exceptions() -> None:
    app = TrioAPI()

    @app.post("/items", status_code=201)
    async def create(name: Annotated[str, Body(embed=True)]) -> dict[str, str]:
        if name == "taken":
            raise HTTPException(409, detail="name taken")
        return {"name": name}

    client = TestClient(app)
    response = client.post("/items", json={"name": "pen"})
    assert response.status_code == 201
    assert response.json() == {"name": "pen"}
    conflict = client.post("/items", json={"name": "taken"})
    assert conflict.status_code == 409
    assert conflict.json() == {"detail": "name taken"}


def test_client_headers_are_sent_with_every_request_and_per_request_ones_win() -> None:
    app = TrioAPI()

    @app.get("/headers")
    async def headers(
        x_token: Annotated[str, Header()], user_agent: Annotated[str, Header()]
    ) -> list[str]:
        return [x_token, user_agent]

    client = TestClient(app, headers={"X-Token": "client"})
    assert client.get("/headers").json() == ["client", "testclient"]
    assert client.get("/headers", headers={"x-token": "call"}).json() == ["call", "testclient"]
    custom = TestClient(app, headers={"x-token": "t", "User-Agent": "mine"})
    assert custom.get("/headers").json() == ["t", "mine"]


def test_cookies_the_app_sets_are_sent_back_on_later_requests() -> None:
    app = TrioAPI()

    @app.post("/login")
    async def login() -> Any:
        response = JSONResponse("in")
        response.set_cookie("session", "s-1")
        return response

    @app.get("/me")
    async def me(
        session: Annotated[str | None, Cookie()] = None, theme: Annotated[str, Cookie()] = "-"
    ) -> list[Any]:
        return [session, theme]

    client = TestClient(app, cookies={"theme": "dark"})
    assert client.get("/me").json() == [None, "dark"]
    client.post("/login")
    assert client.cookies["session"] == "s-1"
    assert client.get("/me").json() == ["s-1", "dark"]
    with client:  # the same jar inside a lifespan
        assert client.get("/me").json() == ["s-1", "dark"]


def test_redirects_are_followed_unless_disabled() -> None:
    app = TrioAPI()

    @app.get("/old")
    async def old() -> Any:
        return RedirectResponse("/new")

    @app.get("/new")
    async def new() -> str:
        return "arrived"

    response = TestClient(app).get("/old")
    assert response.status_code == 200
    assert response.json() == "arrived"
    assert [r.status_code for r in response.history] == [307]
    assert response.url == "http://testserver/new"

    stay = TestClient(app, follow_redirects=False).get("/old")
    assert stay.status_code == 307
    assert stay.headers["location"] == "/new"
    assert TestClient(app).get("/old", follow_redirects=False).status_code == 307


def test_scope_is_built_as_starlettes_client_builds_it() -> None:
    scopes: list[dict[str, Any]] = []

    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await send_text(send, "ok")

    client = TestClient(raw_app(http))
    assert client.get("/a%20b/c%2Fd", params={"x": "1", "y": "two words"}).text == "ok"
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c/d"
    assert scope["raw_path"] == b"/a%20b/c%2Fd"
    assert scope["root_path"] == ""
    assert scope["query_string"] == b"x=1&y=two+words"
    headers = dict(scope["headers"])
    assert headers[b"host"] == b"testserver"
    assert headers[b"user-agent"] == b"testclient"
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"] == ("testclient", 50000)
    assert scope["server"] == ("testserver", 80)
    assert "http.response.debug" in scope["extensions"]
    assert "http.response.trailers" in scope["extensions"]
    assert scope["state"] == {}


def test_scope_follows_base_url_root_path_and_client_address() -> None:
    scopes: list[dict[str, Any]] = []

    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await send_text(send, "ok")

    client = TestClient(
        raw_app(http),
        base_url="https://api.example.org:8443",
        root_path="/proxy",
        client=("203.0.113.7", 4321),
    )
    client.post("/items", content=b"x")
    (scope,) = scopes
    assert scope["scheme"] == "https"
    assert scope["method"] == "POST"
    assert scope["server"] == ("api.example.org", 8443)
    assert dict(scope["headers"])[b"host"] == b"api.example.org:8443"
    assert scope["root_path"] == "/proxy"
    assert scope["path"] == "/items"
    assert scope["client"] == ("203.0.113.7", 4321)


def test_an_in_memory_body_is_one_message_then_disconnect_after_the_response() -> None:
    events: list[Any] = []

    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        events.append(await receive())

        async def watch() -> None:
            events.append((await receive())["type"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()
            # watch() waits in receive() while the response is not complete.
            events.append("before the response")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            await trio.testing.wait_all_tasks_blocked()
            await send({"type": "http.response.body", "body": b"-end"})
            events.append("response complete")

    response = TestClient(raw_app(http)).post("/upload", json={"a": 1})
    assert response.content == b"part-end"
    assert events == [
        {"type": "http.request", "body": b'{"a":1}', "more_body": False},
        "before the response",
        "response complete",
        "http.disconnect",
    ]


def test_a_streamed_body_reaches_the_app_chunk_by_chunk() -> None:
    messages: list[tuple[bytes, bool]] = []

    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append((message["body"], message.get("more_body", False)))
            if not message.get("more_body", False):
                break
        await send_text(send, str(sum(len(body) for body, _ in messages)))

    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b"bc"
        yield b"def"

    response = TestClient(raw_app(http)).post("/upload", content=chunks())
    assert response.text == "6"
    assert messages == [(b"a", True), (b"bc", True), (b"def", True), (b"", False)]


def test_a_trioapi_endpoint_reads_a_streamed_body() -> None:
    app = TrioAPI()

    @app.post("/echo")
    async def echo(request: Request) -> str:
        return (await request.body()).decode()

    def chunks() -> Iterator[bytes]:
        yield from (b"one ", b"two ", b"three")

    with TestClient(app) as client:
        assert client.post("/echo", content=chunks()).json() == "one two three"


def test_head_responses_have_no_body() -> None:
    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    client = TestClient(raw_app(http))
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "5"
    assert client.get("/").content == b"hello"


def test_response_headers_are_passed_through_as_the_app_sent_them() -> None:
    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        headers = [(b"x-one", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b"chunked", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    response = TestClient(raw_app(http)).get("/")
    assert response.status_code == 202
    # No content-length made up by the client: the app sent none.
    assert response.headers.raw == [
        (b"x-one", b"1"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert response.text == "chunked"


def test_trailers_and_debug_information_reach_the_response() -> None:
    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        assert "http.response.debug" in scope["extensions"]
        await send(
            {"type": "http.response.debug", "info": {"template": "t.html", "context": {"n": 1}}}
        )
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})

    response = TestClient(raw_app(http)).get("/")
    assert response.text == "body"
    assert response.extensions["http.response.trailers"] == [(b"x-sum", b"42")]
    assert response.template == "t.html"  # type: ignore[attr-defined]
    assert response.context == {"n": 1}  # type: ignore[attr-defined]


START: Message = {"type": "http.response.start", "status": 200, "headers": []}
BODY: Message = {"type": "http.response.body", "body": b"x"}


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([BODY], r"body before http\.response\.start"),
        ([START, START], r"http\.response\.start twice"),
        ([START, BODY, BODY], "after the body was complete"),
        ([START, BODY, {"type": "http.response.trailers"}], "without announcing them"),
        ([{"type": "http.response.zerocopysend"}], "does not take: 'http.response.zerocopysend'"),
    ],
)
def test_an_app_breaking_the_protocol_gets_an_error(messages: list[Message], error: str) -> None:
    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    with pytest.raises(RuntimeError, match=error):
        TestClient(raw_app(http)).get("/")


def test_a_lifespan_answer_out_of_protocol_fails_enter() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    with pytest.raises(RuntimeError, match=r"answered lifespan\.startup with"), TestClient(app):
        pytest.fail("the block must not run")


# --- raise_server_exceptions ----------------------------------------------------------------


class Boom(Exception):
    pass


async def raise_before_response(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    raise Boom("before the response")


async def raise_after_response_start(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"half", "more_body": True})
    raise Boom("after the response started")


def test_an_exception_escaping_the_app_is_raised_in_the_calling_thread() -> None:
    client = TestClient(raw_app(raise_before_response))
    with pytest.raises(Boom, match="before the response"):
        client.get("/")
    with pytest.raises(Boom, match="after the response started"):
        TestClient(raw_app(raise_after_response_start)).get("/")


def test_an_exception_is_raised_from_the_with_blocks_run_too() -> None:
    log: list[str] = []
    client = TestClient(raw_app(raise_before_response, log=log))
    with client:
        with pytest.raises(Boom):
            client.get("/")
        with pytest.raises(Boom):
            client.get("/")
    assert log == ["lifespan.startup", "lifespan.shutdown"]


def test_without_raising_an_app_failing_before_its_response_gives_an_empty_500() -> None:
    response = TestClient(raw_app(raise_before_response), raise_server_exceptions=False).get("/")
    assert response.status_code == 500
    assert response.content == b""
    assert "content-type" not in response.headers


def test_without_raising_what_the_app_sent_before_failing_is_returned() -> None:
    client = TestClient(raw_app(raise_after_response_start), raise_server_exceptions=False)
    response = client.get("/")
    assert response.status_code == 201
    assert response.headers["x-a"] == "1"
    assert response.content == b"half"


def test_an_app_that_returns_without_a_response() -> None:
    async def silent(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        return

    with pytest.raises(RuntimeError, match="without starting a response to GET"):
        TestClient(raw_app(silent)).get("/")
    assert TestClient(raw_app(silent), raise_server_exceptions=False).get("/").status_code == 500


def test_an_unhandled_error_in_a_trioapi_endpoint_is_raised_or_answered_500() -> None:
    app = TrioAPI()

    @app.get("/fail")
    async def fail() -> None:
        raise Boom("in the endpoint")

    with pytest.raises(Boom, match="in the endpoint"):
        TestClient(app).get("/fail")
    # The app answered 500 before re-raising: that answer is what comes back.
    response = TestClient(app, raise_server_exceptions=False).get("/fail")
    assert response.status_code == 500
    assert "Internal Server Error" in response.text


# --- lifespan ---------------------------------------------------------------------------------


def test_the_with_block_runs_startup_on_entry_and_shutdown_on_exit_in_order() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        log.append("lifespan enter")
        yield
        log.append("lifespan exit")

    app = TrioAPI(
        lifespan=lifespan,
        on_startup=[lambda: log.append("startup hook")],
        on_shutdown=[lambda: log.append("shutdown hook")],
    )

    @app.get("/")
    async def index() -> str:
        log.append("request")
        return "ok"

    client = TestClient(app)
    assert client.get("/").json() == "ok"
    assert log == ["request"]  # no lifespan outside the with block
    log.clear()
    with client:
        assert log == ["lifespan enter", "startup hook"]
        client.get("/")
        assert log == ["lifespan enter", "startup hook", "request"]
    assert log == ["lifespan enter", "startup hook", "request", "shutdown hook", "lifespan exit"]


def test_lifespan_state_reaches_requests_and_app_state() -> None:
    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"pool": "connected"}

    app = TrioAPI(lifespan=lifespan)

    @app.get("/pool")
    async def pool(request: Request) -> Any:
        return request.state.pool

    with TestClient(app) as client:
        assert client.app is app
        assert client.app_state == {"pool": "connected"}
        assert client.get("/pool").json() == "connected"


def test_each_request_gets_a_copy_of_the_lifespan_state() -> None:
    seen: list[dict[str, Any]] = []

    async def startup(state: dict[str, Any]) -> None:
        state["shared"] = "yes"

    async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        seen.append(dict(scope["state"]))
        scope["state"]["changed_by_request"] = True
        await send_text(send, "ok")

    client = TestClient(raw_app(http, startup=startup))
    client.get("/")
    with client:
        client.get("/")
        client.get("/")
    assert seen == [{}, {"shared": "yes"}, {"shared": "yes"}]
    assert client.app_state == {"shared": "yes"}


def test_a_failing_startup_is_raised_from_enter_and_its_thread_is_joined() -> None:
    threads: list[threading.Thread] = []

    def startup() -> None:
        threads.append(threading.current_thread())
        raise Boom("no database")

    app = TrioAPI(on_startup=[startup])

    @app.get("/")
    async def index() -> str:
        return "ok"

    client = TestClient(app)
    # trioapi reports the failure (lifespan.startup.failed) rather than raising.
    with pytest.raises(RuntimeError, match=r"startup failed: Boom\('no database'\)"), client:
        pytest.fail("the block must not run")
    (thread,) = threads
    assert thread is not threading.current_thread()
    assert not thread.is_alive()
    assert client.get("/").json() == "ok"  # still usable, without lifespan


def test_a_startup_exception_of_the_app_is_raised_as_it_is() -> None:
    async def lifespan_fails(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "Boom"})
        raise Boom("startup raised")

    with pytest.raises(Boom, match="startup raised"), TestClient(lifespan_fails):
        pytest.fail("the block must not run")


def test_an_app_that_rejects_the_lifespan_scope_fails_enter() -> None:
    async def http_only(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise NotImplementedError(scope["type"])
        await send_text(send, "ok")

    with pytest.raises(NotImplementedError, match="lifespan"), TestClient(http_only):
        pytest.fail("the block must not run")


def test_an_app_that_ignores_the_lifespan_runs_without_one() -> None:
    async def ignores(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send_text(send, "ok")

    with TestClient(ignores) as client:
        assert client.get("/").text == "ok"


def test_a_shutdown_exception_is_raised_from_exit_and_its_thread_is_joined() -> None:
    threads: list[threading.Thread] = []

    async def shutdown() -> None:
        threads.append(threading.current_thread())
        raise Boom("cannot close the pool")

    client = TestClient(raw_app(raise_before_response, shutdown=shutdown))
    with pytest.raises(Boom, match="cannot close the pool"), client:
        pass
    (thread,) = threads
    assert not thread.is_alive()


def test_a_shutdown_failure_without_exception_is_raised_from_exit() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "pool leaked"})
        await trio.sleep_forever()  # the client must not wait for this

    client = TestClient(app)
    with pytest.raises(RuntimeError, match="lifespan shutdown failed: pool leaked"), client:
        pass


def test_a_failing_shutdown_does_not_hide_the_error_of_the_with_block() -> None:
    async def shutdown() -> None:
        raise Boom("shutdown broke")

    client = TestClient(raw_app(raise_before_response, shutdown=shutdown))
    with pytest.raises(KeyError) as caught, client:
        raise KeyError("the test's own error")
    assert any("shutdown broke" in note for note in caught.value.__notes__)


def test_the_shutdown_still_runs_when_the_with_block_raises() -> None:
    log: list[str] = []
    with pytest.raises(KeyError), TestClient(raw_app(raise_before_response, log=log)):
        raise KeyError("x")
    assert log == ["lifespan.startup", "lifespan.shutdown"]


def test_the_client_can_be_entered_again_after_a_with_block() -> None:
    # FastAPI's suites share one module-level client between tests, some of
    # which enter it and some of which do not.
    log: list[str] = []
    app = TrioAPI(
        on_startup=[lambda: log.append("startup")], on_shutdown=[lambda: log.append("shutdown")]
    )

    @app.post("/")
    async def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(log.append, "task")
        return "ok"

    client = TestClient(app)
    with client:
        client.post("/")
    client.post("/")
    with client:
        client.post("/")
    assert log == ["startup", "task", "shutdown", "task", "startup", "task", "shutdown"]


def test_entering_a_client_that_is_already_in_a_with_block_is_refused() -> None:
    client = TestClient(raw_app(raise_before_response))
    with client, pytest.raises(RuntimeError, match="already running the app's lifespan"):
        client.__enter__()


# --- threads and trio runs ------------------------------------------------------------------


def test_requests_in_a_with_block_share_one_trio_run_whose_thread_ends_on_exit() -> None:
    app, threads = thread_recorder()
    with TestClient(app) as client:
        assert client.get("/where").json() == "trioapi-testclient"
        client.get("/where")
        first, second = threads
        assert first is second
        assert first is not threading.current_thread()
        assert first.is_alive()
    assert not first.is_alive()


def test_without_a_with_block_each_request_has_a_trio_run_of_its_own() -> None:
    app, threads = thread_recorder()
    client = TestClient(app)
    assert client.get("/where").json() == "trioapi-testclient-request"
    client.get("/where")
    first, second = threads
    assert first is not second
    assert not first.is_alive()
    assert not second.is_alive()


def test_requests_from_several_threads_run_concurrently_in_the_with_blocks_run() -> None:
    app = TrioAPI()
    waiting = threading.Event()
    released = threading.Event()

    @app.get("/wait")
    async def wait() -> str:
        waiting.set()
        # A timeout only in case the client serialised the requests.
        return "released" if await trio.to_thread.run_sync(released.wait, 10) else "timed out"

    @app.get("/release")
    async def release() -> str:
        released.set()
        return "done"

    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(client.get, "/wait")
        waiting.wait()
        assert client.get("/release").json() == "done"
        assert waiter.result().json() == "released"


def test_backend_options_go_to_trio_run() -> None:
    app = TrioAPI()

    @app.get("/now")
    async def now() -> float:
        return trio.current_time()

    clock = trio.testing.MockClock()
    clock.jump(100)
    with TestClient(app, backend_options={"clock": clock}) as client:
        assert client.get("/now").json() == 100.0


def test_a_backend_other_than_trio_is_refused() -> None:
    with pytest.raises(ValueError, match="trio only, not on 'asyncio'"):
        TestClient(TrioAPI(), backend="asyncio")  # type: ignore[arg-type]


def test_bad_backend_options_fail_with_a_clear_error() -> None:
    client = TestClient(TrioAPI(), backend_options={"no_such_option": True})
    with pytest.raises(RuntimeError, match="could not start its trio run"):
        client.get("/")


def test_a_closed_client_refuses_requests_and_with_blocks() -> None:
    app, _ = thread_recorder()
    client = TestClient(app)
    client.get("/where")
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get("/where")
    with pytest.raises(RuntimeError, match="TestClient was closed"), client:
        pytest.fail("the block must not run")


def test_closing_inside_a_with_block_shuts_the_lifespan_down() -> None:
    log: list[str] = []
    client = TestClient(raw_app(raise_before_response, log=log))
    with client:
        client.close()
        assert log == ["lifespan.startup", "lifespan.shutdown"]
    assert log == ["lifespan.startup", "lifespan.shutdown"]


async def test_using_it_inside_a_trio_run_points_to_the_async_client() -> None:
    client = TestClient(TrioAPI())
    with pytest.raises(RuntimeError, match=r"trioapi\.testing\.TestClient"):
        client.get("/")
    with pytest.raises(RuntimeError, match="cannot be used inside a trio run"), client:
        pytest.fail("the block must not run")


def test_a_websocket_url_is_not_an_http_request() -> None:
    client = TestClient(TrioAPI())
    with pytest.raises(NotImplementedError, match="websocket_connect"):
        client.get("ws://testserver/ws")


# --- background tasks -----------------------------------------------------------------------


def virtual_time() -> dict[str, Any]:
    return {"clock": trio.testing.MockClock(autojump_threshold=0)}


def slow_task_app(log: list[str]) -> TrioAPI:
    app = TrioAPI()

    async def slow(note: str) -> None:
        # Virtual time (the clients below run on an autojumping MockClock):
        # the task ends only after the response, once the run goes idle.
        await trio.sleep(0.05)
        log.append(note)

    def sync_task(note: str) -> None:
        log.append(note)

    @app.post("/jobs")
    async def jobs(tasks: BackgroundTasks) -> str:
        tasks.add_task(slow, "async task done")
        tasks.add_task(sync_task, "sync task done")
        log.append("endpoint")
        return "accepted"

    return app


def test_in_a_with_block_a_request_returns_after_its_background_tasks() -> None:
    log: list[str] = []
    with TestClient(slow_task_app(log), backend_options=virtual_time()) as client:
        assert client.post("/jobs").json() == "accepted"
        log.append("returned")
    assert log == ["endpoint", "async task done", "sync task done", "returned"]


def test_without_a_with_block_a_request_returns_after_its_background_tasks() -> None:
    log: list[str] = []
    client = TestClient(slow_task_app(log), backend_options=virtual_time())
    assert client.post("/jobs").json() == "accepted"
    log.append("returned")
    assert log == ["endpoint", "async task done", "sync task done", "returned"]


def gated_task_app(log: list[str]) -> TrioAPI:
    app = TrioAPI()
    gate = trio.Event()

    async def gated() -> None:
        with trio.fail_after(10):  # only if the client waited for this task
            await gate.wait()
        log.append("task done")

    @app.post("/jobs")
    async def jobs(tasks: BackgroundTasks) -> str:
        tasks.add_task(gated)
        return "accepted"

    @app.post("/open")
    async def open_gate() -> str:
        gate.set()
        return "open"

    return app


def test_waiting_for_background_tasks_can_be_turned_off_per_request() -> None:
    log: list[str] = []
    with TestClient(gated_task_app(log)) as client:
        response = client.post("/jobs", extensions={"trioapi.wait_background": False})
        assert response.json() == "accepted"
        assert log == []  # the task waits for the gate
        client.post("/open")
    # The shutdown drained the task.
    assert log == ["task done"]


def test_waiting_for_background_tasks_can_be_turned_off_for_the_client() -> None:
    log: list[str] = []
    with TestClient(gated_task_app(log), wait_background=False) as client:
        assert client.post("/jobs").json() == "accepted"
        assert log == []
        client.post("/open")
    assert log == ["task done"]


def test_the_seed_example_as_fastapis_docs_test_it(in_tmp_path: Path) -> None:
    # docs/testing.md, "FastAPI's synchronous client"; FastAPI's tutorial test
    # for this example, with fastapi replaced by trioapi.
    from examples.background_tasks import app

    log = in_tmp_path / "log.txt"
    with TestClient(app) as client:
        response = client.post("/send-notification/foo@example.com")
        assert response.status_code == 200
        assert response.json() == {"message": "Notification sent in the background"}
        assert log.read_text() == "notification for foo@example.com: some notification"
    log.unlink()
    response = TestClient(app).post("/send-notification/bar@example.com")
    assert response.status_code == 200
    assert log.read_text() == "notification for bar@example.com: some notification"

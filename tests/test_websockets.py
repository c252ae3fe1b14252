"""Websockets: ``@app.websocket``, ``WebSocket``, the test clients, shutdown with 1001.

Most tests talk to the app through ``trioapi.testing.TestClient`` (the app's
call runs in the test's own trio run); the sync client's tests are plain
functions. The end-to-end tests speak the websocket protocol by hand with
wsproto (hypercorn's own dependency) to hypercorn's real trio server: in
memory under ``autojump_clock`` for the shutdown sequence, and over a
127.0.0.1 socket once. Annotations are evaluated eagerly (no ``from
__future__ import annotations``), so endpoints may name things local to a test.
"""

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

import trioapi
from trioapi import (
    BackgroundTasks,
    Cookie,
    Depends,
    Header,
    HTTPException,
    Query,
    TrioAPI,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from trioapi.testclient import TestClient, WebSocketDenialResponse
from trioapi.testing import InMemoryServer
from trioapi.testing import TestClient as AsyncClient
from trioapi.websockets import WebSocketState

Message = dict[str, Any]


def echo_app() -> TrioAPI:
    """Echoes text as ``"<name>: <text>"`` until the client leaves."""
    app = TrioAPI()

    @app.websocket("/echo/{name}")
    async def echo(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"{name}: {text}")

    return app


# --- talking ------------------------------------------------------------------------------


async def test_text_is_echoed_until_the_client_closes() -> None:
    app = echo_app()
    async with AsyncClient(app) as client, client.websocket_connect("/echo/ann") as ws:
        await ws.send_text("one")
        assert await ws.receive_text() == "ann: one"
        await ws.send_text("two")
        assert await ws.receive_text() == "ann: two"


async def test_json_and_bytes_go_both_ways_in_both_modes() -> None:
    app = TrioAPI()

    @app.websocket("/data")
    async def data(websocket: WebSocket) -> None:
        await websocket.accept()
        item = await websocket.receive_json()
        await websocket.send_json({"got": item, "é": 1})
        item = await websocket.receive_json(mode="binary")
        await websocket.send_json(item, mode="binary")
        raw = await websocket.receive_bytes()
        await websocket.send_bytes(raw[::-1])
        await websocket.close()

    async with AsyncClient(app) as client, client.websocket_connect("/data") as ws:
        await ws.send_json([1, "a"])
        message = await ws.receive()
        assert message["text"] == '{"got":[1,"a"],"é":1}'
        await ws.send_json({"b": None}, mode="binary")
        assert await ws.receive_json(mode="binary") == {"b": None}
        await ws.send_bytes(b"\x00\x01\x02")
        assert await ws.receive_bytes() == b"\x02\x01\x00"
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
        assert closed.value.code == 1000


async def test_iterators_stop_at_the_close_and_the_endpoint_goes_on() -> None:
    app = TrioAPI()
    seen: dict[str, list[Any]] = {}

    @app.websocket("/{kind}")
    async def collect(websocket: WebSocket, kind: str) -> None:
        await websocket.accept()
        if kind == "text":
            seen[kind] = [item async for item in websocket.iter_text()]
        elif kind == "bytes":
            seen[kind] = [item async for item in websocket.iter_bytes()]
        else:
            seen[kind] = [item async for item in websocket.iter_json()]

    async with AsyncClient(app) as client:
        async with client.websocket_connect("/text") as ws:
            await ws.send_text("a")
            await ws.send_text("b")
        async with client.websocket_connect("/bytes") as ws:
            await ws.send_bytes(b"x")
        async with client.websocket_connect("/json") as ws:
            await ws.send_json({"n": 1})
            await ws.send_json([2])
    assert seen == {"text": ["a", "b"], "bytes": [b"x"], "json": [{"n": 1}, [2]]}


async def test_the_wrong_kind_of_frame_closes_with_1003() -> None:
    app = TrioAPI()

    @app.websocket("/text")
    async def text_only(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()

    async with AsyncClient(app) as client, client.websocket_connect("/text") as ws:
        await ws.send_bytes(b"\xff")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1003, "expected a text message")


async def test_the_handshake_takes_a_subprotocol_and_headers() -> None:
    app = TrioAPI()

    @app.websocket("/ws")
    async def chat(websocket: WebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol=offered[-1], headers=[(b"x-room", b"lobby")])
        await websocket.send_json(offered)

    async with (
        AsyncClient(app) as client,
        client.websocket_connect("/ws", subprotocols=["v1", "v2"]) as ws,
    ):
        assert ws.accepted_subprotocol == "v2"
        assert ws.extra_headers == [(b"x-room", b"lobby")]
        assert await ws.receive_json() == ["v1", "v2"]


async def test_the_state_machine_refuses_out_of_order_messages() -> None:
    app = TrioAPI()
    errors: list[str] = []

    @app.websocket("/ws")
    async def misuse(websocket: WebSocket) -> None:
        assert websocket.application_state is WebSocketState.CONNECTING
        try:
            await websocket.send_text("too early")
        except RuntimeError as error:
            errors.append(str(error))
        await websocket.accept()
        assert websocket.client_state is WebSocketState.CONNECTED
        await websocket.close(4000)
        assert websocket.application_state is WebSocketState.DISCONNECTED
        try:
            await websocket.send_text("too late")
        except RuntimeError as error:
            errors.append(str(error))

    async with AsyncClient(app) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 4000
    assert errors == [
        'cannot send data before the handshake: call "await websocket.accept()" first',
        "cannot send 'websocket.send': the websocket is closed (a websocket.close was sent)",
    ]


async def test_an_endpoint_that_returns_open_closes_with_1000() -> None:
    app = TrioAPI()

    @app.websocket("/ws")
    async def hello(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")

    async with AsyncClient(app) as client, client.websocket_connect("/ws") as ws:
        assert await ws.receive_text() == "hello"
        message = await ws.receive()
    assert message == {"type": "websocket.close", "code": 1000, "reason": ""}


async def test_the_connection_details_are_there() -> None:
    app = TrioAPI()

    @app.websocket("/rooms/{room}")
    async def details(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(
            {
                "url": str(websocket.url),
                "path_params": websocket.path_params,
                "query": dict(websocket.query_params),
                "header": websocket.headers["x-id"],
                "cookies": websocket.cookies,
                "client": list(websocket.client or ()),
                "route": websocket.scope["route"].path,
                "same_app": websocket.app is app,
            }
        )

    async with (
        AsyncClient(app) as client,
        client.websocket_connect(
            "/rooms/7?q=1", headers={"x-id": "42"}, cookies={"session": "s"}
        ) as ws,
    ):
        assert await ws.receive_json() == {
            "url": "ws://testserver/rooms/7?q=1",
            "path_params": {"room": "7"},
            "query": {"q": "1"},
            "header": "42",
            "cookies": {"session": "s"},
            "client": ["127.0.0.1", 50000],
            "route": "/rooms/{room}",
            "same_app": True,
        }


# --- parameters and dependencies --------------------------------------------------------------


async def test_path_query_header_and_cookie_parameters_are_solved() -> None:
    app = TrioAPI()

    @app.websocket("/items/{item_id}")
    async def item(
        websocket: WebSocket,
        item_id: int,
        q: Annotated[list[str], Query()],
        x_token: Annotated[str, Header()],
        session: Annotated[str | None, Cookie()] = None,
    ) -> None:
        await websocket.accept()
        await websocket.send_json([item_id, q, x_token, session])

    async with (
        AsyncClient(app) as client,
        client.websocket_connect(
            "/items/3?q=a&q=b", headers={"x-token": "t"}, cookies={"session": "c"}
        ) as ws,
    ):
        assert await ws.receive_json() == [3, ["a", "b"], "t", "c"]


async def test_invalid_parameters_close_the_handshake_with_1008() -> None:
    app = TrioAPI()

    @app.websocket("/items/{item_id}")
    async def item(websocket: WebSocket, item_id: int, q: int) -> None:
        raise AssertionError("not reached")

    async with AsyncClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as closed:
            async with client.websocket_connect("/items/x"):
                raise AssertionError("not reached")
    assert closed.value.code == status.WS_1008_POLICY_VIOLATION
    assert closed.value.reason == (
        "path.item_id: Input should be a valid integer, unable to parse string as an "
        "integer; query.q: Field required"
    )


async def test_a_long_validation_reason_is_cut_to_fit_a_close_frame() -> None:
    app = TrioAPI()

    @app.websocket("/ws")
    async def many(websocket: WebSocket, a: int, b: int, c: int, d: int, e: int, f: int) -> None:
        raise AssertionError("not reached")

    async with AsyncClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as closed:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not reached")
    reason = closed.value.reason
    assert len(reason.encode()) == 123
    assert reason.startswith("query.a: Field required; query.b: Field required")
    assert reason.endswith("...")


async def test_depends_and_the_websocket_parameter_reach_dependencies() -> None:
    app = TrioAPI()

    async def user(websocket: WebSocket, token: str = "") -> str:
        if not token:
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "no token")
        return f"{token}@{websocket.url.path}"

    @app.websocket("/me")
    async def me(websocket: WebSocket, who: Annotated[str, Depends(user)]) -> None:
        await websocket.accept()
        await websocket.send_text(who)

    async with AsyncClient(app) as client:
        async with client.websocket_connect("/me?token=abc") as ws:
            assert await ws.receive_text() == "abc@/me"
        with pytest.raises(WebSocketDisconnect) as closed:
            async with client.websocket_connect("/me"):
                raise AssertionError("not reached")
        assert (closed.value.code, closed.value.reason) == (1008, "no token")
        app.dependency_overrides[user] = lambda: "override"
        async with client.websocket_connect("/me") as ws:
            assert await ws.receive_text() == "override"


async def test_yield_dependencies_end_around_the_close_by_scope() -> None:
    app = TrioAPI()
    events: list[str] = []

    async def per_function(websocket: WebSocket) -> AsyncIterator[str]:
        events.append("function: enter")
        yield "f"
        events.append(f"function: exit, socket {websocket.application_state.name}")

    def per_request(websocket: WebSocket) -> Iterator[str]:
        events.append("request: enter")
        yield "r"
        events.append(f"request: exit, socket {websocket.application_state.name}")

    @app.websocket("/ws")
    async def endpoint(
        websocket: WebSocket,
        f: Annotated[str, Depends(per_function, scope="function")],
        r: Annotated[str, Depends(per_request)],
    ) -> None:
        await websocket.accept()
        await websocket.send_text(f + r)
        events.append("endpoint returns")

    async with AsyncClient(app) as client, client.websocket_connect("/ws") as ws:
        assert await ws.receive_text() == "fr"
    assert events == [
        "function: enter",
        "request: enter",
        "endpoint returns",
        "function: exit, socket CONNECTED",
        "request: exit, socket DISCONNECTED",
    ]


async def test_a_yield_dependency_sees_the_endpoints_error() -> None:
    app = TrioAPI()
    seen: list[str] = []

    async def session() -> AsyncIterator[None]:
        try:
            yield
        except WebSocketDisconnect as error:
            seen.append(f"disconnect {error.code}")
            raise

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, _: Annotated[None, Depends(session)]) -> None:
        await websocket.accept()
        await websocket.receive_text()

    async with AsyncClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(WebSocketDisconnect) as escaped:
            async with client.websocket_connect("/ws") as ws:
                await ws.close(4001)
    assert escaped.value.code == 4001
    assert seen == ["disconnect 4001"]


async def test_a_yield_dependency_failing_after_the_close_goes_to_the_server() -> None:
    app = TrioAPI()
    ran: list[str] = []

    async def session() -> AsyncIterator[None]:
        yield
        raise RuntimeError("could not close the session")

    def note() -> None:
        ran.append("task")

    @app.websocket("/ws")
    async def endpoint(
        websocket: WebSocket, _: Annotated[None, Depends(session)], tasks: BackgroundTasks
    ) -> None:
        tasks.add_task(note)
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    heard: list[str] = []

    async def talk(client: AsyncClient) -> None:
        async with client.websocket_connect("/ws") as ws:
            heard.append(await ws.receive_text())
            await ws.receive()  # the close

    async with AsyncClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(RuntimeError, match="could not close the session"):
            await talk(client)
        await app.background.wait_idle()
    assert heard == ["hi"]
    assert ran == ["task"]


# --- errors ---------------------------------------------------------------------------------


async def test_websocket_exception_closes_with_its_code_after_the_handshake() -> None:
    app = TrioAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        if await websocket.receive_text() == "bad":
            raise WebSocketException(4003, "bad input")

    async with AsyncClient(app) as client, client.websocket_connect("/ws") as ws:
        await ws.send_text("bad")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4003, "bad input")
    assert repr(WebSocketException(4003, "x")) == "WebSocketException(code=4003, reason='x')"
    assert str(WebSocketException(1008)) == "1008: "


async def test_an_http_exception_before_the_handshake_is_an_http_answer() -> None:
    app = TrioAPI()

    async def auth(authorization: Annotated[str | None, Header()] = None) -> str:
        if authorization is None:
            raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
        return authorization

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, who: Annotated[str, Depends(auth)]) -> None:
        await websocket.accept()
        await websocket.send_text(who)

    async with AsyncClient(app) as client:
        with pytest.raises(WebSocketDenialResponse) as denied:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not reached")
        async with client.websocket_connect("/ws", headers={"authorization": "me"}) as ws:
            assert await ws.receive_text() == "me"
    assert denied.value.status_code == 401
    assert denied.value.json() == {"detail": "Not authenticated"}
    assert denied.value.headers["www-authenticate"] == "Bearer"
    assert isinstance(denied.value, WebSocketDisconnect)


async def test_exception_handlers_answer_websocket_errors() -> None:
    class Banned(Exception):
        pass

    async def close_banned(websocket: WebSocket, exc: Banned) -> None:
        await websocket.close(4030, "banned")

    app = TrioAPI(exception_handlers={Banned: close_banned})

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        raise Banned

    async with AsyncClient(app) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4030, "banned")


async def test_an_unhandled_error_goes_to_the_server_which_closes_with_1011() -> None:
    app = TrioAPI()
    done: list[str] = []

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, tasks: BackgroundTasks) -> None:
        tasks.add_task(done.append, "never")
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("boom")

    async with AsyncClient(app) as client:
        async with client.websocket_connect("/ws") as ws:
            await ws.send_text("go")
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
        assert closed.value.code == 1011
    async with AsyncClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(ValueError, match="boom"):
            async with client.websocket_connect("/ws") as ws:
                await ws.send_text("go")
        report = await client.shutdown()
    assert done == []
    assert report.skipped == 1


# --- the client leaving -----------------------------------------------------------------------


async def test_a_disconnect_escaping_the_endpoint_is_a_normal_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = echo_app()
    caplog.set_level(logging.DEBUG)
    async with AsyncClient(app) as client, client.websocket_connect("/echo/x") as ws:
        await ws.send_text("a")
        assert await ws.receive_text() == "x: a"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

    unguarded = TrioAPI()

    @unguarded.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:  # the disconnect escapes: Starlette's client raises it on leaving
            await websocket.receive_text()

    async with AsyncClient(unguarded, raise_server_exceptions=True) as client:
        with pytest.raises(WebSocketDisconnect) as escaped:
            async with client.websocket_connect("/ws"):
                pass
    assert escaped.value.code == 1000
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_send_after_the_client_left_ends_a_push_loop() -> None:
    app = TrioAPI()
    ended: list[int] = []

    @app.websocket("/ticks")
    async def ticks(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
                await trio.sleep(1)
        except WebSocketDisconnect as error:
            ended.append(error.code)

    async with AsyncClient(app) as client, client.websocket_connect("/ticks") as ws:
        assert await ws.receive_text() == "tick"
    assert ended == [1006]


# --- background tasks ---------------------------------------------------------------------------


async def test_background_tasks_run_once_the_socket_is_closed() -> None:
    app = TrioAPI()
    done: list[str] = []

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, tasks: BackgroundTasks) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            tasks.add_task(done.append, text)
            await websocket.send_text(f"queued {text}")

    async with AsyncClient(app) as client:
        async with client.websocket_connect("/ws") as ws:
            await ws.send_text("a")
            assert await ws.receive_text() == "queued a"
            await ws.send_text("b")
            assert await ws.receive_text() == "queued b"
            await trio.testing.wait_all_tasks_blocked()
            assert done == []  # nothing runs while the socket is open
        assert done == ["a", "b"]  # the session's group, in order
        report = await client.shutdown()
    assert report.completed == 2


async def test_tasks_of_an_endpoint_that_raised_are_skipped() -> None:
    app = TrioAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, tasks: BackgroundTasks) -> None:
        tasks.add_task(trio.sleep, 0)
        raise WebSocketException(4000)

    async with AsyncClient(app) as client:
        with pytest.raises(WebSocketDisconnect):
            async with client.websocket_connect("/ws"):
                raise AssertionError("not reached")
        report = await client.shutdown()
    assert (report.completed, report.skipped) == (0, 1)


# --- shutdown -----------------------------------------------------------------------------------


async def test_the_drain_closes_open_websockets_with_1001_and_drains_their_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=10)
    log: list[tuple[str, float]] = []

    async def save(text: str) -> None:
        await trio.sleep(2)
        log.append((f"saved {text}", trio.current_time()))

    @app.websocket("/ws/{name}")
    async def endpoint(websocket: WebSocket, name: str, tasks: BackgroundTasks) -> None:
        await websocket.accept()
        tasks.add_task(save, name)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect as error:
            log.append((f"{name} left with {error.code}", trio.current_time()))

    with trio.fail_after(60):  # a regression fails here, at virtual 60 s, not hangs
        async with (
            AsyncClient(app) as client,
            client.websocket_connect("/ws/a") as a,
            client.websocket_connect("/ws/b") as b,
        ):
            await trio.testing.wait_all_tasks_blocked()
            report = await client.shutdown()
            for ws in (a, b):
                with pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive_text()
                assert (closed.value.code, closed.value.reason) == (
                    1001,
                    "the server is shutting down",
                )
    assert sorted(log) == [
        ("a left with 1001", 0.0),
        ("b left with 1001", 0.0),
        ("saved a", 2.0),
        ("saved b", 2.0),
    ]
    assert (report.completed, report.cancelled, report.duration) == (2, 0, 2.0)


async def test_going_away_waits_for_a_send_on_the_wire_and_ends_later_moves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    outcomes: list[str] = []
    sent: list[Message] = []
    started = trio.Event()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("slow")  # the server takes 5 s to write it
        for move in (websocket.send_text("again"), websocket.receive_text()):
            try:
                await move
            except WebSocketDisconnect as error:
                outcomes.append(f"{error.code}")
        await websocket.close()  # nothing to do: already closed

    async def receive() -> Message:
        if not started.is_set():
            started.set()
            return {"type": "websocket.connect"}
        await trio.sleep_forever()
        raise AssertionError("not reached")

    async def send(message: Message) -> None:
        if message.get("text") == "slow":
            await trio.sleep(5)
        sent.append({**message, "at": trio.current_time()})

    with trio.fail_after(60):
        scope: dict[str, Any] = {
            "type": "websocket",
            "path": "/ws",
            "headers": [],
            "extensions": {},
        }
        async with trio.open_nursery() as nursery:
            await nursery.start(app.background.run)
            nursery.start_soon(app, scope, receive, send)
            await trio.sleep(1)
            await app.background.drain()
    assert [(m["type"], m.get("code"), m["at"]) for m in sent] == [
        ("websocket.accept", None, 0.0),
        ("websocket.send", None, 5.0),
        ("websocket.close", 1001, 5.0),
    ]
    assert outcomes == ["1001", "1001"]


async def test_a_session_the_server_cancels_still_says_1001() -> None:
    app = TrioAPI()
    sent: list[Message] = []
    accepted = trio.Event()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        accepted.set()
        await trio.sleep_forever()

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(message)

    scope: dict[str, Any] = {"type": "websocket", "path": "/ws", "headers": []}
    with trio.CancelScope() as cancel_scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, scope, receive, send)
            await accepted.wait()
            cancel_scope.cancel()
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[-1]["code"] == 1001


# --- the sync TestClient ------------------------------------------------------------------------


def test_sync_client_echo_outside_and_inside_its_with_block() -> None:
    app = echo_app()
    client = TestClient(app)
    with client.websocket_connect("/echo/out") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "out: hi"
    with client, client.websocket_connect("ws://testserver/echo/in") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "in: hi"


def test_sync_client_sessions_outside_a_with_block_share_one_run() -> None:
    app = TrioAPI()
    room: list[WebSocket] = []

    @app.websocket("/chat")
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        room.append(websocket)
        try:
            async for text in websocket.iter_text():
                for member in room:
                    await member.send_text(text)
        finally:
            room.remove(websocket)

    client = TestClient(app)
    with client.websocket_connect("/chat") as first, client.websocket_connect("/chat") as second:
        first.send_text("hello")
        assert first.receive_text() == "hello"
        assert second.receive_text() == "hello"
        second.close()
        first.send_text("alone")
        assert first.receive_text() == "alone"


def test_sync_client_raises_refusals_and_app_errors_like_starlettes() -> None:
    app = TrioAPI()

    @app.websocket("/closed")
    async def closed(websocket: WebSocket) -> None:
        await websocket.close(4004, "no")

    @app.websocket("/denied")
    async def denied(websocket: WebSocket) -> None:
        raise HTTPException(403)

    @app.websocket("/broken")
    async def broken(websocket: WebSocket) -> None:
        await websocket.accept()
        raise KeyError("broken")

    client = TestClient(app)
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/closed"):
        raise AssertionError("not reached")
    assert (refused.value.code, refused.value.reason) == (4004, "no")
    with pytest.raises(WebSocketDenialResponse) as denial, client.websocket_connect("/denied"):
        raise AssertionError("not reached")
    assert denial.value.status_code == 403
    with pytest.raises(WebSocketDisconnect) as unmatched, client.websocket_connect("/nowhere"):
        raise AssertionError("not reached")
    assert unmatched.value.code == 1000
    with pytest.raises(KeyError, match="broken"), client.websocket_connect("/broken"):
        pass
    quiet = TestClient(app, raise_server_exceptions=False)
    with quiet.websocket_connect("/broken") as ws, pytest.raises(WebSocketDisconnect) as lost:
        ws.receive_text()
    assert lost.value.code == 1011


def test_sync_client_sends_its_cookies_headers_and_subprotocols() -> None:
    app = TrioAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, session: Annotated[str, Cookie()]) -> None:
        await websocket.accept(subprotocol="b")
        await websocket.send_json(
            {
                "session": session,
                "agent": websocket.headers["user-agent"],
                "upgrade": websocket.headers["connection"],
                "offered": websocket.scope["subprotocols"],
            }
        )

    client = TestClient(app, cookies={"session": "s1"})
    with client.websocket_connect("/ws", subprotocols=["a", "b"]) as ws:
        assert ws.accepted_subprotocol == "b"
        assert ws.receive_json() == {
            "session": "s1",
            "agent": "testclient",
            "upgrade": "upgrade",
            "offered": ["a", "b"],
        }


def test_sync_client_exit_waits_for_teardown_and_tasks() -> None:
    app = TrioAPI()
    events: list[str] = []

    async def resource() -> AsyncIterator[None]:
        yield
        await trio.sleep(0)
        events.append("teardown")

    @app.websocket("/ws")
    async def endpoint(
        websocket: WebSocket, tasks: BackgroundTasks, _: Annotated[None, Depends(resource)]
    ) -> None:
        tasks.add_task(events.append, "task")
        await websocket.accept()
        await websocket.send_text("ok")

    with TestClient(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "ok"
        assert events == ["teardown", "task"]


def test_sync_client_shutdown_closes_open_websockets_with_1001() -> None:
    app = TrioAPI()
    codes: list[int] = []

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as error:
            codes.append(error.code)

    client = TestClient(app)
    with client:
        session = client.websocket_connect("/ws").__enter__()
    assert codes == [1001]
    with pytest.raises(RuntimeError, match="trio run ended"):
        session.receive_text()


# --- hypercorn, for real ------------------------------------------------------------------------


class WsClient:
    """A websocket client written with wsproto over any trio byte stream."""

    def __init__(
        self,
        send_all: Callable[[bytes], Awaitable[None]],
        receive_some: Callable[[], Awaitable[bytes]],
    ) -> None:
        self._send_all = send_all
        self._receive_some = receive_some
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()

    async def handshake(self, target: str, subprotocols: tuple[str, ...] = ()) -> Event:
        request = Request(host="testserver", target=target, subprotocols=list(subprotocols))
        await self._send_all(self._ws.send(request))
        return await self.next_event()

    async def next_event(self) -> Event:
        while not self._events:
            data = await self._receive_some()
            self._ws.receive_data(data or None)
            self._events.extend(self._ws.events())
        return self._events.popleft()

    async def send(self, event: Event) -> None:
        await self._send_all(self._ws.send(event))


@asynccontextmanager
async def in_memory(server: InMemoryServer) -> AsyncIterator[WsClient]:
    conn = await server.connect()
    async with conn:
        yield WsClient(conn.send_bytes, conn.receive_some)


async def test_hypercorn_shutdown_closes_with_1001_at_once_and_drains_the_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    log: list[tuple[str, float]] = []

    async def save(text: str) -> None:
        await trio.sleep(2)
        log.append((f"saved {text}", trio.current_time()))

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, tasks: BackgroundTasks) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            tasks.add_task(save, text)
            await websocket.send_bytes(text.encode())
        log.append(("endpoint ended", trio.current_time()))

    with trio.fail_after(60):
        async with InMemoryServer(app) as server, in_memory(server) as ws:
            accepted = await ws.handshake("/ws")
            assert isinstance(accepted, AcceptConnection)
            await ws.send(TextMessage(data="x"))
            assert await ws.next_event() == BytesMessage(data=b"x")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.shutdown)
                closed = await ws.next_event()
            report = server.app.background.last_report
    assert isinstance(closed, CloseConnection)
    assert (closed.code, closed.reason) == (1001, "the server is shutting down")
    timeline = server.timeline
    # The socket closed as shutdown began: hypercorn's 3 s graceful_timeout never came into it.
    assert timeline.stopped_accepting == timeline.connections_closed == 0.0
    assert timeline.lifespan_complete == 2.0
    assert log == [("endpoint ended", 0.0), ("saved x", 2.0)]
    assert report is not None
    assert report.completed == 1


async def test_hypercorn_answers_a_refused_handshake_over_http() -> None:
    app = TrioAPI()

    async def auth(token: str | None = None) -> str:
        if token is None:
            raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
        return token

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, token: Annotated[str, Depends(auth)]) -> None:
        await websocket.accept()
        await websocket.send_text(token)

    async with InMemoryServer(app) as server:
        async with in_memory(server) as ws:
            refused = await ws.handshake("/ws")
            body = await ws.next_event()
        async with in_memory(server) as ws:
            assert isinstance(await ws.handshake("/ws?token=t"), AcceptConnection)
            assert await ws.next_event() == TextMessage(data="t")
    assert isinstance(refused, RejectConnection)
    assert refused.status_code == 401
    assert (b"www-authenticate", b"Bearer") in refused.headers
    assert isinstance(body, RejectData)
    assert body.data == b'{"detail":"Unauthorized"}'


async def test_hypercorn_logs_nothing_when_a_client_leaves_an_unguarded_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI()
    done: list[str] = []

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, tasks: BackgroundTasks) -> None:
        await websocket.accept()
        tasks.add_task(done.append, "ran")
        while True:  # no except: the client's close escapes as WebSocketDisconnect
            await websocket.receive_text()

    caplog.set_level(logging.INFO)
    async with InMemoryServer(app) as server:
        async with in_memory(server) as ws:
            assert isinstance(await ws.handshake("/ws"), AcceptConnection)
            await ws.send(CloseConnection(code=1000))
            assert isinstance(await ws.next_event(), CloseConnection)
        await app.background.wait_idle()
    assert done == ["ran"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_real_server_on_a_socket_echoes_and_says_1001_at_shutdown(
    nursery: trio.Nursery,
) -> None:
    app = TrioAPI()
    done: list[str] = []

    @app.websocket("/ws/{room}")
    async def endpoint(websocket: WebSocket, room: str, tasks: BackgroundTasks) -> None:
        await websocket.accept(subprotocol="chat")
        tasks.add_task(done.append, room)
        async for text in websocket.iter_text():
            await websocket.send_text(f"{room}: {text}")

    with trio.fail_after(10):  # a guard against a hang, not a timing assertion
        server = await nursery.start(trioapi.serve, app, "127.0.0.1:0")
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            ws = WsClient(stream.send_all, stream.receive_some)
            accepted = await ws.handshake("/ws/lobby", subprotocols=("chat",))
            assert isinstance(accepted, AcceptConnection)
            assert accepted.subprotocol == "chat"
            await ws.send(TextMessage(data="hi"))
            assert await ws.next_event() == TextMessage(data="lobby: hi")
            async with trio.open_nursery() as stopping:
                stopping.start_soon(server.shutdown)
                closed = await ws.next_event()
    assert isinstance(closed, CloseConnection)
    assert closed.code == 1001
    report = app.background.last_report
    assert report is not None
    assert report.completed == 1
    assert done == ["lobby"]

"""hypercorn's real trio worker, in memory and on virtual time: the whole shutdown sequence.

Every test runs under pytest-trio's ``autojump_clock`` and asserts exact
virtual times. A ``trio.sleep`` in an endpoint or a task is that code's
work; in a client it is the client being slow on purpose. Tests synchronise
with ``wait_all_tasks_blocked``, never with sleeps.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import MutableMapping
from functools import partial
from pathlib import Path
from typing import Any

import h11
import httpx
import hypercorn.trio.lifespan
import hypercorn.trio.run
import hypercorn.trio.tcp_server
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.utils import LifespanFailureError, LifespanTimeoutError

from trioapi import BackgroundTasks, JSONResponse, Request, TrioAPI, serve
from trioapi._server.harness import (
    WORKER_SERVE_NAMES,
    ClientResponse,
    InMemoryServer,
    InMemoryTransport,
    ServerDisconnected,
    _ServerStream,
    _Socket,
    check_hypercorn,
)
from trioapi._server.hypercorn import hypercorn_version, sends_whole_bodies
from trioapi.testing import TestClient

from ._asgi import http_scope


def now() -> float:
    return trio.current_time()


def quiet_config(**settings: Any) -> Config:
    """A plain hypercorn Config whose logs go through ``logging`` (caplog sees them)."""
    config = Config()
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access")
    for name, value in settings.items():
        setattr(config, name, value)
    return config


def parse_response(raw: bytes) -> ClientResponse:
    """Parses one complete HTTP/1.1 response from raw bytes."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "testserver")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    status, headers, chunks = 0, [], []
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status, headers = event.status_code, list(event.headers.raw_items())
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return ClientResponse(status, headers, b"".join(chunks))
        else:
            raise AssertionError(f"incomplete response: {event!r} after {raw!r}")


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


# --- requests through hypercorn --------------------------------------------------------


async def test_request_is_served_by_hypercorn_and_keep_alive_reuses_the_connection(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, request: Request) -> dict[str, Any]:
        return {"item_id": item_id, "client": list(request.client or ())}

    async with InMemoryServer(app) as server, await server.connect() as conn:
        first = await conn.request("GET", "/items/1")
        assert conn.reusable
        second = await conn.request("GET", "/items/2?q=x", headers=[("user-agent", "harness")])
        assert now() == 0
        # Let hypercorn finish its bookkeeping before the client hangs up: a
        # close right after the last body byte makes it log the request twice
        # (once with status "-", from handling Closed mid-response).
        await trio.testing.wait_all_tasks_blocked()

    assert first.status == second.status == 200
    assert json.loads(first.body) == {"item_id": 1, "client": ["127.0.0.1", 50000]}
    # Same client port: the second request rode the same connection.
    assert json.loads(second.body) == {"item_id": 2, "client": ["127.0.0.1", 50000]}
    # hypercorn's own h11 protocol wrote these headers, not trioapi.
    assert first.header("server") == "hypercorn-h11"
    assert first.header("date") is not None
    access = [r.getMessage() for r in caplog.records if r.name == "hypercorn.access"]
    assert len(access) == 2
    assert '"GET /items/1 1.1" 200' in access[0]
    assert '"GET /items/2 1.1" 200' in access[1]
    assert '"harness"' in access[1]
    assert errors_logged(caplog) == []


async def test_request_body_and_connection_close_end_the_keep_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"got": (await request.body()).decode(), "port": (request.client or ("", 0))[1]}

    async with InMemoryServer(app) as server:
        async with await server.connect() as conn:
            response = await conn.request(
                "POST", "/echo", headers=[("connection", "close")], body=b"hello"
            )
            assert json.loads(response.body) == {"got": "hello", "port": 50000}
            assert not conn.reusable
            with pytest.raises(RuntimeError, match="open a new one"):
                await conn.request("GET", "/echo")
            assert await conn.receive_until_closed() == b""
        async with httpx.AsyncClient(
            transport=InMemoryTransport(server), base_url="http://testserver"
        ) as client:
            replies = [
                (await client.post("/echo", content=b"x", headers={"connection": "close"})).json()
                for _ in range(2)
            ]
    # The transport does not pool a connection the server closed: a new one each time.
    assert replies == [{"got": "x", "port": 50001}, {"got": "x", "port": 50002}]


async def test_hypercorn_answers_a_malformed_request_with_400_and_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    async with InMemoryServer(app) as server, await server.connect() as conn:
        await conn.send_bytes(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        response = parse_response(await conn.receive_until_closed())
    assert response.status == 400
    assert response.header("connection") == "close"


async def test_httpx_transport_waits_for_the_request_tasks_and_pools_connections(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    done: list[tuple[str, float]] = []

    async def work(label: str) -> None:
        await trio.sleep(2)
        done.append((label, now()))

    @app.post("/jobs/{label}")
    async def create_job(label: str, request: Request, tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(work, label)
        return {"label": label, "port": (request.client or ("", 0))[1]}

    async with InMemoryServer(app) as server:
        transport = InMemoryTransport(server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            waited = await client.post("/jobs/a", json={"x": 1})
            assert now() == 2  # returned once its task finished
            assert done == [("a", 2)]
            not_waited = await client.post("/jobs/b", extensions={"trioapi.wait_background": False})
            assert now() == 2
            assert done == [("a", 2)]
        report = await server.shutdown()

    assert waited.status_code == not_waited.status_code == 200
    assert waited.json()["port"] == not_waited.json()["port"] == 50000
    assert waited.headers["server"] == "hypercorn-h11"
    assert done == [("a", 2), ("b", 4)]
    assert report is not None
    assert report.completed == 2


async def test_connect_is_refused_once_shutdown_began_and_over_httpx_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    async with InMemoryServer(app) as server:
        server.request_shutdown()
        with pytest.raises(ConnectionRefusedError, match="shutting down"):
            await server.connect()
        async with httpx.AsyncClient(
            transport=InMemoryTransport(server), base_url="http://testserver"
        ) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/")


async def test_httpx_transport_replaces_a_connection_closed_by_keep_alive_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()

    @app.get("/port")
    async def port(request: Request) -> int:
        return (request.client or ("", 0))[1]

    async with InMemoryServer(app) as server:
        transport = InMemoryTransport(server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/port")).json() == 50000
            # The client is idle for 6 s: hypercorn's keep_alive_timeout (5 s)
            # closes the pooled connection, and the next request opens another.
            await trio.sleep(6)
            assert (await client.get("/port")).json() == 50001
            assert now() == 6


async def test_leaving_with_an_error_stops_the_server_at_once_without_a_drain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    with pytest.raises(KeyError, match="from the test"):
        async with InMemoryServer(app) as server:
            raise KeyError("from the test")
    assert server.timeline.stopped == 0
    assert server.timeline.lifespan_complete is None  # no lifespan.shutdown was sent
    assert app.background.last_report is None


async def test_server_stream_refuses_overlapping_sends_like_a_socket_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # hypercorn's TCPServer can call send_eof while a write holds its send
    # lock (DESIGN.md fact 8); on a trio.SocketStream that overlap raises
    # BusyResourceError, and the in-memory stream must do the same.
    client_end, server_end = trio.testing.lockstep_stream_pair()
    stream = _ServerStream(server_end, _Socket(peer=("127.0.0.1", 1), local=("127.0.0.1", 2)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, b"slow write")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await stream.send_eof()
        with pytest.raises(trio.BusyResourceError):
            await stream.wait_send_all_might_not_block()
        assert await client_end.receive_some() == b"slow write"
    await stream.send_eof()
    assert await client_end.receive_some() == b""
    await stream.aclose()
    await client_end.aclose()


# --- the shutdown sequence --------------------------------------------------------------


async def test_background_task_outlives_graceful_timeout_because_it_runs_in_the_lifespan(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    finished: list[float] = []

    async def ten_seconds() -> None:
        await trio.sleep(10)
        finished.append(now())

    @app.post("/start-work")
    async def start_work(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(ten_seconds)
        return {"status": "accepted"}

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        response = await conn.request("POST", "/start-work")
        assert (response.status, now()) == (200, 0)
        report = await server.shutdown()
        assert now() == 10
        # The idle keep-alive connection was closed when shutdown began.
        assert await conn.receive_until_closed() == b""
        await conn.aclose()

    assert finished == [10]  # 10 s > graceful_timeout: not cut off by hypercorn
    assert server.config.graceful_timeout == 3
    timeline = server.timeline
    assert (timeline.stopped_accepting, timeline.graceful_deadline) == (0, 3)
    assert timeline.connections_closed == 0
    assert (timeline.lifespan_complete, timeline.stopped) == (10, 10)
    assert report is not None
    assert (report.started_at, report.finished_at) == (0, 10)
    assert (report.completed, report.cancelled, report.deadline_hit) == (1, 0, False)


async def test_hypercorn_cancels_an_endpoint_still_running_at_graceful_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = TrioAPI()
    endpoint: list[tuple[str, float]] = []

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        endpoint.append(("started", now()))
        try:
            await trio.sleep(5)
        except trio.Cancelled:
            endpoint.append(("cancelled", now()))
            raise
        endpoint.append(("finished", now()))
        return {"status": "done"}

    seen: list[tuple[str, float]] = []
    async with InMemoryServer(app) as server:
        conn = await server.connect()

        async def client() -> None:
            try:
                await conn.request("GET", "/slow")
            except ServerDisconnected as error:
                seen.append((f"disconnected, status {error.status}", now()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            await trio.testing.wait_all_tasks_blocked()
            report = await server.shutdown()
        await conn.aclose()

    assert endpoint == [("started", 0), ("cancelled", 3)]
    # hypercorn cannot send its 500 from a cancelled connection: the client
    # sees the connection close without any response.
    assert seen == [("disconnected, status None", 3)]
    assert server.timeline.connections_closed == 3
    assert server.timeline.stopped == 3
    assert report is not None
    assert report.total == 0
    access = [r.getMessage() for r in caplog.records if r.name == "hypercorn.access"]
    assert access == []
    assert errors_logged(caplog) == []


async def long_task() -> None:
    await trio.sleep(100)


async def test_drain_timeout_cancels_long_tasks_after_the_connections_closed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI(drain_timeout=4)
    cancelled_at: list[float] = []

    async def tracked_long_task() -> None:
        try:
            await long_task()
        except trio.Cancelled:
            cancelled_at.append(now())
            raise

    @app.post("/long")
    async def start_long(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.options(name="long_task").add_task(tracked_long_task)
        return {"status": "accepted"}

    @app.get("/two-seconds")
    async def two_seconds() -> dict[str, str]:
        await trio.sleep(2)
        return {"status": "done"}

    responses: list[tuple[int, float]] = []
    async with InMemoryServer(app) as server:
        first = await server.connect()
        assert (await first.request("POST", "/long")).status == 200
        second = await server.connect()

        async def in_flight() -> None:
            response = await second.request("GET", "/two-seconds")
            responses.append((response.status, now()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_flight)
            await trio.testing.wait_all_tasks_blocked()
            report = await server.shutdown()
        assert now() == 6
        await first.aclose()
        await second.aclose()

    # In flight at shutdown, done within graceful_timeout: answered at t=2.
    assert responses == [(200, 2)]
    timeline = server.timeline
    assert (timeline.stopped_accepting, timeline.connections_closed) == (0, 2)
    # Drain from t=2 (lifespan.shutdown) for drain_timeout=4 s: cancelled at t=6.
    assert cancelled_at == [6]
    assert (timeline.lifespan_complete, timeline.stopped) == (6, 6)
    assert report is not None
    assert (report.started_at, report.finished_at, report.deadline_hit) == (2, 6, True)
    assert (report.completed, report.cancelled) == (0, 1)
    assert report.cancelled_tasks == ("long_task",)
    warnings = [r for r in caplog.records if r.name == "trioapi.background"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "long_task" in warnings[0].getMessage()


# --- DESIGN.md fact 9: a cancel after the last byte is on the wire ---------------------


async def lifespan_only(scope: MutableMapping[str, Any], receive: Any, send: Any) -> bool:
    """Answers the lifespan protocol; returns False for any other scope."""
    if scope["type"] != "lifespan":
        return False
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return True


async def slow_reader_request(
    server: InMemoryServer, target: str, *, read_head: bool = True
) -> tuple[bytes, bytes]:
    """A client that reads the response head, then reads on only at t=5 (shutdown at t=0).

    With ``read_head=False`` it reads nothing before t=5: the app is then
    blocked writing the head, not the body.

    Returns the head and the rest, read until the server closed.
    """
    conn = await server.connect(buffered=False)
    async with conn:
        await conn.send_bytes(f"GET {target} HTTP/1.1\r\nhost: testserver\r\n\r\n".encode())
        head = await conn.receive_some() if read_head else b""
        # The app is now blocked in a send: nobody reads what it writes yet.
        await trio.testing.wait_all_tasks_blocked()
        server.request_shutdown()
        await trio.sleep(5)  # a slow client: reads on after graceful_timeout (3 s)
        rest = await conn.receive_until_closed()
    return head, rest


async def test_hypercorn_can_cancel_a_send_whose_bytes_already_reached_the_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The hazard itself, with a bare ASGI app that does not shield its send.
    outcome: list[tuple[str, float]] = []

    async def bare_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_only(scope, receive, send):
            return
        # With Content-Length the body's last byte completes the response; a
        # chunked one would still need its terminating chunk.
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            await send({"type": "http.response.body", "body": b"done"})
        except trio.Cancelled:
            outcome.append(("final send cancelled", now()))
            raise
        outcome.append(("final send returned", now()))

    async with InMemoryServer(bare_app, quiet_config()) as server:
        head, rest = await slow_reader_request(server, "/")
        assert await server.shutdown() is None

    response = parse_response(head + rest)
    # The client has a complete 200, and yet the app's send() raised Cancelled:
    # an app that hands work over after send() returns would have lost it.
    assert (response.status, response.body) == (200, b"done")
    assert outcome == [("final send cancelled", 5)]


async def record_sends(
    outcome: list[tuple[str, float]], scope: MutableMapping[str, Any], receive: Any, send: Any
) -> None:
    """A bare app sending head, body (``more_body``) and end, recording how each send ends."""
    if await lifespan_only(scope, receive, send):
        return
    messages = [
        (
            "head",
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]},
        ),
        ("body", {"type": "http.response.body", "body": b"done", "more_body": True}),
        ("end", {"type": "http.response.body", "body": b""}),
    ]
    for name, message in messages:
        try:
            await send(message)
        except trio.Cancelled:
            outcome.append((f"{name} cancelled", now()))
            raise
        outcome.append((f"{name} sent", now()))


# What trioapi relies on instead of a cancel scope under hypercorn's HTTP/1
# (trioapi._server.hypercorn.whole_body_sends): a body message is written whole, or
# Cancelled is raised before any of it is. The next two tests pin both halves
# on hypercorn's real code; if an update moves a checkpoint, they fail.


async def test_hypercorn_never_cancels_a_body_send_after_writing_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcome: list[tuple[str, float]] = []
    async with InMemoryServer(partial(record_sends, outcome), quiet_config()) as server:
        head, rest = await slow_reader_request(server, "/")
        assert await server.shutdown() is None

    response = parse_response(head + rest)
    assert (response.status, response.body) == (200, b"done")
    # Cancelled at t=3 (graceful_timeout) while the body was being written:
    # the body send still returned, and only the empty end raised.
    assert outcome == [("head sent", 0), ("body sent", 5), ("end cancelled", 5)]


async def test_hypercorn_cancels_a_body_send_before_writing_any_of_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcome: list[tuple[str, float]] = []
    async with InMemoryServer(partial(record_sends, outcome), quiet_config()) as server:
        _, rest = await slow_reader_request(server, "/", read_head=False)
        assert await server.shutdown() is None

    # Cancelled while the head was being written: the head went out whole,
    # and the body send raised before writing a byte of its own.
    assert outcome == [("head sent", 5), ("body cancelled", 5)]
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert rest.endswith(b"\r\n\r\n")


def order_app(*, content_length: bool = True) -> TrioAPI:
    app = TrioAPI()

    async def noop() -> None:
        pass

    @app.get("/order")
    async def order(tasks: BackgroundTasks) -> JSONResponse:
        tasks.add_task(noop)
        response = JSONResponse({"status": "placed"})
        if not content_length:
            del response.headers["content-length"]
        return response

    return app


def behind_a_middleware(app: TrioAPI) -> Any:
    """``app`` behind a pass-through ASGI middleware: its send is not hypercorn's."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def passed_on(message: Any) -> None:
            await send(message)

        await app(scope, receive, passed_on)

    return middleware


@pytest.mark.parametrize(
    ("setting", "completed", "skipped"),
    [
        # The body send raised before writing: no response, no task.
        pytest.param("plain", 0, 1, id="hypercorn's send, Content-Length: body apart"),
        # The shield wrote the body at t=5 instead, and the task ran.
        pytest.param("chunked", 1, 0, id="chunked: shielded"),
        pytest.param("middleware", 1, 0, id="a middleware's send: shielded"),
        pytest.param("unchecked", 1, 0, id="an unchecked hypercorn version: shielded"),
    ],
)
async def test_a_request_cancelled_as_its_head_is_written_is_whole_or_has_no_task(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    completed: int,
    skipped: int,
) -> None:
    app = order_app(content_length=setting != "chunked")
    server = InMemoryServer(behind_a_middleware(app) if setting == "middleware" else app)
    if setting == "unchecked":  # as the app's startup will read it
        monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.19.0")
    async with server:
        _, rest = await slow_reader_request(server, "/order", read_head=False)
        await server.shutdown()
        assert now() == 5

    report = app.background.last_report
    assert report is not None
    assert (report.completed, report.skipped) == (completed, skipped)
    assert rest.startswith(b"HTTP/1.1 200 ")
    if completed:
        assert parse_response(rest).body == b'{"status":"placed"}'
    else:
        # A head promising 19 bytes of body that never came: an incomplete
        # response, so its task was not handed over.
        assert b"\r\ncontent-length: 19\r\n" in rest
        assert rest.endswith(b"\r\n\r\n")


def test_only_hypercorns_own_http1_send_is_trusted_with_whole_bodies() -> None:
    hypercorns_send = HTTPStream.app_send.__get__(object())  # bound, as hypercorn passes it

    async def middlewares_send(message: Any) -> None:
        pass

    scope = http_scope("/")
    assert sends_whole_bodies(hypercorns_send, scope)
    assert sends_whole_bodies(hypercorns_send, {**scope, "http_version": "1.0"})
    assert not sends_whole_bodies(hypercorns_send, {**scope, "http_version": "2"})
    assert not sends_whole_bodies(middlewares_send, scope)


@pytest.mark.parametrize(
    ("version", "checked"), [("0.18.0", True), ("0.19.0", False), ("x", False)]
)
def test_only_a_checked_hypercorn_is_trusted_with_whole_bodies(
    monkeypatch: pytest.MonkeyPatch, version: str, checked: bool
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version)
    assert hypercorn_version() == (version, checked)


async def test_a_2xx_that_reached_the_client_always_has_its_task_handed_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    task_ran: list[tuple[str, float]] = []

    async def one_second() -> None:
        task_ran.append(("started", now()))
        await trio.sleep(1)
        task_ran.append(("finished", now()))

    @app.get("/order")
    async def order(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(one_second)
        return {"status": "placed"}

    async with InMemoryServer(app) as server:
        head, rest = await slow_reader_request(server, "/order")
        report = await server.shutdown()
        assert now() == 6

    response = parse_response(head + rest)
    assert (response.status, json.loads(response.body)) == (200, {"status": "placed"})
    # The last byte went out at t=5, two seconds after hypercorn's cancel: the
    # shielded final send still completed, so the task was handed over and ran.
    assert task_ran == [("started", 5), ("finished", 6)]
    assert server.timeline.connections_closed == 5
    assert report is not None
    assert (report.completed, report.cancelled) == (1, 0)


# --- startup against hypercorn's shutdown_timeout ----------------------------------------


async def test_startup_warns_when_drain_timeout_does_not_fit_shutdown_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioapi")
    app = TrioAPI(drain_timeout=25)
    async with InMemoryServer(app, quiet_config(shutdown_timeout=10)):
        pass
    warnings = [r for r in caplog.records if r.name == "trioapi" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "drain_timeout (25 s) does not fit hypercorn's shutdown_timeout (10 s)" in message


async def test_default_config_fits_the_drain_and_logs_the_timeline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioapi")
    app = TrioAPI(drain_timeout=25)
    async with InMemoryServer(app) as server:
        pass
    assert server.config.shutdown_timeout > 25
    trioapi_logs = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "trioapi"]
    assert all(level < logging.WARNING for level, _ in trioapi_logs)
    assert any("graceful_timeout (3 s)" in message for _, message in trioapi_logs)


async def test_a_drain_longer_than_shutdown_timeout_is_cut_off_by_hypercorn(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI(drain_timeout=25)
    finished: list[float] = []

    async def ten_seconds() -> None:
        await trio.sleep(10)
        finished.append(now())

    @app.post("/start-work")
    async def start_work(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(ten_seconds)
        return {"status": "accepted"}

    server = InMemoryServer(app, quiet_config(shutdown_timeout=2))
    # hypercorn's wait_for_shutdown raises LifespanTimeoutError("startup"): a
    # copy-paste slip in hypercorn/trio/lifespan.py (the error is about shutdown).
    with pytest.RaisesGroup(
        pytest.RaisesExc(LifespanTimeoutError, match="awaiting startup"), flatten_subgroups=True
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            async with await server.connect() as conn:
                assert (await conn.request("POST", "/start-work")).status == 200
            await server.shutdown()
    assert now() == 2
    assert finished == []
    assert server.timeline.stopped == 2
    assert server.timeline.lifespan_complete is None
    # hypercorn cancelled the lifespan mid-drain: no report, but the lost task
    # is named in a warning that plain hypercorn logging shows too.
    assert app.background.last_report is None
    lost = [
        r.getMessage()
        for r in caplog.records
        if r.name == "trioapi.background" and r.levelno == logging.WARNING
    ]
    assert len(lost) == 1
    assert "ten_seconds" in lost[0]


async def test_a_failing_startup_fails_the_server_right_after_it_reported_started(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()

    async def broken() -> None:
        await trio.sleep(1)
        raise OSError("database unreachable")

    app.on_startup.append(broken)

    entered: list[float] = []
    with pytest.RaisesGroup(
        pytest.RaisesExc(LifespanFailureError, match="database unreachable"),
        flatten_subgroups=True,
    ):
        async with InMemoryServer(app):
            # As in hypercorn's worker_serve, task_status.started() runs: the
            # Lifespan sets its startup event in a finally block before the
            # failure reaches the lifespan nursery. The failure comes next.
            entered.append(now())
            await trio.sleep_forever()
    assert entered == [1]
    assert now() == 1
    assert "trioapi: application startup failed" in caplog.text


async def test_serve_raises_instead_of_returning_a_server_when_startup_fails() -> None:
    # Found with the harness; checked here on trioapi.serve itself (a real
    # loopback socket, no waiting involved).
    app = TrioAPI()

    async def broken() -> None:
        raise OSError("database unreachable")

    app.on_startup.append(broken)

    returned: list[object] = []
    with pytest.RaisesGroup(LifespanFailureError, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            returned.append(
                await nursery.start(partial(serve, app, "127.0.0.1:0", config=quiet_config()))
            )
            await trio.sleep_forever()
    assert returned == []


# --- guarding hypercorn's internals ------------------------------------------------------


def test_check_hypercorn_accepts_the_installed_version() -> None:
    check_hypercorn()


def changed_worker_serve() -> Any:
    """A stand-in worker_serve using hypercorn's names, with graceful_timeout swapped out."""
    names = (WORKER_SERVE_NAMES - {"graceful_timeout"}) | {"drain_connections"}
    source = "async def worker_serve(x):\n" + "".join(f"    x.{name}\n" for name in names)
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    return namespace["worker_serve"]


@pytest.mark.parametrize(
    ("break_it", "named"),
    [
        pytest.param(
            lambda mp: mp.delattr(hypercorn.trio.lifespan.Lifespan, "wait_for_shutdown"),
            "Lifespan.wait_for_shutdown is gone",
            id="method-removed",
        ),
        pytest.param(
            lambda mp: mp.setattr(
                hypercorn.trio.tcp_server.TCPServer,
                "__init__",
                lambda self, app, config, context, stream: None,
            ),
            "TCPServer(app, config, context, state, stream) signature changed",
            id="signature-changed",
        ),
        pytest.param(
            lambda mp: mp.setattr(hypercorn.trio.run, "worker_serve", changed_worker_serve()),
            "worker_serve changed (now also uses ['drain_connections'], no longer uses "
            "['graceful_timeout']",
            id="worker-serve-changed",
        ),
        pytest.param(
            lambda mp: mp.delattr(hypercorn.trio.tcp_server, "parse_socket_addr"),
            "parse_socket_addr",
            id="helper-removed",
        ),
        pytest.param(
            lambda mp: mp.setattr(importlib.metadata, "version", lambda name: "0.19.0"),
            "hypercorn 0.19.0 is outside the range the harness supports (>=0.18,<0.19)",
            id="version-outside-range",
        ),
    ],
)
def test_changed_hypercorn_internals_fail_loudly(
    monkeypatch: pytest.MonkeyPatch, break_it: Any, named: str
) -> None:
    break_it(monkeypatch)
    with pytest.raises(RuntimeError) as info:
        InMemoryServer(TrioAPI())
    message = str(info.value)
    assert named in message
    assert "re-check the harness against hypercorn's trio/run.py" in message


# --- TestClient(app, server=True): the harness behind the public test client -------


async def test_test_client_in_server_mode_serves_the_seed_example(in_tmp_path: Path) -> None:
    from examples.dependency_tasks import app as seed_app

    async with TestClient(seed_app, server=True) as client:
        response = await client.post("/send-notification/a@example.com", params={"q": "hi"})
        assert response.status_code == 200
        assert response.json() == {"message": "Message sent"}
        # Waited for this request's tasks, through real hypercorn code.
        assert (
            in_tmp_path / "log.txt"
        ).read_text() == "found query: hi\nmessage to a@example.com\n"
        report = await client.shutdown()
    assert report.completed == 2


async def test_test_client_in_server_mode_drains_past_graceful_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=20)

    async def slow() -> None:
        await trio.sleep(10)

    @app.post("/slow")
    async def add_slow(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.options(name="slow").add_task(slow)
        return {"ok": True}

    async with TestClient(app, server=True, wait_background=False) as client:
        assert (await client.post("/slow")).status_code == 200
        report = await client.shutdown()
        # 10 s is far past hypercorn's graceful_timeout (3 s): the task lives in
        # the lifespan, so it completes, and shutdown returns exactly then.
        assert trio.current_time() == 10
    assert (report.completed, report.cancelled) == (1, 0)

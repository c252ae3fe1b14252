"""Streaming (generator path operations, server-sent events), files, static files, mounts.

Timing tests run under ``autojump_clock`` and assert exact virtual times;
the client-leaves and keep-alive tests go through hypercorn's own server
over in-memory streams (``InMemoryServer``), as in production.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import trioapi.routing
from trioapi import (
    BackgroundTasks,
    Depends,
    HTTPException,
    Request,
    Response,
    ResponseValidationError,
    TrioAPI,
    WebSocket,
)
from trioapi._http.files import RangeError, parse_ranges
from trioapi._server.harness import ServerDisconnected
from trioapi.responses import (
    EventSourceResponse,
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    StreamingResponse,
)
from trioapi.routing import APIRouter, NoMatchFound
from trioapi.sse import ServerSentEvent, format_sse_event
from trioapi.staticfiles import StaticFiles
from trioapi.testclient import TestClient as SyncClient
from trioapi.testing import InMemoryServer, TestClient


def now() -> float:
    return trio.current_time()


@attrs.frozen
class Item:
    name: str
    price: float = 1.0


class SendLog:
    """A pure ASGI middleware recording when each body message is handed on."""

    def __init__(self, app: Any, log: list[tuple[Any, ...]]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def logged(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.log.append(("body", message.get("more_body", False), now()))
            await send(message)

        await self.app(scope, receive, logged)


def events_of(received: list[tuple[float, bytes]]) -> list[tuple[float, str]]:
    """``(time, "data ..."/"ping")`` for each SSE line seen in raw chunked bytes."""
    found = []
    for at, chunk in received:
        for line in chunk.split(b"\n"):
            if line.startswith(b"data: "):
                found.append((at, line.decode()))
            elif line == b": ping":
                found.append((at, "ping"))
    return found


async def read_until(conn: Any, marker: bytes, received: list[tuple[float, bytes]]) -> None:
    while not any(marker in chunk for _, chunk in received):
        chunk = await conn.receive_some()
        assert chunk, "the server closed the connection"
        received.append((now(), chunk))


# --- generator path operations: JSON lines -----------------------------------------------


async def test_an_async_generator_streams_json_lines_of_its_declared_item_type() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items() -> AsyncIterator[Item]:
        yield Item("a")
        yield {"name": "b", "price": 2, "secret": "dropped"}

    async with TestClient(app) as client:
        response = await client.get("/items")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jsonl"
    assert response.text == '{"name":"a","price":1.0}\n{"name":"b","price":2.0}\n'


async def test_items_without_a_declared_type_are_encoded_as_fastapi_does() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items():
        yield {"x": float("nan"), "nested": [float("inf"), 1.5]}
        yield Item("c")
        yield None

    async with TestClient(app) as client:
        response = await client.get("/items")
    assert response.text == (
        '{"x": null, "nested": [null, 1.5]}\n{"name": "c", "price": 1.0}\nnull\n'
    )


async def test_a_sync_generator_is_advanced_in_worker_threads() -> None:
    app = TrioAPI()
    threads: list[int] = []

    @app.get("/items")
    def items() -> Iterator[int]:
        for n in range(3):
            threads.append(threading.get_ident())
            yield n

    async with TestClient(app) as client:
        response = await client.get("/items")
    assert response.text == "0\n1\n2\n"
    assert len(threads) == 3
    assert threading.get_ident() not in threads


async def test_an_item_that_does_not_fit_its_type_goes_on_to_the_server() -> None:
    app = TrioAPI()
    after: list[str] = []

    @app.get("/items")
    async def items(tasks: BackgroundTasks) -> AsyncIterator[Item]:
        tasks.add_task(after.append, "ran")
        yield Item("ok")
        yield {"name": "bad", "price": "not a number"}

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(ResponseValidationError):
            await client.get("/items")
        report = await client.shutdown()
    assert after == []
    assert (report.completed, report.skipped) == (0, 1)


async def test_status_and_headers_come_from_the_route_and_the_response_parameter() -> None:
    app = TrioAPI()

    @app.post("/created", status_code=201)
    async def created() -> AsyncIterator[dict[str, str]]:
        yield {"m": "created"}

    def accept(response: Response) -> None:
        # Before the stream starts: what the generator itself sets comes too late.
        response.status_code = 202
        response.headers["x-extra"] = "yes"

    @app.post("/accepted", status_code=201, dependencies=[Depends(accept)])
    async def accepted() -> AsyncIterator[dict[str, str]]:
        yield {"m": "accepted"}

    async with TestClient(app) as client:
        first = await client.post("/created")
        second = await client.post("/accepted")
    assert (first.status_code, first.text) == (201, '{"m":"created"}\n')
    assert (second.status_code, second.headers["x-extra"]) == (202, "yes")


async def test_a_head_request_never_runs_the_generator() -> None:
    app = TrioAPI()
    ran: list[str] = []

    @app.get("/items")
    async def items() -> AsyncIterator[int]:
        ran.append("started")
        yield 1

    async with TestClient(app) as client:
        response = await client.head("/items")
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"] == "application/jsonl"
    assert ran == []


async def test_a_streaming_response_class_gets_the_items_as_they_are() -> None:
    app = TrioAPI()

    class PNGStream(StreamingResponse):
        media_type = "image/png"

    @app.get("/image", response_class=PNGStream)
    def image() -> Iterator[bytes]:
        yield b"\x89PNG"
        yield b"rest"

    @app.get("/story", response_class=StreamingResponse)
    async def story() -> AsyncIterator[str]:
        yield "once "
        yield "upon"

    async with TestClient(app) as client:
        image_response = await client.get("/image")
        story_response = await client.get("/story")
    assert image_response.headers["content-type"] == "image/png"
    assert image_response.content == b"\x89PNGrest"
    assert story_response.text == "once upon"


def test_a_generator_whose_response_class_cannot_stream_is_refused() -> None:
    app = TrioAPI()

    async def page() -> AsyncIterator[str]:
        yield "<p>"

    with pytest.raises(TypeError, match="PlainTextResponse cannot stream"):
        app.get("/page", response_class=PlainTextResponse)(page)


def test_the_sync_test_client_streams_generators_of_an_included_router() -> None:
    router = APIRouter()

    @router.get("/events", response_class=EventSourceResponse)
    def events() -> Iterator[dict[str, int]]:
        yield {"n": 1}

    @router.get("/lines")
    async def lines() -> AsyncIterator[dict[str, int]]:
        yield {"n": 2}

    app = TrioAPI()
    app.include_router(router, prefix="/api")
    with SyncClient(app) as client:
        assert client.get("/api/events").text == 'data: {"n":1}\n\n'
        assert client.get("/api/lines").text == '{"n":2}\n'


# --- background tasks and the end of a stream ------------------------------------------


async def test_background_tasks_of_a_stream_start_only_after_its_last_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    log: list[tuple[Any, ...]] = []

    async def task() -> None:
        log.append(("task", now()))

    @app.get("/items")
    async def items(tasks: BackgroundTasks) -> AsyncIterator[int]:
        tasks.add_task(task)
        yield 1
        await trio.sleep(5)
        yield 2

    async with TestClient(SendLog(app, log)) as client:
        response = await client.get("/items")
    assert response.text == "1\n2\n"
    assert log == [("body", True, 0), ("body", True, 5), ("body", False, 5), ("task", 5)]


async def test_tasks_added_by_a_sync_generator_while_streaming_run_after_it() -> None:
    app = TrioAPI()
    log: list[tuple[Any, ...]] = []

    @app.get("/items")
    def items(tasks: BackgroundTasks) -> Iterator[int]:
        yield 1
        tasks.add_task(log.append, ("task",))
        yield 2

    async with TestClient(SendLog(app, log)) as client:
        await client.get("/items")
    assert [entry[:2] for entry in log] == [
        ("body", True),
        ("body", True),
        ("body", False),
        ("task",),
    ]


async def test_a_stream_that_fails_is_incomplete_and_its_tasks_are_skipped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()
    ran: list[str] = []

    @app.get("/items")
    async def items(tasks: BackgroundTasks) -> AsyncIterator[str]:
        tasks.add_task(ran.append, "ran")
        yield "first"
        raise ValueError("the source broke")

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        with pytest.raises(ServerDisconnected) as disconnected:
            await conn.request("GET", "/items")
        report = await server.shutdown()
    assert disconnected.value.status == 200
    assert disconnected.value.received == b'"first"\n'
    assert ran == []
    assert report is not None
    assert report.skipped == 1
    assert "the source broke" in caplog.text


# --- a client that leaves -------------------------------------------------------------------


async def test_a_client_leaving_mid_stream_stops_the_generator_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    closed: list[float] = []
    ran: list[str] = []

    @app.get("/feed")
    async def feed(tasks: BackgroundTasks) -> AsyncIterator[dict[str, int]]:
        tasks.add_task(ran.append, "ran")
        n = 0
        try:
            while True:
                yield {"n": n}
                n += 1
                await trio.sleep(1)
        finally:
            closed.append(now())

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(b"GET /feed HTTP/1.1\r\nhost: t\r\n\r\n")
        received: list[tuple[float, bytes]] = []
        await read_until(conn, b'{"n":2}', received)
        assert now() == 2
        await conn.aclose()
        await trio.sleep(60)
        report = await server.shutdown()
    assert closed == [2]
    assert ran == []
    assert report is not None
    assert report.skipped == 1


async def test_a_client_leaving_an_event_stream_is_noticed_while_it_is_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    closed: list[float] = []

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[dict[str, int]]:
        try:
            yield {"n": 1}
            await trio.sleep_forever()
            yield {"n": 2}  # pragma: no cover
        finally:
            closed.append(now())

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        received: list[tuple[float, bytes]] = []
        await read_until(conn, b"data: ", received)
        await trio.sleep(7)
        await conn.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert closed == [7]
        await server.shutdown()


async def test_a_connection_broken_while_a_stream_is_idle_is_found_by_the_next_ping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI()
    closed: list[float] = []

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[int]:
        try:
            yield 1
            await trio.sleep_forever()
        finally:
            closed.append(now())

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        received: list[tuple[float, bytes]] = []
        await read_until(conn, b"data: 1", received)
        await trio.sleep(3)
        # The peer is gone without a close the server could read (a reset):
        # only a write can tell, and the idle stream writes its ping at 15 s.
        await conn._stream.receive_stream.aclose()
        await trio.sleep(30)
        await server.shutdown()
    assert closed == [15]


def test_a_sync_generator_is_closed_when_its_client_leaves() -> None:
    closed = threading.Event()

    async def main() -> None:
        app = TrioAPI()
        token = trio.lowlevel.current_trio_token()
        leave = trio.Event()

        @app.get("/feed")
        def feed() -> Iterator[int]:
            try:
                n = 0
                while True:
                    if n == 3:
                        trio.from_thread.run_sync(leave.set, trio_token=token)
                    yield n
                    n += 1
            finally:
                closed.set()

        async with InMemoryServer(app) as server:
            conn = await server.connect(buffered=False)
            await conn.send_bytes(b"GET /feed HTTP/1.1\r\nhost: t\r\n\r\n")
            async with trio.open_nursery() as nursery:
                # A slow reader: the server's writes complete as the client reads.
                async def read() -> None:
                    while await conn.receive_some():
                        pass

                nursery.start_soon(read)
                await leave.wait()
                nursery.cancel_scope.cancel()
            await conn.aclose()
            with trio.fail_after(30):  # a guard against a hang, not a synchronisation
                while not closed.is_set():
                    await trio.sleep(0.01)
            await server.shutdown()

    trio.run(main)
    assert closed.is_set()


# --- server-sent events -------------------------------------------------------------------


async def test_event_streams_format_events_and_items() -> None:
    app = TrioAPI()

    @app.post("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[Item]:
        yield Item("plumbus")
        yield ServerSentEvent(data="hello", event="greeting", id="1")
        yield ServerSentEvent(data={"k": "v"}, retry=5000)
        yield ServerSentEvent(comment="just a comment")
        yield ServerSentEvent(raw_data="<b>raw</b>", event="html")

    async with TestClient(app) as client:
        response = await client.post("/events")
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text == (
        'data: {"name":"plumbus","price":1.0}\n\n'
        'event: greeting\ndata: "hello"\nid: 1\n\n'
        'data: {"k": "v"}\nretry: 5000\n\n'
        ": just a comment\n\n"
        "event: html\ndata: <b>raw</b>\n\n"
    )


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (None, [(0, 'data: {"n":1}'), (15, "ping"), (30, "ping"), (35, 'data: {"n":2}')]),
        (
            10,
            [(0, 'data: {"n":1}'), (10, "ping"), (20, "ping"), (30, "ping"), (35, 'data: {"n":2}')],
        ),
    ],
)
async def test_an_idle_event_stream_gets_a_ping_every_interval(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    interval: float | None,
    expected: list[tuple[float, str]],
) -> None:
    if interval is not None:
        monkeypatch.setattr(trioapi.routing, "_PING_INTERVAL", interval)
    app = TrioAPI()

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[dict[str, int]]:
        yield {"n": 1}
        await trio.sleep(35)
        yield {"n": 2}

    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        received: list[tuple[float, bytes]] = []
        await read_until(conn, b"0\r\n\r\n", received)
        await server.shutdown()
    assert events_of(received) == expected


async def test_a_busy_event_stream_gets_no_ping(autojump_clock: trio.testing.MockClock) -> None:
    app = TrioAPI()

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[int]:
        for n in range(3):
            await trio.sleep(14)
            yield n

    async with TestClient(app) as client:
        response = await client.get("/events")
    assert response.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert now() == 42


async def test_an_event_source_response_returned_directly_sends_its_content() -> None:
    app = TrioAPI()

    @app.get("/events")
    async def events() -> EventSourceResponse:
        async def body() -> AsyncIterator[str]:
            yield "data: one\n\n"

        return EventSourceResponse(body(), headers={"cache-control": "private"})

    async with TestClient(app) as client:
        response = await client.get("/events")
    assert response.text == "data: one\n\n"
    assert response.headers["cache-control"] == "private"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event": "a\nb"}, "SSE 'event' must be a single line"),
        ({"id": "a\rb"}, "SSE 'id' must be a single line"),
        ({"id": "a\0b"}, "null characters"),
        ({"retry": -1}, ">= 0"),
        ({"retry": 1.5}, "whole number"),
        ({"data": "x", "raw_data": "y"}, "Cannot set both"),
    ],
)
def test_a_server_sent_event_refuses_what_the_wire_format_cannot_carry(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ServerSentEvent(**fields)


def test_a_server_sent_event_takes_a_whole_float_retry() -> None:
    assert ServerSentEvent(retry=5.0).retry == 5


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        ("Hello\n", b"data: Hello\ndata: \n\n"),
        ("a\r\nb\rc", b"data: a\ndata: b\ndata: c\n\n"),
        ("A\u2028B", "data: A\u2028B\n\n".encode()),
        ("", b"data: \n\n"),
    ],
)
def test_format_sse_event_splits_data_on_sse_line_ends_only(data: str, wire: bytes) -> None:
    assert format_sse_event(data_str=data) == wire


def test_format_sse_event_orders_the_fields() -> None:
    assert format_sse_event(comment="c\nd", event="e", data_str="x", id="7", retry=3) == (
        b": c\n: d\nevent: e\ndata: x\nid: 7\nretry: 3\n\n"
    )


# --- StreamingResponse --------------------------------------------------------------------


async def test_streaming_response_takes_sync_iterators_in_threads_and_async_ones() -> None:
    app = TrioAPI()
    threads: list[int] = []

    def numbers() -> Iterator[str]:
        for n in range(2):
            threads.append(threading.get_ident())
            yield str(n)

    async def letters() -> AsyncIterator[bytes]:
        yield b"a"
        yield b""
        yield b"b"

    @app.get("/sync")
    async def sync_source() -> StreamingResponse:
        return StreamingResponse(content=numbers(), media_type="text/plain")

    @app.get("/async")
    async def async_source() -> StreamingResponse:
        return StreamingResponse(letters())

    async with TestClient(app) as client:
        assert (await client.get("/sync")).text == "01"
        assert (await client.get("/async")).content == b"ab"
    assert len(threads) == 2
    assert threading.get_ident() not in threads


async def test_a_chunk_that_is_not_bytes_or_str_is_a_clear_error() -> None:
    app = TrioAPI()

    @app.get("/bad")
    async def bad() -> StreamingResponse:
        async def body() -> AsyncIterator[Any]:
            yield {"not": "bytes"}

        return StreamingResponse(body())

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(TypeError, match="streams bytes or str chunks, not dict"):
            await client.get("/bad")


# --- FileResponse -------------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_bytes(b"0123456789abcdefghij")  # 20 bytes
    return path


def file_app(path: Path, **options: Any) -> TrioAPI:
    app = TrioAPI()

    @app.get("/file")
    @app.post("/file")
    async def file() -> FileResponse:
        return FileResponse(path, **options)

    return app


async def test_a_file_is_sent_with_its_validators(data_file: Path) -> None:
    async with TestClient(file_app(data_file)) as client:
        response = await client.get("/file")
        head = await client.head("/file")
    stat = data_file.stat()
    assert response.content == b"0123456789abcdefghij"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "20"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == email.utils.formatdate(stat.st_mtime, usegmt=True)
    assert response.headers["etag"].startswith('"')
    assert len(response.headers["etag"]) == 34
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "20")


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=0-4", b"01234", "bytes 0-4/20"),
        ("bytes=15-", b"fghij", "bytes 15-19/20"),
        ("bytes=-3", b"hij", "bytes 17-19/20"),
        ("bytes=-50", b"0123456789abcdefghij", "bytes 0-19/20"),
        ("bytes=18-1000", b"ij", "bytes 18-19/20"),
        ("BYTES = 2-3", b"23", "bytes 2-3/20"),
        ("bytes=0-4,2-8", b"012345678", "bytes 0-8/20"),
        ("bytes=0-1,2-3", b"0123", "bytes 0-3/20"),
        ("bytes=abc,3-3", b"3", "bytes 3-3/20"),
    ],
)
async def test_one_range_is_a_206_with_its_content_range(
    data_file: Path, header: str, body: bytes, content_range: str
) -> None:
    async with TestClient(file_app(data_file)) as client:
        response = await client.get("/file", headers={"range": header})
    assert response.status_code == 206
    assert response.content == body
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(body))


async def test_several_ranges_are_multipart_byteranges(data_file: Path) -> None:
    async with TestClient(file_app(data_file)) as client:
        response = await client.get("/file", headers={"range": "bytes=12-13, 0-2,5-5"})
    assert response.status_code == 206
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    assert response.headers["content-length"] == str(len(response.content))
    message = email.message_from_bytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + response.content,
        policy=email.policy.HTTP,
    )
    parts = [
        (part["content-range"], part.get_content_type(), part.get_payload(decode=True))
        for part in message.iter_parts()
    ]
    assert parts == [
        ("bytes 0-2/20", "text/plain", b"012"),
        ("bytes 5-5/20", "text/plain", b"5"),
        ("bytes 12-13/20", "text/plain", b"cd"),
    ]


async def test_a_range_across_chunks_reads_exactly_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    content = bytes(range(256)) * 40
    path.write_bytes(content)

    class SmallChunks(FileResponse):
        chunk_size = 7

    app = TrioAPI()

    @app.get("/file")
    async def file() -> FileResponse:
        return SmallChunks(path)

    async with TestClient(app) as client:
        whole = await client.get("/file")
        part = await client.get("/file", headers={"range": "bytes=3-5000"})
        parts = await client.get("/file", headers={"range": "bytes=0-9,100-120"})
    assert whole.content == content
    assert part.content == content[3:5001]
    assert content[0:10] in parts.content
    assert content[100:121] in parts.content


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        ("bytes=20-30", 416, b""),
        ("bytes=5-2", 400, b"Range header: start must be less than end"),
        ("items=0-1", 400, b"Only support bytes range"),
        ("bytes 0-1", 400, b"Malformed range header."),
        ("bytes=-,x-y", 400, b"Range header: range must be requested"),
    ],
)
async def test_a_range_that_cannot_be_served_is_refused(
    data_file: Path, header: str, status: int, body: bytes
) -> None:
    async with TestClient(file_app(data_file)) as client:
        response = await client.get("/file", headers={"range": header})
    assert (response.status_code, response.content) == (status, body)
    if status == 416:
        assert response.headers["content-range"] == "bytes */20"


async def test_any_range_of_an_empty_file_is_not_satisfiable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    async with TestClient(file_app(empty)) as client:
        whole = await client.get("/file")
        ranged = await client.get("/file", headers={"range": "bytes=0-"})
    assert (whole.status_code, whole.content, whole.headers["content-length"]) == (200, b"", "0")
    assert (ranged.status_code, ranged.headers["content-range"]) == (416, "bytes */0")


async def test_if_range_keeps_the_range_only_while_the_file_is_unchanged(data_file: Path) -> None:
    async with TestClient(file_app(data_file)) as client:
        plain = await client.get("/file")
        etag, modified = plain.headers["etag"], plain.headers["last-modified"]
        results = [
            (await client.get("/file", headers={"range": "bytes=0-1", "if-range": value}))
            for value in (etag, modified, '"other"', "W/" + etag)
        ]
    assert [(r.status_code, r.content[:3]) for r in results] == [
        (206, b"01"),
        (206, b"01"),
        (200, b"012"),
        (200, b"012"),
    ]


async def test_ranges_apply_to_get_and_head_answered_200_only(data_file: Path) -> None:
    app = TrioAPI()

    @app.get("/missing")
    async def missing() -> FileResponse:
        return FileResponse(data_file, status_code=404)

    @app.post("/file")
    async def post() -> FileResponse:
        return FileResponse(data_file)

    @app.get("/file")
    async def get() -> FileResponse:
        return FileResponse(data_file)

    async with TestClient(app) as client:
        not_found = await client.get("/missing", headers={"range": "bytes=0-1"})
        posted = await client.post("/file", headers={"range": "bytes=0-1"})
        head = await client.head("/file", headers={"range": "bytes=0-1"})
    assert (not_found.status_code, len(not_found.content)) == (404, 20)
    assert (posted.status_code, len(posted.content)) == (200, 20)
    assert (head.status_code, head.content) == (206, b"")
    assert head.headers["content-range"] == "bytes 0-1/20"


async def test_too_many_ranges_get_the_whole_file(data_file: Path) -> None:
    header = "bytes=" + ",".join(f"{n}-{n}" for n in range(101))
    async with TestClient(file_app(data_file)) as client:
        response = await client.get("/file", headers={"range": header})
    assert (response.status_code, len(response.content)) == (200, 20)


@pytest.mark.parametrize(
    ("filename", "kind", "header"),
    [
        ("report.pdf", "attachment", 'attachment; filename="report.pdf"'),
        ("my report.pdf", "attachment", "attachment; filename*=utf-8''my%20report.pdf"),
        ("résumé.txt", "inline", "inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt"),
        ('a"b.txt', "attachment", "attachment; filename*=utf-8''a%22b.txt"),
    ],
)
async def test_a_download_name_is_in_content_disposition(
    data_file: Path, filename: str, kind: str, header: str
) -> None:
    app = file_app(data_file, filename=filename, content_disposition_type=kind)
    async with TestClient(app) as client:
        response = await client.get("/file")
    assert response.headers["content-disposition"] == header


async def test_the_type_is_guessed_from_the_download_name(data_file: Path) -> None:
    async with TestClient(file_app(data_file, filename="x.json")) as client:
        response = await client.get("/file")
    assert response.headers["content-type"] == "application/json"


def test_a_missing_file_is_a_500_and_the_error_goes_on(tmp_path: Path) -> None:
    app = file_app(tmp_path / "nope.txt")
    with pytest.raises(RuntimeError, match="does not exist"):
        SyncClient(app).get("/file")
    response = SyncClient(app, raise_server_exceptions=False).get("/file")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


def test_a_path_returned_with_response_class_file_response_is_sent(data_file: Path) -> None:
    app = TrioAPI()

    @app.get("/", response_class=FileResponse)
    async def main() -> str:
        return str(data_file)

    assert SyncClient(app).get("/").content == b"0123456789abcdefghij"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 1, [(0, 1)]),
        ("bytes=, 1-2", 5, [(1, 3)]),
        ("bytes=3-,0-1", 5, [(0, 2), (3, 5)]),
        ("bytes=0-2,1-4,8-9", 10, [(0, 5), (8, 10)]),
        ("bytes=0-0,1-1", 10, [(0, 2)]),
    ],
)
def test_parse_ranges(header: str, size: int, expected: list[tuple[int, int]]) -> None:
    assert parse_ranges(header, size) == expected


def test_parse_ranges_says_why_not() -> None:
    with pytest.raises(RangeError) as error:
        parse_ranges("bytes=-0", 10)  # an empty suffix starts at the end
    assert (error.value.status, error.value.size) == (416, 10)
    assert parse_ranges("bytes=0-1,2-3", 10, max_ranges=1) == []


# --- static files -----------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "style.css").write_text("body { color: green; }")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "secret.txt").write_text("top secret")
    return root


def static_app(site: Path, **options: Any) -> TrioAPI:
    app = TrioAPI()
    app.mount("/static", StaticFiles(directory=site, **options), name="static")
    return app


async def test_static_files_are_served_with_fastapis_errors(site: Path) -> None:
    async with TestClient(static_app(site)) as client:
        found = await client.get("/static/style.css")
        missing = await client.get("/static/nope.css")
        posted = await client.post("/static/style.css")
        head = await client.head("/static/style.css")
        ranged = await client.get("/static/style.css", headers={"range": "bytes=0-3"})
    assert (found.status_code, found.text) == (200, "body { color: green; }")
    assert found.headers["content-type"] == "text/css; charset=utf-8"
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "22")
    assert (ranged.status_code, ranged.text) == (206, "body")


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/docs/../../secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/style.css%00.txt",
        "/static/" + "a" * 5000,
    ],
)
async def test_static_files_refuse_paths_that_leave_the_directory(site: Path, target: str) -> None:
    async with InMemoryServer(static_app(site)) as server:
        conn = await server.connect()
        response = await conn.request("GET", target)
        await server.shutdown()
    assert response.status == 404
    assert b"secret" not in response.body
    assert b"root:" not in response.body


async def test_a_symlink_out_of_the_directory_is_followed_only_when_asked(site: Path) -> None:
    os.symlink(site.parent / "secret.txt", site / "link.txt")
    async with TestClient(static_app(site)) as client:
        refused = await client.get("/static/link.txt")
    async with TestClient(static_app(site, follow_symlink=True)) as client:
        followed = await client.get("/static/link.txt")
    assert refused.status_code == 404
    assert (followed.status_code, followed.text) == (200, "top secret")


async def test_html_mode_serves_index_pages_and_the_404_page(site: Path) -> None:
    async with TestClient(static_app(site, html=True)) as client:
        home = await client.get("/static/")
        docs = await client.get("/static/docs/")
        unslashed = await client.get("/static/docs?x=1")
        without_page = await client.get("/static/nope")
        (site / "404.html").write_text("<h1>lost</h1>")
        with_page = await client.get("/static/nope")
    assert (home.status_code, home.text) == (200, "<h1>home</h1>")
    assert (docs.status_code, docs.text) == (200, "<h1>docs</h1>")
    assert (unslashed.status_code, unslashed.headers["location"]) == (
        307,
        "http://testserver/static/docs/?x=1",
    )
    assert without_page.status_code == 404
    assert (with_page.status_code, with_page.text) == (404, "<h1>lost</h1>")


async def test_a_directory_is_a_404_without_html_mode(site: Path) -> None:
    async with TestClient(static_app(site)) as client:
        response = await client.get("/static/docs/")
    assert response.status_code == 404


async def test_unchanged_static_files_are_304(site: Path) -> None:
    async with TestClient(static_app(site)) as client:
        first = await client.get("/static/style.css")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        by_tag = await client.get("/static/style.css", headers={"if-none-match": f'"x", {etag}'})
        by_weak_tag = await client.get("/static/style.css", headers={"if-none-match": "W/" + etag})
        by_star = await client.get("/static/style.css", headers={"if-none-match": "*"})
        by_date = await client.get("/static/style.css", headers={"if-modified-since": modified})
        changed = await client.get("/static/style.css", headers={"if-none-match": '"other"'})
        old = await client.get(
            "/static/style.css", headers={"if-modified-since": "Mon, 01 Jan 1990 00:00:00 GMT"}
        )
    for response in (by_tag, by_weak_tag, by_star, by_date):
        assert (response.status_code, response.content) == (304, b"")
    assert by_tag.headers["etag"] == etag
    assert "content-length" not in by_tag.headers or by_tag.headers["content-length"] == "0"
    assert (changed.status_code, old.status_code) == (200, 200)


async def test_a_custom_404_handler_answers_missing_static_files(site: Path) -> None:
    app = static_app(site)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse(f"no {request.url.path}", status_code=404)

    async with TestClient(app) as client:
        response = await client.get("/static/gone.css")
    assert (response.status_code, response.text) == (404, "no /static/gone.css")


async def test_static_files_on_their_own_answer_in_plain_text(site: Path) -> None:
    client = TestClient(StaticFiles(directory=site))
    found = await client.get("/style.css")
    missing = await client.get("/nope")
    assert found.text == "body { color: green; }"
    assert (missing.status_code, missing.text) == (404, "Not Found")


def test_static_files_refuse_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=tmp_path / "nope")
    lazy = StaticFiles(directory=tmp_path / "nope", check_dir=False)
    app = TrioAPI()
    app.mount("/s", lazy)
    with pytest.raises(RuntimeError, match="does not exist"):
        SyncClient(app).get("/s/x")


def test_static_files_serve_a_packages_statics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mypkg_statics_test"
    (package / "statics").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "statics" / "app.js").write_text("go()")
    (package / "assets").mkdir()
    (package / "assets" / "logo.svg").write_text("<svg/>")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = TrioAPI()
    app.mount(
        "/s",
        StaticFiles(packages=["mypkg_statics_test", ("mypkg_statics_test", "assets")]),
    )
    client = SyncClient(app)
    assert client.get("/s/app.js").text == "go()"
    assert client.get("/s/logo.svg").text == "<svg/>"


# --- mounts, root_path, url_for -------------------------------------------------------------


def sub_app() -> TrioAPI:
    sub = TrioAPI()

    @sub.get("/")
    async def sub_root(request: Request) -> dict[str, str]:
        return {"root_path": request.scope["root_path"], "url": str(request.url)}

    @sub.get("/items/{item_id}")
    async def read_item(item_id: int, request: Request) -> dict[str, Any]:
        return {"item_id": item_id, "self": str(request.url_for("read_item", item_id=item_id))}

    return sub


async def test_a_mounted_app_gets_its_root_path_and_full_urls() -> None:
    app = TrioAPI()
    app.mount("/sub", sub_app())

    @app.get("/main")
    async def main() -> str:
        return "main"

    async with TestClient(app) as client:
        root = await client.get("/sub/")
        item = await client.get("/sub/items/3")
        bare = await client.get("/sub")
        main_response = await client.get("/main")
        missing = await client.get("/other")
    assert root.json() == {"root_path": "/sub", "url": "http://testserver/sub/"}
    assert item.json() == {"item_id": 3, "self": "http://testserver/sub/items/3"}
    assert (bare.status_code, bare.headers["location"]) == (307, "http://testserver/sub/")
    assert main_response.json() == "main"
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})


def test_a_mounted_app_serves_its_websockets() -> None:
    sub = TrioAPI()

    @sub.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.scope["root_path"])
        await websocket.close()

    app = TrioAPI()
    app.mount("/sub", sub)
    with SyncClient(app).websocket_connect("/sub/ws") as websocket:
        assert websocket.receive_text() == "/sub"


def test_routes_come_before_mounts_and_a_root_mount_catches_the_rest(site: Path) -> None:
    app = TrioAPI()

    @app.get("/api/ping")
    async def ping() -> str:
        return "pong"

    app.mount("/", StaticFiles(directory=site, html=True), name="site")
    client = SyncClient(app)
    assert client.get("/api/ping").json() == "pong"
    assert client.get("/").text == "<h1>home</h1>"
    assert client.get("/style.css").text == "body { color: green; }"
    assert client.get("/api/nope").status_code == 404


def test_a_mount_in_an_included_router_keeps_its_prefix() -> None:
    router = APIRouter()
    router.mount("/mounted", sub_app(), name="mounted")
    app = TrioAPI()
    app.include_router(router, prefix="/nested")
    client = SyncClient(app)
    assert client.get("/nested/mounted/").json()["root_path"] == "/nested/mounted"
    # A named mount's routes are "mount:route" (Starlette's rule).
    assert app.url_path_for("mounted:read_item", item_id=1) == "/nested/mounted/items/1"
    with pytest.raises(NoMatchFound):
        app.url_path_for("read_item", item_id=1)


async def test_a_mount_that_fails_before_answering_is_answered_by_the_app() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise HTTPException(418, "teapot")

    app = TrioAPI()
    app.mount("/broken", broken)
    async with TestClient(app) as client:
        response = await client.get("/broken/x")
    assert (response.status_code, response.json()) == (418, {"detail": "teapot"})


def test_url_path_for_fills_routes_and_mounts(site: Path) -> None:
    app = TrioAPI()

    @app.get("/int/{n:int}")
    async def by_int(n: int) -> None: ...

    @app.get("/float/{x:float}")
    async def by_float(x: float) -> None: ...

    @app.get("/files/{path:path}", name="files")
    async def by_path(path: str) -> None: ...

    app.mount("/static", StaticFiles(directory=site), name="static")
    app.mount("/sub", sub_app())
    assert app.url_path_for("by_int", n=5) == "/int/5"
    assert app.url_path_for("by_float", x=25.5) == "/float/25.5"
    assert app.url_path_for("files", path="a/b.txt") == "/files/a/b.txt"
    assert app.url_path_for("static", path="/style.css") == "/static/style.css"
    assert app.url_path_for("read_item", item_id=7) == "/sub/items/7"
    with pytest.raises(NoMatchFound, match='No route exists for name "by_int" and params "m"'):
        app.url_path_for("by_int", m=5)
    with pytest.raises(NoMatchFound):
        app.url_path_for("nothing")


@pytest.mark.parametrize("root_path", ["", "/api/v1"])
@pytest.mark.parametrize("mount_path", ["", "/subapp"])
def test_url_for_gives_urls_under_the_root_path_and_the_mounts(
    site: Path, root_path: str, mount_path: str
) -> None:
    app = TrioAPI()
    app.mount("/static", StaticFiles(directory=site), name="static")

    @app.get("/items/{id}")
    async def read_item(request: Request, id: str) -> dict[str, str]:
        return {
            "item": request.url_for("read_item", id=id).path,
            "css": str(request.url_for("static", path="/style.css")),
        }

    main = app
    if mount_path:
        main = TrioAPI()
        main.mount(mount_path, app)
    client = SyncClient(main, root_path=root_path, base_url="https://example.com")
    prefix = root_path + mount_path
    response = client.get(f"{prefix}/items/42")
    assert response.json() == {
        "item": f"{prefix}/items/42",
        "css": f"https://example.com{prefix}/static/style.css",
    }
    assert client.get(f"{prefix}/static/style.css").text == "body { color: green; }"


def test_routes_are_found_whether_or_not_the_server_left_the_root_in_the_path() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items(request: Request) -> str:
        return str(request.url)

    client = SyncClient(app, root_path="/api")
    assert client.get("/api/items").json() == "http://testserver/api/items"
    assert client.get("/items").json() == "http://testserver/api/items"


def test_the_apps_root_path_option_sets_the_scopes() -> None:
    app = TrioAPI(root_path="/api/v1")

    @app.get("/app")
    async def read(request: Request) -> str | None:
        return request.scope.get("root_path")

    assert SyncClient(app).get("/app").json() == "/api/v1"


def test_a_redirect_to_the_slashed_path_is_absolute() -> None:
    app = TrioAPI()

    @app.get("/items/")
    async def items() -> list[str]:
        return ["plumbus"]

    client = SyncClient(app, base_url="https://example.com", follow_redirects=False)
    response = client.get("/items?page=2")
    assert (response.status_code, response.headers["location"]) == (
        307,
        "https://example.com/items/?page=2",
    )


def test_json_response_subclasses_stream_json_lines() -> None:
    class Pretty(JSONResponse):
        pass

    app = TrioAPI(default_response_class=Pretty)

    @app.get("/lines")
    async def lines() -> AsyncIterator[int]:
        yield 1

    assert SyncClient(app).get("/lines").headers["content-type"] == "application/jsonl"


async def test_templates_render_with_the_request_and_url_for(tmp_path: Path) -> None:
    pytest.importorskip("jinja2")
    from trioapi.templating import Jinja2Templates

    (tmp_path / "item.html").write_text(
        "<p>{{ id }} at {{ url_for('read_item', id=id) }}</p>", encoding="utf-8"
    )
    templates = Jinja2Templates(directory=str(tmp_path))
    app = TrioAPI()

    @app.get("/items/{id}", response_class=HTMLResponse)
    async def read_item(request: Request, id: str) -> Any:
        return templates.TemplateResponse(request=request, name="item.html", context={"id": id})

    async with TestClient(app) as client:
        response = await client.get("/items/7")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<p>7 at http://testserver/items/7</p>"

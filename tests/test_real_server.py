"""The app behind a real hypercorn server in this process, over 127.0.0.1 sockets.

These cover what only a real transport shows: hypercorn's trio TCPServer
racing its own close against the app's last write (DESIGN.md, fact 8).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

import trioapi
from trioapi import BackgroundTasks, Body, TrioAPI

ATTEMPTS = 30
BIG_UPLOAD = 64 * 1024 * 1024


def upload_then_hang_up(port: int) -> bytes:
    """Announces a 64 MiB body, sends a little of it, reads the answer, closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % BIG_UPLOAD
        )
        try:
            for _ in range(4):
                sock.sendall(b"x" * 65536)
            return sock.recv(64)
        except OSError:
            return b""  # the server already closed: also a clean outcome


def request_then_hang_up(port: int, path: str) -> bytes:
    """Sends one request, reads until the body's last byte, closes at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
        )
        data = b""
        while not data.endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[tuple[trioapi.Server, list[int]]]:
    app = TrioAPI(max_body_size=1024)
    done: list[int] = []

    @app.post("/upload")
    async def upload(data: bytes = Body()) -> dict[str, int]:
        return {"size": len(data)}

    async def record(number: int) -> None:
        done.append(number)

    @app.post("/jobs/{number}")
    async def work(number: int, tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(record, number)
        return {"number": number}

    running = await nursery.start(trioapi.serve, app, "127.0.0.1:0")
    yield running, done
    await running.shutdown()


async def test_early_413_leaves_the_log_clean(
    server: tuple[trioapi.Server, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    running, _ = server
    caplog.set_level(logging.WARNING)
    answers = [
        await trio.to_thread.run_sync(upload_then_hang_up, running.port) for _ in range(ATTEMPTS)
    ]
    assert any(answer.startswith(b"HTTP/1.1 413") for answer in answers)
    assert all(answer.startswith(b"HTTP/1.1 413") or answer == b"" for answer in answers)
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []


async def test_a_client_hanging_up_after_its_2xx_still_gets_its_task_run(
    server: tuple[trioapi.Server, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    running, done = server
    caplog.set_level(logging.WARNING)
    answers = [
        await trio.to_thread.run_sync(request_then_hang_up, running.port, f"/jobs/{number}")
        for number in range(ATTEMPTS)
    ]
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
    await running.app.background.wait_idle()
    assert sorted(done) == list(range(ATTEMPTS))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_transport_race_on_the_final_write_does_not_drop_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What hypercorn does when the client hangs up as the body completes: the
    # write of the final message raises BusyResourceError (its close raced it).
    app = TrioAPI()
    done: list[str] = []

    async def record() -> None:
        done.append("ran")

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(record)
        return {"ok": True}

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            raise trio.BusyResourceError("another task is currently sending data")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/jobs",
        "raw_path": b"/jobs",
        "query_string": b"",
        "headers": [],
    }
    caplog.set_level(logging.INFO)
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert done == ["ran"]  # no lifespan here: the group ran inline after the response
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_embedded_serve_drains_tasks_that_outlive_graceful_timeout(tmp_path: Path) -> None:
    # Real sockets and real time, so the timeouts are scaled down: hypercorn
    # gives requests 0.2 s at shutdown; each task needs 0.6 s.
    from hypercorn.config import Config

    app = TrioAPI(drain_timeout=5)
    finished: list[int] = []

    async def slow(number: int) -> None:
        await trio.sleep(0.6)
        finished.append(number)

    @app.post("/slow/{number}")
    async def add_slow(number: int, tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(slow, number)
        return {"number": number}

    config = Config()
    config.graceful_timeout = 0.2
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                trioapi.serve, app, ["127.0.0.1:0", f"unix:{tmp_path / 'api.sock'}"], config=config
            )
        )
        assert server.urls[0].startswith("http://127.0.0.1:")
        assert any("unix:" in url for url in server.urls)
        answers = [
            await trio.to_thread.run_sync(request_then_hang_up, server.port, f"/slow/{n}")
            for n in range(5)
        ]
        assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
        started = trio.current_time()
        report = await server.shutdown()
        elapsed = trio.current_time() - started
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert report is not None
    assert (report.completed, report.cancelled) == (5, 0)
    assert elapsed > config.graceful_timeout  # the tasks outlived it, and still completed


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_serve_binds_ipv6_loopback() -> None:
    app = TrioAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"family": "ipv6"}

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trioapi.serve, app, "[::1]:0")
        assert server.urls == [f"http://[::1]:{server.port}"]

        def get() -> bytes:
            with socket.create_connection(("::1", server.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return sock.recv(4096)

        assert (await trio.to_thread.run_sync(get)).startswith(b"HTTP/1.1 200")
        await server.shutdown()


def exchange_raw(port: int, data: bytes) -> bytes:
    """Sends raw bytes, reads until the server closes (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except OSError:
            pass
        return answer


async def test_real_server_survives_the_request_that_used_to_stop_hypercorn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An unknown route (early 404) with a broken chunked body: hypercorn's read
    # loop answers 400 while the app's answer closes the stream, and its
    # unguarded TCPServer let the BusyResourceError stop the whole server.
    import hypercorn.trio.run

    from trioapi._server.hypercorn import GuardedTCPServer

    broken = (
        b"POST /no-such-route HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n\r\n5\r\nworld\r\n0\r\n\r\n"
    )
    app = TrioAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    caplog.set_level(logging.WARNING)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(trioapi.serve, app, "127.0.0.1:0")
        assert hypercorn.trio.run.TCPServer is GuardedTCPServer  # installed at startup
        for _ in range(ATTEMPTS):
            await trio.to_thread.run_sync(exchange_raw, server.port, broken)
        ok = await trio.to_thread.run_sync(
            exchange_raw, server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert ok.startswith(b"HTTP/1.1 200")
        await server.shutdown()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

"""The server survives any input: limits, malformed requests, and a raw-bytes fuzz.

Everything except the first test goes through hypercorn's real trio worker
in memory (``trioapi._server.harness``) under pytest-trio's ``autojump_clock``: raw
bytes in, raw bytes out, every timeout at an exact virtual time. For each
input the test records what the client saw (status codes, or a clean close),
checks that nothing was logged at ERROR, and checks that a normal request on
a new connection still works.

The first test starts ``python -m trioapi`` as a subprocess (marked ``e2e``)
to measure the real process's memory while it refuses a 64 MiB body.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config

from trioapi import BackgroundTasks, Body, Request, TrioAPI
from trioapi._http.requests import DEFAULT_BODY_MIN_RATE
from trioapi._http.responses import StreamingResponse
from trioapi._server.cli import build_parser, configure
from trioapi._server.harness import InMemoryServer, default_config
from trioapi._server.serve import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_HEAD_SIZE,
    make_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")
RUNNING_ON = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


def now() -> float:
    return trio.current_time()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


# --- the app every harness test serves -----------------------------------------------------


def make_app() -> TrioAPI:
    """Routes that read every part of a request: path, query, headers, bodies."""
    app = TrioAPI(max_body_size=64 * 1024)

    async def noop(number: int) -> None:
        await trio.sleep(0)

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.get("/text/{value}")
    async def text(value: str) -> dict[str, str]:
        return {"value": value}

    @app.get("/q")
    async def query(x: str, f: float = 0.0) -> dict[str, Any]:
        return {"x": x, "f": f}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/json")
    async def json_echo(data: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return data

    @app.post("/jobs/{number}")
    async def work(number: int, tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(noop, number)
        return {"number": number}

    return app


async def exchange(server: InMemoryServer, raw: bytes, *, eof: bool = True) -> bytes:
    """Sends ``raw`` on a new connection and returns all the server sent until it closed.

    With ``eof`` the client half-closes after sending; without, the server's
    own timeouts must end the connection (bounded here in virtual time).
    """
    async with await server.connect() as conn:
        try:
            await conn.send_bytes(raw)
            if eof:
                await conn.send_eof()
        except trio.BrokenResourceError:
            pass  # the server already answered and closed: read what it sent
        with trio.fail_after(DEFAULT_BODY_TIMEOUT * 4):
            return await conn.receive_until_closed()


async def still_serving(server: InMemoryServer) -> None:
    async with await server.connect() as conn:
        response = await conn.request("GET", "/items/1?q=fine")
    assert (response.status, response.body) == (200, b'{"item_id":1,"q":"fine"}')


async def one_answer(conn: Any) -> bytes:
    """Reads one JSON answer (its body ends with ``}``) from a harness connection."""
    answer = b""
    while not answer.endswith(b"}"):
        with trio.fail_after(5):
            answer += await conn.receive_some()
    return answer


def statuses(raw: bytes) -> list[int]:
    return [int(code) for code in STATUS.findall(raw)]


# --- 1. limits: defaults -------------------------------------------------------------------


def test_serve_and_the_command_line_set_the_documented_limits() -> None:
    app = TrioAPI()
    config = make_config(app, "127.0.0.1:0")
    assert config.h11_max_incomplete_size == DEFAULT_MAX_HEAD_SIZE == 16 * 1024
    assert config.keep_alive_timeout == DEFAULT_KEEP_ALIVE_TIMEOUT == 5
    assert config.read_timeout is None  # see trioapi/_serve.py: it would cut quiet clients
    assert config.backlog == 2048
    assert DEFAULT_BODY_TIMEOUT == 60
    assert app.max_body_size == 16 * 1024 * 1024

    args = build_parser().parse_args(["m:app"])
    assert (args.body_timeout, args.keep_alive_timeout, args.max_head_size) == (None, 5, 16384)
    args = build_parser().parse_args(
        ["m:app", "--max-head-size", "32768", "--keep-alive-timeout", "2", "--body-timeout", "0"]
    )
    config = configure(TrioAPI(), args)
    assert (config.h11_max_incomplete_size, config.keep_alive_timeout) == (32768, 2)
    assert args.body_timeout == 0  # main() passes 0 on as "no body timeout"


def test_the_body_timeout_is_the_apps_and_the_command_line_sets_it() -> None:
    app = TrioAPI()
    assert app.body_timeout == DEFAULT_BODY_TIMEOUT
    configure(app, build_parser().parse_args(["m:app", "--body-timeout", "0"]))
    assert app.body_timeout is None
    configure(app, build_parser().parse_args(["m:app", "--body-timeout", "12"]))
    assert app.body_timeout == 12
    chosen = TrioAPI(body_timeout=120)
    configure(chosen, build_parser().parse_args(["m:app"]))
    assert chosen.body_timeout == 120, "without the flag, the app's own value stands"


def test_the_body_min_rate_is_the_apps_unless_the_command_line_sets_it() -> None:
    app = TrioAPI(body_min_rate=4096)
    configure(app, build_parser().parse_args(["m:app"]))
    assert app.body_min_rate == 4096, "the command line keeps what the app chose"
    configure(app, build_parser().parse_args(["m:app", "--body-min-rate", "100"]))
    assert app.body_min_rate == 100
    configure(app, build_parser().parse_args(["m:app", "--body-min-rate", "0"]))
    assert app.body_min_rate is None
    assert TrioAPI().body_min_rate == 1024


# --- 1. limits: a 64 MiB body against the real command line -----------------------------


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None, status
    return int(match.group(1))


def _upload(port: int, size: int, chunked: bool) -> bytes:
    """POSTs ``size`` bytes of a JSON object, reading the answer while it sends."""
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += (
        b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % size
    )
    block = 1 << 20
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answer = bytearray()

        def read() -> None:
            try:
                while data := sock.recv(65536):
                    answer.extend(data)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(head)
            for index in range(size // block):
                piece = (b'{"a":"' + b"x" * (block - 6)) if index == 0 else b"x" * block
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        except OSError:
            pass  # the server answered early and closed: expected
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            reader.join(10)
        assert not reader.is_alive()
        return bytes(answer)


@contextlib.contextmanager
def command_line(tmp_path: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m trioapi tests.load_app:app`` on a free port; SIGTERM and exit 0 after.

    Yields the process and its port; the server's log is ``tmp_path / "stderr.txt"``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIOAPI_")}
    env |= {"PYTHONPATH": str(REPO_ROOT), "LOAD_OUT": str(tmp_path / "out.txt")}
    stderr_path = tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "trioapi", "tests.load_app:app", "--bind", "127.0.0.1:0"]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, *options],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 20
        while not (match := RUNNING_ON.search(stderr_path.read_text())):
            assert process.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield process, int(match.group(1))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log = stderr_path.read_text()
    assert "[ERROR]" not in log, log
    assert "Traceback" not in log, log


@pytest.mark.e2e
def test_the_command_line_refuses_a_64_mib_body_with_413_without_growing(
    tmp_path: Path,
) -> None:
    with command_line(tmp_path) as (process, port):
        size = 64 * 1024 * 1024
        before = _rss_kib(process.pid)
        declared = _upload(port, size, chunked=False)
        after_declared = _rss_kib(process.pid)
        chunked = _upload(port, size, chunked=True)
        after_chunked = _rss_kib(process.pid)
        health = _upload_health(port)
    print(
        f"RSS {before} KiB; after the declared 64 MiB: +{after_declared - before} KiB; "
        f"after the chunked one: +{after_chunked - before} KiB"
    )
    assert declared.startswith(b"HTTP/1.1 413 "), declared[:200]
    assert chunked.startswith(b"HTTP/1.1 413 "), chunked[:200]
    assert b"larger than this endpoint accepts (16777216 bytes)" in declared
    # A declared length is refused before reading: no growth to speak of. A
    # chunked body is read up to the cap (16 MiB), never to 64 MiB.
    assert after_declared - before < 4 * 1024
    assert after_chunked - before < 24 * 1024
    assert health.startswith(b"HTTP/1.1 200 ")


def _until_closed(port: int, raw: bytes) -> bytes:
    """Sends ``raw`` and returns all the server sent until it closed (10 s bound)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while data := sock.recv(65536):
            answer += data
        return answer


@pytest.mark.e2e
def test_the_command_line_refuses_smuggling_shapes_and_never_invites_a_refused_upload(
    tmp_path: Path,
) -> None:
    cl_te = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    old_te = b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    expect = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 16777217\r\nExpect: 100-continue\r\n\r\n"
    )
    with command_line(tmp_path) as (_, port):
        smuggled = _until_closed(port, cl_te)
        http10 = _until_closed(port, old_te)
        refused = _until_closed(port, expect)  # no body sent: the client waits
        health = _upload_health(port)
    # Before: 200 for the POST, then 200 for the GET smuggled after it; 200
    # for chunked HTTP/1.0; "100 Continue", then 413.
    assert statuses(smuggled) == [400], smuggled
    assert b"both Content-Length and Transfer-Encoding" in smuggled
    assert statuses(http10) == [400], http10
    assert statuses(refused) == [413], refused
    assert health.startswith(b"HTTP/1.1 200 ")


def _hwm_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None, status
    return int(match.group(1))


@pytest.mark.e2e
def test_the_command_line_refuses_a_json_body_that_would_take_too_much_memory(
    tmp_path: Path,
) -> None:
    # The finding: 15 MB of [{},{},...] raised peak RSS by 324 to 387 MB.
    body = b'{"items":[' + b",".join([b"{}"] * 5_000_000) + b"]}"
    head = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    with command_line(tmp_path) as (process, port):
        _upload_health(port)
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # the peak starts again here
        before = _rss_kib(process.pid)
        answer = _until_closed(port, head + body)
        growth = _hwm_kib(process.pid) - before
        health = _upload_health(port)
    print(f"peak RSS growth for the 15 MB body: {growth} KiB")
    assert statuses(answer) == [413], answer[:300]
    assert b"the JSON body would take about 500.7 MiB of memory to decode" in answer
    assert b"(48.0 MiB, max_json_memory)" in answer
    # The body itself is read (it is under the 16 MiB cap), never decoded.
    assert growth < 48 * 1024, growth
    assert health.startswith(b"HTTP/1.1 200 ")


@pytest.mark.e2e
def test_the_command_line_cuts_an_upload_trickling_below_the_minimum_rate(
    tmp_path: Path,
) -> None:
    # The finding: one byte a second held a connection as long as the client
    # liked. Here 20 bytes/s against --body-min-rate 200 after a 1 s allowance.
    head = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    options = ("--body-timeout", "1", "--body-min-rate", "200")
    with command_line(tmp_path, *options) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head)
            answer = b""
            for _ in range(400):  # the pace of the trickle, not a synchronisation: 20 s at most
                try:
                    sock.sendall(b" ")
                except OSError:
                    break  # the server answered and closed
                time.sleep(0.05)
                sock.setblocking(False)
                try:
                    answer += sock.recv(65536)
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
                if answer:
                    break
            with contextlib.suppress(OSError):
                while data := sock.recv(65536):
                    answer += data
        health = _upload_health(port)
    assert statuses(answer) == [408], answer
    assert b"the request body arrived slower than 200 bytes/s (after the first 1 s)" in answer
    assert health.startswith(b"HTTP/1.1 200 ")


def _upload_health(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
        return answer


# --- 1. limits: slow clients, through hypercorn ----------------------------------------


async def test_headers_sent_a_byte_at_a_time_are_cut_at_the_keep_alive_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    async with InMemoryServer(app) as server:
        async with await server.connect() as conn:
            head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
            cut_at = None
            for byte in head:
                try:
                    await conn.send_bytes(bytes([byte]))
                except trio.BrokenResourceError:
                    cut_at = now()
                    break
                await trio.sleep(0.1)  # the client's own pace
            assert await conn.receive_until_closed() == b""
        await still_serving(server)
    # hypercorn's idle timer only stops once a whole head is parsed.
    assert cut_at is not None
    assert 5.0 <= cut_at <= 5.1
    assert errors(caplog) == []


async def test_a_head_over_the_limit_gets_431_even_when_it_arrives_in_pieces(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    async with InMemoryServer(app) as server:
        async with await server.connect() as conn:
            # 20 kB of a head still incomplete: answered at once, not at the end.
            await conn.send_bytes(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000)
            await trio.testing.wait_all_tasks_blocked()
            answer = await conn.receive_until_closed()
            assert now() == 0
        # A head that arrives in one read is measured only past 64 KiB (hypercorn
        # reads 64 KiB at a time; h11 measures heads it is still waiting for).
        whole = await exchange(server, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000)
        await still_serving(server)
    assert statuses(answer) == [431]
    assert statuses(whole) == [431]
    assert errors(caplog) == []


def _guarded(app: TrioAPI) -> InMemoryServer:
    """The harness around ``app`` with trioapi's production limits."""
    return InMemoryServer(app, default_config(app))


async def test_a_body_that_stops_arriving_gets_408_at_exactly_the_body_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = make_app()
    app.body_min_rate = None  # silence alone (with the rate, 20 bytes are cut at 60.02 s)
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    @app.post("/upload")
    async def upload(request: Request, tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(note)
        return {"size": len(await request.body())}

    async with _guarded(app) as server:
        async with await server.connect() as conn:
            await conn.send_bytes(
                b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
            )
            await trio.sleep(30)  # the client's pause: shorter than the limit
            await conn.send_bytes(b"x" * 10)
            answer = await conn.receive_until_closed()  # and then nothing more
            closed_at = now()
        await still_serving(server)
        await server.shutdown()
    assert closed_at == 30 + DEFAULT_BODY_TIMEOUT
    assert statuses(answer) == [408]
    assert answer.endswith(b'{"detail":"the request body stopped arriving for 60 s"}')
    assert ran == []
    report = app.background.last_report
    assert report is not None
    assert (report.skipped, report.completed) == (1, 0)
    assert errors(caplog) == []


@pytest.mark.parametrize("reader", ["body", "stream"])
async def test_a_body_trickling_in_below_the_minimum_rate_gets_408_at_its_exact_deadline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, reader: str
) -> None:
    # A byte a second never leaves the connection silent for body_timeout: only
    # the rate rule cuts it, at 10 s + 14 bytes / (4 bytes/s) = 13.5 s.
    app = make_app()
    app.body_timeout, app.body_min_rate = 10, 4

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        if reader == "body":
            return {"size": len(await request.body())}
        return {"size": sum([len(chunk) async for chunk in request.stream()])}

    sent = 0
    answer = b""
    closed_at = -1.0

    async def read(conn: Any, cancel_scope: trio.CancelScope) -> None:
        nonlocal answer, closed_at
        answer = await conn.receive_until_closed()
        closed_at = now()
        cancel_scope.cancel()

    async with _guarded(app) as server:
        async with await server.connect() as conn, trio.open_nursery() as nursery:
            nursery.start_soon(read, conn, nursery.cancel_scope)
            await conn.send_bytes(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\n\r\n")
            with contextlib.suppress(trio.BrokenResourceError):
                for _ in range(99):  # at most the whole body
                    await conn.send_bytes(b"x")
                    sent += 1
                    await trio.sleep(1)
        await still_serving(server)
    assert statuses(answer) == [408], answer
    assert answer.endswith(
        b'{"detail":"the request body arrived slower than 4 bytes/s (after the first 10 s)"}'
    )
    assert closed_at == 13.5
    assert sent == 14
    assert errors(caplog) == []


async def test_only_waits_for_body_bytes_are_timed_not_a_body_already_there(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body timeout costs a cancel scope per wait; a body hypercorn has
    # already queued (the whole request in one read, the common case) is
    # received without one. Counted by wrapping trio's own move_on_at.
    timed: list[float] = []
    move_on_at = trio.move_on_at

    def counting(deadline: float, *, shield: bool = False) -> trio.CancelScope:
        if sys._getframe(1).f_globals["__name__"] == "trioapi._http.requests":
            timed.append(deadline)  # hypercorn's own timeouts are not ours
        return move_on_at(deadline, shield=shield)

    monkeypatch.setattr(trio, "move_on_at", counting)
    app = make_app()
    async with _guarded(app) as server:
        async with await server.connect() as conn:
            at_once = await conn.request("POST", "/echo", body=b"x" * 100)
        assert timed == []
        async with await server.connect() as conn:
            await conn.send_bytes(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n")
            await trio.sleep(3)  # the app waits for the body: a timed wait
            await conn.send_bytes(b"abcd")
            later = await one_answer(conn)
    assert (at_once.status, at_once.body) == (200, b'{"size":100}')
    assert statuses(later) == [200]
    assert later.endswith(b'{"size":4}')
    # From the body's start at 0: a wait for the bytes, and perhaps one for
    # the end of the body (whether hypercorn has queued it yet is scheduling).
    assert timed[0] == DEFAULT_BODY_TIMEOUT
    assert timed[1:] in ([], [DEFAULT_BODY_TIMEOUT + 4 / DEFAULT_BODY_MIN_RATE])


@pytest.mark.parametrize(
    ("rate", "pause"),
    [
        pytest.param(4.0, 0.5, id="2 bytes every 0.5 s keep up with 4 bytes/s"),
        pytest.param(None, 5.0, id="no rate: 2 bytes every 5 s, never silent for 10 s"),
    ],
)
async def test_a_body_that_keeps_up_is_read_whole(
    autojump_clock: trio.testing.MockClock, rate: float | None, pause: float
) -> None:
    app = make_app()
    app.body_timeout, app.body_min_rate = 10, rate
    async with _guarded(app) as server:
        async with await server.connect() as conn:
            await conn.send_bytes(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200\r\n\r\n")
            for _ in range(100):
                await trio.sleep(pause)
                await conn.send_bytes(b"xx")
            answer = await one_answer(conn)
        await still_serving(server)
    assert statuses(answer) == [200], answer
    assert answer.endswith(b'{"size":200}')


async def test_a_slow_endpoint_and_a_long_stream_are_never_cut_by_the_limits(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    @app.post("/slow")
    async def slow(request: Request) -> dict[str, int]:
        body = await request.body()
        await trio.sleep(10 * DEFAULT_BODY_TIMEOUT)  # ten minutes of work
        return {"size": len(body)}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def minutes() -> AsyncIterator[bytes]:
            for minute in range(5):
                await trio.sleep(DEFAULT_BODY_TIMEOUT)
                yield b"%d\n" % minute

        return StreamingResponse(minutes())

    async with _guarded(app) as server, await server.connect() as conn:
        slow_answer = await conn.request("POST", "/slow", body=b"abc")
        assert now() == 10 * DEFAULT_BODY_TIMEOUT
        streamed = await conn.request("GET", "/stream")
        assert now() == 15 * DEFAULT_BODY_TIMEOUT
        assert conn.reusable  # neither answer cost the keep-alive connection
    assert (slow_answer.status, slow_answer.body) == (200, b'{"size":3}')
    assert (streamed.status, streamed.body) == (200, b"0\n1\n2\n3\n4\n")
    assert errors(caplog) == []


async def test_hypercorn_read_timeout_would_tell_a_slow_endpoint_its_client_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Why read_timeout stays off: it also bounds a quiet client waiting for its
    # answer, and the app then hears http.disconnect as if the client had gone.
    heard: list[tuple[str, float]] = []
    Message = MutableMapping[str, Any]

    async def app(scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "http.request"  # the (empty) body
        with trio.move_on_after(100):  # the endpoint's 100 s of work
            message = await receive()
            heard.append((message["type"], now()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    config = default_config(app)
    config.read_timeout = 10
    async with InMemoryServer(app, config) as server, await server.connect() as conn:
        answer = await conn.request("GET", "/slow")
    assert heard == [("http.disconnect", 10)]
    assert (answer.status, answer.body) == (200, b"done")  # delivered, but the app was told


# --- 2. malformed requests -----------------------------------------------------------------

HOST = b"Host: t\r\n"
JSON = b"Content-Type: application/json\r\n"


def _post(target: bytes, body: bytes, headers: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
        target,
        HOST,
        headers,
        len(body),
        body,
    )


# (name, raw bytes, what the client must see): a list of statuses, or [] for a
# clean close without a response (what HTTP/2 or a protocol switch demands).
MALFORMED: list[tuple[str, bytes, list[int]]] = [
    ("bad request line", b"GARBAGE\r\n\r\n", [400]),
    ("HTTP/0.9 style line", b"GET /\r\n", [400]),
    ("request line without version", b"GET /\r\n\r\n", [400]),
    ("invalid method characters", b"G@T / HTTP/1.1\r\n" + HOST + b"\r\n", [400]),
    ("unknown method", b"BREW / HTTP/1.1\r\n" + HOST + b"\r\n", [405]),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", [400]),
    (
        "Content-Length not a number",
        b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: x\r\n\r\n",
        [400],
    ),
    (
        "negative Content-Length",
        b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n",
        [400],
    ),
    (
        "conflicting Content-Length",
        b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        [400],
    ),
    (
        # RFC 9112 6.3: ambiguous framing, a smuggling shape; refused, and closed
        # before the bytes after the chunked end can be read as a request.
        "Content-Length and chunked, a request smuggled after them",
        b"POST /echo HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /items/2 HTTP/1.1\r\n" + HOST + b"\r\n",
        [400],
    ),
    (
        "chunked before Content-Length",
        b"POST /echo HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        [400],
    ),
    (
        "chunked on HTTP/1.0",  # RFC 9112 6.1: faulty framing
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        [400],
    ),
    (
        "unknown transfer coding",
        b"POST /echo HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
        [501],
    ),
    (
        "bad chunk size",
        b"POST /echo HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        [400],
    ),
    (
        "body shorter than Content-Length",
        b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc",
        [400],
    ),
    (
        "declared body over the cap",
        b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 1073741824\r\n\r\n",
        [413],
    ),
    ("bad percent-encoding", b"GET /text/%zz%4 HTTP/1.1\r\n" + HOST + b"\r\n", [200]),
    ("percent-encoding for an int", b"GET /items/%zz HTTP/1.1\r\n" + HOST + b"\r\n", [422]),
    ("non-UTF-8 percent-encoded path", b"GET /text/%ff%fe HTTP/1.1\r\n" + HOST + b"\r\n", [400]),
    ("non-UTF-8 percent-encoded query", b"GET /q?x=%ff%fe HTTP/1.1\r\n" + HOST + b"\r\n", [400]),
    ("raw non-ASCII path", b"GET /text/\xff HTTP/1.1\r\n" + HOST + b"\r\n", [400]),
    ("raw non-ASCII query", b"GET /q?x=\xc3\xa9 HTTP/1.1\r\n" + HOST + b"\r\n", [400]),
    ("NUL in the path", b"GET /\x00 HTTP/1.1\r\n" + HOST + b"\r\n", [400]),
    ("percent-encoded NUL in the path", b"GET /text/%00 HTTP/1.1\r\n" + HOST + b"\r\n", [200]),
    ("NUL in a header", b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n", [400]),
    ("header without colon", b"GET / HTTP/1.1\r\n" + HOST + b"no colon here\r\n\r\n", [400]),
    ("space before the colon", b"GET / HTTP/1.1\r\n" + HOST + b"X-A : b\r\n\r\n", [400]),
    ("huge header", b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", [431]),
    ("huge request line", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", [431]),
    ("invalid JSON", _post(b"/json", b"{abc]", JSON), [422]),
    ("JSON that is not an object", _post(b"/json", b"[1, 2]", JSON), [422]),
    ("lone surrogate in JSON", _post(b"/json", b'{"a": "\\ud800"}', JSON), [200]),
    ("lone surrogate JSON key", _post(b"/json", b'{"\\udc80": 1}', JSON), [200]),
    ("non-UTF-8 JSON", _post(b"/json", b'{"a": "\xff"}', JSON), [422]),
    ("JSON nested too deeply", _post(b"/json", b"[" * 20_000 + b"]" * 20_000, JSON), [422]),
    ("JSON integer of 5000 digits", _post(b"/json", b'{"a": ' + b"9" * 5000 + b"}", JSON), [422]),
    ("JSON NaN", _post(b"/json", b'{"a": NaN}', JSON), [422]),
    ("JSON number too large for a float", _post(b"/json", b'{"a": 1e999}', JSON), [422]),
    ("nan for a float query value", b"GET /q?x=a&f=nan HTTP/1.1\r\n" + HOST + b"\r\n", [422]),
    (
        "int out of any range",
        b"GET /items/" + b"9" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        [422],
    ),
    (
        "pipelined garbage after a valid request",
        b"GET / HTTP/1.1\r\n" + HOST + b"\r\nGARBAGE\r\n\r\n",
        [200, 400],
    ),
    (
        "garbage cookie",
        b"GET / HTTP/1.1\r\n" + HOST + b'Cookie: ;;;=;"\\\x7f\r\n\r\n',
        [200],
    ),
    (
        "websocket upgrade",
        b"GET / HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        [403],
    ),
    ("HTTP/2 preface on a cleartext connection", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [pytest.param(raw, expected, id=name) for name, raw, expected in MALFORMED],
)
async def test_a_malformed_request_gets_a_4xx_or_a_clean_close_and_the_server_serves_on(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    expected: list[int],
) -> None:
    app = make_app()
    async with InMemoryServer(app) as server:
        # A client announcing a huge upload waits for the answer: no half-close.
        answer = await exchange(server, raw, eof=b"1073741824" not in raw)
        await still_serving(server)
    assert statuses(answer) == expected, answer[:300]
    assert errors(caplog) == []


# Found by the fuzz below: the app answers 404 without reading the body while
# hypercorn's read loop, reading on, finds the chunked framing broken.
EARLY_ANSWER_BROKEN_CHUNKS = (
    b"POST /no-such-route HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n\r\n5\r\nworld\r\n0\r\n\r\n"
)
CRASH_ATTEMPTS = 30


async def test_an_early_answer_racing_a_broken_chunked_body_cannot_crash_the_server(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Two tasks write to the connection at once: the app's 404 ends, and
    # hypercorn closes the stream (send_eof, outside its send lock) while its
    # read loop sends a 400 for the broken chunk. The loser of that race gets
    # BusyResourceError; in the read loop nothing catches it, it escapes the
    # connection into the server's nursery, and the whole server stops (seen
    # with python -m trioapi too: it stops listening within a few tries).
    app = make_app()
    seen: Counter[str] = Counter()
    async with InMemoryServer(app) as server:
        for _ in range(CRASH_ATTEMPTS):
            answer = await exchange(server, EARLY_ANSWER_BROKEN_CHUNKS, eof=False)
            seen[" ".join(map(str, statuses(answer))) or "close"] += 1
        await still_serving(server)
    assert set(seen) <= {"404", "400", "404 400", "close"}, seen
    assert errors(caplog) == []


def test_the_malformed_table_covers_every_kind_the_promise_names() -> None:
    names = " ".join(name for name, _, _ in MALFORMED).lower()
    for kind in (
        "request line",
        "content-length",
        "chunked",
        "percent-encod",
        "non-utf-8",
        "json",
        "surrogate",
        "huge header",
        "huge request line",
        "without colon",
        "nul",
        "http/0.9",
        "pipelined garbage",
    ):
        assert kind in names, kind


# --- 100 Continue: sent when the app reads the body, never before a refusal ---------------


def _expecting(target: bytes, length: int) -> bytes:
    return b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (
        target,
        HOST,
        length,
    )


async def test_a_declared_body_over_the_limit_gets_413_without_an_invitation_to_send_it(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()  # 64 KiB for the app

    @app.post("/small", max_body_size=100)
    async def small(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    async with InMemoryServer(app) as server:
        over_app = await exchange(server, _expecting(b"/echo", 64 * 1024 + 1), eof=False)
        over_route = await exchange(server, _expecting(b"/small", 101), eof=False)
        not_found = await exchange(server, _expecting(b"/nowhere", 10), eof=False)
        await still_serving(server)
    # Before, hypercorn sent "100 Continue" as soon as the head arrived.
    assert statuses(over_app) == [413], over_app
    assert statuses(over_route) == [413], over_route
    assert b"(100 bytes)" in over_route
    assert statuses(not_found) == [404], not_found
    assert errors(caplog) == []


async def test_a_body_the_app_reads_gets_100_continue_first_and_keep_alive_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    async with InMemoryServer(app) as server, await server.connect() as conn:
        await conn.send_bytes(_expecting(b"/echo", 5))
        interim = await conn.receive_some()
        await conn.send_bytes(b"hello")
        answer = await one_answer(conn)
        # The same connection serves the next request, which does not wait.
        second = await conn.request("GET", "/items/3")
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    assert statuses(answer) == [200]
    assert answer.endswith(b'{"size":5}')
    assert second.status == 200
    assert errors(caplog) == []


# --- 6. a raw-bytes fuzz ---------------------------------------------------------------------

FUZZ_SEED = 20251124
FUZZ_INPUTS = 300

TEMPLATES = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /items/42?q=abc HTTP/1.1\r\nHost: t\r\nAccept: */*\r\nCookie: a=b; c=d\r\n\r\n",
    b"GET /q?x=hello%20world&f=1.5 HTTP/1.1\r\nHost: t\r\nUser-Agent: fuzz\r\n\r\n",
    b"GET /text/caf%C3%A9 HTTP/1.1\r\nHost: t\r\n\r\n",
    _post(b"/json", b'{"name": "x", "tags": [1, 2.5, null, true], "n": {"k": "v"}}', JSON),
    _post(b"/jobs/7", b""),
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
]

TOKENS = [
    b"\x00",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b" ",
    b"\t",
    b"%",
    b"%ff",
    b"%00",
    b"%C3",
    b"\xff",
    b"\xc3\x28",
    b"{",
    b'"',
    b"\\ud800",
    b"9" * 40,
    b"-1",
    b"nan",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 99999999999\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"HTTP/1.0",
    b"?",
    b"&=&",
    b"/../",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three random edits: flip, insert a token, delete, duplicate, truncate, splice."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(6)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[at:at] = rng.choice(TOKENS)
        elif kind == 2:
            del out[at : at + rng.randint(1, 8)]
        elif kind == 3:
            out[at:at] = out[at : at + rng.randint(1, 16)] * rng.randint(2, 4)
        elif kind == 4:
            del out[at:]
        else:
            out += rng.choice(TEMPLATES) if rng.random() < 0.5 else bytes(rng.choice(TOKENS))
    return bytes(out)


async def test_a_raw_bytes_fuzz_never_gets_a_5xx_or_an_error_log_and_the_server_serves_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(FUZZ_SEED)
    app = make_app()
    outcomes: Counter[str] = Counter()
    bad: dict[str, bytes] = {}
    async with _guarded(app) as server:
        for index in range(FUZZ_INPUTS):
            raw = mutate(rng, rng.choice(TEMPLATES))
            before = len(caplog.records)
            answer = await exchange(server, raw, eof=rng.random() < 0.5)
            codes = statuses(answer)
            for code in codes or ["close"]:
                outcomes[str(code)] += 1
            for code in codes:
                if code >= 500 and code != 501:  # 501: an unknown transfer coding
                    bad.setdefault(f"status {code}", raw)
            for record in caplog.records[before:]:
                if record.levelno >= logging.ERROR:
                    bad.setdefault(f"{record.name}: {record.getMessage()[:120]}", raw)
            if index % 50 == 49:
                await still_serving(server)
        await still_serving(server)
        await server.shutdown()
    print(
        f"fuzz: {FUZZ_INPUTS} inputs (seed {FUZZ_SEED}); outcomes {dict(sorted(outcomes.items()))}"
    )
    report = app.background.last_report
    assert report is not None
    assert report.failed == report.cancelled == report.abandoned == 0
    assert bad == {}, "\n".join(
        f"{problem}\n    after {raw[:200]!r}" for problem, raw in bad.items()
    )


def test_the_fuzz_mutator_is_deterministic_and_varied() -> None:
    first = [mutate(random.Random(1), template) for template in TEMPLATES]
    second = [mutate(random.Random(1), template) for template in TEMPLATES]
    assert first == second
    assert all(a != b for a, b in zip(first, TEMPLATES, strict=True))


def test_hypercorn_config_defaults_this_module_relies_on() -> None:
    # If hypercorn changes these, the documented limits change with them.
    config = Config()
    assert config.h11_max_incomplete_size == 16 * 1024
    assert config.read_timeout is None
    assert config.keep_alive_timeout == 5

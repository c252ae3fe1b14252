"""Out of descriptors, the log says so once per window; ``max_connections`` caps what is open.

Finding 8 of the reliability review: a server out of file descriptors got
trio's ERROR traceback for every accept retry (187 in 20 s) and no way to
cap its connections. The log is tested under ``MockClock`` (exact virtual
times) with a listener that fails as ``accept(2)`` does; the cap with a real
server on 127.0.0.1; both together with ``python -m trioapi`` whose
descriptor limit is lowered (``prlimit``) while it runs.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trioapi
from trioapi import TrioAPI
from trioapi._server.connections import (
    ACCEPT_LOG_WINDOW,
    RECOVERY_QUIET,
    TRIO_ACCEPT_LOGGER,
    AcceptFailureLog,
    _serve_listeners,
    check_max_connections,
    install_accept_log,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNNING_ON = re.compile(r"\[(\d+)\] \[INFO\] Running on http://127\.0\.0\.1:(\d+)")
"""hypercorn's line, from the process that serves: ``[PID] [INFO] Running on ...:PORT``."""


class Timeline(logging.Handler):
    """Records (virtual time, level, message) of what reaches the handlers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((trio.current_time(), record.levelname, record.getMessage()))


@pytest.fixture
def timeline() -> Iterator[Timeline]:
    handler = Timeline()
    loggers = [logging.getLogger("trioapi"), logging.getLogger(TRIO_ACCEPT_LOGGER)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


class FailingListener(trio.abc.Listener[Any]):
    """Fails as ``accept(2)`` does without descriptors during the given virtual windows."""

    def __init__(self, windows: list[tuple[float, float]]) -> None:
        self.windows = windows
        self.accepted = 0

    async def accept(self) -> Any:
        while True:
            await trio.lowlevel.checkpoint()
            now = trio.current_time()
            if any(start <= now < end for start, end in self.windows):
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            upcoming = [start for start, _ in self.windows if start > now]
            if not upcoming:
                await trio.sleep_forever()
            if self.accepted < 1:
                self.accepted += 1
                ours, _theirs = trio.testing.memory_stream_pair()
                return ours
            await trio.sleep_until(min(upcoming))

    async def aclose(self) -> None:
        pass


async def test_a_run_out_of_descriptors_is_one_warning_per_window_then_one_info(
    autojump_clock: trio.testing.MockClock, timeline: Timeline
) -> None:
    log = AcceptFailureLog()
    logging.getLogger(TRIO_ACCEPT_LOGGER).addFilter(log)
    served: list[object] = []

    async def handler(stream: object) -> None:
        served.append(stream)

    try:
        listener = FailingListener([(0.0, 25.0), (100.0, 100.5)])
        with trio.move_on_after(200):
            await _serve_listeners(
                handler,
                [listener],
                handler_nursery=None,
                task_status=trio.TASK_STATUS_IGNORED,
                max_connections=None,
                log=log,
            )
    finally:
        logging.getLogger(TRIO_ACCEPT_LOGGER).removeFilter(log)
    # trio retries every 0.1 s: about 250 failures in the first 25 s; none of
    # its tracebacks reached a handler.
    assert not [line for line in timeline.lines if line[1] == "ERROR"]
    warnings = [(at, text) for at, level, text in timeline.lines if level == "WARNING"]
    infos = [(at, text) for at, level, text in timeline.lines if level == "INFO"]
    assert [round(at) for at, _ in warnings] == [0, 10, 20, 100], warnings
    assert warnings[0][1].startswith(
        "trioapi: accept failed: EMFILE (Too many open files); connections wait in the "
        "backlog until descriptors free up (1 failure in the last 10 s; raise `ulimit -n` "
        "or set --max-connections)"
    )
    counts = [int(re.search(r"\((\d+) failures? in", text)[1]) for _, text in warnings]  # type: ignore[index]
    assert counts[0] == 1, counts
    assert all(99 <= count <= 101 for count in counts[1:3]), counts
    assert counts[3] == 1, "a new streak warns at once"
    # Once accept stops failing, one INFO line RECOVERY_QUIET later, per streak.
    assert len(infos) == 2, infos
    first_end = 25.0 + RECOVERY_QUIET
    assert first_end - 0.11 <= infos[0][0] <= first_end + 0.01, infos
    total = int(re.search(r"\((\d+) failures\)", infos[0][1])[1])  # type: ignore[index]
    assert total >= sum(counts[:3]), infos
    assert 249 <= total <= 251, infos
    assert infos[0][1].startswith("trioapi: accepting connections again: accept failed with EMFILE")
    assert 100.5 + RECOVERY_QUIET - 0.11 <= infos[1][0] <= 100.5 + RECOVERY_QUIET + 0.01
    assert len(served) == 1
    assert ACCEPT_LOG_WINDOW == 10.0


def test_other_records_of_trios_accept_logger_pass_through() -> None:
    log = AcceptFailureLog()

    def record(error: BaseException | None, level: int = logging.ERROR) -> logging.LogRecord:
        info = (type(error), error, None) if error is not None else None
        return logging.LogRecord(TRIO_ACCEPT_LOGGER, level, __file__, 1, "x", (), info)

    assert log.filter(record(OSError(errno.ECONNABORTED, "aborted")))
    assert log.filter(record(ValueError("not an accept failure")))
    assert log.filter(record(None))
    assert not log.filter(record(OSError(errno.EMFILE, "too many")))
    assert not log.filter(record(OSError(errno.ENFILE, "file table")))


def test_max_connections_must_be_a_positive_int_or_none() -> None:
    check_max_connections(None)
    check_max_connections(1)
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        check_max_connections(0)
    with pytest.raises(TypeError, match="must be an int or None"):
        check_max_connections(True)
    with pytest.raises(TypeError, match="must be an int or None"):
        check_max_connections(2.5)  # type: ignore[arg-type]


async def one_answer(stream: trio.abc.Stream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = await stream.receive_some(65536)
        assert chunk, data
        data += chunk
    return data


async def test_max_connections_holds_the_next_connection_in_the_backlog_until_one_closes() -> None:
    install_accept_log()
    app = TrioAPI()
    answered: list[int] = []

    @app.get("/{number}")
    async def number(number: int) -> dict[str, int]:
        answered.append(number)
        return {"number": number}

    request = b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n"
    async with trio.open_nursery() as nursery:
        server: trioapi.Server = await nursery.start(
            functools.partial(trioapi.serve, app, "127.0.0.1:0", max_connections=2)
        )
        first = await trio.open_tcp_stream("127.0.0.1", server.port)
        second = await trio.open_tcp_stream("127.0.0.1", server.port)
        for index, stream in enumerate((first, second), start=1):
            await stream.send_all(request % index)
            assert (await one_answer(stream)).startswith(b"HTTP/1.1 200 ")
        third = await trio.open_tcp_stream("127.0.0.1", server.port)
        await third.send_all(request % 3)
        # Every task waits, and nothing is left to read: the server took
        # the third connection from the backlog, or it never will.
        await trio.testing.wait_all_tasks_blocked()
        assert answered == [1, 2]
        await first.aclose()
        assert (await one_answer(third)).startswith(b"HTTP/1.1 200 ")
        assert answered == [1, 2, 3]
        await second.aclose()
        await third.aclose()
        await server.shutdown()


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Log:
    """A server's stderr, read by a thread, so that waiting for a line has a deadline."""

    def __init__(self, server: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert server.stderr is not None
        threading.Thread(target=self._read, args=(server.stderr,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        with stream:
            for line in stream:
                self._queue.put(line)
        self._queue.put("")  # closed

    def until(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + 60
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            assert line, "the server closed its stderr:\n" + self.text
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in 60 s:\n" + self.text)

    def rest(self) -> str:
        while (line := self._queue.get(timeout=60)) != "":
            self.lines.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


def get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


SERVERS = {
    "trioapi": ["-m", "trioapi", "tests.e2e_app:app", "--bind", "127.0.0.1:0"],
    "trioapi --max-connections 3": [
        *["-m", "trioapi", "tests.e2e_app:app", "--bind", "127.0.0.1:0"],
        *["--max-connections", "3"],
    ],
    # Plain hypercorn: its trio worker serves the app, whose startup installs the log.
    "hypercorn": [
        *["-m", "hypercorn", "--worker-class", "trio"],
        *["--bind", "127.0.0.1:0", "tests.e2e_app:app"],
    ],
}


@pytest.mark.e2e
@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux's prlimit")
@pytest.mark.parametrize("server_name", list(SERVERS))
def test_the_command_line_out_of_descriptors_warns_once_and_recovers(server_name: str) -> None:
    max_connections = 3 if "--max-connections" in server_name else None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIOAPI_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    server = subprocess.Popen(
        [sys.executable, *SERVERS[server_name]],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = Log(server)
    clients: list[socket.socket] = []
    try:
        running = log.until(RUNNING_ON.pattern)
        # The process that serves: hypercorn's worker is a child of the command.
        pid, port = int(running[1]), int(running[2])
        if max_connections is not None:
            log.until("accepting at most 3 connections at once")
        # Room for 4 more descriptors: 4 connections are served, the rest wait.
        room = descriptors(pid) + 4
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (room, room))
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            clients.append(sock)
        served = clients[: max_connections or 4]
        for sock in served:
            assert get(sock, "/").startswith(b"HTTP/1.1 200 "), log.text
        if max_connections is None:
            # Accept fails from here on: one WARNING, not a traceback per retry.
            log.until(r"trioapi: accept failed: EMFILE")
        for sock in served:
            sock.close()
        waiting = clients[len(served) :]
        for sock in waiting[:3]:
            assert get(sock, "/").startswith(b"HTTP/1.1 200 "), log.text
        if server_name == "trioapi":  # (plain hypercorn shows no INFO line of trioapi's)
            log.until(r"INFO.*accepting connections again: accept failed with EMFILE")
    finally:
        for sock in clients:
            sock.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = log.rest()
    assert server.returncode == 0, text
    assert "Traceback" not in text, text
    if max_connections is not None:
        assert "accept failed" not in text, "the cap keeps accept within the descriptors"

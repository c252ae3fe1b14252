"""A real ``redis-server`` for the tests, on a free port of 127.0.0.1.

``redis_server()`` starts the binary in a temporary directory with no
persistence (``--save '' --appendonly no``), waits until it answers ``PING``
and stops it by its pid at the end. It speaks to the server with a raw
socket, so it needs no client library.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Bounds of the wait for the server to answer (it takes ~10 ms here).
_PING_TRIES = 500
_PING_EVERY = 0.01
# A port taken between our probe and the server's bind: try another.
_START_TRIES = 5


def redis_server_binary() -> str | None:
    """The ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM to its pid: redis-server exits at once
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Runs a ``redis-server`` for the block; yields its URL (``redis://127.0.0.1:PORT/0``).

    Raises:
        RuntimeError: There is no ``redis-server`` on PATH, or it did not
            start (the message holds its log).
    """
    binary = redis_server_binary()
    if binary is None:
        msg = "redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)"
        raise RuntimeError(msg)
    with tempfile.TemporaryDirectory(prefix="trioapi-redis-") as directory:
        log = Path(directory) / "redis.log"
        for _ in range(_START_TRIES):
            port = _free_port()
            # No persistence: a test's data dies with the server.
            options = {
                "port": str(port),
                "bind": "127.0.0.1",
                "save": "",
                "appendonly": "no",
                "dir": directory,
                "logfile": str(log),
            }
            arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
            process = subprocess.Popen(
                [binary, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                for _ in range(_PING_TRIES):
                    if process.poll() is not None or _answers_ping(port):
                        break
                    time.sleep(_PING_EVERY)
                if process.poll() is None and _answers_ping(port):
                    yield f"redis://127.0.0.1:{port}/0"
                    return
            finally:
                _stop(process)
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        msg = f"redis-server did not start after {_START_TRIES} tries; its log:\n{text}"
        raise RuntimeError(msg)

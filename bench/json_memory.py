"""Peak memory of one JSON request: what ``max_json_memory`` bounds, against the real server.

    python bench/json_memory.py [--limit-mib 64]

For each body shape, POSTs one body as large as the limit lets through (the
largest whose price, ``trioapi/_http/jsonmem.py``, is under the limit; at
most the 16 MiB byte cap), then a 15 MB body of the same shape (refused when
its price is over the limit), each to a fresh ``python -m trioapi
bench.apps.app_json_memory:app`` (freed memory that an earlier request left
in the heap would hide the next one's peak). Before the request the peak
RSS is reset (``/proc/PID/clear_refs``); after it, the growth of the peak
(``VmHWM`` minus the ``VmRSS`` before) is what that one request cost. Prints
a Markdown table: shape, body size, status, peak growth.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trioapi._http.jsonmem import DEFAULT_MAX_JSON_MEMORY, price  # noqa: E402

MAX_BODY = 16 * 1024 * 1024
RUNNING_ON = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")

# (shape, route, models, one item, or a whole body for a given item count)
Shape = tuple[str, str, bool, Callable[[int], bytes]]


def array(item: bytes) -> Callable[[int], bytes]:
    return lambda count: b"[" + b",".join([item] * count) + b"]"


SHAPES: list[Shape] = [
    ("[{},{},...] as Any", "/any", False, array(b"{}")),
    ("[[],[],...] as Any", "/any", False, array(b"[]")),
    ("[[[]],...] as Any", "/any", False, array(b"[[]]")),
    ("[1.5,...] as Any", "/any", False, array(b"1.5")),
    ('["ab",...] as Any', "/any", False, array(b'"ab"')),
    (
        '{"k0":0,...} as Any',
        "/any",
        False,
        lambda count: b"{" + b",".join(b'"k%d":0' % i for i in range(count)) + b"}",
    ),
    ("records as Any", "/any", False, array(b'{"id":123,"name":"abcdef","price":12.5}')),
    ("one long string", "/any", False, lambda count: b'"' + b"x" * count + b'"'),
    (
        "one long string + emoji",
        "/any",
        False,
        lambda count: b'"' + b"x" * count + "\U0001f600".encode() + b'"',
    ),
    ("[{},...] as list[Empty]", "/empties", True, array(b"{}")),
    ("records as list[Item]", "/items", True, array(b'{"id":123,"name":"abcdef","price":12.5}')),
]


def largest(make: Callable[[int], bytes], models: bool, limit: int) -> bytes:
    """The body with the most items whose price is under ``limit`` and size under the cap."""
    low, high = 1, 1
    while len(make(high)) < MAX_BODY and price(make(high), models) <= limit:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        body = make(middle)
        if len(body) < MAX_BODY and price(body, models) <= limit:
            low = middle
        else:
            high = middle
    return make(low)


def sized(make: Callable[[int], bytes], size: int) -> bytes:
    count = max(1, size // max(1, len(make(2)) - len(make(1))))
    return make(count)


def status_line(port: int, route: str, body: bytes) -> str:
    head = (
        f"POST {route} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        # Refused before the whole body was sent: its answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                answer += data
    return answer.split(b"\r\n", 1)[0].decode()


def memory(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{field}:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


@contextlib.contextmanager
def started() -> Iterator[tuple[int, int]]:
    """A fresh server (its port and PID): one request's peak is not hidden by an earlier one's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIOAPI_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "trioapi", "bench.apps.app_json_memory:app"]
    server = subprocess.Popen(
        [*command, "--bind", "127.0.0.1:0", "--no-access-log"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 30
        log = ""
        while not (match := RUNNING_ON.search(log)):
            assert time.monotonic() < deadline, log
            log += server.stderr.readline()
        # The rest of the log goes on being read, so the server never blocks on it.
        threading.Thread(target=server.stderr.read, daemon=True).start()
        yield int(match.group(1)), server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-mib", type=float, default=DEFAULT_MAX_JSON_MEMORY / 2**20)
    args = parser.parse_args()
    limit = int(args.limit_mib * 2**20)
    print(f"limit {limit / 2**20:.0f} MiB, a fresh server per body\n")
    print("| shape | body | priced at | status | peak RSS growth |")
    print("|---|---|---|---|---|")
    for name, route, models, make in SHAPES:
        for body in (largest(make, models, limit), sized(make, 15_000_000)):
            with started() as (port, pid):
                status_line(port, route, make(2))  # the route's first call, warmed up
                Path(f"/proc/{pid}/clear_refs").write_text("5")
                before = memory(pid, "VmRSS")
                status = status_line(port, route, body)
                growth = memory(pid, "VmHWM") - before
            size = len(body) / 1e6
            cost = price(body, models) / 2**20
            print(
                f"| {name} | {size:.2f} MB | {cost:.0f} MiB | {status[9:]} "
                f"| {growth / 1024:.1f} MiB |"
            )


if __name__ == "__main__":
    main()

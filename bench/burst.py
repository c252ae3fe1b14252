"""Simultaneous connects: how long N clients connecting at once wait, per accept backlog.

``python -m trioapi`` listens with a backlog of 2048 instead of hypercorn's
100: with 100, some of 200 simultaneous connects find the accept queue full,
their SYN is dropped, and they wait about a second for the retry. The e2e
test (``tests/test_e2e.py``) checks the property without a clock: no client
socket retransmitted anything (Linux ``TCP_INFO``). This measures the time,
which depends on the machine:

    python bench/burst.py [--count 200] [--backlog 100 --backlog 2048] [--reps 3]

For each backlog it starts ``python -m trioapi bench.apps.app_trioapi_notask:app``,
opens ``count`` connections at once, each sending ``GET /``, and prints the
time of the last answer and how many connections retransmitted.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
APP = "bench.apps.app_trioapi_notask:app"
TCP_INFO_TOTAL_RETRANS = 100  # offset of tcpi_total_retrans in Linux's struct tcp_info
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _retransmissions(sock: trio.socket.SocketType) -> int:
    if not hasattr(socket, "TCP_INFO"):
        return -1
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_TOTAL_RETRANS + 4)
    return int.from_bytes(info[TCP_INFO_TOTAL_RETRANS:], sys.byteorder)


async def burst(port: int, count: int) -> tuple[float, int]:
    """The time of the last answer, and how many connections retransmitted."""
    last = 0.0
    retransmitted = 0
    start = trio.current_time()

    async def one() -> None:
        nonlocal last, retransmitted
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(REQUEST)
            while await stream.receive_some():
                pass
            retransmitted += _retransmissions(stream.socket) > 0
        last = max(last, trio.current_time() - start)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
    return last, retransmitted


def serve(backlog: int) -> tuple[subprocess.Popen[bytes], int]:
    log = ROOT / "bench" / "results" / f".burst-{os.getpid()}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trioapi",
                APP,
                "--bind",
                "127.0.0.1:0",
                "--backlog",
                str(backlog),
            ],
            cwd=ROOT,
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            log.unlink()
            return process, int(match.group(1))
        time.sleep(0.05)
    process.kill()
    msg = f"the server did not start; its log:\n{log.read_text()}"
    raise SystemExit(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--backlog", type=int, action="append")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    for backlog in args.backlog or [100, 2048]:
        process, port = serve(backlog)
        try:
            for _ in range(args.reps):
                last, retransmitted = trio.run(burst, port, args.count)
                print(
                    f"backlog {backlog:5}: last answer after {last:.3f} s, "
                    f"{retransmitted} of {args.count} connections retransmitted"
                )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    main()

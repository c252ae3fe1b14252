"""Zero loss under load: every accepted task is completed or counted, exactly once.

``python -m trioapi tests.load_app:app`` runs as a subprocess on 127.0.0.1.
A trio client with a bounded number of keep-alive connections sends
``POST /jobs/<id>`` requests; each adds one background task whose outcome
the id decides (see ``tests/load_app.py``): most complete and write
``done <id>``, every tenth fails on purpose after writing ``fail <id>``, and
every 101st sleeps far past the drain deadline, so the drain must cancel it
and name it (``t<id>``) in its report. Then SIGTERM: once after the load,
once while requests are still arriving.

Reconciliation, from three independent records (the client's 2xx answers,
the tasks' output file, the drain report logged on stderr):

- every id answered 2xx ended as its id says: ``done`` in the file, ``fail``
  in the file, or named as cancelled in the report;
- the report's counters equal what the file and the names show: completed ==
  done lines, failed == fail lines, cancelled == names, nothing abandoned or
  skipped, and every task is counted once;
- nothing appears that no client sent, and requests after the signal are
  refused cleanly (connection refused, closed, or 503), never a 5xx otherwise.

Every wait has a deadline; the server is killed by PID if anything is left.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from tests.load_app import OUT_ENV, expected_outcome

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNNING_ON = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
REPORT = re.compile(
    r"background drain finished in ([\d.]+) s: (\d+) completed, (\d+) failed, "
    r"(\d+) cancelled, (\d+) abandoned, (\d+) skipped"
    r"(?:; cancelled: ([^;\n]*))?(?:; abandoned: ([^\n]*))?\n"
)
TASK_FAILED = re.compile(
    r"\[ERROR\] background task 't(\d+)' failed \(POST /jobs/(\d+)\): "
    r"IntentionalFailure\('task (\d+) fails on purpose'\)"
)

REQUESTS = 5000
CONNECTIONS = 16
DRAIN_TIMEOUT = 2.0
GRACEFUL_TIMEOUT = 1.0
SIGNAL_AFTER = 2500
"""In the second test, SIGTERM goes out after this many answers; the clients go on."""
STARTUP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 10.0
LOAD_TIMEOUT = 60.0
EXIT_TIMEOUT = GRACEFUL_TIMEOUT + DRAIN_TIMEOUT + 15.0
POLL_INTERVAL = 0.02


@attrs.define
class Server:
    process: subprocess.Popen[bytes]
    stderr_file: Path
    out_file: Path
    port: int = 0

    @property
    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def output(self) -> Counter[str]:
        if not self.out_file.exists():
            return Counter()
        return Counter(self.out_file.read_text().splitlines())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIOAPI_")}
    env |= {
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        OUT_ENV: str(tmp_path / "tasks.txt"),
    }
    stderr_file = tmp_path / "stderr.txt"
    argv = [
        sys.executable,
        "-m",
        "trioapi",
        "tests.load_app:app",
        "--bind",
        "127.0.0.1:0",
        "--drain-timeout",
        str(DRAIN_TIMEOUT),
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
    ]
    with stderr_file.open("wb") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    running = Server(process, stderr_file, tmp_path / "tasks.txt")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (match := RUNNING_ON.search(running.stderr)):
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{running.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start within {STARTUP_TIMEOUT:g} s")
            time.sleep(POLL_INTERVAL)  # another process's output: bounded polling
        running.port = int(match.group(1))
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


# --- the client ---------------------------------------------------------------------------


@attrs.define
class Load:
    """What the clients saw; ids are the tasks' ids."""

    port: int
    ids: Iterator[int]
    signal_after: int | None = None
    process: subprocess.Popen[bytes] | None = None
    accepted: set[int] = attrs.Factory(set)
    unanswered: set[int] = attrs.Factory(set)
    refused_connects: int = 0
    statuses: Counter[int] = attrs.Factory(Counter)
    signalled_at_answer: int | None = None
    elapsed: float = 0.0

    def answered(self) -> int:
        return sum(self.statuses.values())


class ConnectionGone(Exception):
    """The server closed the connection before the whole answer arrived."""


async def read_answer(stream: trio.SocketStream, buffer: bytearray) -> tuple[int, bytes]:
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            raise ConnectionGone
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    status = int(head[9:12])
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(buffer) < length:
        data = await stream.receive_some(65536)
        if not data:
            raise ConnectionGone
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, body


async def client(load: Load) -> None:
    """One keep-alive connection at a time, requests one after another."""
    stream: trio.SocketStream | None = None
    buffer = bytearray()
    try:
        for task_id in load.ids:
            if stream is None:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", load.port)
                except OSError:
                    load.refused_connects += 1
                    return  # the server stopped listening: shutdown began
                buffer.clear()
            request = b"POST /jobs/%d HTTP/1.1\r\nHost: load\r\nContent-Length: 0\r\n\r\n" % task_id
            try:
                with trio.fail_after(REQUEST_TIMEOUT):
                    await stream.send_all(request)
                    status, body = await read_answer(stream, buffer)
            except (ConnectionGone, trio.BrokenResourceError, OSError):
                load.unanswered.add(task_id)
                await stream.aclose()
                stream = None
                continue
            load.statuses[status] += 1
            if 200 <= status < 300:
                assert body == b'{"id":%d}' % task_id, body
                load.accepted.add(task_id)
            if (
                load.signal_after is not None
                and load.signalled_at_answer is None
                and load.answered() >= load.signal_after
            ):
                assert load.process is not None
                load.signalled_at_answer = load.answered()
                load.process.send_signal(signal.SIGTERM)
    finally:
        if stream is not None:
            await stream.aclose()


async def run_load(load: Load) -> None:
    start = trio.current_time()
    with trio.fail_after(LOAD_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for _ in range(CONNECTIONS):
                nursery.start_soon(client, load)
    load.elapsed = trio.current_time() - start


# --- reconciliation -------------------------------------------------------------------------


@attrs.frozen
class Reconciled:
    completed: int
    failed: int
    cancelled: int
    drain_seconds: float
    unanswered_but_run: int


def reconcile(server: Server, load: Load) -> Reconciled:
    stderr = server.stderr
    reports = REPORT.findall(stderr)
    assert len(reports) == 1, stderr[-3000:]
    seconds, completed, failed, cancelled, abandoned, skipped, cancelled_names, _ = reports[0]
    counts = [int(value) for value in (completed, failed, cancelled, abandoned, skipped)]
    output = server.output()
    assert all(count == 1 for count in output.values()), "a task wrote its line twice"
    done = {int(line.split()[1]) for line in output if line.startswith("done ")}
    fail = {int(line.split()[1]) for line in output if line.startswith("fail ")}
    names = [name for name in cancelled_names.split(", ") if name]
    assert all(name.startswith("t") for name in names), names
    cut = {int(name[1:]) for name in names}
    assert len(cut) == len(names), "a task was cancelled twice"

    # The report's counters are exactly what the file and its names show.
    assert counts == [len(done), len(fail), len(cut), 0, 0]
    assert not done & fail, "a task ended twice"
    assert not done & cut, "a task ended twice"
    assert not fail & cut, "a task ended twice"
    # Each ended the way its id says it would.
    assert all(expected_outcome(task_id) == "done" for task_id in done)
    assert all(expected_outcome(task_id) == "fail" for task_id in fail)
    assert all(expected_outcome(task_id) == "slow" for task_id in cut)
    # Nothing a client did not send; nothing accepted is missing.
    ended = done | fail | cut
    assert ended <= load.accepted | load.unanswered
    lost = load.accepted - ended
    assert lost == set(), f"accepted with a 2xx, then lost: {sorted(lost)[:20]}"
    # Every failure was logged once, as the intentional failure it is.
    logged = [int(match[0]) for match in TASK_FAILED.findall(stderr)]
    assert sorted(logged) == sorted(fail)
    assert stderr.count("[ERROR]") == len(fail), stderr[-3000:]
    return Reconciled(len(done), len(fail), len(cut), float(seconds), len(ended & load.unanswered))


def stop(server: Server) -> tuple[int, float]:
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    return wait_exit(server, started)


def wait_exit(server: Server, started: float) -> tuple[int, float]:
    try:
        code = server.process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_TIMEOUT:g} s after SIGTERM:\n{server.stderr[-3000:]}")
    return code, time.monotonic() - started


# --- the tests ------------------------------------------------------------------------------


def test_every_accepted_task_is_completed_or_counted_under_load_then_sigterm(
    server: Server,
) -> None:
    load = Load(server.port, iter(range(REQUESTS)))
    trio.run(run_load, load)
    code, exit_seconds = stop(server)

    assert code == 0, server.stderr[-3000:]
    assert load.statuses == Counter({200: REQUESTS})
    assert load.accepted == set(range(REQUESTS))
    result = reconcile(server, load)
    slow = sum(1 for task_id in range(REQUESTS) if expected_outcome(task_id) == "slow")
    failing = sum(1 for task_id in range(REQUESTS) if expected_outcome(task_id) == "fail")
    assert (result.completed, result.failed, result.cancelled) == (
        REQUESTS - slow - failing,
        failing,
        slow,
    )
    # The slow tasks held the drain until its deadline, and no longer.
    assert DRAIN_TIMEOUT - 0.05 <= result.drain_seconds < DRAIN_TIMEOUT + 1.5
    print(
        f"load: {REQUESTS} requests over {CONNECTIONS} connections in {load.elapsed:.2f} s "
        f"({REQUESTS / load.elapsed:.0f}/s); drain {result.drain_seconds:.3f} s, exit "
        f"{exit_seconds:.2f} s after SIGTERM; {result.completed} completed, {result.failed} "
        f"failed, {result.cancelled} cancelled; lost 0"
    )


def test_sigterm_while_requests_arrive_refuses_the_rest_cleanly_and_loses_nothing(
    server: Server,
) -> None:
    limit = 20 * REQUESTS  # bounded; the clients stop when the server stops listening
    load = Load(
        server.port,
        itertools.islice(itertools.count(), limit),
        signal_after=SIGNAL_AFTER,
        process=server.process,
    )
    trio.run(run_load, load)
    assert load.signalled_at_answer is not None, "the load ended before the signal"
    started = time.monotonic()
    code, _ = wait_exit(server, started)

    assert code == 0, server.stderr[-3000:]
    # After the signal: answered 200 or 503, or refused/closed; nothing else.
    assert set(load.statuses) <= {200, 503}, load.statuses
    assert load.refused_connects == CONNECTIONS  # every client ended on a refused connect
    assert len(load.accepted) >= SIGNAL_AFTER - CONNECTIONS
    result = reconcile(server, load)
    late = len(load.accepted) - load.signalled_at_answer
    print(
        f"sigterm under load: signal after {load.signalled_at_answer} answers; "
        f"{len(load.accepted)} accepted ({late:+d} after the signal), "
        f"{load.statuses[503]} got 503, {len(load.unanswered)} unanswered (connection closed), "
        f"{load.refused_connects} refused connects; {result.unanswered_but_run} of the "
        f"unanswered ran all the same; {result.completed} completed, "
        f"{result.failed} failed, {result.cancelled} cancelled; lost 0"
    )


def test_reconcile_catches_a_lost_task(server: Server) -> None:
    # The check itself must be able to fail: an accepted id with no outcome.
    load = Load(server.port, iter(range(50)))
    trio.run(run_load, load)
    code, _ = stop(server)
    assert code == 0
    load.accepted.add(10**9)  # an id no task ever saw
    with pytest.raises(AssertionError, match="accepted with a 2xx, then lost"):
        reconcile(server, load)
    with contextlib.suppress(FileNotFoundError):
        server.out_file.unlink()
    with pytest.raises(AssertionError):
        reconcile(server, load)

"""Chaos: durable tasks on SQLite across SIGKILL, failpoints, two processes and the worker.

Every test starts the real command line (``python -m trioapi tests.durable_app:app
--bind 127.0.0.1:0``, ``python -m trioapi worker``) as subprocesses on a
fresh SQLite file under ``tmp_path`` (``TRIOAPI_TASK_STORE=sqlite:///...``),
talks to them over TCP on 127.0.0.1, kills or signals them by PID, and
reconciles three records that do not depend on each other: what the clients
got (every 2xx), what the tasks wrote (``tests/durable_app.py`` explains the
lines) and what the store says (``python -m trioapi tasks --json``, or the
SQLite file read directly: a read-only query, which WAL lets run beside
the servers; after a kill, before the restart, it shows what the dead
process held).

No test asserts a duration. Every wait polls something another process
makes observable (a log line, a line in the output file, an exit, a store
count) with a generous deadline, only there so that a hang fails instead of
hanging; every load loop is bounded. Whatever a test started is killed by
PID when it ends.

Sizes are scaled for a shared 2-core machine (the whole file should take
well under a minute): six kills of 200 requests each, tens of tasks
elsewhere.

``test_a_stalled_owner_that_comes_back_...`` fails until the SQLite store
fences its posted writes by owner: a process that lost its lease releases,
on its drain, the row another process now holds (see its docstring).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from tests.durable_app import FAILPOINT_ENV, HOLD_ENV, OUT_ENV

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parent.parent
TRIOAPI = (sys.executable, "-m", "trioapi")
APP = "tests.durable_app:app"
RUNNING_ON = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
WORKER_READY = "trioapi worker: running durable tasks from"

WAIT = 30.0
"""Seconds any wait may take before the test fails as hung (never a bound being tested)."""
POLL_INTERVAL = 0.02
"""Seconds between two looks at a file another process writes."""
STORE_POLL_INTERVAL = 0.1
"""Seconds between two runs of ``python -m trioapi tasks`` (each one starts Python)."""


def wait_until(condition: Callable[[], bool], what: str, interval: float = POLL_INTERVAL) -> None:
    """Polls ``condition`` (something another process does) until true, or fails at WAIT."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT:g} s waiting for {what}")
        time.sleep(interval)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIOAPI_", "DURABLE_"))}
    pythonpath = [str(REPO_ROOT)]
    if os.environ.get("PYTHONPATH"):
        pythonpath.append(os.environ["PYTHONPATH"])
    env |= {"PYTHONPATH": os.pathsep.join(pythonpath), "PYTHONUNBUFFERED": "1"}
    return env | extra


# --- processes --------------------------------------------------------------------------


class Proc:
    """A server or worker started by a test; its stderr goes to a file of its own."""

    def __init__(self, argv: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.workdir = workdir
        self.stderr_file = workdir / "stderr.txt"
        self.port = 0
        with self.stderr_file.open("wb") as err:
            self.process = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.pid = self.process.pid

    @property
    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def _alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"{' '.join(self.argv[2:])} exited with {self.process.returncode}; "
                f"stderr:\n{self.stderr[-4000:]}"
            )

    def wait_ready(self) -> int:
        """Waits for "Running on" and a connect that succeeds; returns the port."""

        def ready() -> bool:
            self._alive()
            return RUNNING_ON.search(self.stderr) is not None

        wait_until(ready, f"{self.argv[3]} to listen")
        match = RUNNING_ON.search(self.stderr)
        assert match is not None
        self.port = int(match.group(1))
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=WAIT) as client:
            assert client.get("/health").json() == {"ok": True}
        return self.port

    def wait_log(self, text: str) -> None:
        def logged() -> bool:
            self._alive()
            return text in self.stderr

        wait_until(logged, f"{text!r} in the log of pid {self.pid}")

    def wait_exit(self) -> int:
        try:
            return self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pid {self.pid} still running after {WAIT:g} s:\n{self.stderr[-4000:]}")

    def sigkill(self) -> None:
        self.process.kill()
        code = self.wait_exit()
        assert code == -signal.SIGKILL, code

    def sigterm(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=WAIT)


@attrs.define
class Chaos:
    """One test's store, output file and processes."""

    tmp_path: Path
    started: list[Proc] = attrs.Factory(list)
    lease: float | None = None

    @property
    def db(self) -> Path:
        return self.tmp_path / "tasks.db"

    @property
    def url(self) -> str:
        query = f"?lease={self.lease:g}" if self.lease is not None else ""
        return f"sqlite:///{self.db}{query}"

    @property
    def out_file(self) -> Path:
        return self.tmp_path / "out.txt"

    def _start(self, argv: list[str], env: dict[str, str]) -> Proc:
        workdir = self.tmp_path / f"proc{len(self.started)}"
        workdir.mkdir()
        full = clean_env(TRIOAPI_TASK_STORE=self.url, **{OUT_ENV: str(self.out_file)}) | env
        proc = Proc(argv, workdir, full)
        self.started.append(proc)
        return proc

    def server(self, *options: str, app: str = APP, **env: str) -> Proc:
        proc = self._start([*TRIOAPI, app, "--bind", "127.0.0.1:0", *options], env)
        proc.wait_ready()
        return proc

    def worker(self, *options: str, **env: str) -> Proc:
        proc = self._start([*TRIOAPI, "worker", APP, *options], env)
        proc.wait_log(WORKER_READY)
        return proc

    def tasks(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m trioapi tasks --store URL ARGS``; fails the test on a nonzero exit."""
        done = subprocess.run(
            [*TRIOAPI, "tasks", "--store", self.url, *args],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = json.loads(self.tasks("--json").stdout)
        return counts

    def dead_letters(self) -> list[dict[str, object]]:
        letters: list[dict[str, object]] = json.loads(self.tasks("--dead", "--json").stdout)
        return letters

    def wait_store_empty(self) -> None:
        """Waits until nothing is queued, running or retrying (every task acked)."""
        wait_until(
            lambda: _unfinished(self.counts()) == 0,
            "the store to hold no unfinished task",
            STORE_POLL_INTERVAL,
        )

    def held(self) -> set[str]:
        """Ids of the tasks some owner holds (read after a kill: what the dead process held)."""
        with contextlib.closing(sqlite3.connect(self.db)) as connection:
            rows = connection.execute("SELECT id FROM trioapi_tasks WHERE owner IS NOT NULL")
            return {task_id for (task_id,) in rows}

    def lines(self) -> list[Line]:
        if not self.out_file.exists():
            return []
        return [Line.parse(text) for text in self.out_file.read_text().splitlines()]

    def done(self) -> list[Line]:
        return [line for line in self.lines() if line.kind == "done"]


def _unfinished(counts: dict[str, int]) -> int:
    return counts["queued"] + counts["running"] + counts["retrying"]


@attrs.frozen
class Line:
    """One line of the output file (see tests/durable_app.py)."""

    kind: str
    id: str
    key: str
    attempt: int
    pid: int
    failures: int = 0

    @classmethod
    def parse(cls, text: str) -> Line:
        kind, task_id, key, attempt, *rest = text.split()
        if kind == "poison":
            failures, pid = rest
            return cls(kind, task_id, key, int(attempt), int(pid), int(failures))
        (pid,) = rest
        return cls(kind, task_id, key, int(attempt), int(pid))


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    """A fresh store; kills what the test started, by PID, when it ends."""
    state = Chaos(tmp_path)
    try:
        yield state
    finally:
        for proc in state.started:
            proc.kill()


def post(port: int, path: str, **params: float) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
        response = client.post(path, params=params)
    assert response.status_code == 200, response.text
    return response


# --- the load client ------------------------------------------------------------------------


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
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(buffer) < length:
        data = await stream.receive_some(65536)
        if not data:
            raise ConnectionGone
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(head[9:12]), body


@attrs.define
class Round:
    """One round of load, SIGKILLed once ``kill_after`` requests got a 2xx."""

    proc: Proc
    requests: Iterator[tuple[str, float]]
    kill_after: int
    accepted: list[str] = attrs.Factory(list)
    sent: set[str] = attrs.Factory(set)
    unanswered: set[str] = attrs.Factory(set)
    statuses: Counter[int] = attrs.Factory(Counter)
    killed_at: int | None = None


async def load_client(load: Round) -> None:
    """One keep-alive connection at a time; ends when the server stops accepting."""
    stream: trio.SocketStream | None = None
    buffer = bytearray()
    try:
        for key, seconds in load.requests:
            if stream is None:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", load.proc.port)
                except OSError:
                    return  # killed: nobody listens any more
                buffer.clear()
            load.sent.add(key)
            request = (
                f"POST /jobs/{key}?seconds={seconds:g} HTTP/1.1\r\n"
                "Host: chaos\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            try:
                with trio.fail_after(WAIT):  # a hang fails the test; no time is asserted
                    await stream.send_all(request)
                    status, body = await read_answer(stream, buffer)
            except (ConnectionGone, trio.BrokenResourceError, OSError):
                load.unanswered.add(key)
                await stream.aclose()
                stream = None
                continue
            load.statuses[status] += 1
            if 200 <= status < 300:
                assert json.loads(body) == {"key": key}, body
                load.accepted.append(key)
            if load.killed_at is None and len(load.accepted) >= load.kill_after:
                load.killed_at = len(load.accepted)
                os.kill(load.proc.pid, signal.SIGKILL)  # our child, by PID
    finally:
        if stream is not None:
            await stream.aclose()


async def run_round(load: Round, connections: int) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(load_client, load)


# --- 1. six kills in a row --------------------------------------------------------------------

PER_ROUND = 200
CONNECTIONS = 4
KILL_AFTER = (120, 30, 170, 60, 150, 10)
"""2xx answers in each round before its SIGKILL: mid-load, some of them early, while
the tasks taken over from the previous kill still run."""
SLOW_EVERY, SLOW_SECONDS = 3, 0.2


def test_six_sigkills_under_load_lose_no_accepted_task(chaos: Chaos) -> None:
    """Every 2xx's task runs; it runs again exactly when a killed process did it unacked.

    Each round starts the server, sends ``PER_ROUND`` requests over
    ``CONNECTIONS`` keep-alive connections (every third task takes 0.2 s,
    the others none) and SIGKILLs the server once ``KILL_AFTER[round]``
    requests got a 2xx; the clients carry on until nobody listens. Then, with
    no process on the file, the test reads which tasks the dead process held
    (rows with an owner: running, or done with the ack not yet durable).
    Six rounds, then one more start that runs what is left, until the store
    holds nothing unfinished, and SIGTERM.

    Why the duplicates are predicted exactly (see ``reconcile``): these
    tasks never fail, so a process completes a task at most once. A done
    line is followed by another run if and only if the process that wrote
    it died still holding the task (its ack was not durable: the row is
    there, with its owner, at the kill), because every held task is taken
    over and run until acked, and an acked one is gone. So a task has
    exactly 1 + (kills whose process held it and had written its done line)
    done lines, and no two of them share an attempt number; in all, the
    duplicates are at most the tasks held at the kills. Every 2xx has a done
    line (nothing lost), every done line belongs to a request some client
    sent, and each key is one task id.
    """
    six_kills(
        chaos,
        held=lambda pid: frozenset(chaos.held()),
        nothing_left=lambda: (
            chaos.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
        ),
    )


def six_kills(
    chaos: Chaos, held: Callable[[int], frozenset[str]], nothing_left: Callable[[], bool]
) -> None:
    """The six-kill run on ``chaos``'s store (both backends' tests drive it).

    Args:
        held: The task ids the killed process ``pid`` still held, read with
            no process running (each backend reads its own store).
        nothing_left: True once the store holds nothing at all.
    """
    kills: list[Kill] = []
    accepted: list[str] = []
    sent: set[str] = set()
    for number, kill_after in enumerate(KILL_AFTER):
        proc = chaos.server()
        requests = (
            (f"r{number}-{index}", SLOW_SECONDS if index % SLOW_EVERY == 0 else 0.0)
            for index in range(PER_ROUND)
        )
        load = Round(proc, requests, kill_after)
        trio.run(run_round, load, CONNECTIONS)
        assert load.killed_at is not None, f"round {number} ended before its kill: {load.statuses}"
        assert proc.wait_exit() == -signal.SIGKILL
        kills.append(Kill(proc.pid, held(proc.pid)))
        accepted += load.accepted
        sent |= load.sent
        print(
            f"round {number}: {len(load.accepted)} 2xx {dict(load.statuses)}, killed after "
            f"{load.killed_at}, {len(load.unanswered)} unanswered, {len(kills[-1].held)} held"
        )

    last = chaos.server()
    chaos.wait_store_empty()
    assert last.sigterm() == 0, last.stderr[-4000:]
    assert nothing_left()

    result = reconcile(chaos.done(), accepted, sent, kills)
    # Some kill must have caught tasks in progress, or nothing was taken over.
    assert result.held > 0
    assert result.resumed > 0
    print(
        f"six kills: {len(accepted)} accepted, 0 lost, {result.tasks} tasks ran, "
        f"{result.duplicates} duplicate run(s) (as predicted), {result.held} held at the "
        f"kills in all, {result.resumed} runs of a task taken over"
    )


@attrs.frozen
class Kill:
    """A SIGKILLed server: its pid, and the ids its owner row still held afterwards."""

    pid: int
    held: frozenset[str]


@attrs.frozen
class Reconciled:
    tasks: int
    duplicates: int
    held: int
    resumed: int


def reconcile(
    done: list[Line], accepted: list[str], sent: set[str], kills: list[Kill]
) -> Reconciled:
    """Checks the done lines against the 2xx answers and the kills (see the six-kills test)."""
    ids_of_key: dict[str, set[str]] = {}
    runs: dict[str, list[Line]] = {}
    for line in done:
        ids_of_key.setdefault(line.key, set()).add(line.id)
        runs.setdefault(line.id, []).append(line)
    assert len(accepted) == len(set(accepted)), "a client sent a key twice"
    lost = set(accepted) - set(ids_of_key)
    assert lost == set(), f"{len(lost)} accepted with a 2xx, never run: {sorted(lost)[:20]}"
    assert set(ids_of_key) <= sent, "a task ran that no client sent"
    twice = {key: ids for key, ids in ids_of_key.items() if len(ids) > 1}
    assert twice == {}, f"keys stored as more than one task: {twice}"
    for task_id, lines in runs.items():
        attempts = [line.attempt for line in lines]
        assert len(set(attempts)) == len(attempts), f"task {task_id} ran twice as {attempts}"
        pids = {line.pid for line in lines}
        unacked = [kill.pid for kill in kills if task_id in kill.held and kill.pid in pids]
        assert len(lines) == 1 + len(unacked), (
            f"task {task_id} ran {len(lines)} times (attempts {attempts}, pids "
            f"{[line.pid for line in lines]}); killed holding it after doing it: {unacked}"
        )
    duplicates = sum(len(lines) - 1 for lines in runs.values())
    held = sum(len(kill.held) for kill in kills)
    assert duplicates <= held
    resumed = sum(1 for line in done if line.attempt > 1)
    return Reconciled(len(runs), duplicates, held, resumed)


def test_the_reconciliation_catches_a_lost_task_and_an_unexplained_run() -> None:
    # The six-kills test's checks must be able to fail.
    keys = ["k1", "k2"]
    done = [Line("done", "id1", "k1", 1, 10), Line("done", "id2", "k2", 1, 10)]
    assert reconcile(done, keys, set(keys), [Kill(10, frozenset())]).duplicates == 0
    with pytest.raises(AssertionError, match="accepted with a 2xx, never run"):
        reconcile(done, [*keys, "k3"], {*keys, "k3"}, [])
    rerun = [*done, Line("done", "id1", "k1", 2, 11)]
    # Run again though its first run was acked (not held at the kill of pid 10).
    with pytest.raises(AssertionError, match="ran 2 times"):
        reconcile(rerun, keys, set(keys), [Kill(10, frozenset({"id2"}))])
    assert reconcile(rerun, keys, set(keys), [Kill(10, frozenset({"id1"}))]).duplicates == 1
    # Held and done at the kill, but never run again: the next process lost it.
    with pytest.raises(AssertionError, match="ran 1 times"):
        reconcile(done, keys, set(keys), [Kill(10, frozenset({"id1"}))])
    same_attempt = [*done, Line("done", "id1", "k1", 1, 11)]
    with pytest.raises(AssertionError, match="ran twice as"):
        reconcile(same_attempt, keys, set(keys), [Kill(10, frozenset({"id1"}))])
    with pytest.raises(AssertionError, match="more than one task"):
        reconcile([*done, Line("done", "id3", "k1", 1, 10)], ["k1"], set(keys), [])


# --- 2. failpoints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failpoint", "attempts"),
    [("after-effect", [1, 2]), ("first-line", [2]), ("before-response", [2])],
)
def test_a_process_killed_at_a_failpoint_leaves_the_task_to_the_next_one(
    chaos: Chaos, failpoint: str, attempts: list[int]
) -> None:
    """The task's effect happens once per start that reached it, under one id.

    after-effect: the effect happened, the ack did not: it happens again
    (attempt 2, same id). first-line: committed and claimed, nothing done:
    it happens once, as attempt 2 (the killed start counts). before-response:
    committed, then killed before the client saw a byte: it still runs once.
    """
    app = "tests.durable_app:failing_app" if failpoint == "before-response" else APP
    proc = chaos.server(app=app, **{FAILPOINT_ENV: failpoint})
    with httpx.Client(base_url=f"http://127.0.0.1:{proc.port}", timeout=WAIT) as client:
        try:
            response: httpx.Response | None = client.post("/jobs/k1")
        except httpx.TransportError:
            response = None  # the process died with the answer in flight
    assert proc.wait_exit() == -signal.SIGKILL
    if failpoint == "before-response":
        assert response is None
    elif response is not None:
        assert response.status_code == 200
        assert response.json() == {"key": "k1"}
    assert chaos.counts() == {"queued": 0, "running": 1, "retrying": 0, "dead": 0}
    before = chaos.done()
    assert [line.attempt for line in before] == attempts[:-1]

    again = chaos.server()  # no failpoint
    chaos.wait_store_empty()
    assert again.sigterm() == 0, again.stderr[-4000:]

    done = chaos.done()
    assert [line.attempt for line in done] == attempts
    assert [line.key for line in done] == ["k1"] * len(attempts)
    assert len({line.id for line in done}) == 1
    assert done[-1].pid == again.pid
    assert chaos.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}


# --- 3. two processes, one killed mid-task ---------------------------------------------------


def test_a_live_process_takes_over_the_tasks_of_one_killed_beside_it(chaos: Chaos) -> None:
    """B, on the same store and never restarted, runs every task A held when it died.

    A holds its tasks for a minute (``DURABLE_HOLD``), so they are running
    when it is killed; B notices the dead pid on its periodic recovery
    (every lease/3 s: ``?lease=3``) and runs them, quickly.
    """
    chaos.lease = 3.0
    count = 20
    a = chaos.server(**{HOLD_ENV: "60"})
    b = chaos.server()
    keys = [f"a{index}" for index in range(count)]
    for key in keys:
        post(a.port, f"/jobs/{key}")
    wait_until(
        lambda: len([line for line in chaos.lines() if line.kind == "start"]) == count,
        f"{count} tasks running in A",
    )
    assert {line.pid for line in chaos.lines()} == {a.pid}
    a.sigkill()

    wait_until(lambda: len(chaos.done()) >= count, f"B to run A's {count} tasks")
    chaos.wait_store_empty()
    assert b.process.poll() is None, "B must still be the same, running process"
    done = chaos.done()
    assert sorted(line.key for line in done) == sorted(keys)
    assert {line.pid for line in done} == {b.pid}
    assert {line.attempt for line in done} == {2}
    starts = {line.id: line.key for line in chaos.lines() if line.kind == "start"}
    assert {line.id: line.key for line in done}.items() <= starts.items()  # the same ids
    assert f"took over {count} durable task(s) held by a process that is gone" in b.stderr
    assert b.sigterm() == 0, b.stderr[-4000:]


# --- 4. a long task under a short lease -------------------------------------------------------


def test_a_task_longer_than_several_leases_runs_once_while_its_process_lives(
    chaos: Chaos,
) -> None:
    """A's heartbeat keeps its 5 s tasks through three 1.5 s leases; B never takes them.

    B looks for owners that are gone every 0.5 s (lease/3): had A's lease
    not been renewed, B would free and run the tasks a second time.
    """
    chaos.lease = 1.5
    a = chaos.server()
    b = chaos.server()
    keys = ["long0", "long1", "long2"]
    for key in keys:
        post(a.port, f"/jobs/{key}", seconds=5.0)
    wait_until(lambda: len(chaos.done()) == len(keys), "the long tasks to finish")
    chaos.wait_store_empty()
    assert a.sigterm() == 0, a.stderr[-4000:]
    assert b.sigterm() == 0, b.stderr[-4000:]

    lines = chaos.lines()
    assert sorted((line.kind, line.key) for line in lines) == sorted(
        [("start", key) for key in keys] + [("done", key) for key in keys]
    )
    assert {(line.pid, line.attempt) for line in lines} == {(a.pid, 1)}
    assert "took over" not in a.stderr + b.stderr


# --- 5. a poison task -------------------------------------------------------------------------


def test_a_poison_task_is_dead_lettered_retried_by_hand_and_purged(chaos: Chaos) -> None:
    """Three attempts, then a dead letter; ``tasks retry`` runs it three more; ``purge`` empties it.

    A dead letter's ``attempts`` counts every start, so after the retry by
    hand it dies at 6 (with 3 failures: the retry began a fresh count).
    """
    proc = chaos.server()
    post(proc.port, "/poison/p1")
    wait_until(lambda: bool(chaos.dead_letters()), "the dead letter", STORE_POLL_INTERVAL)
    (letter,) = chaos.dead_letters()
    assert letter["name"] == "chaos.poison"
    assert letter["error"] == "PoisonError: poison task p1 always fails"
    assert (letter["attempts"], letter["failures"]) == (3, 3)
    runs = chaos.lines()
    assert [(line.attempt, line.failures) for line in runs] == [(1, 0), (2, 1), (3, 2)]
    assert {line.id for line in runs} == {letter["id"]}
    assert chaos.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 1}

    retried = chaos.tasks("retry", str(letter["id"]))
    assert retried.stdout == f"queued again: {letter['id']}\n"
    wait_until(lambda: bool(chaos.dead_letters()), "the second dead letter", STORE_POLL_INTERVAL)
    (again,) = chaos.dead_letters()
    assert again["id"] == letter["id"]
    assert again["error"] == letter["error"]
    assert (again["attempts"], again["failures"]) == (6, 3)
    runs = chaos.lines()
    assert [(line.attempt, line.failures) for line in runs[3:]] == [(4, 0), (5, 1), (6, 2)]
    assert {line.id for line in runs} == {letter["id"]}

    purged = chaos.tasks("purge", "--dead")
    assert purged.stdout == "purged 1 dead letter(s)\n"
    assert chaos.dead_letters() == []
    assert chaos.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
    assert proc.sigterm() == 0, proc.stderr[-4000:]
    assert len(chaos.lines()) == 6  # nothing ran after the purge


# --- 6. the worker ----------------------------------------------------------------------------

DRAIN_REPORT = re.compile(
    r"background drain finished in [\d.]+ s: (\d+) completed, (\d+) failed, (\d+) cancelled, "
    r"(\d+) abandoned, (\d+) skipped, (\d+) resumable"
)


def test_the_worker_runs_what_a_drained_server_released_and_drains_itself(
    chaos: Chaos,
) -> None:
    """A server's drain releases its long tasks; a worker on the store finishes them.

    The server (``--drain-timeout 0.5``) is SIGTERMed while five 2 s tasks
    run: its drain reports them resumable. The worker, running all along,
    claims them; SIGTERMed while they run, it drains them to the end (its
    drain timeout is the default 25 s) and exits 0.
    """
    count = 5
    server = chaos.server("--drain-timeout", "0.5", "--graceful-timeout", "1")
    worker = chaos.worker()
    keys = [f"w{index}" for index in range(count)]
    for key in keys:
        post(server.port, f"/jobs/{key}", seconds=2.0)
    wait_until(lambda: len(chaos.lines()) == count, f"{count} tasks running in the server")
    assert server.sigterm() == 0, server.stderr[-4000:]
    assert [tuple(map(int, m)) for m in DRAIN_REPORT.findall(server.stderr)] == [
        (0, 0, 0, 0, 0, count)
    ], server.stderr[-4000:]
    assert chaos.done() == []

    def worker_started() -> bool:
        return len([line for line in chaos.lines() if line.pid == worker.pid]) == count

    wait_until(worker_started, "the worker to start the released tasks")
    assert worker.sigterm() == 0, worker.stderr[-4000:]
    assert [tuple(map(int, m)) for m in DRAIN_REPORT.findall(worker.stderr)] == [
        (count, 0, 0, 0, 0, 0)
    ], worker.stderr[-4000:]
    done = chaos.done()
    assert sorted(line.key for line in done) == sorted(keys)
    assert {(line.pid, line.attempt) for line in done} == {(worker.pid, 2)}
    assert chaos.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
    assert "Traceback" not in server.stderr + worker.stderr


# --- 7. an owner that stalled past its lease, then came back --------------------------------


def test_a_stalled_owner_that_comes_back_does_not_free_the_task_another_process_runs(
    chaos: Chaos,
) -> None:
    """A process paused past its lease loses its task to B; its late writes must not touch B's.

    A pause longer than the lease (SIGSTOP here; a swapped-out VM, a long
    GC) makes B take A for gone and run A's task again: that duplicate is
    the documented price of the lease. But once A runs again, its drain
    releases the attempt it had, and that release must not free the row B
    now holds, or B's own dispatcher (or any process) claims it once more,
    a third run while B's is under way.
    """
    chaos.lease = 1.5
    stop = ("--drain-timeout", "0.5", "--graceful-timeout", "1")
    a = chaos.server(*stop, **{HOLD_ENV: "60"})
    b = chaos.server(*stop, **{HOLD_ENV: "60"})
    post(a.port, "/jobs/t1")

    def started_in(proc: Proc) -> bool:
        return any(line.kind == "start" and line.pid == proc.pid for line in chaos.lines())

    wait_until(lambda: started_in(a), "the task to start in A")
    os.kill(a.pid, signal.SIGSTOP)  # our child, by PID; SIGKILL still ends it at teardown
    try:
        wait_until(lambda: started_in(b), "B to take the task of A, paused past its lease")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert a.sigterm() == 0, a.stderr[-4000:]  # its drain cuts off its stale attempt

    (task_id,) = {line.id for line in chaos.lines()}
    with contextlib.closing(sqlite3.connect(chaos.db)) as connection:
        (b_owner,) = connection.execute(
            "SELECT id FROM trioapi_owners WHERE pid = ?", (b.pid,)
        ).fetchone()
        row = connection.execute(
            "SELECT owner, state, starts FROM trioapi_tasks WHERE id = ?", (task_id,)
        ).fetchone()
    assert row == (b_owner, "running", 2), (
        f"after A's late release the row is {row}; B ({b_owner}) runs attempt 2"
    )
    assert [(line.pid, line.attempt) for line in chaos.lines()] == [(a.pid, 1), (b.pid, 2)]
    assert b.sigterm() == 0, b.stderr[-4000:]

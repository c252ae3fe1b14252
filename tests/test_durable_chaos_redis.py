"""Chaos: durable tasks on the Redis Streams store across SIGKILL and two processes.

The same real command line as ``test_durable_chaos.py`` (whose helpers and
``tests/durable_app.py`` this file reuses), on a real ``redis-server`` on
127.0.0.1 (``tests/_redis.py``, one per module; each test has a key prefix of
its own): ``TRIOAPI_TASK_STORE=redis://127.0.0.1:PORT/0?prefix=...``.

With Redis the committing process does not hold its tasks: a commit XADDs
them to the stream and any process on it claims them (``XREADGROUP``), so
what a process *holds* is its consumer's pending list in the consumer
group. The tests read it with redis-py (``XINFO CONSUMERS``, ``XPENDING``,
then ``XRANGE`` for the task id of each pending entry), a read that changes
nothing: no ``XREADGROUP``, no ``XCLAIM``.

No test asserts a duration. Every wait polls something another process
makes observable (a log line, a line in the output file, an exit, a store
count) with a generous deadline, only there so that a hang fails instead of
hanging; every load loop is bounded. Whatever a test started is killed by
PID when it ends.

Sizes are the SQLite file's (six kills of 200 requests each, tens of tasks
elsewhere): on a shared 2-core machine the file takes about 20 s, mostly
process starts and the 5 s tasks of the lease test.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.durable_app import HOLD_ENV
from tests.test_durable_chaos import (
    WAIT,
    Chaos,
    Line,
    post,
    six_kills,
    wait_until,
)

pytestmark = pytest.mark.e2e


MAX_HELD = 100_000
"""More pending entries than any test makes (the read of a pending list is one page)."""


@attrs.define
class RedisChaos(Chaos):
    """``Chaos`` on a Redis URL, with what the stream's consumer group holds."""

    base: str = ""
    prefix: str = ""

    @property
    def url(self) -> str:
        lease = f"&lease={self.lease:g}" if self.lease is not None else ""
        return f"{self.base}?prefix={self.prefix}{lease}"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:tasks"

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        import redis

        connection = redis.Redis.from_url(self.base, decode_responses=True, socket_timeout=WAIT)
        try:
            yield connection
        finally:
            connection.close()

    def pending(self) -> dict[str, int]:
        """Entries in each consumer's pending list, by consumer (owner id)."""
        with self.client() as client:
            consumers = client.xinfo_consumers(self.stream, self.prefix)
        return {str(consumer["name"]): int(consumer["pending"]) for consumer in consumers}

    def held_by(self, pid: int) -> frozenset[str]:
        """Task ids in the pending list of the consumer of the process ``pid``."""
        with self.client() as client:
            owners = client.hgetall(f"{self.prefix}:owners")
            (consumer,) = [name for name, text in owners.items() if json.loads(text)["pid"] == pid]
            entries = client.xpending_range(
                self.stream, self.prefix, "-", "+", MAX_HELD, consumername=consumer
            )
            assert len(entries) < MAX_HELD
            ids: set[str] = set()
            for pending in entries:
                entry = pending["message_id"]
                # A pending entry is still in the stream (an ack XACKs and XDELs in one MULTI).
                ((_, fields),) = client.xrange(self.stream, entry, entry)
                ids.add(fields["id"])
        return frozenset(ids)

    def keys(self) -> dict[str, int]:
        """Every key under the prefix and its size (XLEN, HLEN, SCARD)."""
        sizes: dict[str, int] = {}
        with self.client() as client:
            for key in client.scan_iter(match=f"{self.prefix}:*"):
                kind = client.type(key)
                size = {"stream": client.xlen, "hash": client.hlen, "set": client.scard}[kind]
                sizes[key] = size(key)
        return sizes


@pytest.fixture
def chaos(tmp_path: Path, redis_url: str) -> Iterator[RedisChaos]:
    """A fresh prefix on the module's Redis; kills what the test started, by PID."""
    state = RedisChaos(tmp_path, base=redis_url, prefix=f"chaos-{uuid.uuid4().hex[:10]}")
    try:
        yield state
    finally:
        for proc in state.started:
            proc.kill()


def assert_nothing_left(chaos: RedisChaos) -> None:
    """Every task acked: an empty stream, no consumer holding anything, no task hash left."""
    assert chaos.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
    assert set(chaos.pending().values()) <= {0}
    assert chaos.keys() == {chaos.stream: 0}, chaos.keys()


# --- 1. six kills in a row --------------------------------------------------------------------

PER_ROUND = 200
CONNECTIONS = 4
KILL_AFTER = (120, 30, 170, 60, 150, 10)
"""2xx answers in each round before its SIGKILL: mid-load, some of them early, while
the tasks taken over from the previous kill still run (as in the SQLite test)."""
SLOW_EVERY, SLOW_SECONDS = 3, 0.2


def test_six_sigkills_under_load_lose_no_accepted_task(chaos: RedisChaos) -> None:
    """Every 2xx's task runs; it runs again exactly when a killed process held it done, unacked.

    Each round starts the server, sends ``PER_ROUND`` requests over
    ``CONNECTIONS`` keep-alive connections (every third task takes 0.2 s,
    the others none) and SIGKILLs the server once ``KILL_AFTER[round]``
    requests got a 2xx; the clients carry on until nobody listens. Then,
    with no process on the stream, the test reads what the dead process
    held: the task ids in its consumer's pending list. Only one process
    runs at a time, and each one's startup takes over everything its dead
    predecessor held (``recover``, before it serves), so the dead process's
    consumer must be the only one holding anything. Six rounds, then one
    more start that runs what is left, until ``python -m trioapi tasks``
    counts nothing unfinished, and SIGTERM, which must exit 0.

    Why the pending list bounds the duplicates exactly (``reconcile``, shared
    with the SQLite test): these tasks never fail, so a process completes a
    task at most once. An ack is one ``MULTI`` (XACK, XDEL, DEL of the
    task's hash), so a task is either acked (gone from the stream and from
    every pending list) or still pending in the consumer that was given it,
    and a consumer's pending entries all move to the next process
    (``recover``), which runs them until acked. A committed task that no
    process had read yet is simply queued: not held, run once. So a done
    line is followed by another run if and only if its process died with
    the task in its pending list, and a task has exactly 1 + (kills whose
    process held it and had written its done line) done lines, with
    distinct attempt numbers (the task's hash counts starts with HINCRBY
    and is only deleted by the ack). In all, duplicates are at most the
    tasks held at the kills.
    """

    def held(pid: int) -> frozenset[str]:
        found = chaos.held_by(pid)
        assert sum(chaos.pending().values()) == len(found), (
            "a consumer other than the killed process's holds tasks",
            chaos.pending(),
        )
        return frozenset(found)

    def nothing_left() -> bool:
        assert_nothing_left(chaos)
        return True

    six_kills(chaos, held=held, nothing_left=nothing_left)


# --- 2. two processes, one killed mid-task ---------------------------------------------------


def test_a_live_process_takes_over_the_tasks_of_one_killed_beside_it(chaos: RedisChaos) -> None:
    """B, on the same stream and never restarted, runs every task A held when it died.

    Both serve from the start; the requests go to A. A holds the tasks it
    claims for a minute (``DURABLE_HOLD``); B may claim some of them first
    (any process on the stream may), and runs those at once. Once every
    task started somewhere, A's pending list is exactly the tasks started in
    A, and stays so while A lives (B does not take from a live consumer
    whose lease A renews). A is SIGKILLed; B notices the dead pid at its
    next periodic recovery (every lease/3 s: ``?lease=3``), takes over A's
    pending entries and runs them, as attempt 2 under the same ids.
    """
    chaos.lease = 3.0
    count = 20
    a = chaos.server(**{HOLD_ENV: "60"})
    b = chaos.server()
    keys = [f"a{index}" for index in range(count)]
    for key in keys:
        post(a.port, f"/jobs/{key}")

    def starts() -> list[Line]:
        return [line for line in chaos.lines() if line.kind == "start"]

    wait_until(lambda: len(starts()) == count, f"{count} tasks started in A or B")
    before = starts()
    in_a = {line.id for line in before if line.pid == a.pid}
    assert in_a, "A claimed none of the tasks committed by its own requests"
    held = chaos.held_by(a.pid)  # stable: A holds them for a minute
    assert held == in_a
    a.sigkill()

    wait_until(lambda: len(chaos.done()) >= count, f"B to run the {count} tasks")
    chaos.wait_store_empty()
    assert b.process.poll() is None, "B must still be the same, running process"
    done = chaos.done()
    assert sorted(line.key for line in done) == sorted(keys)
    assert {line.pid for line in done} == {b.pid}
    assert sorted((line.id, line.attempt) for line in done) == sorted(
        (line.id, 2 if line.id in held else 1) for line in before
    )
    assert f"took over {len(held)} durable task(s) held by a process that is gone" in b.stderr
    assert b.sigterm() == 0, b.stderr[-4000:]
    assert_nothing_left(chaos)
    print(f"two processes: {count} accepted, {len(held)} held by A at its kill, run again by B")


# --- 3. a long task under a short lease -------------------------------------------------------


def test_a_task_longer_than_several_leases_runs_once_while_its_process_lives(
    chaos: RedisChaos,
) -> None:
    """Renewals keep 5 s tasks in their consumer through three 1.5 s leases.

    Two processes on the stream, the requests split between them; each
    task runs in whichever claimed it. Every lease/3 (0.5 s) each process
    renews what it holds (resetting the entries' idle time) and looks for
    gone owners; every claim also XAUTOCLAIMs entries idle over the lease.
    Had a renewal not reached an entry, the other process would take it
    and run it a second time.
    """
    chaos.lease = 1.5
    a = chaos.server()
    b = chaos.server()
    keys = ["long0", "long1", "long2", "long3"]
    for index, key in enumerate(keys):
        post((a, b)[index % 2].port, f"/jobs/{key}", seconds=5.0)
    wait_until(lambda: len(chaos.done()) == len(keys), "the long tasks to finish")
    chaos.wait_store_empty()
    assert a.sigterm() == 0, a.stderr[-4000:]
    assert b.sigterm() == 0, b.stderr[-4000:]

    lines = chaos.lines()
    assert sorted((line.kind, line.key) for line in lines) == sorted(
        [("start", key) for key in keys] + [("done", key) for key in keys]
    )
    assert {line.attempt for line in lines} == {1}
    pid_of = {(line.key, line.pid) for line in lines}
    assert len(pid_of) == len(keys), f"a task started in one process, done in another: {pid_of}"
    assert "took over" not in a.stderr + b.stderr
    assert_nothing_left(chaos)

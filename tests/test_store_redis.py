"""The Redis Streams task store against a real ``redis-server``.

One server per module (``tests/_redis.py``); each test works under keys of
its own prefix, so tests share it without seeing each other. Two stores in
one test are two owners, as two processes would be. A dead owner is a real
process that was started and has exited (its pid is dead), not a mock.

Times: the lease tests wait (with bounded polling) for real leases of a
fraction of a second to run out; no test asserts how long anything took.
The tests that need no server (URLs, imports) run without one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from trioapi._exceptions import TaskStoreError
from trioapi._stores.base import Owner, TaskRecord, process_start
from trioapi._stores.redis import RedisStore
from trioapi._stores.registry import open_url

# Bounded polling for what a lease makes happen "eventually".
POLL_EVERY = 0.02
POLL_TRIES = 500


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    """A plain client, to look at what the store wrote."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@contextlib.asynccontextmanager
async def opened(
    url: str, prefix: str, *, lease: float = 30.0, owner: Owner | None = None
) -> AsyncIterator[RedisStore]:
    store = RedisStore(url, prefix=prefix, lease=lease)
    await store.open(owner or Owner.this_process(30.0))
    try:
        yield store
    finally:
        await store.close()


def tasks(count: int, *, start: int = 0) -> list[TaskRecord]:
    now = time.time()
    return [
        TaskRecord(f"task-{i}", "send_email", f'[["a{i}@b.c"],{{}}]', enqueued_at=now)
        for i in range(start, start + count)
    ]


def dead_owner() -> Owner:
    """The owner entry of a real process that has exited: its pid is dead."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    started = process_start(child.pid)
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)
    # A lease of an hour: only the dead pid can tell that it is gone.
    return Owner(uuid.uuid4().hex, socket.gethostname(), child.pid, started, 3600.0)


async def claim_all(store: RedisStore, limit: int = 100) -> list[TaskRecord]:
    return await store.claim(limit)


async def poll_claim(store: RedisStore, limit: int = 100) -> list[TaskRecord]:
    for _ in range(POLL_TRIES):
        found = await store.claim(limit)
        if found:
            return found
        await trio.sleep(POLL_EVERY)
    pytest.fail(f"nothing was claimable after {POLL_TRIES} polls")


# --- commit ------------------------------------------------------------------------


async def test_a_commit_is_visible_to_another_owner_and_claimed_commits_are_queued(
    redis_url: str, prefix: str
) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        assert a.claims_on_commit is False
        committed = [*tasks(2), TaskRecord("later", "report", "[[],{}]", 1, 0, 5.0, 1e12)]
        await a.commit(committed, claimed=True)
        assert await a.counts() == {"queued": 3, "running": 0, "retrying": 0, "dead": 0}
        got = await b.claim(10)
        assert got == [
            TaskRecord(t.id, t.name, t.payload, 1, 0, t.enqueued_at, t.run_at) for t in committed
        ]
        assert await a.claim(10) == []


async def test_a_commit_stores_all_of_its_tasks_or_none(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        unstorable = TaskRecord("bad", "send_email", None)  # type: ignore[arg-type]
        with pytest.raises(TaskStoreError, match="the Redis task store"):
            await a.commit([*tasks(2), unstorable], claimed=False)
        assert await b.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
        assert await b.claim(10) == []

        # Commits of several requests share a batch: one failing is not the others' fault.
        outcomes: dict[str, bool] = {}

        async def commit(name: str, records: list[TaskRecord]) -> None:
            try:
                await a.commit(records, claimed=False)
            except TaskStoreError:
                outcomes[name] = False
            else:
                outcomes[name] = True

        async with trio.open_nursery() as nursery:
            nursery.start_soon(commit, "good", tasks(3))
            nursery.start_soon(commit, "bad", [*tasks(2, start=10), unstorable])
            nursery.start_soon(commit, "also good", tasks(1, start=20))
        assert outcomes == {"good": True, "bad": False, "also good": True}
        assert sorted(t.id for t in await b.claim(10)) == ["task-0", "task-1", "task-2", "task-20"]


async def test_another_owner_never_sees_half_a_commit(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        seen: set[int] = set()
        done = trio.Event()

        async def commit() -> None:
            await a.commit(tasks(2000), claimed=False)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(commit)
            for _ in range(100_000):
                seen.add((await b.counts())["queued"])
                if done.is_set():
                    break
        seen.add((await b.counts())["queued"])
        assert seen <= {0, 2000}
        assert 2000 in seen


# --- claim ------------------------------------------------------------------------------


async def test_claim_hands_each_task_to_exactly_one_of_two_owners(
    redis_url: str, prefix: str
) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        await a.commit(tasks(100), claimed=False)
        taken: dict[str, list[str]] = {"a": [], "b": []}

        async def drain(name: str, store: RedisStore) -> None:
            for _ in range(100):
                got = await store.claim(7)
                if not got:
                    return
                taken[name] += [record.id for record in got]
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, "a", a)
            nursery.start_soon(drain, "b", b)
        assert not set(taken["a"]) & set(taken["b"])
        assert sorted(taken["a"] + taken["b"]) == sorted(t.id for t in tasks(100))
        assert await a.counts() == {"queued": 0, "running": 100, "retrying": 0, "dead": 0}


async def test_claim_takes_the_oldest_first_and_at_most_limit(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a:
        await a.commit(tasks(5), claimed=False)
        assert [t.id for t in await a.claim(2)] == ["task-0", "task-1"]
        assert [t.id for t in await a.claim(10)] == ["task-2", "task-3", "task-4"]
        assert await a.claim(10) == []


async def test_attempt_counts_starts_across_owners(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        await a.commit(tasks(1), claimed=False)
        assert [t.attempt for t in await a.claim(1)] == [1]
        a.release(["task-0"])
        await a.flush()
        assert [t.attempt for t in await b.claim(1)] == [2]
        b.started("task-0", 3)  # a retry began in b
        b.release(["task-0"])
        await b.flush()
        assert [t.attempt for t in await a.claim(1)] == [4]


# --- retry, release ---------------------------------------------------------------------


async def test_retry_keeps_the_task_held_and_records_failures_and_run_at(
    redis_url: str, prefix: str
) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        await a.commit(tasks(1), claimed=False)
        await a.claim(1)
        run_at = time.time() + 3600.0
        a.retry("task-0", 1, run_at, "ValueError: boom")
        await a.flush()
        assert await a.counts() == {"queued": 0, "running": 0, "retrying": 1, "dead": 0}
        assert await b.recover() == 0
        assert await b.claim(10) == []  # held by a, which is alive

        # A drain gives it back: the next owner gets it with what the retry recorded.
        a.release(["task-0"])
        await a.flush()
        assert await a.counts() == {"queued": 0, "running": 0, "retrying": 1, "dead": 0}
        (record,) = await b.claim(10)
        assert (record.id, record.attempt, record.failures, record.run_at) == (
            "task-0",
            2,
            1,
            run_at,
        )
        # Handed out before it is due: still retrying, now held by b.
        assert await b.counts() == {"queued": 0, "running": 0, "retrying": 1, "dead": 0}
        b.started("task-0", 3)
        await b.flush()
        assert await b.counts() == {"queued": 0, "running": 1, "retrying": 0, "dead": 0}


async def test_release_gives_tasks_back_and_keeps_their_starts(
    redis_url: str, prefix: str, raw: Any
) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        await a.commit(tasks(3), claimed=False)
        await a.claim(3)
        a.release(["task-0", "task-2"])
        await a.flush()
        assert await a.counts() == {"queued": 2, "running": 1, "retrying": 0, "dead": 0}
        got = await b.claim(10)
        assert [(t.id, t.attempt) for t in got] == [("task-0", 2), ("task-2", 2)]
        assert raw.xlen(f"{prefix}:tasks") == 3  # the old entries are gone


async def test_ack_and_cancel_forget_the_task(redis_url: str, prefix: str, raw: Any) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        await a.commit(tasks(2), claimed=False)
        await a.claim(2)
        a.ack("task-0")
        a.cancel("task-1")
        await a.flush()
        assert await a.counts() == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
        assert await b.claim(10) == []
        assert raw.xlen(f"{prefix}:tasks") == 0
        assert raw.keys(f"{prefix}:meta:*") == []


# --- dead letters ----------------------------------------------------------------------


async def test_dead_letters_are_listed_retried_and_purged(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a:
        await a.commit(tasks(3), claimed=False)
        await a.claim(3)
        a.started("task-0", 2)
        a.dead("task-0", 2, "ValueError: boom", "Traceback (most recent call last): ...")
        a.dead("task-1", 1, "KeyError: 'x'", "Traceback ...")
        await a.flush()
        assert await a.counts() == {"queued": 0, "running": 1, "retrying": 0, "dead": 2}
        letters = await a.dead_letters()
        assert [(d.id, d.name, d.attempts, d.failures, d.error) for d in letters] == [
            ("task-0", "send_email", 2, 2, "ValueError: boom"),
            ("task-1", "send_email", 1, 1, "KeyError: 'x'"),
        ]
        assert letters[0].payload == tasks(1)[0].payload
        assert letters[0].traceback.startswith("Traceback")
        assert letters[0].died_at > 0
        assert [d.id for d in await a.dead_letters(limit=1)] == ["task-0"]

        assert await a.retry_dead("task-0") is True
        assert await a.retry_dead("task-0") is False  # not dead any more
        assert await a.retry_dead("no-such-task") is False
        assert await a.counts() == {"queued": 1, "running": 1, "retrying": 0, "dead": 1}
        (again,) = await a.claim(10)
        assert (again.id, again.attempt, again.failures, again.run_at) == ("task-0", 3, 0, 0.0)

        assert await a.purge_dead() == 1
        assert await a.dead_letters() == []
        assert await a.purge_dead() == 0
        assert await a.counts() == {"queued": 0, "running": 2, "retrying": 0, "dead": 0}


# --- owners: recover, leases, renew, close -------------------------------------------------


async def test_recover_frees_a_dead_owners_tasks_at_once(
    redis_url: str, prefix: str, raw: Any
) -> None:
    gone = dead_owner()
    async with opened(redis_url, prefix, owner=gone) as dead, opened(redis_url, prefix) as a:
        await a.commit(tasks(3), claimed=False)
        assert len(await dead.claim(10)) == 3
        dead.retry("task-1", 1, time.time() - 1.0, "OSError: down")
        await dead.flush()
        # The owner's process is gone; its lease (an hour) has not run out.
        assert await a.claim(10) == []
        assert await a.recover() == 3
        got = await a.claim(10)
        assert [(t.id, t.attempt, t.failures) for t in got] == [
            ("task-0", 2, 0),
            ("task-1", 2, 1),
            ("task-2", 2, 0),
        ]
        assert await a.recover() == 0
        assert not raw.hexists(f"{prefix}:owners", gone.id)
        consumers = raw.xinfo_consumers(f"{prefix}:tasks", prefix)
        assert gone.id not in [c["name"] for c in consumers]
        assert await a.counts() == {"queued": 0, "running": 3, "retrying": 0, "dead": 0}


async def test_recover_leaves_a_live_owners_tasks(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a, opened(redis_url, prefix) as b:
        await a.commit(tasks(2), claimed=False)
        assert len(await b.claim(10)) == 2
        assert await a.recover() == 0
        assert await a.claim(10) == []


async def test_a_restart_after_sigkill_resumes_the_killed_processs_tasks_at_once(
    redis_url: str, prefix: str
) -> None:
    child = textwrap.dedent(
        """
        import os, signal, sys, trio
        from trioapi._stores.base import Owner
        from trioapi._stores.redis import RedisStore

        async def main():
            store = RedisStore(sys.argv[1], prefix=sys.argv[2])
            await store.open(Owner.this_process(3600.0))
            print(len(await store.claim(10)), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        trio.run(main)
        """
    )
    async with opened(redis_url, prefix) as a:
        await a.commit(tasks(4), claimed=False)
        killed = await trio.run_process(
            [sys.executable, "-c", child, redis_url, prefix], capture_stdout=True, check=False
        )
        assert killed.returncode == -signal.SIGKILL
        assert killed.stdout.decode().strip() == "4"
        assert await a.claim(10) == []
        assert await a.recover() == 4
        assert [t.attempt for t in await a.claim(10)] == [2, 2, 2, 2]


async def test_close_leaves_held_tasks_to_the_next_recover(
    redis_url: str, prefix: str, raw: Any
) -> None:
    async with opened(redis_url, prefix) as b:
        first = RedisStore(redis_url, prefix=prefix)
        owner = Owner.this_process(30.0)
        await first.open(owner)
        await first.commit(tasks(2), claimed=False)
        await first.claim(10)
        await first.close()
        await first.close()  # idempotent
        assert not raw.hexists(f"{prefix}:owners", owner.id)
        with pytest.raises(RuntimeError, match="not open"):
            await first.claim(1)
        # Same pid, still alive: without its owner entry it counts as gone.
        assert await b.recover() == 2
        assert [t.id for t in await b.claim(10)] == ["task-0", "task-1"]


async def test_a_lease_that_runs_out_hands_the_tasks_over(redis_url: str, prefix: str) -> None:
    async with (
        opened(redis_url, prefix, lease=0.2) as a,
        opened(redis_url, prefix) as silent,
    ):
        await a.commit(tasks(2), claimed=False)
        assert len(await silent.claim(10)) == 2  # and never renews
        assert await a.recover() == 0  # its process is alive
        got = await poll_claim(a)
        assert [(t.id, t.attempt) for t in got] == [("task-0", 2), ("task-1", 2)]


async def test_an_owner_late_to_renew_is_not_handed_its_own_tasks_twice(
    redis_url: str, prefix: str, raw: Any
) -> None:
    async with opened(redis_url, prefix, lease=0.2) as a:
        await a.commit(tasks(1), claimed=False)
        assert len(await a.claim(10)) == 1
        for _ in range(POLL_TRIES):
            (pending,) = raw.xpending_range(f"{prefix}:tasks", prefix, "-", "+", 1)
            if pending["time_since_delivered"] > 200:
                break
            await trio.sleep(POLL_EVERY)
        # XAUTOCLAIM finds it idle past the lease, and gives it to a again: a
        # goes on holding it, and does not hand it out a second time.
        assert await a.claim(10) == []
        (pending,) = raw.xpending_range(f"{prefix}:tasks", prefix, "-", "+", 1)
        assert (pending["consumer"], pending["times_delivered"]) == (a._owner.id, 2)  # type: ignore[union-attr]


async def test_renew_keeps_held_tasks_from_being_taken_over(redis_url: str, prefix: str) -> None:
    async with (
        opened(redis_url, prefix, lease=0.5) as a,
        opened(redis_url, prefix) as b,
    ):
        await a.commit(tasks(2), claimed=False)
        assert len(await b.claim(10)) == 2
        b.retry("task-1", 1, time.time() + 3600.0, "boom")  # held while waiting, too
        await b.flush()
        # Several leases' worth of time, renewing ten times per lease.
        until = time.monotonic() + 1.5
        for _ in range(10_000):
            if time.monotonic() > until:
                break
            await b.renew()
            assert await a.claim(10) == []
            await trio.sleep(0.05)
        # Without renewals the lease runs out: the check above could fail.
        assert {t.id for t in await poll_claim(a)} == {"task-0", "task-1"}


async def test_renew_registers_an_owner_taken_for_gone_again(
    redis_url: str, prefix: str, raw: Any
) -> None:
    owner = Owner.this_process(30.0)
    async with opened(redis_url, prefix, owner=owner) as a:
        raw.hdel(f"{prefix}:owners", owner.id)
        await a.renew()
        assert raw.hexists(f"{prefix}:owners", owner.id)


# --- counts ------------------------------------------------------------------------------


async def test_counts_per_state(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a:
        await a.commit(tasks(6), claimed=False)
        assert await a.counts() == {"queued": 6, "running": 0, "retrying": 0, "dead": 0}
        await a.claim(4)
        assert await a.counts() == {"queued": 2, "running": 4, "retrying": 0, "dead": 0}
        a.retry("task-0", 1, time.time() + 3600.0, "boom")  # held, waiting
        a.retry("task-1", 1, time.time() + 3600.0, "boom")
        a.release(["task-1"])  # back in the stream, still waiting
        a.dead("task-2", 1, "boom", "")
        a.ack("task-3")
        await a.flush()
        assert await a.counts() == {"queued": 2, "running": 0, "retrying": 2, "dead": 1}
        # task-4, task-5 and task-1 (not due yet) are handed out.
        assert len(await a.claim(10)) == 3
        assert await a.counts() == {"queued": 0, "running": 2, "retrying": 2, "dead": 1}


# --- opening, URLs, imports ------------------------------------------------------------------


async def test_open_says_what_to_do_when_no_server_answers(redis_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(TaskStoreError, match="start the server, or fix the URL"):
        await store.open(Owner.this_process(30.0))
    await store.close()  # nothing to close: fine


async def test_open_twice_is_refused(redis_url: str, prefix: str) -> None:
    async with opened(redis_url, prefix) as a:
        with pytest.raises(RuntimeError, match="open already"):
            await a.open(Owner.this_process(30.0))


async def test_open_without_the_client_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis raises ImportError
    store = RedisStore()
    with pytest.raises(RuntimeError, match=r"pip install 'trioapi\[redis\]'"):
        await store.open(Owner.this_process(30.0))


def test_from_url_reads_lease_and_prefix_and_hides_the_password() -> None:
    store = RedisStore.from_url("redis://:s3cret@cache.internal:6390/2?lease=5&prefix=shop")
    assert (store.lease, store.prefix) == (5.0, "shop")
    assert store.url == "redis://:***@cache.internal:6390/2?lease=5&prefix=shop"
    assert "s3cret" not in repr(vars(store).get("url"))

    tls = RedisStore.from_url("rediss://worker:pa%40ss@redis.example:6380/0")
    assert tls.url == "rediss://worker:***@redis.example:6380/0"
    assert (tls.lease, tls.prefix) == (30.0, "trioapi")

    assert RedisStore.from_url("redis://127.0.0.1/0?password=x").url.endswith("password=%2A%2A%2A")
    assert RedisStore.from_url("valkey://127.0.0.1:6379/0").lease == 30.0
    assert RedisStore.from_url("unix:///run/redis.sock?db=1").url == "unix:///run/redis.sock?db=1"
    assert RedisStore().url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "not a Redis URL"),
        ("redis://127.0.0.1/0?lease=soon", "lease in .* must be a number of seconds"),
        ("redis://127.0.0.1/0?lease=0", "lease must be a positive number"),
        ("redis://127.0.0.1/0?prefix=", "prefix must not be empty"),
        ("redis://127.0.0.1/0?protocol=3", "speaks RESP2"),
        ("redis://:pw@127.0.0.1/0?lease=x", r"redis://:\*\*\*@"),
    ],
)
def test_from_url_refuses_what_it_cannot_use(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisStore.from_url(url)


def test_the_constructor_takes_options_as_arguments_not_in_the_url() -> None:
    with pytest.raises(ValueError, match=r"as keyword arguments, or use RedisStore\.from_url"):
        RedisStore("redis://127.0.0.1/0?lease=5")


def test_a_redis_url_names_the_redis_store() -> None:
    store = open_url("redis://127.0.0.1:6379/3?lease=7")
    assert isinstance(store, RedisStore)
    assert store.lease == 7.0


def test_importing_trioapi_and_the_store_does_not_import_the_client() -> None:
    code = (
        "import sys, trioapi, trioapi.stores, trioapi._stores.redis; "
        "from trioapi.stores import RedisStore; RedisStore.from_url('redis://h/0'); "
        "sys.exit('redis was imported' if 'redis' in sys.modules else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ}, timeout=60)

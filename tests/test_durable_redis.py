"""Durable tasks of a whole app on a real ``redis-server``: commit, run, retry, share, recover.

The store's own protocol is tested in ``test_store_redis.py``; this is the
runtime on top of it. Redis cannot hold a task for the committing process,
so a request's durable tasks are committed queued (their handles end
``DELEGATED``) and whichever process claims first runs them. Tests wait for
what the tasks themselves signal, never for a time.
"""

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
import trio

from trioapi import BackgroundTasks, TaskState, TrioAPI, current_task
from trioapi.testing import TestClient

DEADLINE = 30.0  # generous: only a hang reaches it


@pytest.fixture
def store_url(redis_url: str) -> str:
    return f"{redis_url}?prefix=app-{uuid.uuid4().hex[:10]}"


class Seen:
    """What tasks did, and an event per expected count."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._waiters: list[tuple[int, trio.Event]] = []

    def add(self, item: Any) -> None:
        self.items.append(item)
        for count, event in self._waiters:
            if len(self.items) >= count:
                event.set()

    async def until(self, count: int) -> list[Any]:
        event = trio.Event()
        self._waiters.append((count, event))
        if len(self.items) >= count:
            event.set()
        with trio.fail_after(DEADLINE):
            await event.wait()
        return self.items


async def test_a_request_commits_to_redis_and_some_process_runs_it(store_url: str) -> None:
    app = TrioAPI(task_store=store_url)
    seen = Seen()

    @app.durable_task(name="mail.send")
    async def send(to: str) -> None:
        seen.add((to, current_task().attempt))

    handles: list[Any] = []

    @app.post("/signup/{email}")
    async def signup(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        handles.append(background_tasks.add_task(send, email))
        return {"ok": email}

    async with TestClient(app) as client:
        response = await client.post("/signup/ada")
        assert response.status_code == 200
        # Stored before the answer: the handle was handed to the store.
        assert handles[0].state is TaskState.DELEGATED
        assert await seen.until(1) == [("ada", 1)]
        await app.background.wait_idle()
        await app.background.store.flush()  # type: ignore[union-attr]
        counts = await app.background.store.counts()  # type: ignore[union-attr]
    assert counts == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
    assert app.background.stats()["delegated"] == 1


async def test_a_failure_is_retried_and_a_poison_task_ends_dead(store_url: str) -> None:
    app = TrioAPI(task_store=store_url)
    seen = Seen()

    @app.durable_task(name="flaky", retries=2, backoff=0.01, jitter=0)
    async def flaky() -> None:
        seen.add(("flaky", current_task().attempt))
        if current_task().attempt == 1:
            raise ConnectionError("not yet")

    @app.durable_task(name="poison", retries=1, backoff=0.01, jitter=0)
    async def poison() -> None:
        seen.add(("poison", current_task().attempt))
        raise ValueError("always")

    async with TestClient(app):
        app.background.add_task(flaky)
        app.background.add_task(poison)
        await seen.until(4)
        store = app.background.store
        assert store is not None
        for _ in range(200):  # the dead letter is posted after the last attempt
            await store.flush()
            letters = await store.dead_letters()
            if letters:
                break
            await trio.sleep(0.01)
    assert sorted(seen.items) == [("flaky", 1), ("flaky", 2), ("poison", 1), ("poison", 2)]
    assert [(letter.name, letter.error) for letter in letters] == [("poison", "ValueError: always")]


async def test_two_processes_share_the_stream_and_each_task_runs_once(store_url: str) -> None:
    seen = Seen()

    def make(label: str) -> TrioAPI:
        app = TrioAPI(task_store=store_url)

        @app.durable_task(name="jobs.work")
        async def work(number: int) -> None:
            seen.add((number, label))
            await trio.sleep(0)

        return app

    first, second = make("first"), make("second")
    async with TestClient(first), TestClient(second):
        for number in range(40):
            (first if number % 2 else second).background.add_task(
                first.background.durable.find("jobs.work"), number
            )
        items = await seen.until(40)
    assert sorted(number for number, _ in items) == list(range(40))


DEAD_CONSUMER = """
import os, sys, trio
from trioapi._runtime import codec
from trioapi.stores import Owner, TaskRecord, open_url

async def main():
    store = open_url(sys.argv[1])
    await store.open(Owner.this_process(store.lease))
    await store.commit(
        [TaskRecord(f"t{n}", "jobs.note", codec.encode("jobs.note", (n,), {})) for n in range(3)],
        claimed=False,
    )
    held = await store.claim(10)
    assert len(held) == 3, held
    os._exit(0)  # a crash while holding them

trio.run(main)
"""


async def test_tasks_held_by_a_dead_consumer_are_taken_over_at_startup(store_url: str) -> None:
    subprocess.run([sys.executable, "-c", DEAD_CONSUMER, store_url], check=True, timeout=60)
    app = TrioAPI(task_store=store_url)
    seen = Seen()

    @app.durable_task(name="jobs.note")
    def note(number: int) -> None:  # sync: in a worker thread, as resumed tasks may be
        trio.from_thread.run_sync(seen.add, (number, current_task().attempt))

    async with TestClient(app):
        items = await seen.until(3)
    assert sorted(items) == [(0, 2), (1, 2), (2, 2)]


async def test_a_drain_leaves_the_task_for_the_next_process(store_url: str) -> None:
    seen = Seen()
    first = TrioAPI(task_store=store_url, drain_timeout=0)

    @first.durable_task(name="jobs.long")
    async def long_job() -> None:
        seen.add(("first", current_task().id, current_task().attempt))
        await trio.sleep_forever()

    client = TestClient(first)
    async with client:
        first.background.add_task(long_job)
        await seen.until(1)
        report = await client.shutdown()
    assert report.resumable == 1

    second = TrioAPI(task_store=store_url)

    @second.durable_task(name="jobs.long")
    async def long_job_again() -> None:
        seen.add(("second", current_task().id, current_task().attempt))

    async with TestClient(second):
        items = await seen.until(2)
    assert [(label, attempt) for label, _, attempt in items] == [("first", 1), ("second", 2)]
    assert items[0][1] == items[1][1]
    assert os.environ.get("TRIOAPI_TASK_STORE") is None

"""Durable tasks in one process: commit, retries, dead letters, drain, recovery, codec.

Timing tests run under ``autojump_clock`` with the in-process ``MemoryStore``,
which never leaves the trio thread, so virtual times are exact. Tests that
need durability use a real SQLite file and assert no times at all. The
real-server crash tests (SIGKILL) are in ``test_durable_chaos.py``.

No ``from __future__ import annotations``: routes declared inside a test
name local types, which must be evaluated where they are written.
"""

import contextlib
import datetime
import decimal
import enum
import io
import json
import logging
import pathlib
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Annotated, Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trioapi import (
    BackgroundTasks,
    BackgroundTaskTimeout,
    Depends,
    TaskState,
    TrioAPI,
    current_task,
)
from trioapi._runtime import codec
from trioapi._server import tasks_cli
from trioapi._server.worker import run_worker
from trioapi.stores import MemoryStore, Owner, SQLiteStore, TaskRecord
from trioapi.testing import TestClient

from ._asgi import http_scope


def now() -> float:
    return trio.current_time()


@attrs.frozen
class Address:
    street: str
    number: int


class Plan(enum.Enum):
    FREE = "free"
    PRO = "pro"


def memory_app(**options: Any) -> TrioAPI:
    return TrioAPI(task_store=MemoryStore(), **options)


# --- commit before the response -------------------------------------------------------------


@pytest.mark.parametrize("given_as", ["parameter", "response background"])
async def test_the_task_is_in_the_store_before_the_response_starts(
    tmp_path: pathlib.Path, given_as: str
) -> None:
    from trioapi.background import BackgroundTask
    from trioapi.responses import JSONResponse

    db = tmp_path / "tasks.db"
    app = TrioAPI(task_store=f"sqlite:///{db}")
    ran: list[str] = []

    @app.durable_task(name="send")
    async def send(to: str) -> None:
        ran.append(to)

    if given_as == "parameter":

        @app.post("/signup")
        async def signup(background_tasks: BackgroundTasks) -> dict[str, str]:
            background_tasks.add_task(send, "ada@example.com")
            return {"ok": "yes"}

    else:

        @app.post("/signup")
        async def signup_response() -> JSONResponse:  # Starlette's way
            return JSONResponse({"ok": "yes"}, background=BackgroundTask(send, "ada@example.com"))

    stored_at_start: list[int] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send_message(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            # Another connection, as another process would see the file.
            with contextlib.closing(sqlite3.connect(db)) as other:
                stored_at_start.append(
                    other.execute("SELECT count(*) FROM trioapi_tasks").fetchone()[0]
                )

    async with TestClient(app):
        await app(http_scope("/signup", "POST"), receive, send_message)
        await app.background.wait_idle()
        assert await app.background.store.counts() == {  # type: ignore[union-attr]
            "queued": 0,
            "running": 0,
            "retrying": 0,
            "dead": 0,
        }
    assert stored_at_start == [1]
    assert ran == ["ada@example.com"]


async def test_an_endpoint_that_raises_stores_nothing_and_runs_nothing() -> None:
    app = memory_app()
    ran: list[str] = []

    @app.durable_task(name="send")
    async def send(to: str) -> None:
        ran.append(to)

    @app.post("/signup")
    async def signup(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(send, "ada@example.com")
        raise ValueError("the endpoint failed")

    async with TestClient(app) as client:
        response = await client.post("/signup")
        assert response.status_code == 500
        assert (await app.background.store.counts())["queued"] == 0  # type: ignore[union-attr]
    assert ran == []
    assert app.background.last_report is not None
    assert app.background.last_report.skipped == 1


@pytest.mark.parametrize(
    "argument",
    [lambda: None, object(), {1, object()}, Address],
    ids=["lambda", "object", "set-of-object", "a-class"],
)
async def test_an_unstorable_argument_fails_the_request_and_names_the_task(
    argument: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = memory_app()

    @app.durable_task(name="mail.send")
    async def send(value: Any) -> None:
        raise AssertionError("never runs")

    @app.post("/signup")
    async def signup(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(send, argument)

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(TypeError, match=r"durable task 'mail\.send': argument 1 is a"):
            await client.post("/signup")
        assert (await app.background.store.counts())["queued"] == 0  # type: ignore[union-attr]


async def test_a_store_that_cannot_commit_answers_503_and_runs_nothing(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "tasks.db"
    app = TrioAPI(task_store=SQLiteStore(db, busy_timeout=0.05))
    ran: list[str] = []

    @app.durable_task(name="send")
    async def send(to: str) -> None:
        ran.append(to)

    @app.post("/signup")
    async def signup(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(send, "ada@example.com")
        return {"ok": "yes"}

    async with TestClient(app) as client:
        # Another process holds the write lock for longer than busy_timeout.
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")
            response = await client.post("/signup")
            other.execute("ROLLBACK")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert (await app.background.store.counts())["queued"] == 0  # type: ignore[union-attr]
    assert ran == []
    assert "database is locked" in caplog.text


async def test_group_commit_shares_transactions_between_concurrent_requests(
    tmp_path: pathlib.Path,
) -> None:
    store = SQLiteStore(tmp_path / "tasks.db")
    app = TrioAPI(task_store=store)
    ran: list[int] = []

    @app.durable_task(name="note")
    async def note(number: int) -> None:
        ran.append(number)

    @app.post("/notes/{number}")
    async def create(number: int, background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(note, number)

    async with TestClient(app) as client:
        before = store.batches
        async with trio.open_nursery() as nursery:
            for number in range(200):
                nursery.start_soon(client.post, f"/notes/{number}")
        commits_and_acks = store.batches - before
    assert sorted(ran) == list(range(200))
    # 200 commits and 200 acks, in far fewer transactions.
    assert commits_and_acks < 200


# --- order, context, teardown ---------------------------------------------------------------


async def test_durable_and_in_memory_tasks_of_a_request_run_in_the_order_added(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    order: list[str] = []

    @app.durable_task(name="durable")
    async def durable(label: str) -> None:
        await trio.sleep(1)
        order.append(label)

    async def in_memory(label: str) -> None:
        order.append(label)

    @app.post("/x")
    async def endpoint(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(in_memory, "first")
        background_tasks.add_task(durable, "second")
        background_tasks.add_task(in_memory, "third")
        background_tasks.add_task(durable, "fourth")

    async with TestClient(app) as client:
        await client.post("/x")
    assert order == ["first", "second", "third", "fourth"]


async def test_a_durable_task_added_in_teardown_is_committed_after_the_response_and_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    ran: list[tuple[str, int]] = []

    @app.durable_task(name="audit")
    async def audit(event: str) -> None:
        ran.append((event, current_task().attempt))

    async def session(background_tasks: BackgroundTasks) -> AsyncIterator[None]:
        yield
        background_tasks.add_task(audit, "closed")

    @app.get("/x")
    async def endpoint(_: Annotated[None, Depends(session)]) -> dict[str, str]:
        return {"ok": "yes"}

    async with TestClient(app) as client:
        assert (await client.get("/x")).status_code == 200
        await app.background.wait_idle()
    assert ran == [("closed", 1)]


async def test_add_task_outside_a_request_commits_and_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    ran: list[str] = []

    @app.durable_task(name="sync_job")
    def sync_job(label: str) -> None:
        ran.append(f"{label} {current_task().attempt}")

    async with TestClient(app):
        handle = app.background.add_task(sync_job, "nightly")
        assert await handle is TaskState.COMPLETED
        assert handle.task_id is not None
    assert ran == ["nightly 1"]


# --- retries, backoff, timeouts, dead letters (exact virtual times) -------------------------


async def test_failures_retry_after_exponential_backoff_then_dead_letter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    attempts: list[tuple[int, float, str]] = []
    hooked: list[str] = []

    @app.durable_task(retries=3, backoff=1.0, jitter=0, name="flaky")
    async def flaky() -> None:
        task = current_task()
        attempts.append((task.attempt, now(), task.id))
        raise RuntimeError(f"boom {task.attempt}")

    app.background.on_error(lambda handle, error: hooked.append(str(error)))

    @app.post("/x")
    async def endpoint(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(flaky)

    async with TestClient(app) as client:
        await client.post("/x")
        letters = await app.background.store.dead_letters()  # type: ignore[union-attr]
        stats = app.background.stats()
    assert [(attempt, at) for attempt, at, _ in attempts] == [(1, 0), (2, 1), (3, 3), (4, 7)]
    assert len({task_id for _, _, task_id in attempts}) == 1  # one id across attempts
    assert hooked == ["boom 1", "boom 2", "boom 3", "boom 4"]
    assert [(letter.id, letter.attempts, letter.failures) for letter in letters] == [
        (attempts[0][2], 4, 4)
    ]
    assert letters[0].error == "RuntimeError: boom 4"
    assert "raise RuntimeError" in letters[0].traceback
    assert stats["retried"] == 3
    assert stats["failed"] == 1


async def test_a_task_that_succeeds_on_its_third_attempt_is_acked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    attempts: list[tuple[int, float]] = []

    @app.durable_task(retries=5, backoff=0.5, jitter=0, name="flaky")
    async def flaky() -> str:
        attempts.append((current_task().attempt, now()))
        if current_task().attempt < 3:
            raise RuntimeError("not yet")
        return "done"

    async with TestClient(app):
        handle = app.background.add_task(flaky)
        assert await handle is TaskState.COMPLETED
        assert handle.result == "done"
        assert handle.attempt == 3
        assert await app.background.store.counts() == dict.fromkeys(  # type: ignore[union-attr]
            ("queued", "running", "retrying", "dead"), 0
        )
    assert attempts == [(1, 0), (2, 0.5), (3, 1.5)]


async def test_backoff_is_capped_and_jitter_stays_within_its_fraction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    capped: list[float] = []
    jittered: list[float] = []

    @app.durable_task(retries=3, backoff=10, max_backoff=15, jitter=0, name="slow_to_recover")
    async def slow_to_recover() -> None:
        capped.append(now())
        raise RuntimeError

    @app.durable_task(retries=1, backoff=2, jitter=0.5, name="with_jitter")
    async def with_jitter() -> None:
        jittered.append(now())
        raise RuntimeError

    async with TestClient(app):
        await app.background.add_task(slow_to_recover)
        await app.background.add_task(with_jitter)
    assert capped == [0, 10, 25, 40]
    start, retry = jittered
    assert 2 <= retry - start <= 3


async def test_a_timeout_cuts_one_attempt_and_the_next_one_runs(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = memory_app()
    attempts: list[tuple[int, float]] = []

    @app.durable_task(timeout=2, retries=1, backoff=1, jitter=0, name="sometimes_slow")
    async def sometimes_slow() -> None:
        attempts.append((current_task().attempt, now()))
        if current_task().attempt == 1:
            await trio.sleep(10)

    async with TestClient(app):
        handle = app.background.add_task(sometimes_slow)
        assert await handle is TaskState.COMPLETED
        assert now() == 3
    assert attempts == [(1, 0), (2, 3)]
    timeouts = [record for record in caplog.records if record.exc_info]
    assert isinstance(timeouts[0].exc_info[1], BackgroundTaskTimeout)  # type: ignore[index]


async def test_current_task_reaches_sync_tasks_in_their_thread_and_nothing_else(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()
    seen: list[tuple[str, int]] = []

    @app.durable_task(name="jobs.sync")
    def sync_job() -> None:
        task = current_task()
        seen.append((task.name, task.attempt))

    async def in_memory() -> None:
        current_task()

    async with TestClient(app):
        await app.background.add_task(sync_job)
        handle = app.background.add_task(in_memory)
        assert await handle is TaskState.FAILED
    assert seen == [("jobs.sync", 1)]
    assert isinstance(handle.exception, RuntimeError)
    assert "only available inside a durable task" in str(handle.exception)


async def test_cancelling_a_durable_task_through_its_handle_forgets_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = memory_app()

    @app.durable_task(retries=3, backoff=100, name="flaky")
    async def flaky() -> None:
        raise RuntimeError

    async with TestClient(app):
        handle = app.background.add_task(flaky)
        await trio.sleep(1)  # the first attempt failed; the retry waits out its backoff
        assert handle.state is TaskState.PENDING
        handle.cancel()
        assert await handle is TaskState.CANCELLED
        assert now() == 1
        assert await app.background.store.counts() == dict.fromkeys(  # type: ignore[union-attr]
            ("queued", "running", "retrying", "dead"), 0
        )


# --- the drain: what is cut off stays in the store ------------------------------------------


async def test_the_drain_releases_cut_off_and_waiting_tasks_as_resumable(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    app = TrioAPI(task_store=store, drain_timeout=5)

    @app.durable_task(name="long_job")
    async def long_job() -> None:
        await trio.sleep(100)

    @app.durable_task(retries=2, backoff=50, name="flaky")
    async def flaky() -> None:
        raise RuntimeError

    client = TestClient(app)
    async with client:
        app.background.add_task(long_job)
        app.background.add_task(flaky)
        await trio.sleep(1)
        report = await client.shutdown()
    assert now() == 6  # the deadline, not the retry's backoff
    assert (report.completed, report.resumable, report.failed) == (0, 2, 0)
    assert "0 skipped, 2 resumable" in str(report)
    assert await store.counts() == {"queued": 1, "running": 0, "retrying": 1, "dead": 0}


async def test_a_restart_resumes_what_a_drain_left_with_the_same_id(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    first = TrioAPI(task_store=url, drain_timeout=0)
    runs: list[tuple[str, str, int]] = []

    def register(app: TrioAPI, label: str) -> Any:
        @app.durable_task(name="jobs.long")
        async def long_job(size: int) -> None:
            runs.append((label, current_task().id, current_task().attempt))
            if label == "first":
                await trio.sleep_forever()

        return long_job

    job = register(first, "first")
    handles: list[Any] = []

    @first.post("/jobs")
    async def start_job(background_tasks: BackgroundTasks) -> None:
        handles.append(background_tasks.add_task(job, 3))

    client = TestClient(first, wait_background=False)
    async with client:
        await client.post("/jobs")  # committed before this returns
        await trio.testing.wait_all_tasks_blocked()
        report = await client.shutdown()
    handle = handles[0]
    assert report.resumable == 1
    assert handle.state is TaskState.RESUMABLE

    second = TrioAPI(task_store=url)
    register(second, "second")
    async with TestClient(second):
        await second.background.wait_idle()
    assert [(label, attempt) for label, _, attempt in runs] == [("first", 1), ("second", 2)]
    assert runs[0][1] == runs[1][1] == handle.task_id


# --- recovery from a process that died --------------------------------------------------------

DEAD_OWNER = """
import os, sys, trio
from trioapi._runtime import codec
from trioapi.stores import Owner, SQLiteStore, TaskRecord

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.open(Owner.this_process(store.lease))
    await store.commit(
        [TaskRecord(f"t{n}", "jobs.note", codec.encode("jobs.note", (n,), {})) for n in range(3)],
        claimed=True,
    )
    os._exit(0)  # a crash: no close, the tasks stay held by this pid

trio.run(main)
"""


async def test_tasks_held_by_a_dead_process_are_taken_over_before_serving(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "tasks.db"
    subprocess.run([sys.executable, "-c", DEAD_OWNER, str(db)], check=True)
    app = TrioAPI(task_store=f"sqlite:///{db}")
    ran: list[tuple[int, int]] = []

    @app.durable_task(name="jobs.note")
    def note(number: int) -> None:
        ran.append((number, current_task().attempt))

    with caplog.at_level(logging.INFO, logger="trioapi"):
        async with TestClient(app):
            # The startup's first pass claimed them; nothing else was asked.
            await app.background.wait_idle()
            counts = await app.background.store.counts()  # type: ignore[union-attr]
    assert sorted(ran) == [(0, 2), (1, 2), (2, 2)]
    assert counts == dict.fromkeys(("queued", "running", "retrying", "dead"), 0)
    messages = [record.getMessage() for record in caplog.records]
    took_over = messages.index("took over 3 durable task(s) held by a process that is gone")
    assert took_over < messages.index("trioapi: application startup complete")


async def test_a_task_this_process_cannot_find_is_dead_lettered(tmp_path: pathlib.Path) -> None:
    store = SQLiteStore(tmp_path / "tasks.db")
    await store.open(Owner.this_process(store.lease))
    await store.commit(
        [TaskRecord("gone", "removed.module:task", codec.encode("x", (), {}))], claimed=False
    )
    await store.close()

    app = TrioAPI(task_store=store)
    async with TestClient(app):
        await app.background.wait_idle()
        await store.flush()
        letters = await store.dead_letters()
    assert [letter.id for letter in letters] == ["gone"]
    assert "removed.module" in letters[0].error


async def test_an_app_with_durable_tasks_and_no_store_keeps_them_in_memory_and_says_so(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()

    @app.durable_task(retries=1, backoff=1, jitter=0, name="flaky")
    async def flaky() -> None:
        if current_task().attempt == 1:
            raise RuntimeError

    async with TestClient(app):
        assert await app.background.add_task(flaky) is TaskState.COMPLETED
    assert "no task_store: they are kept in memory" in caplog.text


# --- the worker and the tasks command -------------------------------------------------------


async def test_the_worker_runs_what_the_store_holds_and_drains_on_stop(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    store = SQLiteStore.from_url(url)
    await store.open(Owner.this_process(store.lease))
    await store.commit(
        [TaskRecord(f"t{n}", "jobs.add", codec.encode("jobs.add", (n,), {})) for n in range(5)],
        claimed=False,
    )
    await store.close()

    worker_app = TrioAPI(task_store=url)
    total: list[int] = []

    @worker_app.durable_task(name="jobs.add")
    def add(number: int) -> None:
        total.append(number)

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_worker(
                worker_app, handle_signals=False, task_status=task_status
            )
        )
        await worker_app.background.wait_idle()
        nursery.cancel_scope.cancel()
    assert sorted(total) == [0, 1, 2, 3, 4]
    assert worker_app.background.last_report is not None
    assert worker_app.background.last_report.completed == 5


def test_the_tasks_command_counts_lists_retries_and_purges_dead_letters(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"

    async def seed() -> None:
        store = SQLiteStore.from_url(url)
        await store.open(Owner.this_process(store.lease))
        payload = codec.encode("x", (), {})
        await store.commit(
            [TaskRecord(name, "jobs.x", payload) for name in ("a", "b", "c")], claimed=False
        )
        store.dead("a", 4, "RuntimeError: boom", "Traceback ...")
        await store.close()

    trio.run(seed)

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = tasks_cli.main(["--store", url, *argv], out=out)
        return code, out.getvalue()

    code, text = run("--json")
    assert (code, json.loads(text)) == (0, {"queued": 2, "running": 0, "retrying": 0, "dead": 1})
    code, text = run()
    assert "queued" in text
    assert "2" in text
    code, text = run("--dead", "--json")
    assert [(row["id"], row["error"]) for row in json.loads(text)] == [("a", "RuntimeError: boom")]
    code, text = run("--dead")
    assert "a  jobs.x  attempts=0" in text
    assert "RuntimeError: boom" in text
    assert run("retry", "a", "nope") == (1, "queued again: a\nno dead letter with id nope\n")
    assert json.loads(run("--json")[1])["queued"] == 3
    trio.run(_kill, url, "b")
    assert run("purge", "--dead") == (0, "purged 1 dead letter(s)\n")
    assert run("--dead") == (0, "no dead letters\n")
    with pytest.raises(SystemExit, match="purge --dead"):
        run("purge")


async def _kill(url: str, task_id: str) -> None:
    store = SQLiteStore.from_url(url)
    await store.open(Owner.this_process(store.lease))
    store.dead(task_id, 1, "ValueError", "")
    await store.close()


# --- the codec ------------------------------------------------------------------------------


@attrs.define
class Private:
    _secret: str
    visible: int = attrs.field(default=0)
    derived: int = attrs.field(init=False, default=7)


ROUND_TRIPS = [
    ("text", 1, 2.5, True, None, [1, "a"], {"k": [1, 2]}),
    ((1, 2), {1, 2}, frozenset({"x"}), {1: "int key"}, {"$": "dollar key"}),
    (
        datetime.datetime(2026, 12, 2, 10, 0, tzinfo=datetime.UTC),
        datetime.date(2026, 12, 2),
        datetime.time(10, 30),
        datetime.timedelta(seconds=90),
    ),
    (uuid.UUID(int=5), decimal.Decimal("1.10"), b"\x00\xff", pathlib.PurePosixPath("/tmp/x")),
    (Plan.PRO, Address("Main", 1), Private("s", visible=2), [Address("A", 2)]),
]


@pytest.mark.parametrize("values", ROUND_TRIPS)
def test_the_codec_reads_back_what_it_wrote(values: tuple[Any, ...]) -> None:
    args, kwargs = codec.decode(codec.encode("t", values, {"key": values[0]}))
    assert args == values
    assert kwargs == {"key": values[0]}
    assert [type(value) for value in args] == [type(value) for value in values]


def test_the_codec_refuses_classes_defined_in_a_function() -> None:
    @attrs.frozen
    class Local:
        x: int

    with pytest.raises(TypeError, match="its class is defined inside a function"):
        codec.encode("t", (Local(1),), {})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values, st.binary(), st.tuples(st.integers(), st.text()))
def test_any_json_value_bytes_and_tuples_round_trip(value: Any, data: bytes, pair: Any) -> None:
    assert codec.decode(codec.encode("t", (value, data, pair), {})) == ((value, data, pair), {})


def test_the_codec_refuses_a_payload_it_did_not_write() -> None:
    with pytest.raises(ValueError, match="not a durable task payload"):
        codec.decode("[1, 2]")
    with pytest.raises(ValueError, match="unknown tag"):
        codec.decode('{"a": [{"$": "nope", "v": 1}], "k": {}}')
    with pytest.raises(ValueError, match="cannot be imported here"):
        codec.decode('{"a": [{"$": "attrs", "c": "no.such:Thing", "v": {}}], "k": {}}')


def test_durable_task_refuses_what_it_cannot_name_or_schedule() -> None:
    app = TrioAPI()
    with pytest.raises(ValueError, match="defined inside a function"):

        @app.durable_task
        def local() -> None: ...

    with pytest.raises(ValueError, match="retries must be 0 or more"):
        app.durable_task(retries=-1, name="x")(print)
    with pytest.raises(ValueError, match="jitter must be between 0 and 1"):
        app.durable_task(jitter=2, name="x")(print)

    app.durable_task(name="same")(print)
    with pytest.raises(ValueError, match="two durable tasks are named 'same'"):
        app.durable_task(name="same")(len)


def test_a_durable_task_is_still_a_plain_call_when_called() -> None:
    app = TrioAPI()

    @app.durable_task(name="adder")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert add.__name__ == "add"
    assert repr(add) == "<DurableTask 'adder'>"


def test_sqlite_urls_parse_with_their_options(tmp_path: pathlib.Path) -> None:
    store = SQLiteStore.from_url("sqlite:///tasks.db?durability=power&lease=5&busy_timeout=2")
    assert (store.path, store.durability, store.lease, store.busy_timeout) == (
        "tasks.db",
        "power",
        5.0,
        2.0,
    )
    assert SQLiteStore.from_url("sqlite:////abs/tasks.db").path == "/abs/tasks.db"
    assert SQLiteStore.from_url("sqlite://:memory:").path == ":memory:"
    for bad, why in (
        ("sqlite://", "names no file"),
        ("sqlite:///x.db?nope=1", "unknown option"),
        ("sqlite:///x.db?durability=disk", "durability must be"),
    ):
        with pytest.raises(ValueError, match=why):
            SQLiteStore.from_url(bad)


def test_the_environment_overrides_the_apps_task_store(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIOAPI_TASK_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    app = TrioAPI(task_store="memory://")
    assert isinstance(app.background.store, SQLiteStore)
    monkeypatch.delenv("TRIOAPI_TASK_STORE")
    with pytest.raises(ValueError, match="no task store for 'ftp://x'"):
        TrioAPI(task_store="ftp://x")


async def test_a_task_interrupted_again_and_again_is_dead_lettered(tmp_path: pathlib.Path) -> None:
    # A task whose every start died with its process (ten starts, no failure).
    store = SQLiteStore(tmp_path / "tasks.db")
    await store.open(Owner.this_process(store.lease))
    await store.commit(
        [TaskRecord("crasher", "jobs.crash", codec.encode("jobs.crash", (), {}))], claimed=False
    )
    for _ in range(10):
        (record,) = await store.claim(1)
        store.release([record.id])
    await store.close()

    app = TrioAPI(task_store=store)
    ran: list[int] = []

    @app.durable_task(name="jobs.crash")
    def crash() -> None:
        ran.append(1)

    async with TestClient(app):
        await app.background.wait_idle()
        await store.flush()
        letters = await store.dead_letters()
    assert ran == []
    assert [letter.id for letter in letters] == ["crasher"]
    assert "interrupted 10 times" in letters[0].error


async def test_a_store_that_cannot_open_fails_the_startup_with_its_reason(
    tmp_path: pathlib.Path,
) -> None:
    app = TrioAPI(task_store=f"sqlite:///{tmp_path / 'missing' / 'tasks.db'}")
    with pytest.raises(RuntimeError, match="unable to open database file"):
        async with TestClient(app):
            pass


BAD_STORE_APP = """
from trioapi import TrioAPI
app = TrioAPI(task_store="sqlite:///{path}")
"""


@pytest.mark.parametrize("command", [["worker"], []], ids=["worker", "server"])
def test_the_cli_exits_3_with_one_line_when_the_store_cannot_open(
    tmp_path: pathlib.Path, command: list[str]
) -> None:
    (tmp_path / "badstore.py").write_text(
        BAD_STORE_APP.format(path=tmp_path / "missing" / "tasks.db")
    )
    bind = [] if command else ["--bind", "127.0.0.1:0"]
    done = subprocess.run(
        [sys.executable, "-m", "trioapi", *command, "badstore:app", *bind],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "the background runtime could not start" in done.stderr
    assert "unable to open database file" in done.stderr
    assert "Traceback" not in done.stderr


@attrs.frozen
class _Holder:
    """A module-level home for a durable task that another registry must import."""


IMPORTED = TrioAPI().durable_task(len, name="tests.test_durable:IMPORTED")


def test_the_registry_finds_tasks_by_name_by_import_and_from_a_script() -> None:
    from trioapi._runtime.durable import DurableRegistry, DurableTask

    registry = DurableRegistry()
    script_task = DurableTask(print, name="__main__:send_welcome")
    registry.add(script_task)
    # A worker that imported the script as a module finds the script's task.
    assert registry.find("jobs:send_welcome") is script_task
    # A name this registry never saw is imported: module:qualname.
    assert registry.find("tests.test_durable:IMPORTED") is IMPORTED
    assert "tests.test_durable:IMPORTED" in registry
    with pytest.raises(LookupError, match="is not a durable task"):
        registry.find("tests.test_durable:_Holder")
    with pytest.raises(LookupError, match="importing it failed"):
        registry.find("no.such.module:task")
    with pytest.raises(LookupError, match="is the module defining it imported"):
        registry.find("plain-name")


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"backoff": -1}, "backoff must be >= 0"),
        ({"max_backoff": -1}, "max_backoff must be >= 0"),
        ({"timeout": 0}, "timeout must be a positive number"),
    ],
)
def test_durable_task_options_are_checked(options: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        TrioAPI().durable_task(name="x", **options)(print)
    with pytest.raises(TypeError, match="needs a function"):
        TrioAPI().durable_task(name="x")(42)  # type: ignore[arg-type]

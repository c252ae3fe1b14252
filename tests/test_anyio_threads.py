"""Sync code written for FastAPI calls ``anyio.from_thread`` without a token; and a
cancelled request finishes its sync yield dependencies in worker threads.

FastAPI runs sync endpoints, dependencies and background tasks in anyio's
worker threads, where ``anyio.from_thread.run``/``run_sync`` find the event
loop by themselves. trioapi's threads are trio's and its background pool's:
these tests call anyio from each of them, as FastAPI code does. Annotations
are evaluated eagerly (no ``from __future__ import annotations``): the
dependencies are local to each test.
"""

import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Annotated, Any

import anyio.from_thread
import trio
import trio.testing

from trioapi import BackgroundTasks, Depends, TrioAPI
from trioapi.concurrency import contextmanager_in_threadpool, run_in_threadpool
from trioapi.testing import TestClient

from ._asgi import http_scope


async def test_a_sync_endpoint_calls_back_into_the_loop_through_anyio() -> None:
    app = TrioAPI()
    loop_thread = threading.get_ident()

    async def where() -> int:
        return threading.get_ident()

    @app.get("/")
    def read() -> dict[str, int]:
        # from_thread.run: an async function, run in the trio thread.
        return {"endpoint": threading.get_ident(), "callback": anyio.from_thread.run(where)}

    async with TestClient(app) as client:
        body = (await client.get("/")).json()
    assert body["callback"] == loop_thread
    assert body["endpoint"] != loop_thread


async def test_sync_dependencies_and_their_teardown_call_anyio() -> None:
    app = TrioAPI()
    seen: list[str] = []

    def resource() -> Iterator[str]:
        seen.append(anyio.from_thread.run_sync(lambda: "setup in loop"))
        yield "value"
        seen.append(anyio.from_thread.run_sync(lambda: "teardown in loop"))

    @app.get("/")
    def read(value: Annotated[str, Depends(resource)]) -> str:
        return value

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == "value"
    assert seen == ["setup in loop", "teardown in loop"]


async def test_a_sync_background_task_calls_anyio_from_its_worker_thread() -> None:
    app = TrioAPI()
    done = trio.Event()
    threads: list[int] = []

    async def finish() -> None:
        threads.append(threading.get_ident())
        done.set()

    def task() -> None:
        threads.append(threading.get_ident())
        anyio.from_thread.run(finish)

    @app.post("/")
    async def create(background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(task)
        return "queued"

    async with TestClient(app) as client:
        assert (await client.post("/")).status_code == 200
        with trio.fail_after(30):
            await done.wait()
        await app.background.wait_idle()
    [task_thread, loop_thread] = threads
    assert loop_thread == threading.get_ident()
    assert task_thread != loop_thread
    assert app.background.completed == 1


async def test_threadpool_helpers_call_anyio() -> None:
    def ask() -> str:
        return anyio.from_thread.run_sync(lambda: "answered")

    assert await run_in_threadpool(ask) == "answered"

    class Resource:
        def __enter__(self) -> str:
            return anyio.from_thread.run_sync(lambda: "entered")

        def __exit__(self, *exc: object) -> None:
            anyio.from_thread.run_sync(lambda: None)

    async with contextmanager_in_threadpool(Resource()) as value:
        assert value == "entered"


async def test_the_thread_is_not_left_claimed_after_the_call() -> None:
    # trio reuses its worker threads: a claim left behind would point plain
    # threads of a later run at this one.
    def claimed() -> bool:
        from anyio._core._eventloop import threadlocals

        return hasattr(threadlocals, "current_token")

    assert await run_in_threadpool(claimed) is True
    assert await trio.to_thread.run_sync(claimed) is False


def test_without_anyio_imported_nothing_is_wrapped_or_imported() -> None:
    code = (
        "import sys, trioapi\n"
        "from trioapi._runtime.anyio_threads import in_worker\n"
        "def f(): pass\n"
        "assert in_worker(f) is f\n"
        "assert 'anyio' not in sys.modules, 'anyio was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_anyio_keeps_its_worker_thread_local_where_trioapi_sets_it() -> None:
    from anyio._core._eventloop import threadlocals

    assert isinstance(threadlocals, threading.local)


# --- a cancelled request ---------------------------------------------------------


async def cancel_while_the_endpoint_waits(dependency: Any) -> None:
    """Calls an app whose endpoint depends on ``dependency`` and waits forever, then
    cancels the request call there (a server's connection task being cancelled)."""
    app = TrioAPI()
    ready = trio.Event()

    @app.get("/")
    async def read(_: Annotated[None, Depends(dependency)]) -> None:
        ready.set()
        await trio.sleep_forever()

    async def receive() -> MutableMapping[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError(f"nothing is sent for a cancelled request: {message}")

    with trio.fail_after(30):  # a bug fails the test instead of hanging it
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, http_scope("/"), receive, send)
            await ready.wait()
            nursery.cancel_scope.cancel()


async def test_a_cancelled_request_finishes_sync_yield_dependencies_in_workers() -> None:
    log: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    def outer() -> Iterator[None]:
        try:
            yield
        finally:
            log.append(("outer", threading.get_ident() != loop_thread))

    def inner(_: Annotated[None, Depends(outer)]) -> Iterator[None]:
        try:
            yield
        except trio.Cancelled:
            log.append(("inner saw the cancellation", True))
            raise
        finally:
            log.append(("inner", threading.get_ident() != loop_thread))

    await cancel_while_the_endpoint_waits(inner)
    assert log == [("inner saw the cancellation", True), ("inner", True), ("outer", True)]


async def test_an_interrupted_teardown_error_is_logged_and_the_rest_still_run(
    caplog: Any,
) -> None:
    log: list[str] = []

    def outer() -> Iterator[None]:
        try:
            yield
        finally:
            log.append("outer")

    def inner(_: Annotated[None, Depends(outer)]) -> Iterator[None]:
        try:
            yield
        finally:
            raise RuntimeError("cleanup broke")

    await cancel_while_the_endpoint_waits(inner)
    assert log == ["outer"]
    [record] = [r for r in caplog.records if "interrupted request" in r.getMessage()]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "cleanup broke"


async def test_a_request_cancelled_in_its_teardown_still_finishes_the_older_dependencies() -> None:
    app = TrioAPI()
    log: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()
    in_teardown = trio.Event()
    sent: list[int] = []

    def outer() -> Iterator[None]:
        try:
            yield
        finally:
            log.append(("outer", threading.get_ident() != loop_thread))

    async def inner(_: Annotated[None, Depends(outer)]) -> AsyncIterator[None]:
        yield
        in_teardown.set()
        await trio.sleep_forever()  # cancelled here, after the response

    @app.get("/")
    async def read(_: Annotated[None, Depends(inner)]) -> str:
        return "ok"

    async def receive() -> MutableMapping[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, http_scope("/"), receive, send)
            await in_teardown.wait()
            nursery.cancel_scope.cancel()
    assert sent == [200]
    assert log == [("outer", True)]  # at once, in a worker thread, not left to the collector

"""The lifespan (context manager, hooks, drain before shutdown hooks) and the test client.

Annotations here are evaluated eagerly (no ``from __future__ import
annotations``), so endpoints may name things local to a test.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, Body, Cookie, Header, JSONResponse, Request, TrioAPI
from trioapi.testing import TestClient

# --- lifespan context manager ----------------------------------------------------------


async def test_lifespan_is_entered_at_startup_and_left_at_shutdown() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        log.append("enter")
        app.state.db = "connected"
        yield
        log.append("exit")
        app.state.db = "closed"

    app = TrioAPI(lifespan=lifespan)

    @app.get("/db")
    async def db(request: Request) -> str:
        return str(request.app.state.db)

    async with TestClient(app) as client:
        assert log == ["enter"]
        assert (await client.get("/db")).json() == "connected"
    assert log == ["enter", "exit"]
    assert app.state.db == "closed"


async def test_lifespan_state_mapping_reaches_request_state() -> None:
    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"pool": ["conn"]}

    app = TrioAPI(lifespan=lifespan)

    @app.get("/")
    async def read(request: Request) -> Any:
        return request.state.pool

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == ["conn"]


async def test_startup_hooks_run_after_lifespan_entry_and_shutdown_hooks_before_its_exit() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        log.append("lifespan enter")
        yield
        log.append("lifespan exit")

    def sync_startup() -> None:
        log.append("sync startup")

    async def async_startup() -> None:
        await trio.lowlevel.checkpoint()
        log.append("async startup")

    def sync_shutdown() -> None:
        log.append("sync shutdown")

    async def async_shutdown() -> None:
        await trio.lowlevel.checkpoint()
        log.append("async shutdown")

    app = TrioAPI(
        lifespan=lifespan,
        on_startup=[sync_startup, async_startup],
        on_shutdown=[sync_shutdown, async_shutdown],
    )

    with pytest.warns(DeprecationWarning, match="on_event is deprecated"):

        @app.on_event("startup")
        async def decorated_startup() -> None:
            log.append("decorated startup")

    with pytest.warns(DeprecationWarning, match="on_event is deprecated"):

        @app.on_event("shutdown")
        def decorated_shutdown() -> None:
            log.append("decorated shutdown")

    async with TestClient(app):
        log.append("serving")
    assert log == [
        "lifespan enter",
        "sync startup",
        "async startup",
        "decorated startup",
        "serving",
        "sync shutdown",
        "async shutdown",
        "decorated shutdown",
        "lifespan exit",
    ]


def test_unknown_event_name_is_refused() -> None:
    with (
        pytest.warns(DeprecationWarning, match="on_event"),
        pytest.raises(ValueError, match="'startup' or 'shutdown'"),
    ):
        TrioAPI().on_event("begin")


async def test_failing_startup_hook_makes_the_client_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise ConnectionError("database unreachable")

    def never() -> None:
        ran.append("second hook")

    app = TrioAPI(on_startup=[broken, never], on_shutdown=[lambda: ran.append("shutdown")])
    with (
        caplog.at_level(logging.ERROR, logger="trioapi"),
        pytest.raises(RuntimeError, match="database unreachable"),
    ):
        async with TestClient(app):
            raise AssertionError("startup failed: the body must not run")
    assert ran == []
    assert any("startup failed" in r.getMessage() for r in caplog.records)


async def test_failing_lifespan_entry_makes_the_client_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        raise KeyError("missing setting")
        yield  # pragma: no cover

    with (
        caplog.at_level(logging.ERROR, logger="trioapi"),
        pytest.raises(RuntimeError, match="missing setting"),
    ):
        async with TestClient(TrioAPI(lifespan=lifespan)):
            raise AssertionError("the body must not run")


async def test_failing_shutdown_hook_is_logged_the_others_still_run_and_it_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Reported as Starlette reports it (lifespan.shutdown.failed): the client
    # raises it when its block ends, a server logs it.
    log: list[str] = []

    def broken() -> None:
        raise OSError("flush failed")

    app = TrioAPI(on_shutdown=[broken, lambda: log.append("second hook")])
    with (
        caplog.at_level(logging.ERROR, logger="trioapi"),
        pytest.raises(RuntimeError, match=r"shutdown failed: OSError\('flush failed'\)"),
    ):
        async with TestClient(app):
            pass
    assert log == ["second hook"]
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], OSError)


# --- shutdown hooks run after the background drain ------------------------------------


async def test_shutdown_hook_runs_after_a_still_running_task_finishes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []

    async def slow_task() -> None:
        log.append(("task started", trio.current_time()))
        await trio.sleep(5)
        log.append(("task finished", trio.current_time()))

    async def close_pool() -> None:
        log.append(("shutdown hook", trio.current_time()))

    app = TrioAPI(on_shutdown=[close_pool])

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> str:
        tasks.add_task(slow_task)
        return "accepted"

    async with TestClient(app, wait_background=False) as client:
        response = await client.post("/jobs")
        assert response.json() == "accepted"
        await trio.testing.wait_all_tasks_blocked()
        assert log == [("task started", 0.0)]
        report = await client.shutdown()
    assert log == [("task started", 0.0), ("task finished", 5.0), ("shutdown hook", 5.0)]
    assert (report.completed, report.failed, report.cancelled) == (1, 0, 0)


async def test_shutdown_hook_waits_at_most_the_drain_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []

    async def endless() -> None:
        try:
            await trio.sleep_forever()
        finally:
            log.append(("task unwound", trio.current_time()))

    app = TrioAPI(
        drain_timeout=2.0, on_shutdown=[lambda: log.append(("hook", trio.current_time()))]
    )

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> None:
        tasks.add_task(endless)

    async with TestClient(app, wait_background=False) as client:
        await client.post("/jobs")
        report = await client.shutdown()
    assert log == [("task unwound", 2.0), ("hook", 2.0)]
    assert (report.completed, report.cancelled) == (0, 1)


# --- the test client ---------------------------------------------------------------------


def echo_app() -> TrioAPI:
    app = TrioAPI()

    @app.api_route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(request: Request) -> Any:
        body = await request.body()
        return {
            "method": request.method,
            "query": sorted(
                (k, v) for k in request.query_params for v in request.query_params.getlist(k)
            ),
            "content_type": request.headers.get("content-type"),
            "x_test": request.headers.getlist("x-test"),
            "cookies": request.cookies,
            "body": body.decode("utf-8"),
        }

    return app


async def test_client_sends_every_method() -> None:
    async with TestClient(echo_app()) as client:
        for send, method in [
            (client.get, "GET"),
            (client.post, "POST"),
            (client.put, "PUT"),
            (client.patch, "PATCH"),
            (client.delete, "DELETE"),
            (client.options, "OPTIONS"),
        ]:
            assert (await send("/echo")).json()["method"] == method
        head = await client.head("/echo")
    assert (head.status_code, head.content) == (200, b"")


async def test_client_params_as_mapping_or_pairs_are_encoded() -> None:
    async with TestClient(echo_app()) as client:
        mapping = await client.get("/echo", params={"q": "a b", "n": 1})
        pairs = await client.get("/echo", params=[("t", "x"), ("t", "é&")])
    assert mapping.json()["query"] == [["n", "1"], ["q", "a b"]]
    assert pairs.json()["query"] == [["t", "x"], ["t", "é&"]]


async def test_client_json_sets_body_and_content_type() -> None:
    async with TestClient(echo_app()) as client:
        response = await client.post("/echo", json={"a": [1, None]})
        overridden = await client.post(
            "/echo", json=[1], headers={"content-type": "application/vnd.api+json"}
        )
    assert response.json()["content_type"] == "application/json"
    assert response.json()["body"] == '{"a": [1, null]}'
    assert overridden.json()["content_type"] == "application/vnd.api+json"


async def test_client_content_as_bytes_or_str() -> None:
    async with TestClient(echo_app()) as client:
        as_bytes = await client.put("/echo", content=b"raw bytes")
        as_str = await client.put("/echo", content="ünï")
    assert as_bytes.json()["body"] == "raw bytes"
    assert as_str.json()["body"] == "ünï"


async def test_client_headers_and_cookies_per_client_and_per_call() -> None:
    async with TestClient(
        echo_app(), headers={"X-Test": "client"}, cookies={"theme": "dark"}
    ) as client:
        default = await client.get("/echo")
        per_call = await client.get("/echo", headers={"X-Test": "call"})
    assert default.json()["x_test"] == ["client"]
    assert default.json()["cookies"] == {"theme": "dark"}
    assert per_call.json()["x_test"] == ["call"]


async def test_client_response_exposes_status_headers_json_text_and_content() -> None:
    app = TrioAPI()

    @app.post("/made", status_code=201)
    async def made() -> dict[str, str]:
        return {"name": "ünï"}

    async with TestClient(app) as client:
        response = await client.post("/made")
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"name": "ünï"}
    assert response.text == '{"name":"ünï"}'
    assert response.content == '{"name":"ünï"}'.encode()


async def test_client_keeps_cookies_the_app_sets() -> None:
    app = TrioAPI()

    @app.post("/login")
    async def login(request: Request) -> Any:
        response = JSONResponse("in")
        response.set_cookie("session", "s-1")
        return response

    @app.get("/me")
    async def me(session: Annotated[str | None, Cookie()] = None) -> Any:
        return session

    async with TestClient(app) as client:
        assert (await client.get("/me")).json() is None
        await client.post("/login")
        assert (await client.get("/me")).json() == "s-1"


async def test_client_works_without_async_with_and_runs_no_lifespan() -> None:
    started: list[str] = []
    ran: list[str] = []
    app = TrioAPI(on_startup=[lambda: started.append("startup")])

    @app.post("/items")
    async def create(
        tasks: BackgroundTasks,
        name: Annotated[str, Body(embed=True)],
        x_user: Annotated[str, Header()] = "anon",
    ) -> list[str]:
        tasks.add_task(ran.append, name)
        return [name, x_user]

    client = TestClient(app)
    response = await client.post("/items", json={"name": "pen"}, headers={"x-user": "ann"})
    assert response.json() == ["pen", "ann"]
    assert started == []
    # Without a lifespan the task runs inline, after the response, before the call returns.
    assert ran == ["pen"]
    with pytest.raises(RuntimeError, match="async with TestClient"):
        await client.shutdown()


async def test_client_waits_for_background_tasks_unless_told_not_to(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def three_seconds() -> None:
        await trio.sleep(3)

    app = TrioAPI()

    @app.post("/jobs")
    async def work(tasks: BackgroundTasks) -> None:
        tasks.add_task(three_seconds)

    async with TestClient(app) as client:
        await client.post("/jobs")
        assert trio.current_time() == 3.0
        await client.post("/jobs", wait_background=False)
        assert trio.current_time() == 3.0
        await app.background.wait_idle()
        assert trio.current_time() == 6.0
        report = await client.shutdown()
        assert report is await client.shutdown()
    assert report.completed == 2


async def test_a_lifespan_context_failing_at_shutdown_is_reported_after_the_drain() -> None:
    done: list[str] = []

    @asynccontextmanager
    async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
        yield
        done.append("context left")
        raise ValueError("could not close the pool")

    app = TrioAPI(lifespan=lifespan, on_shutdown=[lambda: done.append("hook")])
    with pytest.raises(RuntimeError, match="could not close the pool"):
        async with TestClient(app):
            pass
    assert done == ["hook", "context left"]

"""Dependencies: sync and async, classes, sub-dependencies, caching, yield teardown.

Annotations here are evaluated eagerly (no ``from __future__ import
annotations``), so ``Depends(...)`` may name functions local to a test.
"""

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Annotated, Any

import pytest
import trio
import trio.testing

from trioapi import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    RouteDefinitionError,
    TrioAPI,
    TrioAPIError,
)
from trioapi.testing import TestClient

from ._asgi import http_scope


class Pagination:
    """A class dependency: its ``__init__`` parameters are query parameters."""

    def __init__(self, skip: int = 0, limit: int = 10) -> None:
        self.skip = skip
        self.limit = limit
        self.thread = threading.get_ident()


class PrefixChecker:
    """A callable instance dependency with an async ``__call__``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(self, q: str = "") -> bool:
        return q.startswith(self.prefix)


async def call_asgi(app: TrioAPI, path: str, log: list[str]) -> None:
    """Calls the app directly, recording in ``log`` when the response is complete."""
    scope = http_scope(path)
    done = trio.Event()

    async def receive() -> MutableMapping[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            log.append(f"response start {message['status']}")
        elif not message.get("more_body", False):
            log.append("response sent")
            done.set()

    await app(scope, receive, send)


# --- kinds of dependency -------------------------------------------------------------


async def test_sync_and_async_function_dependencies_provide_values() -> None:
    def sync_dep(a: int) -> int:
        return a * 2

    async def async_dep(b: int) -> int:
        await trio.lowlevel.checkpoint()
        return b * 3

    app = TrioAPI()

    @app.get("/")
    async def read(
        x: Annotated[int, Depends(sync_dep)],
        y: int = Depends(async_dep),
    ) -> list[int]:
        return [x, y]

    async with TestClient(app) as client:
        assert (await client.get("/?a=1&b=2")).json() == [2, 6]


async def test_class_dependency_reads_its_init_parameters() -> None:
    app = TrioAPI()

    @app.get("/items")
    async def items(page: Annotated[Pagination, Depends()]) -> list[int]:
        assert isinstance(page, Pagination)
        return [page.skip, page.limit]

    @app.get("/explicit")
    async def explicit(page: Pagination = Depends(Pagination)) -> list[int]:  # noqa: B008
        return [page.skip, page.limit]

    async with TestClient(app) as client:
        assert (await client.get("/items?skip=5")).json() == [5, 10]
        assert (await client.get("/explicit?limit=2")).json() == [0, 2]
        bad = await client.get("/items?limit=lots")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_callable_instance_dependency_is_awaited() -> None:
    app = TrioAPI()

    @app.get("/")
    async def read(ok: Annotated[bool, Depends(PrefixChecker("tri"))]) -> bool:
        return ok

    async with TestClient(app) as client:
        assert (await client.get("/?q=trio")).json() is True
        assert (await client.get("/?q=asyncio")).json() is False


async def test_sub_dependencies_are_solved_depth_first() -> None:
    order: list[str] = []

    def token(x_token: Annotated[str, Header()]) -> str:
        order.append("token")
        return x_token

    async def user(tok: Annotated[str, Depends(token)]) -> str:
        order.append("user")
        return f"user-of-{tok}"

    async def permissions(name: Annotated[str, Depends(user)], scope: str = "read") -> str:
        order.append("permissions")
        return f"{name}:{scope}"

    app = TrioAPI()

    @app.get("/")
    async def read(perm: Annotated[str, Depends(permissions)]) -> str:
        order.append("endpoint")
        return perm

    async with TestClient(app) as client:
        response = await client.get("/?scope=write", headers={"x-token": "t1"})
        missing = await client.get("/")
    assert response.json() == "user-of-t1:write"
    assert order == ["token", "user", "permissions", "endpoint"]
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["header", "x-token"]


async def test_dependency_raising_http_exception_stops_the_request() -> None:
    called: list[str] = []

    async def admin_only(x_role: Annotated[str, Header()] = "user") -> None:
        if x_role != "admin":
            raise HTTPException(403, "admins only", headers={"X-Reason": "role"})

    app = TrioAPI()

    @app.delete("/things/{thing_id}")
    async def remove(thing_id: int, _: Annotated[None, Depends(admin_only)]) -> None:
        called.append("endpoint")

    async with TestClient(app) as client:
        refused = await client.delete("/things/1")
        allowed = await client.delete("/things/1", headers={"x-role": "admin"})
    assert (refused.status_code, refused.json()) == (403, {"detail": "admins only"})
    assert refused.headers["x-reason"] == "role"
    assert allowed.status_code == 200
    assert called == ["endpoint"]


# --- caching -------------------------------------------------------------------------


async def test_cached_dependency_is_called_once_per_request() -> None:
    calls: list[int] = []

    async def counter() -> int:
        calls.append(len(calls))
        return len(calls)

    async def left(n: Annotated[int, Depends(counter)]) -> int:
        return n

    async def right(n: Annotated[int, Depends(counter)]) -> int:
        return n

    app = TrioAPI()

    @app.get("/", dependencies=[Depends(counter)])
    async def read(
        a: Annotated[int, Depends(left)],
        b: Annotated[int, Depends(right)],
        c: Annotated[int, Depends(counter)],
    ) -> list[int]:
        return [a, b, c]

    async with TestClient(app) as client:
        first = await client.get("/")
        second = await client.get("/")
    assert first.json() == [1, 1, 1]
    # The cache belongs to one request: the next one calls again.
    assert second.json() == [2, 2, 2]
    assert len(calls) == 2


async def test_use_cache_false_calls_the_dependency_again() -> None:
    calls: list[str] = []

    def stamp() -> int:
        calls.append("stamp")
        return len(calls)

    app = TrioAPI()

    @app.get("/")
    async def read(
        cached: Annotated[int, Depends(stamp)],
        fresh: Annotated[int, Depends(stamp, use_cache=False)],
        cached_again: Annotated[int, Depends(stamp)],
    ) -> list[int]:
        return [cached, fresh, cached_again]

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == [1, 2, 1]
    assert calls == ["stamp", "stamp"]


async def test_cached_yield_dependency_is_set_up_and_torn_down_once() -> None:
    log: list[str] = []

    async def session() -> AsyncIterator[str]:
        log.append("open")
        yield "s"
        log.append("close")

    async def repo(s: Annotated[str, Depends(session)]) -> str:
        return f"repo({s})"

    app = TrioAPI()

    @app.get("/")
    async def read(
        r: Annotated[str, Depends(repo)], s: Annotated[str, Depends(session)]
    ) -> list[str]:
        return [r, s]

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == ["repo(s)", "s"]
    assert log == ["open", "close"]


# --- yield dependencies --------------------------------------------------------------


async def test_async_yield_dependency_teardown_runs_after_the_response_is_sent() -> None:
    log: list[str] = []

    async def resource() -> AsyncIterator[str]:
        log.append("setup")
        yield "value"
        log.append("teardown")

    app = TrioAPI()

    @app.get("/")
    async def read(value: Annotated[str, Depends(resource)]) -> str:
        log.append(f"endpoint got {value}")
        return value

    await call_asgi(app, "/", log)
    assert log == ["setup", "endpoint got value", "response start 200", "response sent", "teardown"]


async def test_sync_yield_dependency_teardown_runs_after_the_response_is_sent() -> None:
    log: list[str] = []

    def resource() -> Iterator[str]:
        log.append("setup")
        yield "value"
        log.append("teardown")

    app = TrioAPI()

    @app.get("/")
    async def read(value: Annotated[str, Depends(resource)]) -> str:
        log.append(f"endpoint got {value}")
        return value

    await call_asgi(app, "/", log)
    assert log == ["setup", "endpoint got value", "response start 200", "response sent", "teardown"]


async def test_teardown_runs_newest_first() -> None:
    log: list[str] = []

    async def outer() -> AsyncIterator[str]:
        log.append("outer up")
        yield "outer"
        log.append("outer down")

    def middle(o: Annotated[str, Depends(outer)]) -> Iterator[str]:
        log.append("middle up")
        yield "middle"
        log.append("middle down")

    async def sibling() -> AsyncIterator[str]:
        log.append("sibling up")
        yield "sibling"
        log.append("sibling down")

    app = TrioAPI()

    @app.get("/")
    async def read(
        m: Annotated[str, Depends(middle)], s: Annotated[str, Depends(sibling)]
    ) -> list[str]:
        return [m, s]

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == ["middle", "sibling"]
    assert log == [
        "outer up",
        "middle up",
        "sibling up",
        "sibling down",
        "middle down",
        "outer down",
    ]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_endpoint_exception_is_thrown_into_the_yield_dependency(kind: str) -> None:
    seen: list[str] = []

    async def async_dep() -> AsyncIterator[None]:
        try:
            yield
        except HTTPException as error:
            seen.append(f"saw {error.status_code}")
            raise
        finally:
            seen.append("cleaned up")

    def sync_dep() -> Iterator[None]:
        try:
            yield
        except HTTPException as error:
            seen.append(f"saw {error.status_code}")
            raise
        finally:
            seen.append("cleaned up")

    dependency = async_dep if kind == "async" else sync_dep
    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def read(item_id: int, _: Annotated[None, Depends(dependency)]) -> None:
        raise HTTPException(404, "no such item")

    log: list[str] = []
    await call_asgi(app, "/items/7", log)
    assert log == ["response start 404", "response sent"]
    assert seen == ["saw 404", "cleaned up"]


async def test_unhandled_endpoint_error_still_runs_teardown_and_is_seen_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    async def transaction() -> AsyncIterator[None]:
        try:
            yield
        except Exception as error:
            seen.append(f"rollback after {type(error).__name__}: {error}")
            raise
        else:
            seen.append("commit")

    app = TrioAPI()

    @app.post("/orders")
    async def create(_: Annotated[None, Depends(transaction)]) -> None:
        raise LookupError("warehouse offline")

    @app.post("/ok")
    async def ok(_: Annotated[None, Depends(transaction)]) -> str:
        return "fine"

    with caplog.at_level(logging.ERROR, logger="trioapi.error"):
        async with TestClient(app) as client:
            failed = await client.post("/orders")
            fine = await client.post("/ok")
    assert failed.status_code == 500
    assert fine.json() == "fine"
    assert seen == ["rollback after LookupError: warehouse offline", "commit"]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_yield_dependency_that_swallows_the_error_is_a_500_that_says_so(kind: str) -> None:
    # FastAPI's rule: the error is gone, so there is nothing to answer; its
    # FastAPIError names the mistake. The original error is the cause.
    async def forgiving_async() -> AsyncIterator[None]:
        with contextlib.suppress(HTTPException):
            yield

    def forgiving_sync() -> Iterator[None]:
        with contextlib.suppress(HTTPException):
            yield

    forgiving = forgiving_async if kind == "async" else forgiving_sync
    app = TrioAPI()

    @app.get("/")
    async def read(_: Annotated[None, Depends(forgiving)]) -> None:
        raise HTTPException(409, "conflict")

    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(TrioAPIError, match="caught it without raising it again") as caught:
            await client.get("/")
    assert isinstance(caught.value.__cause__, HTTPException)
    assert f"forgiving_{kind}" in str(caught.value)
    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 500


async def test_a_teardown_error_goes_through_the_older_ones_to_the_server_and_the_response_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # FastAPI's exit stack: the older dependency sees the error, which then
    # reaches the server (a test client raises it when asked to).
    later: list[str] = []

    async def first() -> AsyncIterator[None]:
        try:
            yield
        except RuntimeError as error:
            later.append(f"first saw {error}")
            raise

    async def broken() -> AsyncIterator[None]:
        yield
        raise RuntimeError("teardown broke")

    app = TrioAPI()

    @app.get("/")
    async def read(a: Annotated[None, Depends(first)], b: Annotated[None, Depends(broken)]) -> str:
        return "ok"

    with caplog.at_level(logging.ERROR, logger="trioapi.error"):
        async with TestClient(app) as client:
            response = await client.get("/")
    assert response.json() == "ok"
    assert later == ["first saw teardown broke"]
    [record] = [r for r in caplog.records if r.exc_info and "teardown broke" in str(r.exc_info[1])]
    assert record.name == "trioapi.error"
    async with TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(RuntimeError, match="teardown broke"):
            await client.get("/")


async def test_started_yield_dependency_is_torn_down_when_validation_fails() -> None:
    log: list[str] = []

    async def resource() -> AsyncIterator[None]:
        log.append("open")
        try:
            yield
        finally:
            log.append("close")

    app = TrioAPI()

    @app.get("/")
    async def read(_: Annotated[None, Depends(resource)], n: int) -> int:
        log.append("endpoint")
        return n

    async with TestClient(app) as client:
        response = await client.get("/?n=x")
    assert response.status_code == 422
    assert log == ["open", "close"]


# --- dependencies=[...] on route, router and app ---------------------------------------


async def test_dependencies_lists_on_app_router_and_route_all_run_in_order() -> None:
    order: list[str] = []

    def record(name: str) -> Any:
        async def dependency() -> AsyncIterator[None]:
            order.append(f"{name} up")
            yield
            order.append(f"{name} down")

        return dependency

    app = TrioAPI(dependencies=[Depends(record("app"))])
    router = APIRouter(prefix="/r", dependencies=[Depends(record("router"))])

    @router.get("/x", dependencies=[Depends(record("route"))])
    async def x() -> str:
        order.append("endpoint")
        return "x"

    app.include_router(router)

    async with TestClient(app) as client:
        assert (await client.get("/r/x")).json() == "x"
    assert order == [
        "app up",
        "router up",
        "route up",
        "endpoint",
        "route down",
        "router down",
        "app down",
    ]


async def test_route_dependency_shares_the_cache_with_parameters() -> None:
    calls: list[str] = []

    async def current_user() -> str:
        calls.append("lookup")
        return "ann"

    app = TrioAPI()

    @app.get("/", dependencies=[Depends(current_user)])
    async def read(user: Annotated[str, Depends(current_user)]) -> str:
        return user

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == "ann"
    assert calls == ["lookup"]


# --- threads -------------------------------------------------------------------------


async def test_sync_callables_run_in_worker_threads_and_async_ones_inline() -> None:
    trio_thread = threading.get_ident()
    threads: dict[str, int] = {}

    def sync_dep() -> None:
        threads["sync dependency"] = threading.get_ident()

    def sync_gen() -> Iterator[None]:
        threads["sync generator setup"] = threading.get_ident()
        yield
        threads["sync generator teardown"] = threading.get_ident()

    async def async_dep() -> None:
        threads["async dependency"] = threading.get_ident()

    async def async_gen() -> AsyncIterator[None]:
        threads["async generator setup"] = threading.get_ident()
        yield
        threads["async generator teardown"] = threading.get_ident()

    app = TrioAPI()

    @app.get("/sync")
    def sync_endpoint(
        a: Annotated[None, Depends(sync_dep)],
        b: Annotated[None, Depends(sync_gen)],
        c: Annotated[None, Depends(async_dep)],
        d: Annotated[None, Depends(async_gen)],
        page: Annotated[Pagination, Depends()],
    ) -> str:
        threads["sync endpoint"] = threading.get_ident()
        threads["class dependency"] = page.thread
        return "ok"

    @app.get("/async")
    async def async_endpoint() -> str:
        threads["async endpoint"] = threading.get_ident()
        return "ok"

    async with TestClient(app) as client:
        assert (await client.get("/sync")).json() == "ok"
        assert (await client.get("/async")).json() == "ok"

    in_threads = {
        "sync dependency",
        "sync generator setup",
        "sync generator teardown",
        "sync endpoint",
        "class dependency",
    }
    inline = {
        "async dependency",
        "async generator setup",
        "async generator teardown",
        "async endpoint",
    }
    assert set(threads) == in_threads | inline
    for name in in_threads:
        assert threads[name] != trio_thread, name
    for name in inline:
        assert threads[name] == trio_thread, name


async def test_a_blocking_sync_dependency_does_not_block_other_requests() -> None:
    release = threading.Event()
    progress: list[str] = []

    def blocking() -> str:
        # Waits on a real thread event: only a worker thread can afford this.
        assert release.wait(timeout=10)
        return "unblocked"

    app = TrioAPI()

    @app.get("/slow")
    async def slow(v: Annotated[str, Depends(blocking)]) -> str:
        progress.append("slow done")
        return v

    @app.get("/fast")
    async def fast() -> str:
        progress.append("fast done")
        release.set()
        return "fast"

    async with TestClient(app) as client, trio.open_nursery() as nursery:
        results: dict[str, Any] = {}

        async def fetch(path: str) -> None:
            results[path] = (await client.get(path)).json()

        nursery.start_soon(fetch, "/slow")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(fetch, "/fast")
    assert results == {"/slow": "unblocked", "/fast": "fast"}
    assert progress == ["fast done", "slow done"]


def test_a_request_scoped_yield_dependency_cannot_use_a_function_scoped_one() -> None:
    def session() -> Iterator[str]:
        yield "session"

    def sessions(inner: Annotated[str, Depends(session, scope="function")]) -> Iterator[str]:
        yield inner

    app = TrioAPI()
    with pytest.raises(RouteDefinitionError, match='"sessions" has a scope of "request"'):

        @app.get("/broken")
        def broken(value: Annotated[str, Depends(sessions)]) -> str:
            return value


# --- scopes of yield dependencies, and wrapped generators (FastAPI 0.165) ---------------


class Session:
    def __init__(self) -> None:
        self.open = True


def open_session() -> Iterator[Session]:
    session = Session()
    yield session
    session.open = False


async def test_a_function_scoped_and_a_request_scoped_use_of_one_dependency_are_two_calls() -> None:
    from trioapi import StreamingResponse

    app = TrioAPI()

    @app.get("/")
    def both(
        early: Annotated[Session, Depends(open_session, scope="function")],
        late: Annotated[Session, Depends(open_session)],
    ) -> StreamingResponse:
        def body() -> Iterator[str]:  # read while the response is sent
            yield f"{early is late} {early.open} {late.open}"

        return StreamingResponse(body())

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "False False True"


def fails_after_yield() -> Iterator[None]:
    yield
    raise HTTPException(503, "after yield")


@pytest.mark.parametrize("where", ["app", "router", "route"])
async def test_a_function_scoped_dependency_failing_after_yield_is_what_is_answered(
    where: str,
) -> None:
    marker = Depends(fails_after_yield, scope="function")
    app = TrioAPI(dependencies=[marker] if where == "app" else None)
    router = APIRouter(dependencies=[marker] if where == "router" else None)
    router.get("/", dependencies=[marker] if where == "route" else None)(lambda: {"ok": True})
    app.include_router(router)
    async with TestClient(app) as client:
        answer = await client.get("/")
    assert (answer.status_code, answer.json()) == (503, {"detail": "after yield"})


async def test_a_request_scoped_dependency_failing_after_yield_goes_to_the_server_once_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI(dependencies=[Depends(fails_after_yield)])
    app.get("/")(lambda: {"ok": True})
    async with TestClient(app) as client:
        answer = await client.get("/")
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    [record] = [r for r in caplog.records if r.exc_info and "after yield" in str(r.exc_info[1])]
    assert record.getMessage() == "unhandled error in GET /"


async def test_an_async_wrapper_around_a_sync_generator_is_called_as_an_async_generator() -> None:
    import functools

    from trioapi.concurrency import iterate_in_threadpool

    def in_threads(func: Any) -> Any:
        @functools.wraps(func)  # __wrapped__ is the sync generator function
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async for item in iterate_in_threadpool(func(*args, **kwargs)):
                yield item

        return wrapper

    @in_threads
    def flag() -> Iterator[bool]:
        yield True

    app = TrioAPI()

    @app.get("/")
    async def read(value: Annotated[bool, Depends(flag)]) -> bool:
        return value

    async with TestClient(app) as client:
        answer = await client.get("/")
    assert (answer.status_code, answer.json()) == (200, True)

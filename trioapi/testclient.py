"""FastAPI's synchronous ``TestClient``, running the app on trio.

::

    from trioapi.testclient import TestClient

    client = TestClient(app)                 # no lifespan: one trio run per request
    assert client.get("/items/1").json() == {"id": 1}

    with TestClient(app) as client:          # one trio run for the whole block
        client.post("/send-notification/a@example.com")   # its tasks are done

The interface is Starlette's (``fastapi.testclient`` re-exports it): an
``httpx.Client`` whose transport calls the ASGI app in process. For tests
written as ``async def`` (pytest-trio), use :mod:`trioapi.testing` instead: it
runs in the test's own trio run, with ``MockClock`` and no threads.

Theory of operation
===================

The test's thread never runs trio itself. The app runs in a trio run hosted by
a thread of its own (:class:`_TrioThread`: ``trio.run`` in a
``threading.Thread``), and the test's thread calls into it with
``trio.from_thread.run`` and that run's ``TrioToken``, blocking until the call
returns. Where that run lives depends on the client's phase
(:class:`_Phase`, guarded by a lock so other threads can make requests too)::

    IDLE ──__enter__──▶ STARTING ──startup complete──▶ RUNNING ──__exit__──▶ STOPPING ──▶ IDLE
      │                    └──────startup failed───────────────────────────────────────▶ IDLE
      └──close()──▶ CLOSED                             RUNNING ──close()──▶ STOPPING ──▶ CLOSED

IDLE
    Outside ``with``. Each request gets a fresh, short trio run of its own
    and the app's lifespan never runs (Starlette's behaviour): a trioapi app
    then runs a request's background tasks inside the request's own call.
STARTING, RUNNING, STOPPING
    Inside ``with``. One run for the whole block: its main task hosts the
    app's ASGI lifespan call (:class:`_LifespanCall`), and every request is a
    task of that same run, so requests see the lifespan's runtime and state.
    ``__exit__`` sends ``lifespan.shutdown``, waits for the app's answer,
    ends the run and joins its thread; then the client is IDLE again and can
    be entered again (FastAPI's suites reuse one module-level client).
CLOSED
    After ``close()``: every request and every ``with`` is refused.

A request (:class:`_Exchange`) is one ASGI ``http`` call. An in-memory body
goes to the app as one ``http.request`` message; a streamed one (a generator,
a multipart upload) as one message per chunk, read in a worker thread so that
the run never blocks on the test's iterator. Once the body is complete,
``receive()`` waits until the response is complete and then says
``http.disconnect``, as hypercorn and Starlette's client do. The whole
response is collected and handed back as an ``httpx.Response`` once the app's
call returned and, by default, once the request's own background tasks
finished (through the ``"trioapi.background"`` scope extension, as
:mod:`trioapi.testing` does).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Self, TypeVar, final
from urllib.parse import unquote

import trio

try:
    import httpx
except ImportError as error:  # pragma: no cover - exercised only without the extra
    msg = "trioapi.testclient needs httpx: pip install 'trioapi[testing]'"
    raise ImportError(msg) from error

from ._server.harness import WAIT_BACKGROUND
from ._testclient_ws import WebSocketDenialResponse as WebSocketDenialResponse
from ._testclient_ws import WebSocketTestSession as WebSocketTestSession
from ._testclient_ws import connect as _connect_websocket

if TYPE_CHECKING:
    from httpx._types import CookieTypes

    from ._runtime.background import TaskHandle

__all__ = ["TestClient", "WebSocketDenialResponse", "WebSocketTestSession"]

T = TypeVar("T")
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _refuse_inside_trio() -> None:
    # from_thread.run would refuse too, with a message about threads; this
    # one says which client to use instead.
    if trio.lowlevel.in_trio_run():
        msg = (
            "trioapi.testclient.TestClient blocks its caller, so it cannot be used inside a "
            "trio run (an async test, or the app itself): use 'async with "
            "trioapi.testing.TestClient(app) as client' and 'await client.get(...)' there"
        )
        raise RuntimeError(msg)


# --- the trio run in a thread ---------------------------------------------------------------


@final
class _TrioThread:
    """One ``trio.run`` in a thread of its own, which other threads call into.

    The run's main task holds a nursery open (for the lifespan call) until
    :meth:`stop`. Calls from other threads run as tasks of the run through
    ``trio.from_thread.run``.
    """

    def __init__(self, name: str, run_options: Mapping[str, Any]) -> None:
        self._options = dict(run_options)
        self.thread = threading.Thread(target=self._target, name=name, daemon=True)
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Starts the thread and returns once its run accepts calls.

        Raises:
            RuntimeError: The run did not start (``backend_options`` that
                ``trio.run`` does not take, for one).
        """
        self.thread.start()
        self._ready.wait()
        if self._token is None:
            self.thread.join()
            msg = f"the TestClient could not start its trio run: {self._error!r}"
            raise RuntimeError(msg) from self._error

    def _target(self) -> None:
        try:
            trio.run(self._main, **self._options)
        except BaseException as error:
            # Crossing threads: stop() raises it in the thread that joins us.
            self._error = error
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            # Only a lifespan call that never ended is left here (startup
            # failed, or the app ignored shutdown): it goes with the run.
            nursery.cancel_scope.cancel("the TestClient is ending its trio run")

    def call(self, afn: Callable[[], Awaitable[T]]) -> T:
        """Runs ``await afn()`` in the run and returns (or raises) what it did.

        Raises:
            RuntimeError: The run ended before or while ``afn`` ran.
        """
        assert self._token is not None, "call() before start()"
        try:
            return trio.from_thread.run(afn, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled) as error:
            msg = (
                "the TestClient's trio run ended while a call was in flight (its 'with' "
                "block exited in another thread, or the run failed)"
            )
            raise RuntimeError(msg) from (self._error or error)

    async def start_task(
        self, afn: Callable[..., Awaitable[None]], *, name: str | None = None
    ) -> None:
        """Starts ``afn(task_status=...)`` in the main nursery (run it through :meth:`call`)."""
        assert self._nursery is not None
        await self._nursery.start(afn, name=name)

    def stop(self) -> None:
        """Ends the run (cancelling whatever is left in it) and joins the thread.

        Raises:
            BaseException: Whatever made the run itself fail.
        """
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self.thread.join()
        if self._error is not None:
            raise self._error


# --- the lifespan call ----------------------------------------------------------------------


@final
class _LifespanCall:
    """The app's ASGI lifespan call, seen from the trio run that hosts it.

    Once the app has answered ``lifespan.startup.failed`` or any shutdown
    message, its lifespan call has nothing left to do: it is cancelled, as
    hypercorn cancels its lifespan nursery, so an app that keeps waiting
    cannot hang the test.
    """

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self._app = app
        self._scope: Scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": state,
        }
        self.error: Exception | None = None
        self.supported = True
        self._to_app: trio.MemorySendChannel[Message] | None = None
        self._from_app: trio.MemoryReceiveChannel[Message] | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._ended: trio.Event | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Runs the lifespan call (in the run's main nursery) until it returns."""
        to_app, app_receive = trio.open_memory_channel[Message](math.inf)
        app_send, from_app = trio.open_memory_channel[Message](math.inf)
        self._to_app, self._from_app = to_app, from_app
        self._ended = ended = trio.Event()
        try:
            with trio.CancelScope() as cancel_scope:
                self._cancel_scope = cancel_scope
                task_status.started()
                async with app_send:
                    try:
                        await self._app(self._scope, app_receive.receive, app_send.send)
                    except Exception as error:
                        # Raised in the test's thread by startup() or shutdown().
                        self.error = error
        finally:
            ended.set()

    async def _next(self) -> Message | None:
        # None: the call returned (self.error says how) without saying more.
        assert self._from_app is not None
        try:
            return await self._from_app.receive()
        except trio.EndOfChannel:
            return None

    async def _end(self, reason: str) -> None:
        assert self._cancel_scope is not None
        assert self._ended is not None
        self._cancel_scope.cancel(reason)
        await self._ended.wait()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    async def startup(self) -> None:
        """Sends ``lifespan.startup`` and waits for the answer.

        An app whose lifespan call returns without answering does not do
        lifespan (as hypercorn and uvicorn treat it): requests go on without.

        Raises:
            Exception: The exception the app's lifespan call raised.
            RuntimeError: The app answered ``lifespan.startup.failed``
                without raising, or with a message out of protocol.
        """
        assert self._to_app is not None
        await self._to_app.send({"type": "lifespan.startup"})
        message = await self._next()
        if message is None:
            self._raise_error()
            self.supported = False
            return
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            return
        await self._end("the app's lifespan startup did not complete")
        self._raise_error()
        if kind == "lifespan.startup.failed":
            msg = f"the app's lifespan startup failed: {message.get('message') or '(no message)'}"
        else:
            msg = f"the app answered lifespan.startup with {kind!r}, not lifespan.startup.complete"
        raise RuntimeError(msg)

    async def shutdown(self) -> None:
        """Sends ``lifespan.shutdown``, waits for the answer and for the call to end.

        Raises:
            Exception: The exception the app's lifespan call raised (at any
                time since startup).
            RuntimeError: The app answered ``lifespan.shutdown.failed``
                without raising, or with a message out of protocol.
        """
        assert self._to_app is not None
        assert self._ended is not None
        message: Message | None = None
        if not self._ended.is_set():
            await self._to_app.send({"type": "lifespan.shutdown"})
            message = await self._next()
            await self._end("the app answered lifespan.shutdown")
        self._raise_error()
        kind = None if message is None else message.get("type")
        if kind is None or kind == "lifespan.shutdown.complete":
            return
        if kind == "lifespan.shutdown.failed":
            assert message is not None
            msg = f"the app's lifespan shutdown failed: {message.get('message') or '(no message)'}"
        else:
            msg = (
                f"the app answered lifespan.shutdown with {kind!r}, not lifespan.shutdown.complete"
            )
        raise RuntimeError(msg)


# --- one request ----------------------------------------------------------------------------


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


@final
class _Exchange:
    """One ASGI ``http`` call: the request going in, the response collected."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        *,
        body: bytes,
        chunks: Iterator[bytes] | None,
        wait_background: bool,
    ) -> None:
        self._app = app
        self._scope = scope
        self._body = body
        self._chunks = chunks
        self._wait_background = wait_background
        self._head = scope["method"] == "HEAD"
        self._handles: list[TaskHandle[Any]] = []
        scope["extensions"]["trioapi.background"] = self._handles.extend
        self._request_complete = False
        self._body_complete = False
        self._response_complete: trio.Event | None = None
        self._trailers_expected = False
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.debug: dict[str, Any] | None = None
        self.error: Exception | None = None

    async def run(self) -> None:
        """Calls the app; then waits for the request's own background tasks."""
        self._response_complete = trio.Event()
        try:
            await self._app(self._scope, self._receive, self._send)
        except Exception as error:
            # The test's thread decides: raise it, or answer 500.
            self.error = error
        finally:
            # Something the app left behind elsewhere may still wait in receive().
            self._response_complete.set()
        if self._wait_background:
            for handle in self._handles:
                await handle.wait()

    async def _receive(self) -> Message:
        if self._request_complete:
            assert self._response_complete is not None
            await self._response_complete.wait()
            return {"type": "http.disconnect"}
        if self._chunks is None:
            self._request_complete = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        chunk = await trio.to_thread.run_sync(_next_chunk, self._chunks)
        if chunk is None:
            self._request_complete = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        assert self._response_complete is not None
        if kind == "http.response.start":
            if self.status is not None:
                msg = "the app sent http.response.start twice"
                raise RuntimeError(msg)
            self.status = int(message["status"])
            self.headers = [
                (bytes(name), bytes(value)) for name, value in message.get("headers", ())
            ]
            self._trailers_expected = bool(message.get("trailers", False))
            if self._trailers_expected:
                self.trailers = []
        elif kind == "http.response.body":
            if self.status is None:
                msg = "the app sent http.response.body before http.response.start"
                raise RuntimeError(msg)
            if self._body_complete:
                msg = "the app sent http.response.body after the body was complete"
                raise RuntimeError(msg)
            chunk = bytes(message.get("body", b""))
            if chunk and not self._head:
                self.body.append(chunk)
            if not message.get("more_body", False):
                self._body_complete = True
                if not self._trailers_expected:
                    self._response_complete.set()
        elif kind == "http.response.trailers":
            if self.trailers is None:
                msg = (
                    "the app sent http.response.trailers without announcing them "
                    "('trailers': True in http.response.start)"
                )
                raise RuntimeError(msg)
            if not self._body_complete or self._response_complete.is_set():
                msg = "the app sent http.response.trailers before the body or after the trailers"
                raise RuntimeError(msg)
            self.trailers.extend((bytes(k), bytes(v)) for k, v in message.get("headers", ()))
            if not message.get("more_trailers", False):
                self._response_complete.set()
        elif kind == "http.response.debug":
            self.debug = dict(message.get("info", {}))
        else:
            msg = f"the app sent an ASGI message the TestClient does not take: {kind!r}"
            raise RuntimeError(msg)


# --- where requests run ---------------------------------------------------------------------


class _Phase(enum.Enum):
    IDLE = "not running the app's lifespan"
    STARTING = "starting the app's lifespan"
    RUNNING = "running the app's lifespan"
    STOPPING = "shutting the app's lifespan down"
    CLOSED = "closed"


@final
class _AppRunner:
    """The client's phase, and the trio run (shared or per request) that calls run in."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], run_options: Mapping[str, Any]) -> None:
        self._app = app
        self._state = state
        self._run_options = dict(run_options)
        self._lock = threading.Lock()
        self._phase = _Phase.IDLE
        self._thread: _TrioThread | None = None
        self._lifespan: _LifespanCall | None = None

    def _refuse(self, phase: _Phase, action: str) -> NoReturn:
        if phase is _Phase.CLOSED:
            msg = f"cannot {action}: this TestClient was closed; make a new one"
        elif action == "enter it" and phase is not _Phase.STOPPING:
            msg = (
                f"cannot {action}: this TestClient is already {phase.value} "
                "(one 'with' block at a time; make a second TestClient for a second one)"
            )
        else:
            msg = f"cannot {action}: this TestClient is {phase.value} (in another thread)"
        raise RuntimeError(msg)

    def call(self, afn: Callable[[], Awaitable[T]]) -> T:
        """Runs ``await afn()`` in the ``with`` block's run, or in a run of its own."""
        _refuse_inside_trio()
        with self._lock:
            phase, shared = self._phase, self._thread
        if phase is _Phase.RUNNING:
            assert shared is not None
            return shared.call(afn)
        if phase is not _Phase.IDLE:
            self._refuse(phase, "send a request")
        own = _TrioThread("trioapi-testclient-request", self._run_options)
        own.start()
        try:
            return own.call(afn)
        finally:
            own.stop()

    def start(self) -> None:
        """Starts the shared run and the app's lifespan (``__enter__``)."""
        _refuse_inside_trio()
        with self._lock:
            if self._phase is not _Phase.IDLE:
                self._refuse(self._phase, "enter it")
            self._phase = _Phase.STARTING
        thread = _TrioThread("trioapi-testclient", self._run_options)
        lifespan = _LifespanCall(self._app, self._state)
        try:
            thread.start()
            thread.call(functools.partial(thread.start_task, lifespan.run, name="lifespan"))
            thread.call(lifespan.startup)
        except BaseException as error:
            try:
                thread.stop()
            except BaseException as run_error:
                error.add_note(f"the TestClient's trio run failed too: {run_error!r}")
            with self._lock:
                self._phase = _Phase.IDLE
            raise
        with self._lock:
            self._thread, self._lifespan = thread, lifespan
            self._phase = _Phase.RUNNING

    def stop(self, *, then: _Phase = _Phase.IDLE) -> None:
        """Shuts the app's lifespan down and ends the shared run (``__exit__``)."""
        with self._lock:
            phase = self._phase
            if phase is not _Phase.RUNNING:
                if phase is _Phase.IDLE or phase is _Phase.CLOSED:
                    self._phase = then if phase is _Phase.IDLE else phase
                    return
                self._refuse(phase, "leave its 'with' block")
            self._phase = _Phase.STOPPING
            thread, lifespan = self._thread, self._lifespan
        assert thread is not None
        assert lifespan is not None
        try:
            if lifespan.supported:
                thread.call(lifespan.shutdown)
        finally:
            try:
                thread.stop()
            finally:
                with self._lock:
                    self._thread = self._lifespan = None
                    self._phase = then


# --- httpx ----------------------------------------------------------------------------------


@final
class _Transport(httpx.BaseTransport):
    """Turns each httpx request into an ASGI ``http`` call of the app."""

    def __init__(
        self,
        app: ASGIApp,
        runner: _AppRunner,
        *,
        state: dict[str, Any],
        raise_server_exceptions: bool,
        root_path: str,
        client: tuple[str, int],
        wait_background: bool,
    ) -> None:
        self._app = app
        self._runner = runner
        self._state = state
        self._raise = raise_server_exceptions
        self._root_path = root_path
        self._client = client
        self._wait_background = wait_background

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Calls the app for ``request`` and returns its whole response.

        Raises:
            Exception: What the app raised, with ``raise_server_exceptions``.
            RuntimeError: The app returned without starting a response (with
                ``raise_server_exceptions``); the client is closed, or not
                usable from here.
            NotImplementedError: A websocket URL.
        """
        scope = self._scope(request)
        chunks: Iterator[bytes] | None = None
        body = b""
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):
            body = request.read()
        elif isinstance(stream, httpx.SyncByteStream):
            chunks = iter(stream)
        else:
            msg = "the TestClient is synchronous: give it a sync request body, not an async one"
            raise TypeError(msg)
        wait = bool(request.extensions.get(WAIT_BACKGROUND, self._wait_background))
        exchange = _Exchange(self._app, scope, body=body, chunks=chunks, wait_background=wait)
        self._runner.call(exchange.run)
        return self._response(exchange, request)

    def _scope(self, request: httpx.Request) -> Scope:
        url = request.url
        scheme = url.scheme
        if scheme in ("ws", "wss"):
            _no_websockets()
        port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme, 80)
        raw_path = url.raw_path.split(b"?", 1)[0]
        headers: list[tuple[bytes, bytes]] = []
        if "host" not in request.headers:
            headers.append((b"host", url.netloc))
        headers.extend((name.lower(), value) for name, value in request.headers.raw)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": scheme,
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "root_path": self._root_path,
            "query_string": url.query,
            "headers": headers,
            "client": self._client,
            "server": (url.raw_host.decode("ascii"), port),
            "extensions": {"http.response.debug": {}, "http.response.trailers": {}},
            "state": self._state.copy(),
        }

    def _response(self, exchange: _Exchange, request: httpx.Request) -> httpx.Response:
        if exchange.error is not None and self._raise:
            raise exchange.error
        if exchange.status is None:
            if self._raise:
                msg = (
                    f"the app returned without starting a response to {request.method} "
                    f"{request.url}"
                )
                raise RuntimeError(msg)
            return httpx.Response(500, stream=httpx.ByteStream(b""), request=request)
        extensions: dict[str, Any] = {}
        if exchange.trailers is not None:
            extensions["http.response.trailers"] = exchange.trailers
        if exchange.debug is not None:
            extensions["http.response.debug"] = exchange.debug
        response = httpx.Response(
            exchange.status,
            headers=exchange.headers,
            # A stream, not content=: httpx would add a Content-Length the app never sent.
            stream=httpx.ByteStream(b"".join(exchange.body)),
            request=request,
            extensions=extensions,
        )
        if exchange.debug is not None:
            # Where Starlette's client puts what its templates report.
            for key in ("template", "context"):
                if key in exchange.debug:
                    setattr(response, key, exchange.debug[key])
        return response

    def close(self) -> None:
        """Called by ``httpx.Client.close``: ends a running lifespan, refuses what comes next."""
        self._runner.stop(then=_Phase.CLOSED)


def _no_websockets() -> NoReturn:
    msg = "a websocket URL is not an HTTP request: use client.websocket_connect(url)"
    raise NotImplementedError(msg)


class TestClient(httpx.Client):
    """FastAPI's (Starlette's) synchronous test client, running the app on trio.

    An ``httpx.Client`` whose requests go straight to the ASGI app, in process:
    ``client.get/post/put/patch/delete/head/options/request/stream`` take what
    httpx takes and return ``httpx.Response`` objects.

    Without ``with``, each request runs in a short trio run of its own and the
    app's lifespan never runs (a trioapi app then runs a request's background
    tasks inside the request). ``with TestClient(app) as client:`` runs one
    trio run in a background thread for the whole block: the app's lifespan
    starts on entry and shuts down (draining background tasks) on exit, and
    every request of the block runs in that run, seeing the lifespan's
    runtime and state. The client can be entered again afterwards.

    Args:
        app: An ASGI 3 application written for trio (a ``TrioAPI`` app).
        base_url: The URL requests are relative to.
        raise_server_exceptions: Re-raise, in the calling thread, an exception
            that escapes the app; False answers a 500 with an empty body
            instead (or returns what the app had sent of its response).
        root_path: The ASGI ``root_path`` of every request.
        backend: Must be ``"trio"``; accepted for Starlette's signature.
        backend_options: Keyword arguments for ``trio.run`` (``clock=``,
            ``instruments=``...).
        cookies: Cookies sent with every request (and kept up to date from
            ``Set-Cookie`` answers).
        headers: Headers sent with every request; ``user-agent`` defaults to
            ``testclient``.
        follow_redirects: Follow redirects (as Starlette's client does).
        client: The ASGI ``client`` address of every request.
        wait_background: Make each request return only after its own
            background tasks finished (the default, as FastAPI's tests
            expect); per request, ``extensions={"trioapi.wait_background": False}``.

    Raises:
        ValueError: A backend other than trio.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: Literal["trio"] = "trio",
        backend_options: Mapping[str, Any] | None = None,
        cookies: CookieTypes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        *,
        wait_background: bool = True,
    ) -> None:
        if backend != "trio":
            msg = (
                f"trioapi's TestClient runs apps on trio only, not on {backend!r}: "
                "leave backend out (or pass backend='trio')"
            )
            raise ValueError(msg)
        self.app = app
        self.app_state: dict[str, Any] = {}
        """The lifespan's ``state``; each request's scope gets a shallow copy."""
        self._runner = _AppRunner(app, self.app_state, backend_options or {})
        transport = _Transport(
            app,
            self._runner,
            state=self.app_state,
            raise_server_exceptions=raise_server_exceptions,
            root_path=root_path,
            client=client,
            wait_background=wait_background,
        )
        default_headers = httpx.Headers(headers)
        if "user-agent" not in default_headers:
            default_headers["user-agent"] = "testclient"
        super().__init__(
            base_url=base_url,
            headers=default_headers,
            transport=transport,
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    def __enter__(self) -> Self:
        """Starts the trio run and the app's lifespan startup.

        Raises:
            Exception: What the app's lifespan startup raised.
            RuntimeError: The startup failed without raising, the client is
                already in a ``with`` block, or it was closed.
        """
        self._runner.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        """Runs the app's lifespan shutdown, ends the trio run and joins its thread.

        Unlike ``httpx.Client.__exit__``, it does not close the client: it can
        be used again (each request in a run of its own) or entered again.

        Raises:
            Exception: What the app's lifespan shutdown raised. When the
                ``with`` block itself raised, its exception goes on instead,
                with a note about the shutdown failure.
        """
        if exc_value is None:
            self._runner.stop()
            return
        try:
            self._runner.stop()
        except Exception as error:
            exc_value.add_note(f"then the app's lifespan shutdown failed: {error!r}")

    def websocket_connect(
        self, url: str, subprotocols: Sequence[str] | None = None, **kwargs: Any
    ) -> WebSocketTestSession:
        """Opens a websocket to the app; the handshake happens on entering its ``with``.

        Args:
            url: Relative to ``base_url`` (``http`` becomes ``ws``), or a
                ``ws://`` URL.
            subprotocols: Offered in ``Sec-WebSocket-Protocol``.
            **kwargs: ``headers``, ``params``, ``cookies``... as for a request.

        Returns:
            The session (Starlette's interface): ``send_text/bytes/json``,
            ``receive_text/bytes/json``, ``close``. Inside this client's
            ``with`` block it runs in the block's trio run; outside, the
            client's open websockets share a run of their own.
        """
        return _connect_websocket(self, url, subprotocols, kwargs)

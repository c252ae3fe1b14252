"""A real hypercorn server in memory: its trio worker, no sockets, no wall clock.

``trioapi.testing.TestClient`` calls the app directly. That is fast, but it
skips what hypercorn does around the app: HTTP/1.1 parsing, keep-alive, the
per-connection task groups, and above all the shutdown sequence. This module
runs that code for real, over trio's in-memory streams::

    async with InMemoryServer(app) as server:
        async with await server.connect() as conn:
            status, headers, body = await conn.request("GET", "/items/1")
        report = await server.shutdown()      # the graceful sequence

How it works: :meth:`InMemoryServer.run` is hypercorn's
``hypercorn.trio.run.worker_serve`` step by step, built from hypercorn's own
``Lifespan``, ``WorkerContext`` and ``TCPServer``; only the listening sockets
are replaced. :meth:`InMemoryServer.connect` makes a stream pair and hands
the server end to the accept loop, which serves it with a ``TCPServer`` in
the server nursery, as ``trio.serve_listeners`` does with an accepted socket.
hypercorn's ``TCPServer`` treats any stream without ``do_handshake`` as plain
TCP and only asks it for ``.socket.family``, ``getpeername()`` and
``getsockname()``; :class:`_ServerStream` supplies those.

Everything runs in the caller's trio run and hypercorn only reads trio's
clock, so under ``trio.testing.MockClock(autojump_threshold=0)`` every
timeout (``graceful_timeout``, ``keep_alive_timeout``, the lifespan
timeouts, the app's ``drain_timeout``) fires at an exact virtual time.

:class:`InMemoryTransport` puts httpx on top (``httpx.AsyncClient(
transport=InMemoryTransport(server))``), pooling keep-alive connections and,
by default, returning each response once that request's background tasks
finished, as ``TestClient`` does.

Because it leans on hypercorn internals, the supported hypercorn range is
pinned; :func:`check_hypercorn` fails loudly, naming the internal that moved,
before anything runs against an untested version.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from random import randint
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, final

import attrs
import h11
import trio
import trio.testing

try:
    import httpx
except ImportError as error:  # pragma: no cover - exercised only without the extra
    msg = "trioapi's in-memory server harness needs httpx: pip install 'trioapi[testing]'"
    raise ImportError(msg) from error

from .._http.requests import Receive, Scope, Send
from .hypercorn import HYPERCORN_RANGE, GuardedH11Protocol, GuardedTCPServer, hypercorn_version

if TYPE_CHECKING:
    from hypercorn.config import Config

    from .._runtime.background import DrainReport, TaskHandle

__all__ = [
    "ClientConnection",
    "ClientResponse",
    "InMemoryServer",
    "InMemoryTransport",
    "ServerDisconnected",
    "ShutdownTimeline",
    "check_hypercorn",
    "default_config",
]


_RECHECK = (
    "trioapi's in-memory server (trioapi._harness) rebuilds hypercorn.trio.run.worker_serve "
    "from hypercorn's internal classes; re-check the harness against hypercorn's trio/run.py, "
    "trio/tcp_server.py and trio/lifespan.py, then widen the pinned range"
)

try:
    from hypercorn.trio.lifespan import Lifespan
    from hypercorn.trio.statsd import StatsdLogger
    from hypercorn.trio.tcp_server import TCPServer
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.typing import AppWrapper, ConnectionState
    from hypercorn.utils import ShutdownError, raise_shutdown, wrap_app
except ImportError as error:  # pragma: no cover - only with an untested hypercorn
    msg = f"a hypercorn module or name moved ({error}): {_RECHECK}"
    raise RuntimeError(msg) from error

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The address the app sees for the server (scope["server"]) and the first
# client port; each connection gets the next port, so scope["client"] tells
# connections apart (the harness uses it to match requests to connections).
SERVER_ADDRESS = ("127.0.0.1", 8000)
FIRST_CLIENT_PORT = 50000


# --- guarding hypercorn's internals ------------------------------------------------


# Every name hypercorn 0.18's worker_serve refers to (its code object's
# co_names). run() mirrors it step by step, so any name added or removed
# means the sequence may have changed and the mirror must be re-read.
WORKER_SERVE_NAMES = frozenset(
    """
    BaseExceptionGroup ConnectionState KeyboardInterrupt Lifespan SSLListener ShutdownError
    SocketListener StatsdLogger TCPServer UDPServer WorkerContext append backlog cancel
    cancel_scope copy create_sockets create_ssl_context current_time deadline family
    from_stdlib_socket getsockname graceful_timeout handle_lifespan info insecure_sockets
    listen log max_requests max_requests_jitter open_nursery partial quic_sockets
    raise_shutdown randint repr_socket_addr run secure_sockets serve_listeners set
    set_statsd_logger_class sleep_forever socket split start start_soon started terminate
    terminated trio wait wait_for_shutdown wait_for_startup
    """.split()  # noqa: SIM905 - a word list reads better than 55 quoted strings
)


def _parameters(func: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(func).parameters if name != "self"]


def _fail(what: str) -> NoReturn:
    msg = f"{what}: {_RECHECK}"
    raise RuntimeError(msg)


def _require(condition: bool, what: str) -> None:
    if not condition:
        _fail(what)


def check_hypercorn() -> None:
    """Checks that the hypercorn internals the harness relies on are still there.

    Called by every :class:`InMemoryServer` on construction.

    Raises:
        RuntimeError: hypercorn's version is outside the pinned range, or a
            class, method, signature or config attribute the harness uses has
            changed; the message names it.
    """
    version, supported = hypercorn_version()
    low, high = HYPERCORN_RANGE
    _require(
        supported,
        f"hypercorn {version} is outside the range the harness supports "
        f"(>={low[0]}.{low[1]},<{high[0]}.{high[1]})",
    )
    from hypercorn.trio import run

    code = getattr(getattr(run, "worker_serve", None), "__code__", None)
    if code is None:
        _fail("hypercorn.trio.run.worker_serve is gone")
    names = frozenset(code.co_names)
    added, removed = sorted(names - WORKER_SERVE_NAMES), sorted(WORKER_SERVE_NAMES - names)
    _require(
        not added and not removed,
        f"hypercorn's worker_serve changed (now also uses {added or 'nothing new'}, "
        f"no longer uses {removed or 'nothing'})",
    )
    lifespan_methods = ("handle_lifespan", "wait_for_startup", "wait_for_shutdown")
    for name in lifespan_methods:
        _require(callable(getattr(Lifespan, name, None)), f"hypercorn's Lifespan.{name} is gone")
    _require(
        _parameters(Lifespan.__init__) == ["app", "config", "state"],
        "hypercorn's Lifespan(app, config, state) signature changed",
    )
    _require(
        "task_status" in _parameters(Lifespan.handle_lifespan),
        "hypercorn's Lifespan.handle_lifespan no longer takes task_status",
    )
    _require(
        _parameters(WorkerContext.__init__) == ["max_requests"],
        "hypercorn's WorkerContext(max_requests) signature changed",
    )
    context = WorkerContext(None)
    for name in ("terminate", "terminated"):
        event = getattr(context, name, None)
        _require(
            all(callable(getattr(event, method, None)) for method in ("set", "wait", "is_set")),
            f"hypercorn's WorkerContext.{name} event is gone",
        )
    _require(
        _parameters(TCPServer.__init__) == ["app", "config", "context", "state", "stream"],
        "hypercorn's TCPServer(app, config, context, state, stream) signature changed",
    )
    _require(callable(getattr(TCPServer, "run", None)), "hypercorn's TCPServer.run is gone")
    _require(
        callable(getattr(TCPServer, "_close", None)) and _parameters(TCPServer._close) == [],
        "hypercorn's TCPServer._close() changed (GuardedTCPServer overrides it)",
    )
    from hypercorn.trio import tcp_server

    _require(
        callable(getattr(tcp_server, "parse_socket_addr", None)),
        "hypercorn's TCPServer no longer reads peer addresses with parse_socket_addr",
    )
    import hypercorn.protocol as protocol
    from hypercorn.protocol.h11 import H11Protocol

    _require(
        getattr(protocol, "H11Protocol", None) in (H11Protocol, GuardedH11Protocol),
        "hypercorn's ProtocolWrapper no longer finds H11Protocol in hypercorn.protocol",
    )
    for name, parameters in (
        ("_create_stream", ["request"]),
        ("_send_h11_event", ["event"]),
    ):
        method = getattr(H11Protocol, name, None)
        _require(
            callable(method) and _parameters(method) == parameters,
            f"hypercorn's H11Protocol.{name}({', '.join(parameters)}) changed",
        )
    from hypercorn.config import Config

    for name in (
        "graceful_timeout",
        "shutdown_timeout",
        "startup_timeout",
        "max_requests",
        "max_requests_jitter",
        "wsgi_max_body_size",
        "set_statsd_logger_class",
    ):
        _require(hasattr(Config, name), f"hypercorn's Config.{name} is gone")


# --- the server side of a connection ------------------------------------------------


@final
@attrs.frozen
class _Socket:
    """The part of a socket that hypercorn's ``TCPServer`` reads."""

    peer: tuple[str, int]
    local: tuple[str, int]
    family: int = socket.AF_INET

    def getpeername(self) -> tuple[str, int]:
        return self.peer

    def getsockname(self) -> tuple[str, int]:
        return self.local


@final
class _ServerStream(trio.abc.HalfCloseableStream):
    """The server's end of an in-memory connection, shaped like ``trio.SocketStream``.

    Like ``SocketStream``, ``send_all``, ``send_eof`` and
    ``wait_send_all_might_not_block`` refuse to overlap (``BusyResourceError``),
    so hypercorn code that would collide on a real socket collides here too.
    It has no ``do_handshake``: that is how ``TCPServer`` tells plain TCP from TLS.
    """

    def __init__(self, stream: trio.StapledStream[Any, Any], sock: _Socket) -> None:
        self._stream = stream
        self.socket = sock
        self._sending = False

    @contextlib.contextmanager
    def _sending_alone(self) -> Iterator[None]:
        # As trio.SocketStream does: overlapping sends (send_all/send_eof) are
        # refused with BusyResourceError, so hypercorn's close-while-sending
        # race (DESIGN.md, fact 8) happens here as on a real socket.
        if self._sending:
            msg = "another task is using this stream for send"
            raise trio.BusyResourceError(msg)
        self._sending = True
        try:
            yield
        finally:
            self._sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._sending_alone():
            await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        with self._sending_alone():
            await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        with self._sending_alone():
            await self._stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


# --- the client side ------------------------------------------------------------------


class ClientResponse(NamedTuple):
    """A complete response: unpacks as ``status, headers, body``.

    Attributes:
        status: The status code.
        headers: ``(name, value)`` pairs, names lowercased, in order.
        body: The body, de-chunked.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        key = name.lower().encode("latin-1")
        for header, value in self.headers:
            if header == key:
                return value.decode("latin-1")
        return None


class ServerDisconnected(ConnectionError):
    """The server closed the connection before the response was complete.

    Attributes:
        status: The status of a response whose head arrived, else None.
        received: The body bytes received before the close.
    """

    def __init__(self, message: str, status: int | None = None, received: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.received = received


@attrs.define(eq=False)
class _Call:
    """One ASGI http call the app received on a connection, and its background tasks."""

    handles: list[TaskHandle[Any]] = attrs.Factory(list)
    done: trio.Event = attrs.Factory(trio.Event)

    async def wait(self) -> None:
        await self.done.wait()
        for handle in self.handles:
            await handle.wait()


@final
class ClientConnection:
    """The client's end of one connection to an :class:`InMemoryServer`.

    Speaks HTTP/1.1 through an h11 client (:meth:`request`, keep-alive
    included) or raw bytes (:meth:`send_bytes`, :meth:`receive_some`,
    :meth:`receive_until_closed`). Do not mix the two on one connection:
    raw bytes bypass the h11 state machine.

    Attributes:
        client: The connection's address as the app sees it (``scope["client"]``).
    """

    def __init__(
        self, server: InMemoryServer, stream: trio.StapledStream[Any, Any], client: tuple[str, int]
    ) -> None:
        self._server = server
        self._stream = stream
        self.client = client
        self._h11 = h11.Connection(h11.CLIENT)
        self._calls: deque[_Call] = deque()
        self._eof = False
        self._closed = False

    @property
    def reusable(self) -> bool:
        """True when another request may be sent (keep-alive)."""
        return (
            not self._closed
            and not self._eof
            and self._h11.our_state is h11.IDLE
            and self._h11.their_state is h11.IDLE
        )

    async def __aenter__(self) -> ClientConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the client's end (the server sees end of file)."""
        if not self._closed:
            self._closed = True
            self._server._connections.pop(self.client, None)
            await trio.aclose_forcefully(self._stream)

    # --- raw bytes ---------------------------------------------------------------

    async def send_bytes(self, data: bytes) -> None:
        """Sends raw bytes to the server."""
        await self._stream.send_all(data)

    async def send_eof(self) -> None:
        """Half-closes: the server reads end of file; the response can still be read."""
        await self._stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receives what the server has sent so far (b"" once it closed)."""
        return bytes(await self._stream.receive_some(max_bytes))

    async def receive_until_closed(self) -> bytes:
        """Receives everything until the server closes the connection."""
        chunks = []
        while chunk := await self.receive_some():
            chunks.append(chunk)
        return b"".join(chunks)

    # --- HTTP/1.1 ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        body: bytes = b"",
        wait_background: bool = False,
    ) -> ClientResponse:
        """Sends one request and reads its response.

        Args:
            method: The method (``GET``).
            target: The request target, query included (``/items?q=1``).
            headers: Extra headers; ``Host`` (``testserver``) and, for a body,
                ``Content-Length`` are added unless given.
            body: The request body.
            wait_background: Return only once the app's call for this request
                ended and the background tasks it handed over finished.

        Returns:
            The response; the connection is ready for the next request if
            :attr:`reusable`.

        Raises:
            ServerDisconnected: The server closed before the response was complete.
            RuntimeError: The connection cannot carry another request.
        """
        await self.send_request(method, target, headers=headers, body=body)
        response = await self.receive_response()
        # The app's call for this request started before it could answer, so
        # its record is first in line; there is none only when hypercorn
        # answered by itself (a malformed request).
        call = self._calls.popleft() if self._calls else None
        if wait_background and call is not None:
            await call.wait()
        return response

    async def send_request(
        self,
        method: str,
        target: str,
        *,
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        body: bytes = b"",
    ) -> None:
        """Sends a request without reading the response (see :meth:`request`)."""
        if not self.reusable:
            msg = (
                f"this connection cannot send another request (client {self._h11.our_state}, "
                f"server {self._h11.their_state}{', closed' if self._eof else ''}); "
                "open a new one with server.connect()"
            )
            raise RuntimeError(msg)
        pairs = [
            (
                name.encode("latin-1") if isinstance(name, str) else name,
                value.encode("latin-1") if isinstance(value, str) else value,
            )
            for name, value in headers
        ]
        names = {name.lower() for name, _ in pairs}
        if b"host" not in names:
            pairs.insert(0, (b"host", b"testserver"))
        if body and not names & {b"content-length", b"transfer-encoding"}:
            pairs.append((b"content-length", str(len(body)).encode()))
        data = self._h11.send(h11.Request(method=method, target=target, headers=pairs))
        if body:
            data += self._h11.send(h11.Data(data=body))
        data += self._h11.send(h11.EndOfMessage())
        # The server may have stopped reading (an early response, then close):
        # the response can still be waiting to be read.
        with contextlib.suppress(trio.BrokenResourceError):
            await self._stream.send_all(data)

    async def receive_response(self) -> ClientResponse:
        """Reads the response to the request sent with :meth:`send_request`.

        Raises:
            ServerDisconnected: The server closed before the response was complete.
        """
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                if not self._eof:
                    raise
                msg = f"the server closed the connection before the response was complete: {error}"
                raise ServerDisconnected(msg, status, b"".join(chunks)) from None
            if event is h11.NEED_DATA:
                data = await self._stream.receive_some()
                self._eof = self._eof or not data
                self._h11.receive_data(bytes(data))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = list(event.headers.raw_items())
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        assert status is not None
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        return ClientResponse(status, headers, b"".join(chunks))


# --- the server --------------------------------------------------------------------------


@final
@attrs.define
class ShutdownTimeline:
    """trio clock times of the server's life, for asserting the shutdown sequence.

    Attributes:
        started: The lifespan startup completed and connections are accepted.
        stopped_accepting: Shutdown began: no more connections; idle
            keep-alive connections are closing.
        graceful_deadline: When hypercorn cancels connections still in flight
            (``stopped_accepting + graceful_timeout``).
        connections_closed: Every connection is gone; ``lifespan.shutdown`` is sent.
        lifespan_complete: The app answered ``lifespan.shutdown.complete``.
        stopped: The lifespan nursery is closed: nothing of the server runs.
    """

    started: float | None = None
    stopped_accepting: float | None = None
    graceful_deadline: float | None = None
    connections_closed: float | None = None
    lifespan_complete: float | None = None
    stopped: float | None = None


def default_config(app: object) -> Config:
    """The harness's hypercorn ``Config``: ``trioapi.serve``'s defaults, logs via ``logging``.

    Like :func:`trioapi._serve.make_config` (``shutdown_timeout`` above the
    app's drain), but hypercorn's error and access logs go to the standard
    ``hypercorn.error`` and ``hypercorn.access`` loggers instead of handlers
    on ``sys.stderr``/``sys.stdout``: in a test process those streams are
    swapped (pytest capture), and the access log is then visible to caplog.
    """
    from hypercorn.config import Config

    from .._http.app import TrioAPI
    from .serve import make_config

    config = make_config(app) if isinstance(app, TrioAPI) else Config()
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access")
    return config


@final
class InMemoryServer:
    """Serves an ASGI app with hypercorn's trio worker over in-memory connections.

    Args:
        app: The application (any ASGI app; :meth:`shutdown` returns a drain
            report only for a ``TrioAPI``).
        config: A hypercorn ``Config``, used as given (copied); binds and TLS
            settings are ignored. None: :func:`default_config`.
        server_address: What the app sees as ``scope["server"]``.

    Start it with ``async with InMemoryServer(app) as server:`` (a graceful
    :meth:`shutdown` on a normal exit, an abrupt stop on an error) or with
    ``await nursery.start(server.run)``.

    Raises:
        RuntimeError: hypercorn's internals changed (see :func:`check_hypercorn`).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        server_address: tuple[str, int] = SERVER_ADDRESS,
    ) -> None:
        check_hypercorn()
        self.app = app
        self.config = default_config(app) if config is None else copy.copy(config)
        self.server_address = server_address
        self.timeline = ShutdownTimeline()
        self._next_port = FIRST_CLIENT_PORT
        self._connections: dict[tuple[str, int], ClientConnection] = {}
        send, receive = trio.open_memory_channel[_ServerStream](0)
        self._accept_send: trio.MemorySendChannel[_ServerStream] = send
        self._accept_receive: trio.MemoryReceiveChannel[_ServerStream] = receive
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._running = False
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    # --- lifecycle -------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[InMemoryServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serves until :meth:`shutdown` (hypercorn's ``worker_serve``, step by step).

        Args:
            task_status: Receives the server once the lifespan startup
                completed and connections are accepted.
        """
        if self._running or self._stopped.is_set():
            msg = "this InMemoryServer already ran; make a new one"
            raise RuntimeError(msg)
        self._running = True
        config = self.config
        try:
            # worker_serve: config.set_statsd_logger_class(StatsdLogger)
            config.set_statsd_logger_class(StatsdLogger)
            # worker_serve: lifespan = Lifespan(app, config, lifespan_state); hypercorn.trio.serve
            # wraps the app first (wrap_app), and so do we.
            lifespan_state: dict[str, Any] = {}
            app = wrap_app(self._observe, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
            lifespan = Lifespan(app, config, lifespan_state)
            # worker_serve: max_requests with jitter, then WorkerContext(max_requests)
            max_requests = None
            if config.max_requests is not None:
                max_requests = config.max_requests + randint(0, config.max_requests_jitter)
            context = WorkerContext(max_requests)

            # worker_serve: async with trio.open_nursery() as lifespan_nursery
            async with trio.open_nursery() as lifespan_nursery:
                # worker_serve: start handle_lifespan, then wait_for_startup (startup_timeout)
                await lifespan_nursery.start(lifespan.handle_lifespan)
                await lifespan.wait_for_startup()

                # worker_serve: async with trio.open_nursery() as server_nursery
                async with trio.open_nursery() as server_nursery:
                    # worker_serve: the TCPServer partial's ConnectionState, copied once
                    state = ConnectionState(lifespan_state.copy())
                    # worker_serve: task_status.started(binds), once listeners exist
                    self.timeline.started = trio.current_time()
                    task_status.started(self)
                    try:
                        # worker_serve: the strict nursery with the shutdown triggers and
                        # trio.serve_listeners(..., handler_nursery=server_nursery)
                        async with trio.open_nursery(strict_exception_groups=True) as nursery:
                            nursery.start_soon(raise_shutdown, self._stop.wait)
                            nursery.start_soon(raise_shutdown, context.terminate.wait)
                            nursery.start_soon(self._accept, server_nursery, app, context, state)
                            await trio.sleep_forever()
                    except BaseExceptionGroup as error:
                        # worker_serve: only ShutdownError/KeyboardInterrupt are expected
                        _, other_errors = error.split((ShutdownError, KeyboardInterrupt))
                        if other_errors is not None:
                            raise other_errors from None
                    finally:
                        # worker_serve: terminated (idle keep-alive connections close), then
                        # the graceful deadline on every connection still in flight
                        self.timeline.stopped_accepting = trio.current_time()
                        await context.terminated.set()
                        deadline = trio.current_time() + config.graceful_timeout
                        server_nursery.cancel_scope.deadline = deadline
                        self.timeline.graceful_deadline = deadline
                self.timeline.connections_closed = trio.current_time()

                # worker_serve: lifespan.wait_for_shutdown() (shutdown_timeout), then cancel
                # the lifespan nursery, whatever the app still runs in it
                await lifespan.wait_for_shutdown()
                self.timeline.lifespan_complete = trio.current_time()
                lifespan_nursery.cancel_scope.cancel()
        finally:
            self.timeline.stopped = trio.current_time()
            self._accept_send.close()
            self._stopped.set()

    async def _accept(
        self,
        server_nursery: trio.Nursery,
        app: AppWrapper,
        context: WorkerContext,
        state: ConnectionState,
    ) -> None:
        # Stands in for trio.serve_listeners: each accepted stream is served
        # by a TCPServer in the server nursery. Leaving closes the channel, so
        # connect() is refused from the moment shutdown begins.
        async with self._accept_receive:
            async for stream in self._accept_receive:
                server_nursery.start_soon(self._serve_connection, stream, app, context, state)

    async def _serve_connection(
        self, stream: _ServerStream, app: AppWrapper, context: WorkerContext, state: ConnectionState
    ) -> None:
        # trio.serve_listeners' handler wrapper: await handler(stream), then
        # close the stream forcefully whatever happened.
        try:
            # As serve() and plain hypercorn do once a trioapi app started
            # (trioapi._hypercorn): hypercorn's TCPServer, guarded against its
            # close/send race.
            server = GuardedTCPServer(
                app,
                self.config,
                context,
                state,
                stream,  # type: ignore[arg-type]
            )
            await server.run()
        finally:
            await trio.aclose_forcefully(stream)

    async def _observe(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Between hypercorn and the app: records each http call against its
        # connection, and passes trioapi's "trioapi.background" observer (the
        # same extension TestClient uses) so a client can wait for the
        # request's background tasks. Everything else goes through untouched.
        client = scope.get("client") if scope["type"] == "http" else None
        connection = self._connections.get(client) if client is not None else None
        if connection is None:
            await self.app(scope, receive, send)
            return
        call = _Call()
        connection._calls.append(call)
        scope.setdefault("extensions", {})["trioapi.background"] = call.handles.extend
        try:
            await self.app(scope, receive, send)
        finally:
            call.done.set()

    def request_shutdown(self) -> None:
        """Starts the graceful sequence (what SIGTERM does) without waiting."""
        self._stop.set()

    async def shutdown(self) -> DrainReport | None:
        """Runs the graceful sequence and returns once everything stopped.

        Stop accepting → idle connections close → in-flight requests get
        ``graceful_timeout``, then are cancelled → ``lifespan.shutdown`` → the
        app's background drain → ``lifespan.shutdown.complete`` → the lifespan
        nursery is cancelled. :attr:`timeline` has the times.

        Returns:
            The app's drain report (``app.background.last_report``); None for
            an app that is not a ``TrioAPI`` or that never drained.
        """
        if not self._running:
            msg = "the in-memory server was never started: nothing to shut down"
            raise RuntimeError(msg)
        self._stop.set()
        await self._stopped.wait()
        background = getattr(self.app, "background", None)
        report: DrainReport | None = getattr(background, "last_report", None)
        return report

    async def __aenter__(self) -> InMemoryServer:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            await self._nursery.start(self.run)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        assert self._nursery is not None
        if exc_type is None:
            await self.shutdown()
        else:
            # The test failed inside: stop at once, and let its error through
            # as it is rather than wrapped in the nursery's group.
            self._nursery.cancel_scope.cancel("the code using the server raised")
        await self._stack.__aexit__(None, None, None)

    # --- connections -------------------------------------------------------------

    async def connect(self, *, buffered: bool = True) -> ClientConnection:
        """Opens a connection; the server accepts it as it would a TCP client.

        Args:
            buffered: True: the connection buffers without limit, so the
                server's writes complete at once (a socket with room to
                spare). False: a lockstep pair, where each server write
                completes only as the client reads it (a slow reader).

        Raises:
            ConnectionRefusedError: The server is not running, or shutdown began.
        """
        if not self._running or self._stop.is_set():
            state = "shutting down" if self._stop.is_set() else "not running"
            msg = (
                f"the in-memory server is {state}: connections are refused "
                "(start it with 'async with InMemoryServer(app)' or nursery.start(server.run))"
            )
            raise ConnectionRefusedError(msg)
        client_end: trio.StapledStream[Any, Any]
        server_end: trio.StapledStream[Any, Any]
        if buffered:
            client_end, server_end = trio.testing.memory_stream_pair()
        else:
            client_end, server_end = trio.testing.lockstep_stream_pair()
        address = (self.server_address[0], self._next_port)
        self._next_port += 1
        connection = ClientConnection(self, client_end, address)
        self._connections[address] = connection
        try:
            await self._accept_send.send(
                _ServerStream(server_end, _Socket(peer=address, local=self.server_address))
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._connections.pop(address, None)
            msg = "the in-memory server stopped accepting connections (shutdown began)"
            raise ConnectionRefusedError(msg) from None
        return connection


# --- httpx ----------------------------------------------------------------------------------

WAIT_BACKGROUND = "trioapi.wait_background"
"""httpx request extension: override the transport's ``wait_background`` per request."""


@final
class InMemoryTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends requests through an :class:`InMemoryServer`.

    Keeps idle keep-alive connections for reuse, as httpx's own pool does.

    Args:
        server: A running server.
        wait_background: Return each response only after the app's call for
            it ended and its background tasks finished (per request: the
            ``"trioapi.wait_background"`` request extension).
    """

    def __init__(self, server: InMemoryServer, *, wait_background: bool = True) -> None:
        self.server = server
        self.wait_background = wait_background
        self._idle: list[ClientConnection] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Sends one httpx request over a pooled or new connection.

        Raises:
            httpx.ConnectError: The server refuses connections (shutdown began).
            httpx.RemoteProtocolError: The server closed before the response
                was complete.
        """
        body = await request.aread()
        wait = bool(request.extensions.get(WAIT_BACKGROUND, self.wait_background))
        headers = [(name, value) for name, value in request.headers.raw]
        while True:
            reused = bool(self._idle)
            try:
                connection = self._idle.pop() if reused else await self.server.connect()
            except ConnectionRefusedError as error:
                raise httpx.ConnectError(str(error), request=request) from error
            try:
                response = await connection.request(
                    request.method,
                    request.url.raw_path.decode("ascii"),
                    headers=headers,
                    body=body,
                    wait_background=wait,
                )
            except ServerDisconnected as error:
                await connection.aclose()
                if reused and error.status is None:
                    # The server had closed this idle connection (keep-alive
                    # timeout, shutdown) before reading the request: retry on a
                    # new one, as httpx's pool would.
                    continue
                raise httpx.RemoteProtocolError(str(error), request=request) from error
            break
        if connection.reusable:
            self._idle.append(connection)
        else:
            await connection.aclose()
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            content=response.body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Closes the pooled connections (httpx calls it when its client closes)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()

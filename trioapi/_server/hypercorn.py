"""What trioapi knows about hypercorn's trio server (hypercorn 0.18).

Four things live here, all tied to hypercorn's internals (the version range
is pinned in ``pyproject.toml`` and in :data:`HYPERCORN_RANGE`; the in-memory
harness checks these internals and fails loudly if they move):

- :func:`find_config`: ASGI gives an app no view of its server's settings,
  but the lifespan call is made by hypercorn's ``Lifespan.handle_lifespan``,
  whose frame is up the call chain while the app starts up. The app reads
  ``shutdown_timeout`` there to warn when the drain cannot fit.

- :class:`GuardedTCPServer`: hypercorn's ``TCPServer._close`` calls
  ``stream.send_eof()`` outside the ``send_lock`` that ``protocol_send`` holds
  around ``send_all``. When a connection is closed from one side (the app's
  response ended) while the other is writing (the read loop sending its own
  400 for a broken chunk, a client gone mid-body), one of the writes gets
  ``trio.BusyResourceError``. Nothing catches it in the read loop: it escapes
  the connection and stops the whole server, so a single malformed request
  could take a server down. The guard sends the EOF only under the send lock
  (and just closes the stream while a write holds it), so the writes meet a
  closed stream instead, which hypercorn handles. :func:`install_guard` puts
  it in place of hypercorn's class when the app starts under hypercorn
  (hypercorn looks the class up after startup).

- :class:`GuardedH11Protocol`: hypercorn's HTTP/1 protocol with two changes.
  A request whose body framing is ambiguous (both ``Content-Length`` and
  ``Transfer-Encoding``, or ``Transfer-Encoding`` on HTTP/1.0) gets 400 and
  the connection closes before the app sees it: otherwise the bytes after
  the chunked body are served as a second request, the shape of request
  smuggling (RFC 9112, sections 6.1 and 6.3, say such a connection must
  close). And ``100 Continue`` is sent when the app first asks for the body,
  not as soon as the request head arrives (hypercorn's ``_handle_events``
  sends it at once): an app that refuses a declared length (413) or answers
  without reading never invites the client to upload. :func:`install_guard`
  puts it in place of hypercorn's class, as it does for the ``TCPServer``.

- :func:`sends_whole_bodies`: in hypercorn's HTTP/1 path, an
  ``http.response.body`` message with ``more_body=True`` raises ``Cancelled``
  only *before* any of its bytes are written (at the send lock), never after:
  the write itself is shielded, and nothing after it checkpoints until the
  call returns. The app relies on this to keep "response delivered" and
  "tasks handed over" together without a cancel scope of its own
  (``_responses.send_final``), but only where the ``send`` it was given is
  hypercorn's own (an ASGI middleware around the app may buffer the body
  and write it later) and for the checked versions. HTTP/2 queues the data
  and then waits on flow control, so it does not qualify.
  ``tests/test_harness.py`` checks the property on the real code.
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from typing import Any

import attrs
import h11
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.trio.tcp_server import TCPServer

logger = logging.getLogger("trioapi")

HYPERCORN_RANGE = ((0, 18), (0, 19))
"""The hypercorn versions trioapi was checked against: at least the first, below the second."""

WHOLE_BODY_HTTP_VERSIONS = frozenset({"1.0", "1.1"})
"""``scope["http_version"]`` values whose body sends have the property above."""


def hypercorn_version() -> tuple[str, bool]:
    """hypercorn's installed version, and whether it is inside :data:`HYPERCORN_RANGE`."""
    try:
        version = metadata.version("hypercorn")
    except metadata.PackageNotFoundError:  # pragma: no cover - hypercorn is a dependency
        return "unknown", False
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return version, False
    low, high = HYPERCORN_RANGE
    return version, low <= major_minor < high


def sends_whole_bodies(send: Any, scope: Any) -> bool:
    """Whether ``send`` writes a body message whole or raises before writing any of it.

    True only for hypercorn's own send (not a middleware's) on HTTP/1; the
    caller also checks, once, that hypercorn's version is a checked one
    (:func:`hypercorn_version`).
    """
    return (
        getattr(send, "__func__", None) is HTTPStream.app_send
        and scope["http_version"] in WHOLE_BODY_HTTP_VERSIONS
    )


class GuardedTCPServer(TCPServer):
    """hypercorn's trio ``TCPServer``, minus the self-inflicted ``BusyResourceError``."""

    async def _close(self) -> None:
        # send_eof() holds the stream's send side across a checkpoint, and a
        # write starting then raises BusyResourceError, which escapes
        # protocol_send and stops the server. So send_eof runs only under
        # the send lock, taken without waiting: while another task holds it
        # (a write under way, or about to start, or just done), the
        # connection is closed without the EOF, and that write finds the
        # stream closed, which protocol_send handles. One check per
        # connection, rather than a wrapper around every write.
        lock = self.send_lock
        if lock.locked():
            await self.stream.aclose()
            return
        lock.acquire_nowait()
        try:
            await super()._close()
        finally:
            lock.release()


def framing_fault(request: h11.Request) -> str | None:
    """Why a request's body framing cannot be trusted, or None when it can.

    RFC 9112: a request with both ``Transfer-Encoding`` and ``Content-Length``
    "ought to be handled as an error" and its connection must close (6.3); an
    HTTP/1.0 request with ``Transfer-Encoding`` has faulty framing (6.1).
    """
    chunked = length = False
    for name, _ in request.headers:  # h11 gives the names lower-cased
        if name == b"transfer-encoding":
            chunked = True
        elif name == b"content-length":
            length = True
    if not chunked:
        return None
    if length:
        return "the request has both Content-Length and Transfer-Encoding"
    if request.http_version == b"1.0":
        return "an HTTP/1.0 request cannot use Transfer-Encoding"
    return None


class _ContinueOnDemand(h11.Connection):
    """h11's server connection, through which hypercorn's read loop never sends 100 Continue.

    hypercorn's ``_handle_events`` sends ``100 Continue`` whenever
    ``they_are_waiting_for_100_continue`` is true; here it never is, and
    :meth:`GuardedH11Protocol.send_continue` reads h11's own value instead
    (:attr:`waiting_for_continue`). Done on the connection rather than by
    filtering the protocol's ``_send_h11_event``: that ran for every event of
    every response, this only where the read loop asks.
    """

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        return False

    @property
    def waiting_for_continue(self) -> bool:
        """Whether the client waits for ``100 Continue`` (h11's own answer)."""
        return super().they_are_waiting_for_100_continue


class GuardedH11Protocol(H11Protocol):
    """hypercorn's HTTP/1 protocol: ambiguous framing refused, 100 Continue sent on demand."""

    # The request whose client waits for 100 Continue, until it is sent.
    _continue_for: h11.Request | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The same connection hypercorn makes, with the 100 Continue held back.
        self.connection = _ContinueOnDemand(
            h11.SERVER, max_incomplete_event_size=self.config.h11_max_incomplete_size
        )

    async def _create_stream(self, request: h11.Request) -> None:
        fault = framing_fault(request)
        if fault is not None:
            await self._refuse(fault)
            return
        if not self._client_waits_for_continue():
            await super()._create_stream(request)
            return
        # Only this request's app gets the receive that sends 100 Continue:
        # every other request is served by hypercorn's app wrapper as it is.
        self._continue_for = request
        app = self.app
        self.app = _ContinueOnRead(app, self, request)
        try:
            await super()._create_stream(request)
        finally:
            self.app = app

    def _client_waits_for_continue(self) -> bool:
        # h11's own answer; after a WebSocket upgrade the connection is hypercorn's
        # pass-through, which never waits.
        connection = self.connection
        return type(connection) is _ContinueOnDemand and connection.waiting_for_continue

    async def send_continue(self, request: h11.Request) -> None:
        """Sends ``100 Continue`` if ``request``'s client is still waiting for it."""
        if self._continue_for is not request:
            return
        self._continue_for = None
        if not self._client_waits_for_continue():
            return  # the client sent its body anyway, or an answer went out first
        event = h11.InformationalResponse(
            status_code=100, headers=self.config.response_headers("h11")
        )
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            return  # the connection is already broken: nothing to invite
        await self.send(RawData(data=data))

    async def _refuse(self, reason: str) -> None:
        body = f"{reason}; the connection is closed (RFC 9112, section 6.3)\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *self.config.response_headers("h11"),
        ]
        await self._send_h11_event(h11.Response(status_code=400, headers=headers))
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())
        await self.send(Closed())


@attrs.frozen
class _ContinueOnRead:
    """hypercorn's app wrapper for one request, whose first ``receive`` sends 100 Continue."""

    app: Any
    protocol: GuardedH11Protocol
    request: h11.Request

    async def __call__(
        self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any
    ) -> None:
        protocol, request = self.protocol, self.request

        async def receive_after_continue() -> Any:
            await protocol.send_continue(request)
            return await receive()

        await self.app(scope, receive_after_continue, send, sync_spawn, call_soon)


def install_guard() -> None:
    """Makes hypercorn's trio worker build guarded connections and HTTP/1 protocols.

    :class:`GuardedTCPServer` for each connection, :class:`GuardedH11Protocol`
    for each HTTP/1 one (hypercorn's ``ProtocolWrapper`` looks the class up
    in ``hypercorn.protocol`` for every connection).
    """
    import hypercorn.protocol as hypercorn_protocol
    import hypercorn.trio.run as hypercorn_run

    if getattr(hypercorn_run, "TCPServer", None) is TCPServer:
        setattr(hypercorn_run, "TCPServer", GuardedTCPServer)  # noqa: B010 - not re-exported
        logger.debug("trioapi: guarding hypercorn's TCPServer against its close/send race")
    if getattr(hypercorn_protocol, "H11Protocol", None) is H11Protocol:
        setattr(hypercorn_protocol, "H11Protocol", GuardedH11Protocol)  # noqa: B010
        logger.debug("trioapi: refusing ambiguous HTTP/1 framing, sending 100 Continue on read")


def find_config() -> Any:
    """Finds the hypercorn ``Config`` whose lifespan is calling us, if any.

    Anything unexpected means "not hypercorn", and None.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__module__.startswith("hypercorn.") and type(owner).__name__ == "Lifespan":
            config = getattr(owner, "config", None)
            if config is not None and hasattr(config, "shutdown_timeout"):
                return config
        frame = frame.f_back  # type: ignore[assignment]
    return None


class _TrioView:
    """trio as hypercorn's ``trio/run.py`` sees it after :func:`route_serve_listeners`."""

    def __init__(self, serve_listeners: Any) -> None:
        self.serve_listeners = serve_listeners

    def __getattr__(self, name: str) -> Any:
        return getattr(trio, name)


def route_serve_listeners(replacement: Any) -> bool:
    """Makes hypercorn's trio worker hand its listeners to ``replacement``, not to trio's.

    ``worker_serve`` makes its ``trio.SocketListener`` (and ``SSLListener``)
    objects from the sockets itself and passes them, with its ``TCPServer``
    handler, to ``trio.serve_listeners``, looked up through its module's
    ``trio`` each time it serves: no parameter takes listeners. That name is
    the seam: the module's ``trio`` becomes a view of trio whose
    ``serve_listeners`` is ``replacement`` (same signature; every other name
    is trio's own, and trio itself is untouched). Returns False, changing
    nothing, when ``worker_serve`` no longer calls ``trio.serve_listeners``.
    """
    import hypercorn.trio.run as hypercorn_run

    current = getattr(hypercorn_run, "trio", None)
    if isinstance(current, _TrioView):
        current.serve_listeners = replacement
        return True
    code = getattr(getattr(hypercorn_run, "worker_serve", None), "__code__", None)
    if current is not trio or code is None or not {"trio", "serve_listeners"} <= set(code.co_names):
        return False
    setattr(hypercorn_run, "trio", _TrioView(replacement))  # noqa: B010 - not re-exported
    logger.debug("trioapi: hypercorn's listeners go through trioapi's serve_listeners")
    return True

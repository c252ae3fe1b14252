"""Websocket sessions: the ``WebSocket`` object and the runner of a websocket route.

Theory of operation
===================

A websocket route's ASGI call is one *session* (:func:`run_websocket`):

1. solve the route's parameters and dependencies, as for a request (query,
   headers, cookies, path, ``Depends``, security); a parameter annotated
   ``WebSocket`` gets the session's :class:`WebSocket`. Values that do not
   validate close the socket with 1008 (FastAPI's rule);
2. await the endpoint. It accepts, talks and closes through the
   ``WebSocket``; an endpoint that returns with the socket still open has
   it closed with 1000. A ``WebSocketDisconnect`` escaping the endpoint (the
   client left, and the endpoint did not catch it) is a normal end, not an
   error: nothing is logged;
3. an exception is answered by the app's exception handlers, called as
   ``handler(websocket, exc)``: ``WebSocketException`` closes with its code,
   an ``HTTPException`` (a security dependency's 401, say) before the
   handshake is answered with its HTTP response (the ``websocket.http.response``
   extension). An exception no handler takes goes on to the server, as in
   FastAPI: the server logs it and closes the socket with 1011 (answers 500
   before the handshake), and an ASGI middleware around the app may catch it
   and close the socket its own way;
4. yield-dependency teardown, as for a request: ``Depends(scope="function")``
   ones right after the endpoint, the others after the close;
5. the session's background tasks go to the runtime as one group once the
   socket is closed (FastAPI never runs them); if the endpoint raised, they
   are skipped, as on the HTTP path.

Shutdown. A session is told to *go away* when its server begins to shut
down: hypercorn's worker sets its ``terminated`` event as it stops
listening (found from hypercorn's own ``send``), or, under any other
server, the background runtime begins its drain. Going away closes the
socket with 1001 at once; a ``receive`` the endpoint is waiting in raises
``WebSocketDisconnect(1001)``, and so does every later send or receive, so
the endpoint's ordinary ``except WebSocketDisconnect`` path ends it. Its
tasks are then drained like any other: under hypercorn the runtime is still
accepting (``lifespan.shutdown`` only comes once connections are gone);
under a test client the drain is already waiting for them, because admitted
tasks of a session in flight count as pending. A session the server cancels
(hypercorn's ``graceful_timeout``) still sends its 1001, and its tasks are
skipped.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, final

import trio
from hypercorn.protocol.ws_stream import WSStream

from .._exceptions import (
    HTTPException,
    WebSocketException,
    WebSocketRequestValidationError,
    endpoint_context,
)
from .._runtime.background import RuntimeState
from ..telemetry._api import TELEMETRY_RECORD
from .params import CallKind
from .requests import DEFAULT_MAX_BODY_SIZE, Message, Receive, Request, Scope, Send
from .responses import TRANSPORT_GONE, Response
from .solve import RequestContext, call, solve_route, teardown

if TYPE_CHECKING:
    from .._runtime.background import BackgroundRuntime
    from .app import TrioAPI
    from .datastructures import URL, Address, Headers, QueryParams, State
    from .routing import APIWebSocketRoute

logger = logging.getLogger("trioapi")

GOING_AWAY = 1001
"""The close code of a session ended by the server's shutdown (RFC 6455: "going away")."""

GOING_AWAY_REASON = "the server is shutting down"

CLOSE_GRACE = 1.0
"""Seconds a cancelled session may spend sending its 1001 close (its socket may be stuck)."""

MAX_REASON_BYTES = 123
"""A close frame's payload is at most 125 bytes, two of them the code (RFC 6455, 5.5)."""

DISCONNECT_EXTENSION = "trioapi.websocket_disconnect"
"""Scope extension: a callable the app hands a ``WebSocketDisconnect`` that ended the endpoint.

The session treats it as a normal end; the test clients use it to re-raise it
in the test on leaving the ``with`` block, as Starlette's client does.
"""

DENIAL_EXTENSION = "websocket.http.response"
"""The ASGI extension that lets an app answer a handshake with an HTTP response."""


class WebSocketState(enum.Enum):
    """Where each side of a websocket is (``client_state``, ``application_state``)."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """The websocket is closed: the client left, or the server is going away.

    Raised by ``receive_*`` when the client's close arrives, and by any send
    or receive once the server began shutting down (code 1001). An endpoint
    may let it escape: the session then ends normally.

    Args:
        code: The close code (1000 normal, 1001 going away, 1006 connection lost...).
        reason: The close reason the client gave, if any.
    """

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        super().__init__(code, reason or "")
        self.code = code
        self.reason = reason or ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


_CONNECTING = WebSocketState.CONNECTING
_CONNECTED = WebSocketState.CONNECTED
_DISCONNECTED = WebSocketState.DISCONNECTED
_RESPONSE = WebSocketState.RESPONSE

# The application side's transitions: (state, message type) -> next state. A
# denial body with more to come keeps RESPONSE (see send()).
_SEND_TRANSITIONS: dict[tuple[WebSocketState, str], WebSocketState] = {
    (_CONNECTING, "websocket.accept"): _CONNECTED,
    (_CONNECTING, "websocket.close"): _DISCONNECTED,
    (_CONNECTING, "websocket.http.response.start"): _RESPONSE,
    (_CONNECTED, "websocket.send"): _CONNECTED,
    (_CONNECTED, "websocket.close"): _DISCONNECTED,
    (_RESPONSE, "websocket.http.response.body"): _DISCONNECTED,
}

_EXPECTED = {
    _CONNECTING: '"websocket.accept", "websocket.close" or "websocket.http.response.start"',
    _CONNECTED: '"websocket.send" or "websocket.close"',
    _RESPONSE: '"websocket.http.response.body"',
}


@final
class WebSocket:
    """One websocket connection: what it asked for, and how to talk on it.

    The interface is Starlette's (FastAPI's ``WebSocket``): ``accept()``,
    ``receive_text/bytes/json()``, ``send_text/bytes/json()``, ``iter_*()``,
    ``close()``, and the connection's ``url``, ``headers``, ``query_params``,
    ``path_params``, ``cookies``, ``client``, ``state`` and ``app``.

    ``client_state`` and ``application_state`` (:class:`WebSocketState`) say
    where each side is; sending a message the state does not allow raises
    ``RuntimeError`` naming what is allowed.

    Args:
        scope: The ASGI ``websocket`` scope.
        receive, send: The ASGI callables of the connection.
    """

    __slots__ = (
        "_connection",
        "_going_away",
        "_receive",
        "_receiving",
        "_send",
        "_sending",
        "_watched",
        "application_state",
        "client_state",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "websocket":
            msg = f"a WebSocket needs a 'websocket' ASGI scope, not {scope.get('type')!r}"
            raise ValueError(msg)
        self.scope = scope
        self._receive = receive
        self._send = send
        self.client_state = _CONNECTING
        self.application_state = _CONNECTING
        # The connection's details are a Request's: the session shares the
        # one its dependencies read, so headers are parsed once.
        self._connection: Request | None = None
        # Shutdown: the close code once the server began shutting down; the
        # receive to interrupt then; how many sends are on the wire (the close
        # waits for them, so it never overtakes a message mid-send).
        self._going_away: int | None = None
        self._watched = False
        self._receiving: trio.CancelScope | None = None
        self._sending = 0

    # --- the connection ---------------------------------------------------------------

    @property
    def _conn(self) -> Request:
        if self._connection is None:
            self._connection = Request(self.scope, None, path_params=self.path_params)
        return self._connection

    @property
    def app(self) -> TrioAPI:
        """The application serving this websocket."""
        return self._conn.app

    @property
    def url(self) -> URL:
        """The URL the client connected to (``ws://`` or ``wss://``)."""
        return self._conn.url

    @property
    def base_url(self) -> URL:
        """The URL of the app's root (with ``root_path``), ending in ``/``."""
        return self._conn.base_url

    @property
    def headers(self) -> Headers:
        """The handshake's request headers."""
        return self._conn.headers

    @property
    def query_params(self) -> QueryParams:
        return self._conn.query_params

    @property
    def path_params(self) -> dict[str, str]:
        """The path parameters the route matched, as strings."""
        if self._connection is not None:
            return self._connection.path_params
        params: dict[str, str] = self.scope.get("path_params") or {}
        return params

    @property
    def cookies(self) -> dict[str, str]:
        return self._conn.cookies

    @property
    def client(self) -> Address | None:
        """``(host, port)`` of the peer, when the server knows it."""
        return self._conn.client

    @property
    def state(self) -> State:
        """Per-connection attributes for dependencies to share."""
        return self._conn.state

    # --- ASGI messages ----------------------------------------------------------------

    async def receive(self) -> Message:
        """Receives the next ASGI message from the client side.

        The first is ``websocket.connect``; then ``websocket.receive`` ones,
        until ``websocket.disconnect`` (a synthetic one with code 1001 when
        the server began shutting down).

        Raises:
            RuntimeError: A message out of order, or a receive after the
                disconnect was already received.
        """
        state = self.client_state
        if state is _CONNECTING:
            message = await self._receive()
            if message["type"] != "websocket.connect":
                msg = f'expected the ASGI message "websocket.connect", got {message["type"]!r}'
                raise RuntimeError(msg)
            self.client_state = _CONNECTED
            return message
        if state is _DISCONNECTED:
            msg = "cannot receive: the client's websocket.disconnect was already received"
            raise RuntimeError(msg)
        if self._going_away is not None:
            return self._gone()
        if not self._watched:
            message = await self._receive()
        else:
            # Interruptible by the shutdown (_go_away). A memory channel's
            # receive, hypercorn's, loses nothing when cancelled.
            scope = trio.CancelScope()
            self._receiving = scope
            try:
                with scope:
                    message = await self._receive()
            finally:
                self._receiving = None
            if scope.cancelled_caught:
                return self._gone()
        kind = message["type"]
        if kind == "websocket.disconnect":
            self.client_state = _DISCONNECTED
        elif kind != "websocket.receive":
            msg = (
                'expected the ASGI message "websocket.receive" or "websocket.disconnect", '
                f"got {kind!r}"
            )
            raise RuntimeError(msg)
        return message

    def _gone(self) -> Message:
        self.client_state = _DISCONNECTED
        code = self._going_away
        return {"type": "websocket.disconnect", "code": code, "reason": GOING_AWAY_REASON}

    async def send(self, message: Message) -> None:
        """Sends an ASGI message to the client side, checking it against the state.

        Raises:
            WebSocketDisconnect: The server began shutting down (1001), or
                the connection is gone (1006).
            RuntimeError: A message the state does not allow (a send before
                ``accept()``, anything after ``close()``).
        """
        state = self.application_state
        kind = message["type"]
        following = _SEND_TRANSITIONS.get((state, kind))
        if following is None or (self._going_away is not None and state is not _CONNECTING):
            self._refuse_send(state, kind)
        if kind == "websocket.http.response.body" and message.get("more_body", False):
            following = _RESPONSE
        self.application_state = following
        self._sending += 1
        try:
            await self._send(message)
        except (OSError, *TRANSPORT_GONE) as error:
            self.application_state = _DISCONNECTED
            raise WebSocketDisconnect(1006) from error
        finally:
            self._sending -= 1
        if self._going_away is not None and not self._sending:
            await self._close_going_away()

    def _refuse_send(self, state: WebSocketState, kind: str) -> NoReturn:
        if self._going_away is not None:
            raise WebSocketDisconnect(self._going_away, GOING_AWAY_REASON)
        if state is _DISCONNECTED:
            msg = f"cannot send {kind!r}: the websocket is closed (a websocket.close was sent)"
        elif state is _CONNECTING and kind == "websocket.send":
            msg = 'cannot send data before the handshake: call "await websocket.accept()" first'
        else:
            msg = f"cannot send {kind!r} now: expected {_EXPECTED[state]}"
        raise RuntimeError(msg)

    # --- the handshake and the close ------------------------------------------------

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Accepts the handshake, optionally choosing a subprotocol and adding headers.

        Args:
            subprotocol: One of the client's ``Sec-WebSocket-Protocol`` offers
                (``websocket.scope["subprotocols"]``).
            headers: Extra response headers, as ``(name, value)`` bytes pairs.
        """
        if self.client_state is _CONNECTING:
            await self.receive()  # the websocket.connect message comes first
        await self.send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": list(headers or ())}
        )

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Closes the websocket (before the handshake: refuses it; servers answer 403).

        Once the server began shutting down the socket is already closed, and
        this does nothing.
        """
        if self._going_away is not None:
            if not self._sending:
                await self._close_going_away()
            return
        await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})

    async def send_denial_response(self, response: Response) -> None:
        """Answers the handshake with an HTTP response instead of accepting it.

        Raises:
            RuntimeError: The server does not support it (the
                ``websocket.http.response`` ASGI extension), or the handshake
                is already over.
        """
        if DENIAL_EXTENSION not in (self.scope.get("extensions") or {}):
            msg = (
                "the server does not support denial responses (the ASGI extension "
                f"{DENIAL_EXTENSION!r}); close the websocket instead"
            )
            raise RuntimeError(msg)
        await response.send_to(self._send_as_denial)

    async def _send_as_denial(self, message: Message) -> None:
        await self.send({**message, "type": "websocket." + message["type"]})

    # --- data ---------------------------------------------------------------------

    async def _receive_data(self) -> Message:
        if self._going_away is not None:
            self.client_state = _DISCONNECTED
            raise WebSocketDisconnect(self._going_away, GOING_AWAY_REASON)
        if self.application_state is not _CONNECTED:
            msg = 'the websocket is not connected: call "await websocket.accept()" first'
            raise RuntimeError(msg)
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1005), message.get("reason"))
        return message

    async def receive_text(self) -> str:
        """Receives the next message as text.

        Raises:
            WebSocketDisconnect: The client closed the websocket (or the
                server is going away).
            WebSocketException: The client sent binary data (the socket then
                closes with 1003, "unsupported data").
        """
        message = await self._receive_data()
        text = message.get("text")
        if text is None:
            raise WebSocketException(1003, "expected a text message")
        return str(text)

    async def receive_bytes(self) -> bytes:
        """Receives the next message as bytes.

        Raises:
            WebSocketDisconnect: The client closed the websocket (or the
                server is going away).
            WebSocketException: The client sent text (the socket then closes
                with 1003, "unsupported data").
        """
        message = await self._receive_data()
        data = message.get("bytes")
        if data is None:
            raise WebSocketException(1003, "expected a binary message")
        return bytes(data)

    async def receive_json(self, mode: str = "text") -> Any:
        """Receives the next message and parses it as JSON.

        Args:
            mode: ``"text"`` for text frames, ``"binary"`` for UTF-8 JSON in
                binary frames.

        Raises:
            WebSocketDisconnect: The client closed the websocket.
            ValueError: The message is not JSON (``json.JSONDecodeError``),
                or ``mode`` is neither ``"text"`` nor ``"binary"``.
        """
        _check_mode(mode)
        if mode == "text":
            return json.loads(await self.receive_text())
        return json.loads((await self.receive_bytes()).decode("utf-8"))

    async def iter_text(self) -> AsyncIterator[str]:
        """Yields text messages until the client closes the websocket."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yields binary messages until the client closes the websocket."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            return

    async def iter_json(self) -> AsyncIterator[Any]:
        """Yields JSON messages (text frames) until the client closes the websocket."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            return

    async def send_text(self, data: str) -> None:
        """Sends a text message."""
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Sends a binary message."""
        await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Sends ``data`` as compact JSON, in a text frame or (``mode="binary"``) a binary one."""
        _check_mode(mode)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            await self.send({"type": "websocket.send", "text": text})
        else:
            await self.send({"type": "websocket.send", "bytes": text.encode("utf-8")})

    def __repr__(self) -> str:
        return (
            f"<WebSocket {self.scope.get('path')!r} client={self.client_state.name} "
            f"app={self.application_state.name}>"
        )

    # --- the session's own moves (run_websocket) ---------------------------------------

    async def _go_away(self, code: int) -> None:
        """The server is shutting down: close now (or once the send on the wire is done)."""
        if self._going_away is not None:
            return
        self._going_away = code
        if self._receiving is not None:
            self._receiving.cancel("the server is shutting down")
        if not self._sending:
            await self._close_going_away()

    async def _close_going_away(self) -> None:
        if self.application_state is not _CONNECTED:
            return  # not accepted yet (accept() goes on; the next move ends it) or closed
        self.application_state = _DISCONNECTED
        code = self._going_away or GOING_AWAY
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": GOING_AWAY_REASON})
        except (OSError, *TRANSPORT_GONE):
            logger.debug("the client of %s left as the server was going away", self.scope["path"])

    async def _end(self, code: int = 1000, reason: str = "") -> None:
        """Closes the socket if it is still open (handshake refused, or closed with ``code``)."""
        if self._going_away is not None:
            await self._close_going_away()
            return
        if self.application_state is _CONNECTING or self.application_state is _CONNECTED:
            await self._send_quietly({"type": "websocket.close", "code": code, "reason": reason})

    async def _send_quietly(self, message: Message) -> None:
        with contextlib.suppress(WebSocketDisconnect):  # gone: nobody to tell
            await self.send(message)

    async def _refuse(self, response: Response) -> None:
        """Answers an error with ``response``: as the handshake's answer, or as a close code."""
        code = 1011 if response.status_code >= 500 else 1008
        if self.application_state is _CONNECTING and DENIAL_EXTENSION in (
            self.scope.get("extensions") or {}
        ):
            with contextlib.suppress(WebSocketDisconnect):
                await self.send_denial_response(response)
            return
        await self._end(code)

    async def _abort(self) -> None:
        """The session is being cancelled (the server gave up on it): say 1001 if possible."""
        if self.application_state is not _CONNECTED:
            return
        self.application_state = _DISCONNECTED
        message = {"type": "websocket.close", "code": GOING_AWAY, "reason": GOING_AWAY_REASON}
        with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_GRACE):
            try:
                await self._send(message)
            except Exception:  # the connection is being torn down anyway
                logger.debug("no 1001 for the cancelled websocket %s", self.scope["path"])


def _check_mode(mode: str) -> None:
    if mode not in ("text", "binary"):
        msg = f'mode must be "text" or "binary", not {mode!r}'
        raise ValueError(msg)


# --- the default websocket exception handlers ------------------------------------------


async def websocket_request_validation_exception_handler(
    websocket: WebSocket, exc: WebSocketRequestValidationError
) -> None:
    """The default answer to invalid websocket parameters: close with 1008.

    The close reason summarises the errors (a close reason has room for 123
    bytes: the full list is in ``exc.errors()``).
    """
    await websocket._end(1008, validation_reason(exc.errors()))


async def _websocket_exception_handler(websocket: WebSocket, exc: WebSocketException) -> None:
    await websocket._end(exc.code, exc.reason)


_WEBSOCKET_DEFAULTS: dict[type[BaseException], Callable[..., Any]] = {
    WebSocketRequestValidationError: websocket_request_validation_exception_handler,
    WebSocketException: _websocket_exception_handler,
}


def validation_reason(errors: Iterable[Mapping[str, Any]]) -> str:
    """``"query.token: Field required; path.id: ..."``, cut to fit a close frame."""
    parts = []
    for error in errors:
        loc = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg")))
    return truncate_reason("; ".join(parts))


def truncate_reason(reason: str) -> str:
    """Cuts ``reason`` to the 123 UTF-8 bytes a close frame allows, on a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return reason
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", errors="ignore") + "..."


@functools.cache
def _builtin_handlers() -> frozenset[Any]:
    # The app's defaults answer HTTP requests; a websocket default for the
    # same class (or a more specific one) comes first. Handlers the user
    # registered always do.
    from . import app

    return frozenset(
        {
            app.http_exception_handler,
            app.request_validation_exception_handler,
            app._malformed_handler,
            app._unavailable_handler,
            app._framework_error_handler,
            app._disconnect_handler,
        }
    )


def _handler_for(app: TrioAPI, error: Exception) -> Callable[..., Any] | None:
    handlers: Mapping[Any, Callable[..., Any]] = app._handlers
    if isinstance(error, HTTPException):
        handler = handlers.get(error.status_code)
        if handler is not None:
            return handler
    builtin = _builtin_handlers()
    for cls in type(error).__mro__:
        handler = handlers.get(cls)
        if handler is not None and not any(handler is known for known in builtin):
            return handler
        default = _WEBSOCKET_DEFAULTS.get(cls)
        if default is not None:
            return default
        if handler is not None:
            return handler
    return None


async def _answer(app: TrioAPI, websocket: WebSocket, error: Exception) -> Exception | None:
    """Runs the error's handler; returns the exception that goes on to the server, if any."""
    handler = _handler_for(app, error)
    if handler is None:
        return error
    try:
        result = handler(websocket, error)
        if inspect.isawaitable(result):
            result = await result
    except WebSocketDisconnect:
        return None
    except Exception as failure:
        # FastAPI lets a handler's own exception (a re-raise, say) go to the server.
        return failure
    if isinstance(result, Response):
        if getattr(result, "_unhandled", False):  # the app's plain 500: a server error
            return error
        await websocket._refuse(result)
    await websocket._end()
    return None


# --- the session --------------------------------------------------------------------------


async def _no_body() -> Message:
    # What a dependency reading the "request body" of a websocket gets: none,
    # so body parameters are missing (FastAPI's answer), never a websocket message.
    return {"type": "http.request", "body": b"", "more_body": False}


def hypercorn_terminated(send: Send) -> Any:
    """hypercorn's ``terminated`` event (set when shutdown begins), when ``send`` is its own.

    hypercorn's ``WSStream.app_send`` is the ``send`` of every websocket it
    serves (a middleware may wrap it: then there is no event, and the
    runtime's drain is the signal). Anything unexpected means "not hypercorn".
    """
    if getattr(send, "__func__", None) is not WSStream.app_send:
        return None
    event = getattr(getattr(getattr(send, "__self__", None), "context", None), "terminated", None)
    return event if callable(getattr(event, "wait", None)) else None


def _shutdown_signal(runtime: BackgroundRuntime, send: Send) -> Callable[[], Awaitable[Any]] | None:
    terminated = hypercorn_terminated(send)
    if terminated is not None:
        wait: Callable[[], Awaitable[Any]] = terminated.wait
        return wait
    if runtime.state is not RuntimeState.IDLE:
        return runtime.wait_draining
    return None


async def _go_away_at(signal: Callable[[], Awaitable[Any]], websocket: WebSocket) -> None:
    await signal()
    await websocket._go_away(GOING_AWAY)


async def run_websocket(
    app: TrioAPI,
    route: APIWebSocketRoute,
    params: dict[str, str],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Runs one websocket session on ``route`` (see the module's theory of operation).

    Raises:
        Exception: An error no exception handler took: the server logs it and
            closes the socket (1011, or 500 before the handshake); a test
            client raises it in the test.
    """
    scope["route"] = route
    scope["path_params"] = params
    ctx = RequestContext(
        scope,
        _no_body,
        params,
        app.background,
        DEFAULT_MAX_BODY_SIZE,
        app.body_timeout,
        app.body_min_rate,
        app.dependency_overrides,
    )
    websocket = WebSocket(scope, receive, send)
    websocket._connection = ctx.request
    ctx.websocket = websocket
    if app._observing:
        record = scope.get(TELEMETRY_RECORD)
        if record is not None and record.data is not None:
            record.data.websocket = websocket  # telemetry=: get_telemetry_data().websocket
    signal = _shutdown_signal(app.background, send)
    if signal is None:
        error = await _session(app, route, ctx, websocket)
    else:
        websocket._watched = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_go_away_at, signal, websocket)
            error = await _session(app, route, ctx, websocket)
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error


async def _call_endpoint(route: APIWebSocketRoute, ctx: RequestContext) -> None:
    dependant = route.dependant
    assert dependant is not None, "the route was not prepared"
    values, errors = await solve_route(route, ctx)
    if errors:
        mount = (ctx.scope.get("root_path") or "").rstrip("/")
        where = endpoint_context(route.endpoint, "WS", mount + route.path)
        raise WebSocketRequestValidationError(errors, endpoint_ctx=where)
    if dependant.kind is CallKind.ASYNC_GEN or dependant.kind is CallKind.SYNC_GEN:
        msg = f"websocket endpoint {dependant.qualname} is a generator; write an async def"
        raise TypeError(msg)
    await call(dependant, values)


async def _session(
    app: TrioAPI, route: APIWebSocketRoute, ctx: RequestContext, websocket: WebSocket
) -> Exception | None:
    """Endpoint, answer, teardown, tasks; returns the error that goes on to the server."""
    runtime = app.background
    error: Exception | None = None
    ended = False  # the socket is closed and the session over: its tasks may run
    try:
        try:
            await _call_endpoint(route, ctx)
            if ctx.exits:
                await teardown(ctx, None, only_early=True)
        except Exception as exc:
            error = exc
        if error is None:
            await websocket._end()
            ended = True
            if ctx.exits:
                return await teardown(ctx, None)  # a failure goes on to the server
            return None
        if not isinstance(error, WebSocketDisconnect):
            # The endpoint raised: its tasks do not run (FastAPI's rule for
            # requests). Those the yield dependencies add while handling it do.
            runtime.discard(ctx.take_background())
        if ctx.exits:
            error = await teardown(ctx, error) or error
        if isinstance(error, WebSocketDisconnect):
            _note_disconnect(ctx.scope, error)
            await websocket._end()
            ended = True
            return None
        error = await _answer(app, websocket, error)
        ended = True
    except BaseException:
        if not ended:
            await websocket._abort()
        raise
    finally:
        group = ctx.take_background()
        if ended and group:
            await app._hand_off(runtime, group, ctx.scope)
        elif group:
            runtime.discard(group)
    return error


def _note_disconnect(scope: Scope, error: WebSocketDisconnect) -> None:
    observer = (scope.get("extensions") or {}).get(DISCONNECT_EXTENSION)
    if observer is not None:
        observer(error)

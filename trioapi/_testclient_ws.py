"""Websocket sessions for both test clients: ``client.websocket_connect(url)``.

::

    with client.websocket_connect("/ws") as websocket:          # trioapi.testclient
        websocket.send_text("hello")
        assert websocket.receive_text() == "hello"

    async with client.websocket_connect("/ws") as websocket:    # trioapi.testing
        await websocket.send_text("hello")

The interface is Starlette's ``WebSocketTestSession``. Both clients share one
async core: :class:`_AppSide` is the app's ASGI ``websocket`` call, run as a
task of a trio run, with a queue each way; :class:`_Conversation` is the
client's half of the protocol (the handshake, messages, the close). The
async session awaits the core directly, in the test's own run; the sync one
calls each of its steps from the test's thread into the run that hosts the
app (``trio.from_thread.run``): the ``with TestClient(app)`` block's run, or
outside one a run that the client's open websockets share, so that sessions
which talk to each other (a chat room) live in one trio run.

What the test sees, as with Starlette's client: a close from the app raises
``WebSocketDisconnect`` from ``receive_*()`` (before the handshake: from
``__enter__``); a denial (an HTTP answer to the handshake) raises
:class:`WebSocketDenialResponse`; leaving the block closes with 1000, waits
for the app's call to end (and, by default, for the session's background
tasks), and then raises what the app raised, or the ``WebSocketDisconnect``
its endpoint let escape. A send the app makes after the test closed the
socket raises ``OSError`` in the app (``WebSocketDisconnect(1006)`` through
``WebSocket``), as a real connection would, so endpoints that only send end.
"""

from __future__ import annotations

import functools
import json as jsonlib
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, final
from urllib.parse import unquote

import httpx
import trio

from ._http.websockets import DENIAL_EXTENSION, DISCONNECT_EXTENSION, WebSocketDisconnect

if TYPE_CHECKING:
    from ._runtime.background import TaskHandle
    from .testclient import TestClient, _AppRunner, _TrioThread
    from .testing import TestClient as AsyncTestClient

__all__ = ["AsyncWebSocketSession", "WebSocketDenialResponse", "WebSocketTestSession"]

T = TypeVar("T")
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_SCHEMES = {"http": "ws", "https": "wss"}
_NOT_SENT = ("auth", "follow_redirects")  # httpx.Client.request keywords with no meaning here


class WebSocketDenialResponse(httpx.Response, WebSocketDisconnect):  # type: ignore[misc]
    """The app answered the handshake with an HTTP response instead of accepting it.

    An ``httpx.Response`` (``.status_code``, ``.headers``, ``.json()``) that
    is also a ``WebSocketDisconnect`` with code 1006, what a browser reports
    for a refused handshake.
    """

    def __init__(
        self, status_code: int, headers: Sequence[tuple[bytes, bytes]], content: bytes
    ) -> None:
        httpx.Response.__init__(self, status_code, headers=list(headers), content=content)
        self.code = 1006
        self.reason = ""

    def __str__(self) -> str:
        return f"the app refused the websocket handshake with HTTP {self.status_code}"


class _ClientGone(OSError):
    """The app sent data on a websocket the test already closed."""


# --- the shared core --------------------------------------------------------------------


@final
class _AppSide:
    """The app's ASGI websocket call, as a task of a trio run, and a queue each way."""

    def __init__(self, app: ASGIApp, scope: Scope, *, wait_background: bool) -> None:
        self._app = app
        self.scope = scope
        self._wait_background = wait_background
        self._to_app, self._app_inbox = trio.open_memory_channel[Message](math.inf)
        self._app_outbox, self._from_app = trio.open_memory_channel[Message](math.inf)
        self.error: Exception | None = None
        self.escaped: WebSocketDisconnect | None = None
        self.client_closed = False
        self._handles: list[TaskHandle[Any]] = []
        self._done = trio.Event()
        extensions = scope.setdefault("extensions", {})
        extensions["trioapi.background"] = self._handles.extend
        extensions[DISCONNECT_EXTENSION] = self._note_escaped

    def _note_escaped(self, error: WebSocketDisconnect) -> None:
        self.escaped = error

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Calls the app; an exception it raises is kept for the test to see."""
        task_status.started()
        try:
            await self._app(self.scope, self._app_inbox.receive, self._app_send)
        except Exception as error:
            self.error = error
        finally:
            self._app_outbox.close()
            self._done.set()

    async def _app_send(self, message: Message) -> None:
        if self.client_closed and message.get("type") == "websocket.send":
            msg = "the test client closed this websocket"
            raise _ClientGone(msg)
        self._app_outbox.send_nowait(message)
        # A checkpoint, as a server's send has: an endpoint that only sends
        # must still let the test's calls into the run.
        await trio.lowlevel.checkpoint()

    def put(self, message: Message) -> None:
        self._to_app.send_nowait(message)

    async def next(self) -> Message | None:
        """The app's next message; None once its call ended and everything was read."""
        try:
            return await self._from_app.receive()
        except trio.EndOfChannel:
            return None

    async def wait_done(self) -> None:
        """Waits for the app's call to end (and, by default, for its background tasks)."""
        await self._done.wait()
        if self._wait_background:
            for handle in self._handles:
                await handle.wait()


@final
class _Conversation:
    """The client's half of a websocket, for both sessions (all of it runs in trio)."""

    def __init__(self, side: _AppSide, *, raise_server_exceptions: bool) -> None:
        self._side = side
        self._raise = raise_server_exceptions
        self._closed = False
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None

    def _raise_app_error(self) -> None:
        if self._raise and self._side.error is not None:
            raise self._side.error

    def _ended(self) -> WebSocketDisconnect:
        # What a server does when the app's call ends on an open socket:
        # hypercorn closes with 1011 after an error, 1006 is "no close at all".
        if self._side.error is not None:
            return WebSocketDisconnect(1011, "the app's websocket call raised")
        return WebSocketDisconnect(1006, "the app's websocket call ended without closing")

    async def start(self) -> None:
        """Sends ``websocket.connect`` and waits for the app's answer to the handshake."""
        self._side.put({"type": "websocket.connect"})
        message = await self._side.next()
        if message is not None and message.get("type") == "websocket.accept":
            self.accepted_subprotocol = message.get("subprotocol")
            headers = message.get("headers")
            self.extra_headers = list(headers) if headers is not None else None
            return
        # Refused: the app's call is over (or about to be); its error comes first.
        refusal = await self._refusal(message)
        await self._side.wait_done()
        self._raise_app_error()
        raise refusal

    async def _refusal(self, message: Message | None) -> Exception:
        if message is None:
            self._raise_app_error()
            return self._ended()
        kind = message.get("type")
        if kind == "websocket.close":
            return WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        if kind == "websocket.http.response.start":
            body = []
            while True:
                part = await self._side.next()
                if part is None or part.get("type") != "websocket.http.response.body":
                    msg = "the app's denial response ended without its body"
                    return RuntimeError(msg)
                body.append(bytes(part.get("body", b"")))
                if not part.get("more_body", False):
                    break
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            return WebSocketDenialResponse(int(message["status"]), headers, b"".join(body))
        msg = f"the app sent {kind!r} before accepting the websocket handshake"
        return RuntimeError(msg)

    async def receive(self) -> Message:
        message = await self._side.next()
        if message is None:
            self._raise_app_error()
            raise self._ended()
        return message

    async def _data(self) -> Message:
        message = await self.receive()
        kind = message.get("type")
        if kind == "websocket.send":
            return message
        if kind == "websocket.close":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        raise await self._refusal(message)

    async def receive_text(self) -> str:
        text = (await self._data()).get("text")
        if text is None:
            msg = "the app sent a binary message; use receive_bytes()"
            raise TypeError(msg)
        return str(text)

    async def receive_bytes(self) -> bytes:
        data = (await self._data()).get("bytes")
        if data is None:
            msg = "the app sent a text message; use receive_text()"
            raise TypeError(msg)
        return bytes(data)

    async def receive_json(self, mode: str) -> Any:
        if mode == "text":
            return jsonlib.loads(await self.receive_text())
        return jsonlib.loads((await self.receive_bytes()).decode("utf-8"))

    def send(self, message: Message) -> None:
        if message.get("type") == "websocket.disconnect":
            self._closed = self._side.client_closed = True
        self._side.put(message)

    def close(self, code: int, reason: str | None) -> None:
        self.send({"type": "websocket.disconnect", "code": code, "reason": reason or ""})

    async def finish(self, body_error: BaseException | None) -> None:
        """Closes (1000) unless closed, waits for the app's call, raises what it left."""
        if not self._closed:
            self.close(1000, None)
        await self._side.wait_done()
        self._raise_app_error()
        escaped = self._side.escaped
        if escaped is not None and body_error is None and self._raise:
            # Starlette's client raises the endpoint's uncaught disconnect here.
            raise escaped


def _text_frame(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def _bytes_frame(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def _json_frame(data: Any, mode: str) -> Message:
    if mode not in ("text", "binary"):
        msg = f'mode must be "text" or "binary", not {mode!r}'
        raise ValueError(msg)
    text = jsonlib.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return _text_frame(text) if mode == "text" else _bytes_frame(text.encode("utf-8"))


def _request_headers(subprotocols: Sequence[str] | None, given: Any) -> httpx.Headers:
    headers = httpx.Headers(given)
    headers.setdefault("connection", "upgrade")
    headers.setdefault("sec-websocket-key", "testserver==")
    headers.setdefault("sec-websocket-version", "13")
    if subprotocols is not None:
        headers.setdefault("sec-websocket-protocol", ", ".join(subprotocols))
    return headers


def _websocket_scope(
    request: httpx.Request,
    *,
    root_path: str,
    client: tuple[str, int],
    state: Mapping[str, Any],
) -> Scope:
    url = request.url
    scheme = _SCHEMES.get(url.scheme, url.scheme)
    port = url.port if url.port is not None else (443 if scheme == "wss" else 80)
    raw_path = url.raw_path.split(b"?", 1)[0]
    headers: list[tuple[bytes, bytes]] = []
    if "host" not in request.headers:
        headers.append((b"host", url.netloc))
    headers.extend((name.lower(), value) for name, value in request.headers.raw)
    offered = request.headers.get("sec-websocket-protocol")
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": root_path,
        "query_string": url.query,
        "headers": headers,
        "client": client,
        "server": (url.raw_host.decode("ascii"), port),
        "subprotocols": [part.strip() for part in offered.split(",")] if offered else [],
        "state": dict(state),
        "extensions": {DENIAL_EXTENSION: {}},
    }


# --- the sync session (trioapi.testclient) -----------------------------------------------


@final
class _SharedRun:
    """The trio run that a client's websockets share outside its ``with`` block."""

    def __init__(self) -> None:
        self.thread: _TrioThread | None = None
        self.users = 0


_SHARED_RUNS: weakref.WeakKeyDictionary[Any, _SharedRun] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _lease_run(runner: _AppRunner) -> tuple[_TrioThread, Callable[[], None]]:
    """The run a session lives in, and what to call when the session is over."""
    from .testclient import _Phase, _TrioThread

    with runner._lock:
        phase, thread = runner._phase, runner._thread
    if phase is _Phase.RUNNING and thread is not None:
        return thread, _nothing
    if phase is not _Phase.IDLE:
        runner._refuse(phase, "open a websocket")
    with _SHARED_LOCK:
        shared = _SHARED_RUNS.get(runner)
        if shared is None:
            shared = _SHARED_RUNS[runner] = _SharedRun()
        if shared.thread is None:
            started = _TrioThread("trioapi-testclient-websockets", runner._run_options)
            started.start()
            shared.thread = started
        shared.users += 1
        leased = shared.thread

    def release() -> None:
        ending: _TrioThread | None = None
        with _SHARED_LOCK:
            shared.users -= 1
            if shared.users == 0:
                ending, shared.thread = shared.thread, None
        if ending is not None:
            ending.stop()

    return leased, release


def _nothing() -> None:
    return None


@final
class WebSocketTestSession:
    """A websocket to the app, from the sync ``TestClient`` (Starlette's interface).

    Made by ``client.websocket_connect(url)``; use it in a ``with`` block,
    whose entry performs the handshake.

    Attributes:
        accepted_subprotocol: The subprotocol the app accepted, if any.
        extra_headers: The headers the app added to its accept, if any.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        runner: _AppRunner,
        *,
        raise_server_exceptions: bool,
        wait_background: bool,
    ) -> None:
        self._runner = runner
        self._side = _AppSide(app, scope, wait_background=wait_background)
        self._talk = _Conversation(self._side, raise_server_exceptions=raise_server_exceptions)
        self._thread: _TrioThread | None = None
        self._release: Callable[[], None] = _nothing

    @property
    def scope(self) -> Scope:
        """The ASGI scope the app was called with."""
        return self._side.scope

    @property
    def accepted_subprotocol(self) -> str | None:
        return self._talk.accepted_subprotocol

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]] | None:
        return self._talk.extra_headers

    def _call(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._thread is None:
            msg = "use the session in a block: 'with client.websocket_connect(url) as ws:'"
            raise RuntimeError(msg)
        return self._thread.call(functools.partial(afn, *args))

    def __enter__(self) -> Self:
        """Calls the app and performs the handshake.

        Raises:
            WebSocketDisconnect: The app closed the websocket before accepting it.
            WebSocketDenialResponse: The app answered the handshake over HTTP.
            Exception: What the app raised (with ``raise_server_exceptions``).
        """
        from .testclient import _refuse_inside_trio

        _refuse_inside_trio()
        thread, release = _lease_run(self._runner)
        self._thread, self._release = thread, release
        try:
            name = f"websocket {self._side.scope['path']}"
            thread.call(functools.partial(thread.start_task, self._side.run, name=name))
            thread.call(self._talk.start)
        except BaseException:
            self._thread, self._release = None, _nothing
            release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Closes with 1000 (unless closed), waits for the app, raises what it left.

        Raises:
            Exception: What the app raised (with ``raise_server_exceptions``),
                or the ``WebSocketDisconnect`` its endpoint did not catch
                (unless the block itself raised).
        """
        try:
            self._call(self._talk.finish, exc)
        finally:
            release, self._release = self._release, _nothing
            self._thread = None
            release()

    def send(self, message: Message) -> None:
        """Sends a raw ASGI message to the app (``websocket.receive`` or ``.disconnect``)."""
        self._call(_put, self._talk, message)

    def send_text(self, data: str) -> None:
        self.send(_text_frame(data))

    def send_bytes(self, data: bytes) -> None:
        self.send(_bytes_frame(data))

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        self.send(_json_frame(data, mode))

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Closes the websocket from the client's side (the app receives the disconnect)."""
        self.send({"type": "websocket.disconnect", "code": code, "reason": reason or ""})

    def receive(self) -> Message:
        """The app's next raw ASGI message (waits for it)."""
        return self._call(self._talk.receive)

    def receive_text(self) -> str:
        """The app's next message, as text.

        Raises:
            WebSocketDisconnect: The app closed the websocket.
        """
        return self._call(self._talk.receive_text)

    def receive_bytes(self) -> bytes:
        """The app's next message, as bytes.

        Raises:
            WebSocketDisconnect: The app closed the websocket.
        """
        return self._call(self._talk.receive_bytes)

    def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The app's next message, parsed as JSON.

        Raises:
            WebSocketDisconnect: The app closed the websocket.
        """
        return self._call(self._talk.receive_json, mode)


async def _put(talk: _Conversation, message: Message) -> None:
    talk.send(message)


def connect(
    client: TestClient, url: str, subprotocols: Sequence[str] | None, options: dict[str, Any]
) -> WebSocketTestSession:
    """``TestClient.websocket_connect``: the session for ``url``, not yet entered."""
    for name in _NOT_SENT:
        options.pop(name, None)
    headers = _request_headers(subprotocols, options.pop("headers", None))
    request = client.build_request("GET", url, headers=headers, **options)
    transport: Any = client._transport
    scope = _websocket_scope(
        request, root_path=transport._root_path, client=transport._client, state=transport._state
    )
    return WebSocketTestSession(
        client.app,
        scope,
        client._runner,
        raise_server_exceptions=transport._raise,
        wait_background=transport._wait_background,
    )


# --- the async session (trioapi.testing) --------------------------------------------------


@final
class AsyncWebSocketSession:
    """A websocket to the app, from the trio-native ``TestClient``.

    Made by ``client.websocket_connect(url)``; ``async with`` performs the
    handshake. The app runs in the test's own trio run (``MockClock`` works).
    The methods are those of the sync session, awaited.

    Attributes:
        accepted_subprotocol: The subprotocol the app accepted, if any.
        extra_headers: The headers the app added to its accept, if any.
    """

    __test__ = False

    def __init__(
        self, app: ASGIApp, scope: Scope, *, raise_server_exceptions: bool, wait_background: bool
    ) -> None:
        self._side = _AppSide(app, scope, wait_background=wait_background)
        self._talk = _Conversation(self._side, raise_server_exceptions=raise_server_exceptions)
        self._stack: AsyncExitStack | None = None

    @property
    def scope(self) -> Scope:
        """The ASGI scope the app was called with."""
        return self._side.scope

    @property
    def accepted_subprotocol(self) -> str | None:
        return self._talk.accepted_subprotocol

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]] | None:
        return self._talk.extra_headers

    async def __aenter__(self) -> Self:
        """Calls the app (in a nursery of this session) and performs the handshake.

        Raises:
            WebSocketDisconnect: The app closed the websocket before accepting it.
            WebSocketDenialResponse: The app answered the handshake over HTTP.
            Exception: What the app raised (with ``raise_server_exceptions``).
        """
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await nursery.start(self._side.run)
            await self._talk.start()
        except BaseException:
            self._side.client_closed = True
            nursery.cancel_scope.cancel("the websocket handshake failed")
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None, "__aexit__ without __aenter__"
        try:
            await self._talk.finish(exc)
        finally:
            await self._stack.aclose()

    async def send(self, message: Message) -> None:
        """Sends a raw ASGI message to the app."""
        self._talk.send(message)
        await trio.lowlevel.checkpoint()

    async def send_text(self, data: str) -> None:
        await self.send(_text_frame(data))

    async def send_bytes(self, data: bytes) -> None:
        await self.send(_bytes_frame(data))

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        await self.send(_json_frame(data, mode))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Closes the websocket from the client's side."""
        await self.send({"type": "websocket.disconnect", "code": code, "reason": reason or ""})

    async def receive(self) -> Message:
        return await self._talk.receive()

    async def receive_text(self) -> str:
        """The app's next message, as text (``WebSocketDisconnect`` on a close)."""
        return await self._talk.receive_text()

    async def receive_bytes(self) -> bytes:
        """The app's next message, as bytes (``WebSocketDisconnect`` on a close)."""
        return await self._talk.receive_bytes()

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The app's next message, parsed as JSON (``WebSocketDisconnect`` on a close)."""
        return await self._talk.receive_json(mode)


def connect_async(
    client: AsyncTestClient,
    url: str,
    subprotocols: Sequence[str] | None,
    options: dict[str, Any],
) -> AsyncWebSocketSession:
    """``trioapi.testing.TestClient.websocket_connect``: the session, not yet entered."""
    if client.server is not None:
        msg = (
            "websocket_connect() calls the app directly: make the TestClient without "
            "server=True (hypercorn's websocket code is exercised by a real client there)"
        )
        raise NotImplementedError(msg)
    headers = _request_headers(subprotocols, options.pop("headers", None))
    request = client._client.build_request("GET", url, headers=headers, **options)
    scope = _websocket_scope(
        request, root_path="", client=("127.0.0.1", 50000), state=client._state
    )
    return AsyncWebSocketSession(
        client.app,
        scope,
        raise_server_exceptions=client.raise_server_exceptions,
        wait_background=client.wait_background,
    )

"""``@app.middleware("http")``: a function ``mw(request, call_next)`` around the app.

::

    @app.middleware("http")
    async def add_timing(request: Request, call_next):
        response = await call_next(request)     # the app's status and headers
        response.headers["X-Took"] = "..."      # still editable: nothing is sent yet
        return response                         # its body streams from the app

Theory of operation
===================

``call_next`` starts the app in a task of a nursery the middleware's call
owns and returns once the app has sent ``http.response.start``: a response
whose head can still be changed and whose body is the app's, still to come.
The app's ``send`` hands each message over a zero-capacity memory channel,
so the app produces the body only as fast as the middleware passes it on,
and ``receive`` replays a body the middleware already read.

Two promises about background tasks hold through it:

- *Tasks start only after the last byte reached the server.* The app hands
  its tasks to the runtime once its final message was sent. Here, sending
  it returns only once the response the middleware returned (the app's
  own, or another one built from it) went out whole, its final message
  shielded from cancellation like the app's; if it did not go out, the
  app's send raises :class:`ResponseNotDelivered`, so the app counts its
  response as not delivered and skips the tasks. A middleware that
  returns a response of its own without reading the app's body releases
  the app once that response went out.
- *The middleware cannot make the response wait for them.* The response
  ends with the app's final message, never with the app's call, and the
  tasks run in the runtime, not in that call.

An error in the app that its exception handlers answered arrives as that
answer; one that no handler took is answered with a 500 and raised out of
the middleware's call once its response is out (so ``try: await
call_next(request)`` does not catch it: an exception handler for
``Exception`` is the place to change that answer).

The app's task and the hand-overs cost a few trio task switches per
request, about twenty times what the app itself costs for a small
response (less than half of what Starlette's ``BaseHTTPMiddleware`` costs
FastAPI): on a hot path, prefer a pure ASGI middleware, which costs a
function call per message.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, final

import trio

from .._http.requests import (
    DEFAULT_BODY_MIN_RATE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    Message,
    Receive,
    Request,
    Scope,
    Send,
)
from .._http.responses import Response, StreamingResponse, send_final
from ._stack import ASGIApp, find_app

RequestResponseEndpoint = Callable[[Request], Awaitable[Response]]
"""``call_next``: takes the request, returns the app's response."""

DispatchFunction = Callable[[Request, RequestResponseEndpoint], Awaitable[Response]]
"""An http middleware function: ``async def mw(request, call_next) -> Response``."""

_DISCONNECT: Mapping[str, Any] = {"type": "http.disconnect"}


class BaseHTTPMiddleware:
    """Runs ``dispatch(request, call_next)`` around the wrapped app for each HTTP request.

    ``app.middleware("http")`` installs a function with it; subclass it and
    override :meth:`dispatch` for a class of your own.

    Args:
        app: The ASGI app to wrap.
        dispatch: ``async def dispatch(request, call_next) -> Response``;
            without it, the :meth:`dispatch` method.
    """

    def __init__(self, app: ASGIApp, dispatch: DispatchFunction | None = None) -> None:
        self.app = app
        self.dispatch_func: DispatchFunction = self.dispatch if dispatch is None else dispatch
        self._limits: tuple[int, float | None, float | None] | None = None

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Answers ``request``, calling ``await call_next(request)`` for the app's response.

        Raises:
            NotImplementedError: Not overridden and no ``dispatch`` given.
        """
        msg = f"{type(self).__name__} needs a dispatch= function or a dispatch() method"
        raise NotImplementedError(msg)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._limits is None:
            # The body limits of the app inside, for a middleware that reads the body.
            inner = find_app(self.app)
            self._limits = (
                (
                    inner.max_body_size or DEFAULT_MAX_BODY_SIZE,
                    inner.body_timeout,
                    inner.body_min_rate,
                )
                if inner is not None
                else (DEFAULT_MAX_BODY_SIZE, DEFAULT_BODY_TIMEOUT, DEFAULT_BODY_MIN_RATE)
            )
        if "state" not in scope:
            # So that request.state is one for the middleware and the endpoint.
            scope["state"] = {}
        max_body_size, body_timeout, body_min_rate = self._limits
        request = Request(
            scope,
            receive,
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            body_min_rate=body_min_rate,
        )
        await _Exchange(self.app, scope, receive, send, request).run(self.dispatch_func)


class ResponseNotDelivered(Exception):
    """Raised to the app by its final send: the middleware's response did not go out.

    The app then counts its own response as not delivered and skips the
    request's background tasks.
    """


class _Incomplete(Exception):
    """The app's response stopped before its final message (the app failed mid-body)."""


@final
class _Exchange:
    """One request through an http middleware: the app's side and the middleware's."""

    __slots__ = (
        "_app",
        "_app_error",
        "_called",
        "_delivered",
        "_error_raised",
        "_finished",
        "_from_app",
        "_nursery",
        "_receive",
        "_replayed",
        "_request",
        "_scope",
        "_send",
        "_to_middleware",
        "_trailers",
    )

    def __init__(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, request: Request
    ) -> None:
        self._app = app
        self._scope = scope
        self._receive = receive
        self._send = send
        self._request = request
        self._to_middleware, self._from_app = trio.open_memory_channel[Message](0)
        # Set once the middleware's own response is over, delivered or not.
        self._finished = trio.Event()
        self._delivered = False
        self._nursery: trio.Nursery | None = None
        self._called = False
        self._replayed = False
        self._trailers = False
        self._app_error: Exception | None = None
        self._error_raised = False

    async def run(self, dispatch: DispatchFunction) -> None:
        collapsed: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    response = await dispatch(self._request, self._call_next)
                    await self._respond(response)
                except _Incomplete:
                    pass  # the app's failure is raised below, or was logged by the app
                finally:
                    self._finished.set()
                    # An app still sending (its body unread) gets BrokenResourceError.
                    self._from_app.close()
        except BaseExceptionGroup as group:
            # The app's task only lets cancellation out: an error from the
            # middleware's code comes alone, and goes on as itself.
            if len(group.exceptions) != 1:
                raise
            collapsed = group.exceptions[0]
        if collapsed is not None:
            raise collapsed
        if self._app_error is not None and not self._error_raised:
            raise self._app_error

    async def _respond(self, response: Any) -> None:
        if isinstance(response, Response):
            if response._produces_body:
                response._bind(self._scope)  # a file answers the request's Range
            await response.send_to(
                self._send,
                head=self._scope["method"] == "HEAD",
                shield=True,
                # A stream of the middleware's own watches for the client leaving,
                # unless the app, which may still read the body, is running.
                receive=None if self._called else self._receive,
            )
        elif callable(response):
            # An ASGI response object of another library: await response(scope, receive, send).
            await response(self._scope, self._receive, self._send)
        else:
            msg = (
                f"the http middleware returned {response!r}, not a Response: return what "
                "call_next(request) returned, or a Response of your own"
            )
            raise TypeError(msg)
        self._delivered = True

    # --- the middleware's side -------------------------------------------------------

    async def _call_next(self, request: Request) -> Response:
        if self._called:
            msg = "call_next() was already called for this request; call it once"
            raise RuntimeError(msg)
        self._called = True
        if isinstance(request, Request):
            self._request = request  # the one whose body to replay
        assert self._nursery is not None
        self._nursery.start_soon(self._run_app)
        info: Any = None
        while True:
            message = await self.next_message()
            if message is None:
                if self._app_error is not None:
                    self._error_raised = True
                    raise self._app_error
                msg = "the app returned without sending a response"
                raise RuntimeError(msg)
            kind = message["type"]
            if kind == "http.response.start":
                return _Relayed(self, message, info)
            if kind == "http.response.debug":
                info = message.get("info")
            else:
                await self._send(message)  # an early hint goes straight on

    async def next_message(self) -> Message | None:
        """The app's next message; None once the app returned.

        One the app is already waiting to hand over is taken without a
        checkpoint: a cancellation that arrived while the middleware was
        writing the head then lets a final message that is ready go out
        whole (shielded), as the app's own send would have.
        """
        try:
            return self._from_app.receive_nowait()
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            return None
        try:
            return await self._from_app.receive()
        except trio.EndOfChannel:
            return None

    def is_final(self, message: Message) -> bool:
        if self._trailers:
            return message["type"] == "http.response.trailers" and not message.get(
                "more_trailers", False
            )
        return message["type"] == "http.response.body" and not message.get("more_body", False)

    # --- the app's side --------------------------------------------------------------

    async def _run_app(self) -> None:
        try:
            await self._app(self._scope, self._app_receive, self._app_send)
        except Exception as error:
            self._app_error = error
        finally:
            self._to_middleware.close()

    async def _app_receive(self) -> Message:
        if self._finished.is_set():
            return dict(_DISCONNECT)
        if not self._replayed:
            self._replayed = True
            request = self._request
            body = getattr(request, "_body", None)
            if body is not None:
                return {"type": "http.request", "body": body, "more_body": False}
            if request._stream_done:
                return {"type": "http.request", "body": b"", "more_body": False}
        return await self._receive()

    async def _send_waiting(self, message: Message) -> bool:
        try:
            await self._to_middleware.send(message)
        except trio.BrokenResourceError:
            return False  # the middleware's response is over without reading this
        return True

    async def _app_send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._trailers = bool(message.get("trailers", False))
        final = self.is_final(message)
        if not self._finished.is_set():
            try:
                # Handed straight to a middleware already waiting for it, without
                # the checkpoint send() adds: every task switch costs per request.
                self._to_middleware.send_nowait(message)
            except trio.WouldBlock:
                sent = await self._send_waiting(message)
            except trio.BrokenResourceError:
                sent = False
            else:
                sent = True
            if sent and not final:
                return
            if sent and not self._finished.is_set():
                # Delivered once the middleware's whole response is (the first promise).
                await self._finished.wait()
        if self._delivered:
            return  # what the middleware sent instead went out: the app's part is done
        msg = "the http middleware's response did not go out"
        if final:
            # Not a transport error, which the final send would take for "delivered".
            raise ResponseNotDelivered(msg)
        raise trio.BrokenResourceError(msg)


class _Relayed(StreamingResponse):
    """What ``call_next`` returns: the app's status and headers, its body still to come.

    ``status_code`` and ``headers`` can be changed until the middleware
    returns it. ``body_iterator`` yields the app's body chunks; replace it
    (or read it and return another response) to change the body.
    """

    def __init__(self, exchange: _Exchange, start: Message, info: Any) -> None:
        # The head is the app's, already rendered: nothing of Response.__init__ applies.
        self.status_code = int(start["status"])
        self._raw_headers = [
            (bytes(name), bytes(value)) for name, value in start.get("headers", ())
        ]
        self.body = b""
        self.info = info
        self._exchange = exchange
        self._trailers = bool(start.get("trailers", False))
        self._relay_started = False
        self._own = self._relay()
        self.body_iterator: Any = self._own
        self.iterator = self._own

    def _start_message(self) -> dict[str, Any]:
        message = super()._start_message()
        if self._trailers:
            message["trailers"] = True
        return message

    async def _relay(self) -> AsyncGenerator[bytes, None]:
        self._relay_started = True
        while (message := await self._exchange.next_message()) is not None:
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body:
                    yield bytes(body)
                if not message.get("more_body", False):
                    return
        raise _Incomplete

    async def send_to(
        self,
        send: Send,
        *,
        head: bool = False,
        shield: bool = False,
        receive: Receive | None = None,
        whole_body_sends: bool = False,
    ) -> None:
        """Sends the head, then the body: the app's messages as they come, or ``body_iterator``.

        Args:
            send: The ASGI send callable.
            head: Unused: the app already left the body out of a HEAD answer.
            shield: Keep a cancellation from splitting the final message.
            receive: Unused.
            whole_body_sends: Unused: the final message is always sent whole.
        """
        if self.info is not None:
            await send({"type": "http.response.debug", "info": self.info})
        await send(self._start_message())
        if self.body_iterator is self._own and not self._relay_started:
            # Untouched: pass the app's own messages on as they are.
            await self._forward(send, shield)
            return
        async for chunk in self.body_iterator:
            data = chunk.encode(self.charset) if isinstance(chunk, str) else bytes(chunk)
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        if not self._trailers:
            await send_final(send, b"", shield)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await self._forward(send, shield)

    async def _forward(self, send: Send, shield: bool) -> None:
        """Passes the app's messages on until its final one, which is sent shielded."""
        exchange = self._exchange
        while (message := await exchange.next_message()) is not None:
            if not exchange.is_final(message):
                await send(message)
            elif message["type"] == "http.response.body":
                await send_final(send, bytes(message.get("body", b"")), shield)
                return
            else:
                with trio.CancelScope(shield=shield):
                    await send(message)
                return
        raise _Incomplete

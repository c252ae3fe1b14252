"""The middleware stack a ``TrioAPI`` app builds around itself, and finding the app inside one.

The stack is FastAPI's, outermost first::

    server ─▶ TrioAPI.__call__ ─▶ _ServerErrors ─▶ user middleware (last added first)
           ─▶ _Innermost ─▶ TrioAPI.__call__ again, now the app itself

FastAPI puts Starlette's ``ExceptionMiddleware`` innermost, around the
router, and ``ServerErrorMiddleware`` outermost. trioapi's app already does
the first job itself: an error raised while a request is routed, solved or
answered (inside ``call_next`` too) goes to its exception handlers, and one
that no handler takes is answered with a 500 and then raised on. So the
innermost layer is the app, and what is left for the outermost one is an
error raised by middleware code outside of it: answered with the app's
``500``/``Exception`` handler (a plain 500 without one) when no response has
started, then raised on to the server, as ``ServerErrorMiddleware`` does. An
``HTTPException`` raised in a middleware is such an error, as in FastAPI.
The exceptions are trioapi's routine client errors (a body over
``max_body_size`` read in a middleware, a body that stopped arriving, a
client gone mid-body), which get their usual answer and are not raised on.

``_Innermost`` marks the scope with the app before calling it, so the
app's ``__call__`` knows the stack is behind it and does the request itself.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, final

import attrs

from .._exceptions import MalformedRequestError
from .._http.requests import (
    DEFAULT_MAX_BODY_SIZE,
    ClientDisconnect,
    Message,
    Receive,
    Request,
    Scope,
    Send,
)
from .._http.responses import TRANSPORT_GONE, PlainTextResponse, Response

if TYPE_CHECKING:
    from .._http.app import TrioAPI

logger = logging.getLogger("trioapi")
error_logger = logging.getLogger("trioapi.error")

P = ParamSpec("P")
MiddlewareOptions = ParamSpec("MiddlewareOptions")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""

INNERMOST = "trioapi.innermost"
"""The scope key ``_Innermost`` sets to the app: "the middleware stack is behind you"."""

FIND_DEPTH = 64
"""How many wrappers :func:`find_app` looks through before giving up."""


class MiddlewareFactory(Protocol[P]):
    """A middleware: called with the ASGI app it wraps and its options, it returns an ASGI app."""

    def __call__(self, app: ASGIApp, /, *args: P.args, **kwargs: P.kwargs) -> ASGIApp: ...


@final
@attrs.define(init=False, eq=False, repr=False)
class Middleware(Generic[P]):
    """A middleware class and its options, for ``TrioAPI(middleware=[...])``.

    ``Middleware(CORSMiddleware, allow_origins=["*"])`` is what
    ``app.add_middleware(CORSMiddleware, allow_origins=["*"])`` records; the
    class is called as ``cls(app, *args, **kwargs)`` when the stack is built.
    Unpacks as ``cls, args, kwargs``.

    Args:
        cls: The middleware: any callable taking the ASGI app it wraps first
            and returning an ASGI app (usually a class).
        *args: Passed on after the wrapped app.
        **kwargs: Passed on as keywords.
    """

    cls: MiddlewareFactory[P]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __init__(self, cls: MiddlewareFactory[P], *args: P.args, **kwargs: P.kwargs) -> None:
        self.__attrs_init__(cls, args, kwargs)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.cls, self.args, self.kwargs))

    def __repr__(self) -> str:
        parts = [getattr(self.cls, "__name__", repr(self.cls))]
        parts += [repr(value) for value in self.args]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"Middleware({', '.join(parts)})"


def find_app(app: object) -> TrioAPI | None:
    """The ``TrioAPI`` app inside ``app``, an ASGI app that may wrap it.

    Follows what wrappers keep of the app they wrap: an ``app`` attribute
    (Starlette's middleware and most others) or ``__wrapped__`` (a function
    decorated with ``functools.wraps``).

    Args:
        app: A ``TrioAPI``, or middleware wrapped around one (any depth).

    Returns:
        The ``TrioAPI``; None when there is none to be found.
    """
    from .._http.app import TrioAPI

    seen: set[int] = set()
    for _ in range(FIND_DEPTH):
        if isinstance(app, TrioAPI):
            return app
        if app is None or id(app) in seen:
            return None
        seen.add(id(app))
        inner = getattr(app, "app", None)
        app = inner if inner is not None else getattr(app, "__wrapped__", None)
    return None


def build_stack(app: TrioAPI) -> ASGIApp:
    """Wraps ``app`` in its ``user_middleware`` (first outermost) and the error layer.

    Args:
        app: The application; its ``user_middleware`` lists the middleware.

    Returns:
        The outermost layer, which ``app.__call__`` enters.
    """
    from .._http.app import TrioAPI

    inner: ASGIApp = _Innermost(app, TrioAPI.__call__)
    for cls, args, kwargs in reversed(app.user_middleware):
        inner = cls(inner, *args, **kwargs)
    telemetry = app._otel
    if telemetry is not None and not getattr(telemetry, "pending", False):
        inner = telemetry.middleware(inner)  # app.instrument(): around every middleware
    return _ServerErrors(inner, app)


@final
class _Innermost:
    """The bottom of the stack: the app itself, told that the stack is behind it."""

    __slots__ = ("_call", "app")

    def __init__(self, app: TrioAPI, call: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        # TrioAPI.__call__ itself: a subclass that overrides __call__ already
        # ran its override on the way in.
        self._call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[INNERMOST] = self.app
        await self._call(self.app, scope, receive, send)


@final
class _ServerErrors:
    """The top of the stack: answers an error raised by middleware code, then raises it on."""

    __slots__ = ("_trioapi", "app")

    def __init__(self, app: ASGIApp, trioapi: TrioAPI) -> None:
        self.app = app
        self._trioapi = trioapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope["app"] = self._trioapi
            await self.app(scope, receive, send)
            return
        scope["app"] = self._trioapi
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            if started:
                raise
            routine = isinstance(error, MalformedRequestError | ClientDisconnect)
            response = await self._answer(error, routine, scope, receive)
            try:
                await response.send_to(send, head=scope["method"] == "HEAD")
            except TRANSPORT_GONE:
                logger.debug("the client left before the error response was sent")
            if not routine:
                raise
            logger.debug("a middleware's request failed: %s", error)

    async def _answer(
        self, error: Exception, routine: bool, scope: Scope, receive: Receive
    ) -> Response:
        app = self._trioapi
        handler = (
            app._find_handler(error)
            if routine
            else app._handlers.get(500) or app._handlers.get(Exception)
        )
        if handler is not None:
            request = Request(
                scope,
                receive,
                max_body_size=app.max_body_size or DEFAULT_MAX_BODY_SIZE,
                body_timeout=app.body_timeout,
                body_min_rate=app.body_min_rate,
            )
            try:
                response = handler(request, error)
                if inspect.isawaitable(response):
                    response = await response
            except Exception:
                error_logger.exception(
                    "exception handler %r failed while handling %r", handler, error
                )
            else:
                if isinstance(response, Response):
                    return response
                error_logger.error(
                    "exception handler %r returned %r, not a Response", handler, response
                )
        return PlainTextResponse("Internal Server Error", status_code=500)

"""The request object handed to endpoints that ask for one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, final

import trio

from .._exceptions import MalformedRequestError
from .datastructures import Headers, QueryParams, State, parse_cookies

if TYPE_CHECKING:
    from .app import TrioAPI

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024

DEFAULT_BODY_TIMEOUT = 60.0
"""Seconds a request body may stop arriving before 408 (nginx's ``client_body_timeout``).

Without it, a client that sends its headers and never its body holds the
connection and the request's call for as long as it likes."""


class ClientDisconnect(Exception):
    """The client went away before the request body was complete."""


@final
class Request:
    """One HTTP request: method, URL, headers, query, cookies and body.

    Parsing is lazy and cached: asking for ``headers`` twice parses once, and
    the body is read from the server once, however many times it is asked for.
    """

    __slots__ = (
        "_body",
        "_cookies",
        "_headers",
        "_query",
        "_receive",
        "_state",
        "body_timeout",
        "max_body_size",
        "path_params",
        "scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive | None = None,
        *,
        path_params: dict[str, str] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self.path_params: dict[str, str] = path_params or {}
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._body: bytes | None = None
        self._state: State | None = None

    @property
    def app(self) -> TrioAPI:
        """The application serving this request."""
        app: TrioAPI = self.scope["app"]
        return app

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def url(self) -> str:
        """The full URL as the client asked for it."""
        scheme = self.scope.get("scheme", "http")
        host = self.headers.get("host")
        if host is None:
            server = self.scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        query = self.scope.get("query_string", b"")
        raw_path = self.scope.get("raw_path") or self.path.encode()
        url = f"{scheme}://{host}{raw_path.decode('latin-1')}"
        return f"{url}?{query.decode('latin-1')}" if query else url

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.scope.get("headers", ()))
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope.get("query_string", b""))
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = parse_cookies(self.headers)
        return self._cookies

    @property
    def client(self) -> tuple[str, int] | None:
        """``(host, port)`` of the peer, when the server knows it."""
        client = self.scope.get("client")
        return (client[0], client[1]) if client else None

    @property
    def state(self) -> State:
        """Per-request attributes for dependencies to share (``request.state.user``)."""
        if self._state is None:
            shared = self.scope.get("state")
            self._state = State(shared if isinstance(shared, dict) else None)
        return self._state

    async def stream(self) -> AsyncIterator[bytes]:
        """Yields the body as it arrives, enforcing ``max_body_size``.

        Raises:
            MalformedRequestError: The body exceeds ``max_body_size`` (413), or
                stopped arriving for ``body_timeout`` seconds (408).
            ClientDisconnect: The client left before the body was complete.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._receive is None:
            return
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            raise _too_large(self.max_body_size)
        received = 0
        while True:
            message = await self._next_message(self._receive)
            kind = message["type"]
            if kind == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_size:
                raise _too_large(self.max_body_size)
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                break

    async def _next_message(self, receive: Receive) -> Message:
        # Only the waits for body bytes are timed: a slow endpoint, or a quiet
        # client waiting for its answer, is never cut by this.
        if not self.body_timeout:
            return await receive()
        with trio.move_on_after(self.body_timeout):
            return await receive()
        msg = f"the request body stopped arriving for {self.body_timeout:g} s"
        raise MalformedRequestError(msg, status_code=408)

    async def body(self) -> bytes:
        """The whole body (read once, then cached)."""
        if self._body is None:
            chunks = [chunk async for chunk in self.stream()]
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            MalformedRequestError: The body is not valid JSON (400).
        """
        body = await self.body()
        try:
            return json.loads(body)
        except ValueError as error:
            raise MalformedRequestError(f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise MalformedRequestError("the JSON body is nested too deeply") from None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


def _too_large(limit: int) -> MalformedRequestError:
    return MalformedRequestError(
        f"the request body is larger than this endpoint accepts ({limit} bytes)",
        status_code=413,
    )

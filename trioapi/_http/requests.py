"""The request object handed to endpoints that ask for one."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

import trio

from .._exceptions import MalformedRequestError
from .datastructures import URL, Address, Headers, QueryParams, State, parse_cookies
from .forms import (
    DEFAULT_MAX_FIELDS,
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_PART_SIZE,
    PendingForm,
    parse_form,
)
from .jsonmem import check_json_memory
from .mounts import holds_root
from .uploads import FormData

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

DEFAULT_BODY_MIN_RATE = 1024.0
"""Bytes per second a request body must average once its ``body_timeout`` allowance is spent.

The body's deadline is ``body_timeout`` after the app starts reading it, plus
one second for every ``body_min_rate`` bytes received (Apache's
``mod_reqtimeout`` rule, whose default is 500 bytes/s): a client trickling a
byte a second is cut after about ``body_timeout`` seconds, while an upload
of the largest accepted body may take ``body_timeout + max_body_size /
body_min_rate`` seconds (16 MiB at 1 KiB/s: about 4.5 hours).
"""


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
        "_form",
        "_form_error",
        "_headers",
        "_query",
        "_receive",
        "_state",
        "_stream_done",
        "_stream_started",
        "body_min_rate",
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
        body_min_rate: float | None = DEFAULT_BODY_MIN_RATE,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self.path_params: dict[str, str] = path_params or {}
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.body_min_rate = body_min_rate
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        # _body is left unset until the body is read, as Starlette leaves it:
        # FastAPI's documented custom requests test hasattr(self, "_body").
        self._state: State | None = None
        # The body's progress when it is read as a stream (body() also caches it).
        self._stream_started = False
        self._stream_done = False
        self._form: FormData | None = None
        self._form_error: MalformedRequestError | ClientDisconnect | None = None

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
    def url(self) -> URL:
        """The full URL as the client asked for it (a ``str`` with ``.path``, ``.query``...)."""
        scheme = self.scope.get("scheme", "http")
        host = self.headers.get("host")
        if host is None:
            server = self.scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        query = self.scope.get("query_string", b"")
        raw_path = self.scope.get("raw_path") or self.path.encode()
        root = self.scope.get("root_path", "")
        if holds_root(self.path, root):
            root = ""  # the path holds it already (a mount, Starlette's convention)
        url = f"{scheme}://{host}{root}{raw_path.decode('latin-1')}"
        return URL(f"{url}?{query.decode('latin-1')}" if query else url)

    @property
    def base_url(self) -> URL:
        """The URL of the app's root (with ``root_path``), ending in ``/``.

        In a mounted app, the outermost app's root (Starlette's
        ``app_root_path``), which ``url_for`` builds on.
        """
        url = self.url
        root = self.scope.get("app_root_path", self.scope.get("root_path", "")) or ""
        return url.replace(path=root.rstrip("/") + "/", query="", fragment="")

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The absolute URL of the route (or mount) called ``name``, with ``path_params``.

        Looked up from the outermost app, so a mounted app's page can link
        to the main app's routes and mounts (``url_for("static", path="/a.css")``);
        the URL is under the outermost ``root_path``.

        Raises:
            NoMatchFound: No route or mount of that name takes exactly those
                parameters.
        """
        router = self.scope.get("router") or self.scope.get("app")
        if router is None:
            msg = "request.url_for needs the request to be served by an app (scope['app'])"
            raise RuntimeError(msg)
        path = router.url_path_for(name, **path_params)
        made: URL = path.make_absolute_url(self.base_url)
        return made

    @property
    def receive(self) -> Receive | None:
        """The ASGI ``receive`` callable this request reads its body from."""
        return self._receive

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
    def client(self) -> Address | None:
        """``(host, port)`` of the peer (``.host``, ``.port``), when the server knows it."""
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None

    @property
    def state(self) -> State:
        """Per-request attributes for dependencies to share (``request.state.user``)."""
        if self._state is None:
            shared = self.scope.get("state")
            self._state = State(shared if isinstance(shared, dict) else None)
        return self._state

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """Yields the body as it arrives, enforcing ``max_body_size``.

        The body can be streamed once; after :meth:`body` it is cached, and
        streaming yields the cached bytes.

        Raises:
            MalformedRequestError: The body exceeds ``max_body_size`` (413),
                stopped arriving for ``body_timeout`` seconds, or arrived
                slower than ``body_min_rate`` allows (408).
            ClientDisconnect: The client left before the body was complete.
            RuntimeError: The body was already streamed (by ``stream()`` or
                ``form()``) and not kept.
        """
        body = getattr(self, "_body", None)
        if body is not None:
            if body:
                yield body
            return
        if self._stream_started:
            msg = (
                "the request body was already read as a stream (request.stream() or "
                "request.form()); read it with request.body() first to keep a copy"
            )
            raise RuntimeError(msg)
        self._stream_started = True
        if self._receive is None:
            self._stream_done = True
            return
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            raise _too_large(self.max_body_size)
        received = 0
        started = trio.current_time() if self.body_timeout else 0.0
        while True:
            message = await self._next_message(self._receive, started, received)
            kind = message["type"]
            if kind == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_size:
                raise _too_large(self.max_body_size)
            if not message.get("more_body", False):
                self._stream_done = True
                if chunk:
                    yield chunk
                break
            if chunk:
                yield chunk

    async def _next_message(self, receive: Receive, started: float, received: int) -> Message:
        # Only the waits for body bytes are timed: a slow endpoint, or a quiet
        # client waiting for its answer, is never cut by this. Nor is a message
        # that is already waiting: no cancel scope for it (one costs more than
        # a small JSON body's parsing). The rate rule still holds: its deadline
        # counts from the body's start, so a trickle is caught at the first wait.
        timeout = self.body_timeout
        if not timeout or _message_waiting(receive):
            return await receive()
        silence = trio.current_time() + timeout
        deadline = self._rate_deadline(started, timeout, received, silence)
        with trio.move_on_at(deadline):
            return await receive()
        raise self._too_slow(timeout, deadline < silence)

    def _rate_deadline(
        self, started: float, timeout: float, received: int, silence: float
    ) -> float:
        # The body_min_rate rule: the allowance, plus a second per rate's bytes.
        rate = self.body_min_rate
        if not rate:
            return silence
        return min(silence, started + timeout + received / rate)

    def _too_slow(self, timeout: float, by_rate: bool) -> MalformedRequestError:
        if by_rate:
            msg = (
                f"the request body arrived slower than {self.body_min_rate:g} bytes/s "
                f"(after the first {timeout:g} s)"
            )
        else:
            msg = f"the request body stopped arriving for {timeout:g} s"
        return MalformedRequestError(msg, status_code=408)

    async def body(self) -> bytes:
        """The whole body (read once, then cached)."""
        if getattr(self, "_body", None) is None:
            if self._stream_started or self._receive is None or not self.body_timeout:
                chunks = [chunk async for chunk in self.stream()]
                self._body = b"".join(chunks)
            else:
                self._body = await self._read_whole(self._receive, self.body_timeout)
        return self._body

    async def _read_whole(self, receive: Receive, timeout: float) -> bytes:
        # stream()'s work for the common case, without its async generator.
        self._stream_started = True
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            raise _too_large(self.max_body_size)
        chunks: list[bytes] = []
        received = 0
        started = trio.current_time()
        while True:
            message = await self._next_message(receive, started, received)
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_size:
                raise _too_large(self.max_body_size)
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                self._stream_done = True
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def form(
        self,
        *,
        max_files: int | float = DEFAULT_MAX_FILES,
        max_fields: int | float = DEFAULT_MAX_FIELDS,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
    ) -> PendingForm:
        """The body parsed as a form (``multipart/form-data`` or urlencoded).

        ``form = await request.form()``, or ``async with request.form() as
        form:`` to close its files at the end of the block. The body is
        parsed as it streams in, files past 1 MiB spill to temporary files,
        and the result is cached: later calls return the same form whatever
        limits they pass. Any other content type gives an empty form and
        leaves the body unread.

        The application closes the form's files when the request ends
        (:meth:`close`).

        Args:
            max_files: Most files accepted.
            max_fields: Most text fields accepted.
            max_part_size: Most bytes in one text field.

        Returns:
            Awaitable (and async context manager) giving the :class:`FormData`.

        Raises:
            MalformedRequestError: The body is not a well-formed form, breaks a
                limit (400), exceeds ``max_body_size`` (413) or stopped
                arriving (408).
            ClientDisconnect: The client left before the body was complete.
        """

        async def read() -> FormData:
            return await self._read_form(max_files, max_fields, max_part_size)

        return PendingForm(read)

    async def _read_form(
        self, max_files: int | float, max_fields: int | float, max_part_size: int
    ) -> FormData:
        if self._form is not None:
            return self._form
        if self._form_error is not None:
            # The body is gone: a second call fails as the first did.
            raise self._form_error
        try:
            async with aclosing(self.stream()) as chunks:
                form = await parse_form(
                    self.headers.get("content-type"),
                    chunks,
                    max_files=max_files,
                    max_fields=max_fields,
                    max_part_size=max_part_size,
                )
        except (MalformedRequestError, ClientDisconnect) as error:
            self._form_error = error
            raise
        self._form = form
        return form

    async def close(self) -> None:
        """Closes the files of the form read from this request, if any.

        The application calls it when the request ends. Files of a parse that
        failed (client gone, limit broken) are already closed by then.
        """
        if self._form is not None:
            await self._form.close()

    async def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            MalformedRequestError: The body is not valid JSON (400), or would
                take more memory than the route's ``max_json_memory`` (413).
        """
        body = await self.body()
        check_json_memory(body, self.scope.get("route"), self.scope.get("app"), models=False)
        try:
            return json.loads(body)
        except ValueError as error:
            raise MalformedRequestError(f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise MalformedRequestError("the JSON body is nested too deeply") from None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


def _message_waiting(receive: Receive) -> bool:
    """``receive`` is a trio memory channel's (hypercorn's trio worker hands the app
    one) and a message already waits in it: receiving it cannot block."""
    channel = getattr(receive, "__self__", None)
    return (
        isinstance(channel, trio.MemoryReceiveChannel)
        and channel.statistics().current_buffer_used > 0
    )


def _too_large(limit: int) -> MalformedRequestError:
    return MalformedRequestError(
        f"the request body is larger than this endpoint accepts ({limit} bytes)",
        status_code=413,
    )

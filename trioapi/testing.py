"""Testing trioapi applications, in process and deterministically.

::

    async with TestClient(app) as client:        # runs the lifespan startup
        response = await client.post("/send-notification/a@example.com")
        assert response.status_code == 200       # its background tasks are done
        report = await client.shutdown()         # drains, returns the report
        assert report.completed == 1

Everything runs in the test's own trio run with no sockets and no threads
of its own, so ``trio.testing.MockClock(autojump_threshold=0)`` makes drain
deadlines and task timeouts happen at exact virtual times.

Requires the ``testing`` extra (``pip install trioapi[testing]``) for httpx.
"""

from __future__ import annotations

import json as jsonlib
import logging
import math
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, final
from urllib.parse import unquote

import trio

try:
    import httpx
except ImportError as error:  # pragma: no cover - exercised only without the extra
    msg = "trioapi.testing needs httpx: pip install 'trioapi[testing]'"
    raise ImportError(msg) from error

from hypercorn.config import Config

from ._server.harness import (
    WAIT_BACKGROUND,
    ClientConnection,
    InMemoryServer,
    InMemoryTransport,
    default_config,
)
from .middleware._stack import ASGIApp, find_app

error_logger = logging.getLogger("trioapi.error")

if TYPE_CHECKING:
    from ._http.app import TrioAPI
    from ._runtime.background import DrainReport, TaskHandle
    from ._testclient_ws import AsyncWebSocketSession

__all__ = ["ClientConnection", "InMemoryServer", "TestClient"]

Response = httpx.Response


@final
class _Transport(httpx.AsyncBaseTransport):
    """Calls the ASGI app directly for each httpx request."""

    def __init__(self, client: TestClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        client = self._client
        body = await request.aread()
        url = request.url
        raw_path = url.raw_path.split(b"?", 1)[0]
        handles: list[TaskHandle[Any]] = []
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": url.query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "client": ("127.0.0.1", 50000),
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "state": dict(client._state),
            "extensions": {"trioapi.background": handles.extend},
        }
        response_done = trio.Event()
        request_sent = False
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> MutableMapping[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            # As hypercorn does: "disconnect" only once the response is out.
            await response_done.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if start:
                    msg = "the app sent http.response.start twice"
                    raise RuntimeError(msg)
                start.update(message)
            elif kind == "http.response.body":
                if not start:
                    msg = "the app sent a body before http.response.start"
                    raise RuntimeError(msg)
                if response_done.is_set():
                    msg = "the app sent a body after the response was complete"
                    raise RuntimeError(msg)
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    response_done.set()

        try:
            await client.app(scope, receive, send)
        except Exception:
            # The app answered an error no handler took, then raised it on to
            # the server (as FastAPI apps do): the test sees it when it asks
            # to, and otherwise it is logged, as a server would.
            if client.raise_server_exceptions or not response_done.is_set():
                raise
            error_logger.exception("unhandled error in %s %s", request.method, scope["path"])
        if not response_done.is_set():
            msg = f"the app returned without completing a response to {request.method} {url}"
            raise RuntimeError(msg)
        wait = request.extensions.get(WAIT_BACKGROUND, client.wait_background)
        if wait:
            for handle in handles:
                await handle.wait()
        return httpx.Response(
            status_code=start["status"],
            headers=[(bytes(k), bytes(v)) for k, v in start.get("headers", [])],
            content=b"".join(chunks),
            request=request,
        )


@final
class TestClient:
    """An in-process client for a trioapi app (an httpx ``AsyncClient`` inside).

    Args:
        app: The application: a ``TrioAPI``, or middleware wrapped around
            one (``app = SomeMiddleware(app)``), whose drain report
            :meth:`shutdown` returns.
        base_url: The URL requests are relative to.
        wait_background: Make each request return only after its own
            background tasks finished (the default, as FastAPI's TestClient);
            False returns as soon as the response is complete. Per call:
            ``client.post(..., wait_background=False)``.
        headers, cookies: Sent with every request.
        server: Serve the app with hypercorn's real trio server over in-memory
            streams (:class:`InMemoryServer`) instead of calling it directly:
            the same code path as production, ``graceful_timeout`` included,
            still deterministic under ``MockClock``. Needs ``async with``.
        server_config: The hypercorn ``Config`` for ``server=True``
            (trioapi's defaults otherwise).
        raise_server_exceptions: Raise, in the test, an error the app had
            no handler for (after answering it with a 500); by default the
            test gets the 500. With ``server=True`` hypercorn logs it instead.

    Used as ``async with``, it runs the app's lifespan: startup on entry,
    shutdown (with the background drain) on exit or at :meth:`shutdown`.
    Without ``async with``, requests still work, but the app runs without a
    lifespan (tasks then run inline after each response).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: TrioAPI | ASGIApp,
        *,
        base_url: str = "http://testserver",
        wait_background: bool = True,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        server: bool = False,
        server_config: Config | None = None,
        raise_server_exceptions: bool = False,
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self.wait_background = wait_background
        self._state: dict[str, Any] = {}
        # The TrioAPI inside middleware wrapped around it, for its settings and report.
        self._trioapi = find_app(app)
        if server and server_config is None and self._trioapi is not None:
            server_config = default_config(self._trioapi)
        self.server = InMemoryServer(app, server_config) if server else None
        transport: httpx.AsyncBaseTransport = (
            InMemoryTransport(self.server, wait_background=wait_background)
            if self.server is not None
            else _Transport(self)
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            base_url=base_url,
            headers=headers,
            cookies=dict(cookies) if cookies else None,
            follow_redirects=False,
        )
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._to_app: trio.MemorySendChannel[MutableMapping[str, Any]] | None = None
        self._from_app: trio.MemoryReceiveChannel[MutableMapping[str, Any]] | None = None
        self._report: DrainReport | None = None
        self._shut_down = False

    # --- lifespan ---------------------------------------------------------------

    async def __aenter__(self) -> TestClient:
        if self.server is not None:
            await self.server.__aenter__()
            return self
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            nursery = await stack.enter_async_context(trio.open_nursery())
            self._nursery = nursery
            to_app, app_receive = trio.open_memory_channel[MutableMapping[str, Any]](math.inf)
            app_send, from_app = trio.open_memory_channel[MutableMapping[str, Any]](math.inf)
            self._to_app, self._from_app = to_app, from_app
            scope = {
                "type": "lifespan",
                "asgi": {"version": "3.0", "spec_version": "2.0"},
                "state": self._state,
            }

            async def run_lifespan() -> None:
                async with app_send:
                    await self.app(scope, app_receive.receive, app_send.send)

            nursery.start_soon(run_lifespan)
            await to_app.send({"type": "lifespan.startup"})
            message = await self._next_message()
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        if message["type"] != "lifespan.startup.complete":
            nursery.cancel_scope.cancel("startup failed")
            await stack.__aexit__(None, None, None)
            detail = message.get("message", "")
            msg = f"the app's startup failed: {detail or message['type']}"
            raise RuntimeError(msg)
        self._stack = stack
        return self

    async def _next_message(self) -> MutableMapping[str, Any]:
        assert self._from_app is not None
        try:
            return await self._from_app.receive()
        except trio.EndOfChannel:
            msg = "the app's lifespan call ended without answering"
            raise RuntimeError(msg) from None

    async def shutdown(self) -> DrainReport:
        """Runs the lifespan shutdown (drains background tasks) and returns the report.

        Raises:
            RuntimeError: The client was not entered with ``async with``, or
                the app is no ``TrioAPI`` and wraps none (nothing reports).
        """
        report = await self._stop()
        if report is None:
            msg = (
                "the lifespan completed without a drain report"
                if self._trioapi is not None
                else f"no drain report: {self.app!r} is not a TrioAPI app and wraps none"
            )
            raise RuntimeError(msg)
        return report

    async def _stop(self) -> DrainReport | None:
        if self.server is not None:
            self._shut_down = True
            report = await self.server.shutdown()
            if report is None and self._trioapi is not None:
                report = self._trioapi.background.last_report
            return report
        if self._to_app is None:
            msg = "shutdown() needs the lifespan: use 'async with TestClient(app) as client'"
            raise RuntimeError(msg)
        if not self._shut_down:
            self._shut_down = True
            await self._to_app.send({"type": "lifespan.shutdown"})
            message = await self._next_message()
            if message["type"] != "lifespan.shutdown.complete":
                msg = f"the app's shutdown failed: {message.get('message', message['type'])}"
                raise RuntimeError(msg)
        return self._trioapi.background.last_report if self._trioapi is not None else None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and not self._shut_down:
                await self._stop()
        finally:
            await self._client.aclose()
            if self.server is not None:
                await self.server.__aexit__(exc_type, exc, tb)
            if self._stack is not None:
                if not self._shut_down and self._nursery is not None:
                    # Leaving on an error: stop the lifespan abruptly.
                    self._nursery.cancel_scope.cancel("the test left the client with an error")
                # The test's own exception propagates from its `async with` as
                # it is, not wrapped in the lifespan nursery's group.
                await self._stack.__aexit__(None, None, None)

    # --- requests ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        wait_background: bool | None = None,
    ) -> httpx.Response:
        """Sends one request and returns the response.

        Args:
            data, files: A form, as httpx takes them (``files`` makes it
                multipart: ``{"file": ("name.txt", b"...")}``).
            wait_background: Override the client's ``wait_background`` for
                this call.
        """
        extensions = {} if wait_background is None else {WAIT_BACKGROUND: wait_background}
        if json is not None and content is None:
            content = jsonlib.dumps(json).encode()
            headers = {"content-type": "application/json", **(headers or {})}
        if cookies:
            # httpx deprecates per-request cookies on request(); a Cookie header
            # merged over the client's own jar does the same, without the warning.
            jar = {**dict(self._client.cookies), **cookies}
            cookie_header = "; ".join(f"{name}={value}" for name, value in jar.items())
            headers = {**(headers or {}), "cookie": cookie_header}
        return await self._client.request(
            method,
            url,
            params=params,
            content=content,
            data=data,
            files=files,
            headers=headers,
            extensions=extensions,
        )

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    def websocket_connect(
        self, url: str, subprotocols: Sequence[str] | None = None, **kwargs: Any
    ) -> AsyncWebSocketSession:
        """Opens a websocket to the app: ``async with client.websocket_connect("/ws") as ws:``.

        The app's call runs in this trio run; the session's methods are the
        sync client's, awaited (``await ws.send_text(...)``,
        ``await ws.receive_json()``). Leaving the block closes with 1000 and
        waits for the app's call (and its background tasks, unless
        ``wait_background=False``). Not with ``server=True``.

        Args:
            url: Relative to ``base_url``, or a ``ws://`` URL.
            subprotocols: Offered in ``Sec-WebSocket-Protocol``.
            **kwargs: ``headers``, ``params``, ``cookies``, as for a request.
        """
        from ._testclient_ws import connect_async

        return connect_async(self, url, subprotocols, kwargs)

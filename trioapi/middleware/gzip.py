"""``GZipMiddleware``: gzip response bodies for clients that accept it.

The response head is held back until the first body message shows what
the body is: a whole body under ``minimum_size`` goes out as it is; a
larger one, or a stream, is compressed (``Content-Encoding: gzip``, a new
``Content-Length`` for a whole body, none for a stream, whose chunks are
each flushed so the client gets them as they come) and says ``Vary:
Accept-Encoding``. Responses that are already encoded, partial (206), or of
a type that does not compress (images, video, event streams...) pass
untouched. Chunks of ``thread_minimum_size`` or more are compressed in a
worker thread so the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import zlib
from typing import final

import trio

from .._http.requests import Message, Receive, Scope, Send
from .._http.responses import MutableHeaders
from ._stack import ASGIApp

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "GZipMiddleware"]

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/grpc",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "audio/*",
    "font/woff",
    "font/woff2",
    "image/avif",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/event-stream",
    "video/*",
)
"""Content types left uncompressed (already compressed, or streamed event by event)."""

_CACHED_TYPES = 256
"""Distinct ``Content-Type`` values whose exclusion is remembered."""

_THREADS = trio.lowlevel.RunVar[trio.CapacityLimiter]("gzip_threads")
"""Worker threads compressing at once, per trio run (40, like trio's default limiter)."""


def _limiter() -> trio.CapacityLimiter:
    try:
        return _THREADS.get()
    except LookupError:
        limiter = trio.CapacityLimiter(40)
        _THREADS.set(limiter)
        return limiter


def accepts_gzip(scope: Scope) -> bool:
    """Whether the request's ``Accept-Encoding`` takes gzip (``q=0`` refuses it).

    Args:
        scope: The request's ASGI scope.

    Returns:
        True when ``gzip`` or ``*`` is listed with a quality above zero.
    """
    for name, value in scope.get("headers", ()):
        if name != b"accept-encoding":
            continue
        for item in bytes(value).decode("latin-1").split(","):
            coding, _, params = item.partition(";")
            if coding.strip().lower() not in ("gzip", "*"):
                continue
            quality = params.strip().lower()
            if quality.startswith("q="):
                try:
                    if float(quality[2:]) <= 0:
                        continue
                except ValueError:
                    continue
            return True
    return False


@final
class GZipMiddleware:
    """Compresses response bodies with gzip when the client accepts it.

    Args:
        app: The ASGI app to wrap.
        minimum_size: Bodies smaller than this many bytes are sent as they
            are (a stream is always compressed).
        compresslevel: zlib's level, 1 (fastest) to 9 (smallest).
        thread_minimum_size: Chunks at least this large are compressed in
            a worker thread.
        exclude_content_types: Content types (``"image/png"``,
            ``"video/*"``) never compressed.
    """

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.thread_minimum_size = thread_minimum_size
        self.exclude_content_types = frozenset(
            item.partition(";")[0].strip().lower() for item in exclude_content_types
        )
        self._excluded: dict[bytes, bool] = {}  # per raw Content-Type, as apps repeat them

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder = _Responder(self, send, accepts_gzip(scope))
        await self.app(scope, receive, responder.send)

    def excludes(self, content_type: str) -> bool:
        """Whether a response of ``content_type`` is left uncompressed.

        Args:
            content_type: The response's ``Content-Type`` (parameters ignored).

        Returns:
            True when it, or its ``type/*``, is in ``exclude_content_types``.
        """
        media = content_type.partition(";")[0].strip().lower()
        kinds = {media, media.partition("/")[0] + "/*"}
        if media.startswith("application/grpc+"):
            kinds.add("application/grpc")
        return not kinds.isdisjoint(self.exclude_content_types)

    def _excludes_raw(self, content_type: bytes) -> bool:
        known = self._excluded.get(content_type)
        if known is None:
            known = self.excludes(content_type.decode("latin-1"))
            if len(self._excluded) < _CACHED_TYPES:
                self._excluded[content_type] = known
        return known


@final
class _Responder:
    """One response through the middleware: holds the head until the body says what to do."""

    __slots__ = ("_compress", "_compressor", "_middleware", "_passthrough", "_send", "_start")

    def __init__(self, middleware: GZipMiddleware, send: Send, compress: bool) -> None:
        self._middleware = middleware
        self._send = send
        self._compress = compress
        self._start: Message | None = None
        self._passthrough = False
        self._compressor: zlib._Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            encoded = False
            content_type = b""
            for name, value in message.get("headers", ()):
                if name == b"content-encoding":
                    encoded = True
                elif name == b"content-type":
                    content_type = bytes(value)
            self._passthrough = (
                encoded or message["status"] == 206 or self._middleware._excludes_raw(content_type)
            )
            if self._passthrough:
                await self._send(message)
            else:
                self._start = message
            return
        if kind != "http.response.body" or self._passthrough:
            if self._start is not None:
                # Something other than a body (a file to send by path): nothing to compress.
                held, self._start = self._start, None
                await self._send(held)
            await self._send(message)
            return
        start = self._start
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if start is None:
            # The head went out with the first body message: the rest follows it.
            if self._compressor is not None:
                message["body"] = await self._compressed(body, more)
            await self._send(message)
            return
        self._start = None
        if not more and len(body) < self._middleware.minimum_size:
            await self._send(start)
            await self._send(message)
            return
        # A copy: the list may be a response object's own, sent again later.
        headers = MutableHeaders(list(start.get("headers", ())))
        start["headers"] = headers.raw
        headers["vary"] = ", ".join([*headers.getlist("vary"), "Accept-Encoding"])
        if self._compress:
            self._compressor = zlib.compressobj(
                self._middleware.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS
            )
            message["body"] = await self._compressed(body, more)
            headers["content-encoding"] = "gzip"
            if more or start.get("trailers", False):
                headers.pop("content-length", None)
            else:
                headers["content-length"] = str(len(message["body"]))
        await self._send(start)
        await self._send(message)

    async def _compressed(self, body: bytes, more: bool) -> bytes:
        if len(body) >= self._middleware.thread_minimum_size:
            return await trio.to_thread.run_sync(self._deflate, body, more, limiter=_limiter())
        return self._deflate(body, more)

    def _deflate(self, body: bytes, more: bool) -> bytes:
        compressor = self._compressor
        assert compressor is not None
        # A stream's chunk is flushed whole so the client can decode it now.
        return compressor.compress(body) + compressor.flush(
            zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH
        )

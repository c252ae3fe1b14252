"""``FileResponse``: a file from disk, with ``Range`` requests, validators and downloads.

The file is read in worker threads (``trio.open_file``), in ``chunk_size``
pieces, so a large file never sits in memory and a slow disk never blocks
the event loop. Its ``stat`` (also in a thread, unless ``stat_result=`` was
given) gives ``Content-Length``, ``Last-Modified`` and an ``ETag``.

Ranges follow RFC 9110 as Starlette implements them (no I/O in the parsing,
:func:`parse_ranges`): a ``GET`` or ``HEAD`` answered 200 with a ``Range:
bytes=...`` header gets ``206 Partial Content``, one range as itself
(``Content-Range``), several as ``multipart/byteranges`` (overlapping ones
merged). ``If-Range`` keeps the range only while the file still has that
``ETag`` or ``Last-Modified`` (a weak tag never matches); otherwise the
whole file is sent. A range starting past the end is ``416`` with
``Content-Range: bytes */size``; a malformed header is ``400``; more than
``max_ranges`` ranges are ignored (the whole file, as a defence against
range amplification).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import attrs
import trio

from .._runtime.background import checked_background
from .datastructures import Headers
from .requests import Receive, Scope, Send
from .responses import PlainTextResponse, Response, send_final


@attrs.frozen
class RangeError(ValueError):
    """A ``Range`` header that cannot be served: ``status`` 400 or 416."""

    status: int
    detail: str
    size: int = 0

    def __str__(self) -> str:
        return self.detail


def parse_ranges(header: str, size: int, max_ranges: int = 100) -> list[tuple[int, int]]:
    """The byte ranges ``[start, end)`` a ``Range`` header asks of a ``size``-byte file.

    Returns:
        The ranges, sorted and merged when there are several; ``[]`` when
        there are more than ``max_ranges`` (serve the whole file).

    Raises:
        RangeError: 400 for a header that is not ``bytes=`` ranges or whose
            start is after its end, 416 for a range starting past the end.
    """
    units, sep, spec = header.partition("=")
    if not sep:
        raise RangeError(400, "Malformed range header.")
    if units.strip().lower() != "bytes":
        raise RangeError(400, "Only support bytes range")
    if spec.count(",") + 1 > max_ranges:
        return []
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash or not (first or last):
            continue  # "", "-" or no dash: ignored
        first, last = first.strip(), last.strip()
        try:
            if first:
                start = int(first)
                end = int(last) + 1 if last and int(last) < size else size
            else:
                start, end = max(size - int(last), 0), size  # a suffix: the last N bytes
        except ValueError:
            continue  # not numbers: ignored, as Starlette does
        ranges.append((start, end))
    if not ranges:
        raise RangeError(400, "Range header: range must be requested")
    if any(not 0 <= start < size for start, _ in ranges):
        raise RangeError(416, "Range Not Satisfiable", size)
    if any(start >= end for start, end in ranges):
        raise RangeError(400, "Range header: start must be less than end")
    if len(ranges) == 1:
        return ranges
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def content_disposition(kind: str, filename: str) -> str:
    """``attachment; filename="a.txt"``, or RFC 5987's ``filename*=utf-8''...`` when it must be."""
    quoted = quote(filename)
    if quoted != filename:
        return f"{kind}; filename*=utf-8''{quoted}"
    return f'{kind}; filename="{filename}"'


def etag_of(stat_result: os.stat_result) -> str:
    """Starlette's ``ETag`` for a file: from its modification time and size."""
    base = f"{stat_result.st_mtime}-{stat_result.st_size}"
    return f'"{hashlib.md5(base.encode(), usedforsecurity=False).hexdigest()}"'


class FileResponse(Response):
    """Sends a file, streamed from disk in worker threads.

    Args:
        path: The file.
        status_code: The status code (ranges apply to 200 only).
        headers: Extra headers.
        media_type: The ``Content-Type``; guessed from ``filename`` or
            ``path`` otherwise (``application/octet-stream`` if unknown).
        background: A ``BackgroundTask`` or ``BackgroundTasks``, run after
            the last byte with the request's own tasks.
        filename: Adds ``Content-Disposition`` (a download under this name).
        stat_result: The file's ``os.stat`` result, when already known.
        method: ``"HEAD"`` sends the headers only, whatever the request
            (Starlette's old keyword; the request's method decides otherwise).
        content_disposition_type: ``"attachment"`` or ``"inline"``.

    A file that is missing or is not a regular file when the response is
    sent is answered 500 and the ``RuntimeError`` goes on to the server.
    """

    chunk_size = 64 * 1024
    max_ranges = 100
    _produces_body = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        method: str | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = path
        self.filename = filename
        self.stat_result = stat_result
        self.send_header_only = method is not None and method.upper() == "HEAD"
        if background is not None:
            self.background = checked_background(background)
        if media_type is None:
            media_type = mimetypes.guess_type(filename or os.fspath(path))[0]
            media_type = media_type or "application/octet-stream"
        self._request_headers: Headers = Headers()
        super().__init__(None, status_code=status_code, headers=headers, media_type=media_type)
        self._set_default(b"accept-ranges", "bytes")
        if filename is not None:
            self._set_default(
                b"content-disposition", content_disposition(content_disposition_type, filename)
            )
        if stat_result is not None:
            self.set_stat_headers(stat_result)

    def _complete_headers(self) -> None:
        # The length comes from the file's stat, not from a body in memory.
        if self.media_type is not None and not any(
            name == b"content-type" for name, _ in self._raw_headers
        ):
            self._raw_headers.append((b"content-type", self._content_type()))

    def _set_default(self, name: bytes, value: str) -> None:
        if not any(header == name for header, _ in self._raw_headers):
            self._raw_headers.append((name, value.encode("latin-1")))

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        """Adds ``Content-Length``, ``Last-Modified`` and ``ETag`` unless already set."""
        self._set_default(b"content-length", str(stat_result.st_size))
        self._set_default(b"last-modified", formatdate(stat_result.st_mtime, usegmt=True))
        self._set_default(b"etag", etag_of(stat_result))

    _request_method = "GET"

    def _bind(self, scope: Scope) -> None:
        self._request_headers = Headers(scope.get("headers", ()))
        self._request_method = str(scope.get("method", "GET")).upper()

    def _use_range(self, if_range: str | None) -> bool:
        if if_range is None:
            return True
        if if_range.startswith("W/"):
            return False
        headers = self.headers
        return if_range in (headers.get("last-modified"), headers.get("etag"))

    async def _stat(self) -> os.stat_result:
        if self.stat_result is not None:
            return self.stat_result
        try:
            result = await trio.to_thread.run_sync(os.stat, self.path)
        except FileNotFoundError:
            msg = f"File at path {self.path} does not exist."
            raise RuntimeError(msg) from None
        if not stat.S_ISREG(result.st_mode):
            msg = f"File at path {self.path} is not a file."
            raise RuntimeError(msg)
        self.set_stat_headers(result)
        return result

    async def send_to(
        self,
        send: Send,
        *,
        head: bool = False,
        shield: bool = False,
        receive: Receive | None = None,
        whole_body_sends: bool = False,
    ) -> None:
        """Sends the file (or the requested ranges of it).

        Args:
            send: The ASGI send callable.
            head: Headers only (a ``HEAD`` request).
            shield: Keep a cancellation from splitting the final message.
            receive: Watched for the client leaving while the file is sent.
            whole_body_sends: The server writes a body message whole (see
                ``Response.send_to``); the ``Content-Length`` frames the file.

        Raises:
            RuntimeError: The file is missing or not a regular file (after a
                500 was sent), or became shorter while it was sent.
        """
        head = head or self.send_header_only
        try:
            stat_result = await self._stat()
        except RuntimeError:
            await PlainTextResponse("Internal Server Error", status_code=500).send_to(
                send, head=head, shield=shield
            )
            raise
        size = stat_result.st_size
        ranges: list[tuple[int, int]] | None = None
        range_header = self._request_headers.get("range")
        if (
            self.status_code == 200
            and range_header is not None
            and self._request_method in ("GET", "HEAD")
            and self._use_range(self._request_headers.get("if-range"))
        ):
            try:
                ranges = parse_ranges(range_header, size, self.max_ranges) or None
            except RangeError as error:
                await self._refuse(error, send, head, shield)
                return
        if whole_body_sends and not (shield and self._framed_by_length()):
            whole_body_sends = False
        if ranges is None:
            await send(self._start_message())
            pieces: list[tuple[bytes, int, int]] = [(b"", 0, size)]
            tail = b""
        elif len(ranges) == 1:
            start, end = ranges[0]
            headers = [(k, v) for k, v in self._raw_headers if k != b"content-length"]
            headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
            headers.append((b"content-length", str(end - start).encode()))
            await send({"type": "http.response.start", "status": 206, "headers": headers})
            pieces, tail = [(b"", start, end)], b""
        else:
            boundary = secrets.token_hex(13)
            content_type = self.headers.get("content-type", "application/octet-stream")
            pieces = [
                (_part_head(boundary, content_type, start, end, size), start, end)
                for start, end in ranges
            ]
            tail = f"--{boundary}--".encode("latin-1")
            length = sum(len(part) + (end - start) + 2 for part, start, end in pieces) + len(tail)
            headers = [
                (k, v)
                for k, v in self._raw_headers
                if k not in (b"content-length", b"content-type")
            ]
            headers.append((b"content-type", f"multipart/byteranges; boundary={boundary}".encode()))
            headers.append((b"content-length", str(length).encode()))
            await send({"type": "http.response.start", "status": 206, "headers": headers})
        if head:
            await send_final(send, b"", shield)
            return
        last = await self._send_pieces(send, receive, pieces, multipart=bool(tail))
        await send_final(send, last + tail, shield, whole_body_sends)

    async def _refuse(self, error: RangeError, send: Send, head: bool, shield: bool) -> None:
        if error.status == 416:
            response = PlainTextResponse(
                status_code=416, headers={"Content-Range": f"bytes */{error.size}"}
            )
        else:
            response = PlainTextResponse(error.detail, status_code=400)
        await response.send_to(send, head=head, shield=shield)

    async def _send_pieces(
        self,
        send: Send,
        receive: Receive | None,
        pieces: Sequence[tuple[bytes, int, int]],
        *,
        multipart: bool,
    ) -> bytes:
        """Sends every byte but the last message's; returns that one for the final send."""
        gone = False
        failure: list[Exception] = []
        held = b""
        async with trio.open_nursery() as nursery:
            if receive is not None:

                async def watch() -> None:
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone = True
                    nursery.cancel_scope.cancel("the client left during the file")

                nursery.start_soon(watch)
            try:
                file = await trio.open_file(self.path, "rb")
                try:
                    for part_head, start, end in pieces:
                        held += part_head
                        await file.seek(start)
                        while start < end:
                            chunk = await file.read(min(self.chunk_size, end - start))
                            if not chunk:
                                msg = f"File at path {self.path} is shorter than expected."
                                raise RuntimeError(msg)
                            start += len(chunk)
                            if held:
                                await send(
                                    {"type": "http.response.body", "body": held, "more_body": True}
                                )
                            held = chunk
                        if multipart:
                            held += b"\r\n"
                finally:
                    with trio.CancelScope(shield=True):
                        await file.aclose()
            except Exception as error:
                failure.append(error)
            nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]
        if gone:
            msg = "the client left while the file was sent"
            raise trio.BrokenResourceError(msg)
        return held


def _part_head(boundary: str, content_type: str, start: int, end: int, size: int) -> bytes:
    return (
        f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n"
    ).encode("latin-1")

"""Form bodies parsed as they stream in: ``multipart/form-data`` and urlencoded.

Theory of operation
-------------------
python-multipart's parsers are sans-IO state machines: ``parser.write(chunk)``
calls back synchronously with slices of the chunk. The collectors here only
gather in those callbacks: a text field's bytes go into its buffer (bounded by
``max_part_size``), a file's bytes are queued. After each chunk, the async
driver writes the queued bytes into the files' :class:`UploadFile`, which hops
to a worker thread once a file has rolled over to disk (past
:data:`SPOOL_MAX_SIZE`). So no callback blocks, and a body is never held in
memory whole: only text fields and files below the spool size are.

A limit is checked as soon as the bytes that break it arrive, and the rest of
the body is not read. Every temporary file a parse creates is closed when the
parse fails, whatever the reason: a malformed body or a form limit (400), the
body limit (413), the body timeout (408), the client leaving, cancellation.
A successful parse hands its files to the caller, who closes them
(``FormData.close``, ``Request.close``).

python-multipart is imported on the first form parsed, so ``import trioapi``
does not pay for it.
"""

from __future__ import annotations

import codecs
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from tempfile import SpooledTemporaryFile
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, final
from urllib.parse import unquote_to_bytes

from .._exceptions import MalformedRequestError
from .datastructures import Headers
from .uploads import FormData, UploadFile

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks, QuerystringCallbacks

DEFAULT_MAX_FILES = 1000
"""Files a form may carry unless the endpoint says otherwise (Starlette's default)."""

DEFAULT_MAX_FIELDS = 1000
"""Text fields a form may carry unless the endpoint says otherwise."""

DEFAULT_MAX_PART_SIZE = 1024 * 1024
"""Bytes one text field may hold (files are bounded by the body limit only)."""

SPOOL_MAX_SIZE = 1024 * 1024
"""Bytes of an uploaded file kept in memory before it rolls over to a temporary file."""

FORM_LIMIT_NAMES = ("max_fields", "max_files", "max_part_size")


class FormLimits(TypedDict, total=False):
    """The shape of a ``form_limits`` setting, for type checkers; every key is optional."""

    max_fields: int
    """Most text fields one form may carry."""
    max_files: int
    """Most file parts one multipart form may carry."""
    max_part_size: int
    """Most bytes in one text field."""


MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"


def check_form_limits(limits: Mapping[str, object] | None) -> dict[str, int]:
    """Validates a ``form_limits`` setting (FastAPI's ``form_limits={"max_fields": 10}``).

    Args:
        limits: Any of ``max_fields``, ``max_files``, ``max_part_size``; the
            ones left out keep their defaults (or what an enclosing router set).

    Returns:
        A new dict with the same entries, safe to keep: later changes to
        ``limits`` do not affect it.

    Raises:
        ValueError: A key is not one of the three, or a value is not a
            non-negative integer.
    """
    if limits is None:
        return {}
    checked: dict[str, int] = {}
    for key, value in limits.items():
        if key not in FORM_LIMIT_NAMES:
            msg = f"unknown form limit {key!r}: use {', '.join(FORM_LIMIT_NAMES)}"
            raise ValueError(msg)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            msg = f"form limit {key} must be a non-negative integer, not {value!r}"
            raise ValueError(msg)
        checked[key] = value
    return checked


def merge_form_limits(
    outer: Mapping[str, int] | None, inner: Mapping[str, int] | None
) -> dict[str, int] | None:
    """Limits of an enclosing level (an app, a router, an ``include_router``) under a route's.

    Setting by setting, the inner one wins: a route's ``max_part_size`` and
    its router's ``max_fields`` both hold. None when neither sets any.
    """
    merged = {**(outer or {}), **(inner or {})}
    return merged or None


def form_media_type(content_type: str | None) -> str | None:
    """``"multipart/form-data"`` or ``"application/x-www-form-urlencoded"`` for a
    ``Content-Type`` value that names one of them, else None."""
    if not content_type:
        return None
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type if media_type in (MULTIPART, URLENCODED) else None


async def parse_form(
    content_type: str | None,
    chunks: AsyncIterator[bytes],
    *,
    max_files: int | float = DEFAULT_MAX_FILES,
    max_fields: int | float = DEFAULT_MAX_FIELDS,
    max_part_size: int = DEFAULT_MAX_PART_SIZE,
) -> FormData:
    """Parses a form body from ``chunks`` as they arrive.

    Any other content type (or none) gives an empty form without reading
    ``chunks``, as Starlette does: an endpoint's form parameters then report
    themselves missing.

    Args:
        content_type: The request's ``Content-Type`` header.
        chunks: The body, chunk by chunk (``Request.stream()``).
        max_files: Most file parts accepted (``math.inf`` for no limit).
        max_fields: Most text fields accepted.
        max_part_size: Most bytes in one text field (urlencoded: its name
            and value together).

    Returns:
        The form. Its files are open: the caller closes them.

    Raises:
        MalformedRequestError: The body is not a well-formed form, or breaks
            one of the limits (400); anything ``chunks`` raises (413, 408)
            passes through. Files already created are closed first.
        ValueError: A limit is negative.
    """
    for name, limit in (
        ("max_files", max_files),
        ("max_fields", max_fields),
        ("max_part_size", max_part_size),
    ):
        if isinstance(limit, bool) or limit < 0:
            msg = f"{name} must be a non-negative number, not {limit!r}"
            raise ValueError(msg)
    media_type = form_media_type(content_type)
    if media_type is None:
        return FormData()
    assert content_type is not None
    if media_type == MULTIPART:
        return await _parse_multipart(content_type, chunks, max_files, max_fields, max_part_size)
    return await _parse_urlencoded(content_type, chunks, max_fields, max_part_size)


@final
class PendingForm:
    """What ``request.form()`` returns: await it, or enter it to close the files on exit.

    ::

        form = await request.form()
        async with request.form() as form:   # closes its files at the end
            ...
    """

    __slots__ = ("_form", "_read")

    def __init__(self, read: Callable[[], Awaitable[FormData]]) -> None:
        self._read = read
        self._form: FormData | None = None

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._read().__await__()

    async def __aenter__(self) -> FormData:
        self._form = await self._read()
        return self._form

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._form is not None:
            await self._form.close()


# --- shared helpers -------------------------------------------------------------------


@functools.cache
def _quiet_python_multipart() -> None:
    # python-multipart logs a WARNING for each malformed body it sees. With no
    # logging configured (plain hypercorn), Python's last-resort handler would
    # print those to stderr for every client mistake; a NullHandler stops
    # that, and an application that configures logging still gets them.
    logging.getLogger("python_multipart").addHandler(logging.NullHandler())


def _options(value: str | bytes | None) -> tuple[bytes, dict[bytes, bytes]]:
    from python_multipart.multipart import parse_options_header

    return parse_options_header(value)


def _codec(charset: bytes | None, default: str = "utf-8") -> str:
    if not charset:
        return default
    name = charset.decode("latin-1")
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise MalformedRequestError(f"the form declares an unknown charset {name!r}") from None


def _decode(raw: bytes | bytearray, codec: str, what: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise MalformedRequestError(f"{what} is not valid {codec}") from None


def _too_many(kind: str, limit: int | float) -> MalformedRequestError:
    return MalformedRequestError(
        f"the form has more {kind} than this endpoint accepts (max_{kind}={limit})"
    )


def _too_large(name: str | None, limit: int) -> MalformedRequestError:
    field = f"form field {name!r}" if name is not None else "a form field"
    return MalformedRequestError(
        f"{field} is larger than this endpoint accepts (max_part_size={limit} bytes)"
    )


# --- application/x-www-form-urlencoded -------------------------------------------------


@final
class _UrlencodedCollector:
    """python-multipart's querystring callbacks: builds the fields."""

    __slots__ = ("_codec", "_fields", "_max_fields", "_max_part_size", "_name", "_value", "items")

    def __init__(self, codec: str, max_fields: int | float, max_part_size: int) -> None:
        self._codec = codec
        self._max_fields = max_fields
        self._max_part_size = max_part_size
        self._fields = 0
        self._name = bytearray()
        self._value = bytearray()
        self.items: list[tuple[str, str | UploadFile]] = []

    def callbacks(self) -> QuerystringCallbacks:
        return {
            "on_field_start": self._start,
            "on_field_name": self._name_data,
            "on_field_data": self._value_data,
            "on_field_end": self._end,
        }

    def _start(self) -> None:
        self._name = bytearray()
        self._value = bytearray()

    def _grow(self, buffer: bytearray, data: bytes, start: int, end: int) -> None:
        if len(self._name) + len(self._value) + (end - start) > self._max_part_size:
            name = None if buffer is self._name else self._text(self._name, "a field name")
            raise _too_large(name, self._max_part_size)
        buffer += data[start:end]

    def _name_data(self, data: bytes, start: int, end: int) -> None:
        self._grow(self._name, data, start, end)

    def _value_data(self, data: bytes, start: int, end: int) -> None:
        self._grow(self._value, data, start, end)

    def _end(self) -> None:
        self._fields += 1
        if self._fields > self._max_fields:
            raise _too_many("fields", self._max_fields)
        name = self._text(self._name, "a field name")
        self.items.append((name, self._text(self._value, f"form field {name!r}")))

    def _text(self, raw: bytearray, what: str) -> str:
        return _decode(unquote_to_bytes(bytes(raw).replace(b"+", b" ")), self._codec, what)


async def _parse_urlencoded(
    content_type: str, chunks: AsyncIterator[bytes], max_fields: int | float, max_part_size: int
) -> FormData:
    from python_multipart import QuerystringParser

    _quiet_python_multipart()
    _, params = _options(content_type)
    collector = _UrlencodedCollector(_codec(params.get(b"charset")), max_fields, max_part_size)
    parser = QuerystringParser(collector.callbacks())
    async for chunk in chunks:
        parser.write(chunk)
    parser.finalize()
    return FormData(collector.items)


# --- multipart/form-data ---------------------------------------------------------------


@final
class _Part:
    """The part being parsed."""

    __slots__ = ("codec", "data", "headers", "name", "upload")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.name = ""
        self.codec = "utf-8"
        self.data = bytearray()
        self.upload: UploadFile | None = None


@final
class _MultipartCollector:
    """python-multipart's multipart callbacks: builds fields, queues file bytes.

    The callbacks cannot await, so file bytes wait in ``_writes`` (runs for
    the same file joined) until :meth:`flush` writes them after each chunk.
    """

    __slots__ = (
        "_codec",
        "_fields",
        "_finished",
        "_header_name",
        "_header_value",
        "_max_fields",
        "_max_files",
        "_max_part_size",
        "_part",
        "_writes",
        "files",
        "items",
    )

    def __init__(
        self, codec: str, max_files: int | float, max_fields: int | float, max_part_size: int
    ) -> None:
        self._codec = codec
        self._max_files = max_files
        self._max_fields = max_fields
        self._max_part_size = max_part_size
        self._fields = 0
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._writes: list[tuple[UploadFile, list[bytes]]] = []
        self._finished: list[UploadFile] = []
        self.items: list[tuple[str, str | UploadFile]] = []
        self.files: list[UploadFile] = []  # every file created, to close on failure

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._part.headers.append((bytes(self._header_name).lower(), bytes(self._header_value)))
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        part = self._part
        disposition = next((v for k, v in part.headers if k == b"content-disposition"), None)
        _, options = _options(disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            msg = "a part of the multipart body has no name in its Content-Disposition header"
            raise MalformedRequestError(msg)
        # parse_options_header gives the header's bytes back as latin-1.
        part.name = _decode(raw_name, self._codec, "the name of a form part")
        raw_filename = options.get(b"filename")
        if raw_filename is None:
            self._fields += 1
            if self._fields > self._max_fields:
                raise _too_many("fields", self._max_fields)
            content_type = next((v for k, v in part.headers if k == b"content-type"), None)
            part.codec = _codec(_options(content_type)[1].get(b"charset"), self._codec)
            return
        if len(self.files) >= self._max_files:
            raise _too_many("files", self._max_files)
        filename = _decode(raw_filename, self._codec, f"the file name in form field {part.name!r}")
        # Owned by the UploadFile from here: closed by FormData.close, or by
        # close_files when the parse fails.
        spool = SpooledTemporaryFile(max_size=SPOOL_MAX_SIZE)  # noqa: SIM115
        upload = UploadFile(
            spool,
            size=0,
            filename=filename,
            headers=Headers(part.headers),
        )
        self.files.append(upload)
        part.upload = upload

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        upload = part.upload
        if upload is None:
            if len(part.data) + (end - start) > self._max_part_size:
                raise _too_large(part.name, self._max_part_size)
            part.data += data[start:end]
        elif self._writes and self._writes[-1][0] is upload:
            self._writes[-1][1].append(data[start:end])
        else:
            self._writes.append((upload, [data[start:end]]))

    def _part_end(self) -> None:
        part = self._part
        if part.upload is None:
            self.items.append(
                (part.name, _decode(part.data, part.codec, f"form field {part.name!r}"))
            )
        else:
            self._finished.append(part.upload)
            self.items.append((part.name, part.upload))

    async def flush(self) -> None:
        """Writes the file bytes the last chunk brought; rewinds the files it completed."""
        writes, self._writes = self._writes, []
        for upload, pieces in writes:
            await upload.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        finished, self._finished = self._finished, []
        for upload in finished:
            await upload.seek(0)

    async def close_files(self) -> None:
        for upload in self.files:
            await upload.close()


async def _parse_multipart(
    content_type: str,
    chunks: AsyncIterator[bytes],
    max_files: int | float,
    max_fields: int | float,
    max_part_size: int,
) -> FormData:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, MultipartState

    _quiet_python_multipart()
    _, params = _options(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedRequestError("the multipart/form-data Content-Type has no boundary")
    collector = _MultipartCollector(
        _codec(params.get(b"charset")), max_files, max_fields, max_part_size
    )
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        received = False
        async for chunk in chunks:
            received = received or bool(chunk)
            parser.write(chunk)
            await collector.flush()
        parser.finalize()
        # finalize() does not check that the body was complete: a body cut
        # short would silently lose its last part.
        if received and parser.state != MultipartState.END:
            raise MalformedRequestError("the multipart body ended before its closing boundary")
    except FormParserError as error:
        await collector.close_files()
        raise MalformedRequestError(f"the multipart body is malformed: {error}") from error
    except BaseException:
        await collector.close_files()
        raise
    return FormData(collector.items)

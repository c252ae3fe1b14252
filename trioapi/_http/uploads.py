"""What an endpoint gets from a form: :class:`UploadFile` and :class:`FormData`.

An ``UploadFile`` wraps a ``SpooledTemporaryFile``: small uploads stay in
memory, larger ones roll over to a temporary file on disk. Its async methods
call the file directly while it is in memory (nothing can block) and in a
worker thread once it is on disk, so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, final

import trio

from .datastructures import Headers


class UploadFile:
    """A file uploaded in a form (``file: UploadFile`` in a path operation).

    The interface is Starlette's and FastAPI's: ``await file.read()``,
    ``await file.seek(0)``, ``await file.write(data)``, ``await file.close()``;
    ``file.file`` is the underlying synchronous file, for code in a worker
    thread.

    It is a plain class rather than an attrs one on purpose: converters that
    build attrs classes from mappings (cattrs) must see an opaque value here,
    not a structure to assemble from the form's fields.

    Args:
        file: The file holding the contents, positioned at 0 for reading.
        size: The size in bytes, when known; kept up to date by :meth:`write`.
        filename: The file name the client sent, if any.
        headers: The part's own headers (``Content-Type``, ``Content-Disposition``).

    Attributes:
        file: The underlying file (usually a ``SpooledTemporaryFile``).
        filename: The file name the client sent, or None.
        size: The size in bytes, or None when unknown.
        headers: The part's headers.
    """

    __slots__ = ("file", "filename", "headers", "size")

    def __init__(
        self,
        file: IO[bytes],
        *,
        size: int | None = None,
        filename: str | None = None,
        headers: Headers | Mapping[str, str] | None = None,
    ) -> None:
        self.file = file
        self.size = size
        self.filename = filename
        if headers is None:
            headers = Headers()
        elif not isinstance(headers, Headers):
            headers = Headers.from_mapping(headers)
        self.headers: Headers = headers

    @property
    def content_type(self) -> str | None:
        """The part's ``Content-Type``, or None when the client sent none."""
        return self.headers.get("content-type")

    def _in_memory(self) -> bool:
        if isinstance(self.file, io.BytesIO):
            return True
        # SpooledTemporaryFile keeps a BytesIO until `_rolled`; any other
        # file object is treated as living on disk.
        return getattr(self.file, "_rolled", True) is False

    def _would_roll(self, extra: int) -> bool:
        # A spooled file rolls over to disk inside the write that takes it
        # past its max_size: that write is disk I/O.
        max_size: int = getattr(self.file, "_max_size", 0)
        return bool(max_size) and self.file.tell() + extra > max_size

    async def read(self, size: int = -1) -> bytes:
        """Reads up to ``size`` bytes (all the rest by default) from the current position.

        Args:
            size: The most bytes to read; -1 reads to the end.

        Returns:
            The bytes read; empty at the end of the file.
        """
        if self._in_memory():
            return self.file.read(size)
        return await trio.to_thread.run_sync(self.file.read, size)

    async def write(self, data: bytes) -> None:
        """Writes ``data`` at the current position and grows ``size`` by its length.

        Args:
            data: The bytes to write.
        """
        if self._in_memory() and not self._would_roll(len(data)):
            self.file.write(data)
        else:
            await trio.to_thread.run_sync(self.file.write, data)
        if self.size is not None:
            self.size += len(data)

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> None:
        """Moves to ``offset`` (from the start by default), for the next read or write.

        Args:
            offset: The position, relative to ``whence``.
            whence: ``io.SEEK_SET`` (default), ``io.SEEK_CUR`` or ``io.SEEK_END``.
        """
        if self._in_memory():
            self.file.seek(offset, whence)
        else:
            await trio.to_thread.run_sync(self.file.seek, offset, whence)

    async def close(self) -> None:
        """Closes the file, deleting its temporary file on disk if it has one.

        Safe to call more than once. Runs to completion even inside a
        cancelled scope: a request being cancelled must still release its files.
        """
        if self._in_memory():
            self.file.close()
            return
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.file.close)

    @classmethod
    def _validate(cls, value: Any, info: Any = None) -> UploadFile:
        # pydantic's validator with info (FastAPI's signature); FastAPI's message.
        del info
        if not isinstance(value, UploadFile):
            msg = f"Expected UploadFile, received: {type(value)}"
            raise ValueError(msg)  # noqa: TRY004 - pydantic turns ValueError into a 422 entry
        return value

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # Called by pydantic only, so pydantic is imported only when it is in use.
        from pydantic_core import core_schema

        return core_schema.with_info_plain_validator_function(cls._validate)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "contentMediaType": "application/octet-stream"}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(filename={self.filename!r}, size={self.size!r}, "
            f"headers={self.headers!r})"
        )


@final
class FormData(Mapping[str, "str | UploadFile"]):
    """A parsed form: an immutable multi-dict of text fields and uploaded files.

    ``form["tag"]`` is the *last* value sent under that name, as in Starlette
    (and so in FastAPI's ``Form()`` parameters); ``form.getlist("tag")`` gives
    all of them in order, and ``form.multi_items()`` every pair.

    Args:
        items: A mapping, another ``FormData`` or ``(name, value)`` pairs.
        **values: More fields, after ``items``.
    """

    __slots__ = ("_index", "_items")

    def __init__(
        self,
        items: Mapping[str, str | UploadFile] | Iterable[tuple[str, str | UploadFile]] = (),
        **values: str | UploadFile,
    ) -> None:
        if isinstance(items, FormData):
            pairs = items.multi_items()
        elif isinstance(items, Mapping):
            pairs = list(items.items())
        else:
            pairs = list(items)
        pairs.extend(values.items())
        self._items = pairs
        self._index = dict(pairs)

    def __getitem__(self, key: str) -> str | UploadFile:
        return self._index[key]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def getlist(self, key: str) -> list[str | UploadFile]:
        """Every value sent under ``key``, in order (empty if none)."""
        return [value for name, value in self._items if name == key]

    def multi_items(self) -> list[tuple[str, str | UploadFile]]:
        """Every ``(name, value)`` pair, in the order the client sent them."""
        return list(self._items)

    async def close(self) -> None:
        """Closes every uploaded file in the form.

        Every file is closed even if closing one of them fails; the first
        failure is raised afterwards.
        """
        failure: Exception | None = None
        for _, value in self._items:
            if isinstance(value, UploadFile):
                try:
                    await value.close()
                except Exception as error:
                    failure = failure or error
        if failure is not None:
            raise failure

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FormData):
            return NotImplemented
        return sorted(self._items, key=_name) == sorted(other._items, key=_name)

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"


def _name(item: tuple[str, object]) -> str:
    return item[0]

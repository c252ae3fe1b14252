"""The two request-body routes' shared pieces: pydantic models and the upload's answer.

``POST /items`` takes an :class:`Item` (constraints on several fields, a
nested list of :class:`Tag`) and answers it through the response model
:class:`ItemOut`, which leaves out ``cost``: the framework must filter a
field of the returned object, as in FastAPI's ``UserIn`` / ``UserOut``
tutorial. ``POST /upload`` takes a file and a form field and answers what
it read. Every app that serves these routes uses these same definitions, so
each does the same validation and the same work.
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import BaseModel, Field


class Tag(BaseModel):
    name: str = Field(min_length=1, max_length=32)
    weight: float = Field(default=1.0, ge=0, le=100)


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    price: float = Field(gt=0)
    quantity: int = Field(default=1, ge=0, le=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    cost: float = Field(ge=0)  # internal: ItemOut leaves it out


class ItemOut(BaseModel):
    name: str
    description: str | None = None
    price: float
    quantity: int
    tags: list[Tag]


def upload_answer(
    filename: str | None, content_type: str | None, data: bytes | bytearray, note: str
) -> dict[str, Any]:
    """What ``POST /upload`` answers: the file's size and CRC-32, and the form field."""
    return {
        "filename": filename,
        "content_type": content_type,
        "size": len(data),
        "crc32": zlib.crc32(data),
        "note": note,
    }

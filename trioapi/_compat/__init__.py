"""What code written for FastAPI reads from ``fastapi._compat``: the pydantic version.

FastAPI keeps these constants in a private module that libraries and test
suites import anyway; trioapi offers the same few names at the same path.
Importing this module imports pydantic (it exists to describe it); nothing
in trioapi itself imports it.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic.version import VERSION as PYDANTIC_VERSION
from pydantic_core import PydanticUndefined

PYDANTIC_VERSION_MINOR_TUPLE: tuple[int, int] = (
    int(PYDANTIC_VERSION.split(".")[0]),
    int(PYDANTIC_VERSION.split(".")[1]),
)
"""pydantic's ``(major, minor)`` version, to branch on."""

PYDANTIC_V2 = PYDANTIC_VERSION_MINOR_TUPLE[0] == 2
"""True: trioapi supports pydantic 2 only."""

Undefined: Any = PydanticUndefined
"""pydantic's marker for "no value given"."""

__all__ = [
    "PYDANTIC_V2",
    "PYDANTIC_VERSION",
    "PYDANTIC_VERSION_MINOR_TUPLE",
    "Undefined",
    "pydantic",
]

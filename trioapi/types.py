"""Type aliases FastAPI code imports (``fastapi.types``)."""

from collections.abc import Callable
from typing import Any, TypeVar

from .encoders import IncEx as IncEx

DecoratedCallable = TypeVar("DecoratedCallable", bound=Callable[..., Any])

__all__ = ["DecoratedCallable", "IncEx"]

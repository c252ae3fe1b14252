"""Type aliases FastAPI code imports (``fastapi.types``), and ASGI's (``starlette.types``)."""

from collections.abc import Callable
from typing import Any, TypeVar

from ._http.requests import Message as Message
from ._http.requests import Receive as Receive
from ._http.requests import Scope as Scope
from ._http.requests import Send as Send
from .encoders import IncEx as IncEx
from .middleware._stack import ASGIApp as ASGIApp

DecoratedCallable = TypeVar("DecoratedCallable", bound=Callable[..., Any])

__all__ = ["ASGIApp", "DecoratedCallable", "IncEx", "Message", "Receive", "Scope", "Send"]

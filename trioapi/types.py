"""Type aliases FastAPI code imports (``fastapi.types``), and ASGI's (``starlette.types``)."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from .encoders import IncEx as IncEx

DecoratedCallable = TypeVar("DecoratedCallable", bound=Callable[..., Any])

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "DecoratedCallable", "IncEx", "Message", "Receive", "Scope", "Send"]

"""Routers and routes (FastAPI's ``fastapi.routing``)."""

from ._http.mounts import Mount as Mount
from ._http.mounts import NoMatchFound as NoMatchFound
from ._http.mounts import URLPath as URLPath
from ._http.routing import APIRoute as APIRoute
from ._http.routing import APIRouter as APIRouter
from ._http.routing import APIWebSocketRoute as APIWebSocketRoute
from ._http.streams import PING_INTERVAL

_PING_INTERVAL: float = PING_INTERVAL
"""Seconds between the keep-alive comments of an idle event stream, read as each stream starts.

Change it here (as FastAPI's tests do on ``fastapi.routing``) to change it for every stream.
"""

__all__ = ["APIRoute", "APIRouter", "APIWebSocketRoute", "Mount", "NoMatchFound", "URLPath"]

"""Routers and routes (FastAPI's ``fastapi.routing``)."""

from ._http.routing import APIRoute as APIRoute
from ._http.routing import APIRouter as APIRouter
from ._http.routing import APIWebSocketRoute as APIWebSocketRoute

__all__ = ["APIRoute", "APIRouter", "APIWebSocketRoute"]

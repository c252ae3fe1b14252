"""The request object (FastAPI's ``fastapi.requests``)."""

from ._http.requests import ClientDisconnect as ClientDisconnect
from ._http.requests import Request as Request

HTTPConnection = Request
"""What FastAPI code annotates to accept a request (websockets come later)."""

__all__ = ["ClientDisconnect", "HTTPConnection", "Request"]

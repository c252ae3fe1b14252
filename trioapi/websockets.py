"""Websockets (FastAPI's ``fastapi.websockets``).

``@app.websocket("/ws")`` registers an endpoint that takes a :class:`WebSocket`;
the socket closes with 1001 when the server shuts down, and background tasks
added during the session run once it is closed.
"""

from ._http.websockets import WebSocket as WebSocket
from ._http.websockets import WebSocketDisconnect as WebSocketDisconnect
from ._http.websockets import WebSocketState as WebSocketState

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketState"]

"""The default exception handlers, to reuse in your own (``fastapi.exception_handlers``)."""

from ._http.app import http_exception_handler as http_exception_handler
from ._http.app import (
    request_validation_exception_handler as request_validation_exception_handler,
)
from ._http.websockets import websocket_request_validation_exception_handler

__all__ = [
    "http_exception_handler",
    "request_validation_exception_handler",
    "websocket_request_validation_exception_handler",
]

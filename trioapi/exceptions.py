"""The errors FastAPI code raises and catches (FastAPI's ``fastapi.exceptions``)."""

from ._exceptions import EndpointContext as EndpointContext
from ._exceptions import HTTPException as HTTPException
from ._exceptions import RequestValidationError as RequestValidationError
from ._exceptions import ResponseValidationError as ResponseValidationError
from ._exceptions import TrioAPIDeprecationWarning as TrioAPIDeprecationWarning
from ._exceptions import TrioAPIError as TrioAPIError
from ._exceptions import ValidationException as ValidationException
from ._exceptions import WebSocketException as WebSocketException
from ._exceptions import WebSocketRequestValidationError as WebSocketRequestValidationError
from .encoders import PydanticV1NotSupportedError as PydanticV1NotSupportedError

__all__ = [
    "EndpointContext",
    "HTTPException",
    "PydanticV1NotSupportedError",
    "RequestValidationError",
    "ResponseValidationError",
    "TrioAPIDeprecationWarning",
    "TrioAPIError",
    "ValidationException",
    "WebSocketException",
    "WebSocketRequestValidationError",
]

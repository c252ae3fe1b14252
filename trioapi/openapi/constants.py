"""Constants of the OpenAPI document (FastAPI's ``fastapi.openapi.constants``)."""

from .._openapi.document import METHODS_WITH_BODY as _METHODS_WITH_BODY
from .._openapi.schemas import REF_PREFIX as REF_PREFIX
from .._openapi.schemas import REF_TEMPLATE as REF_TEMPLATE

METHODS_WITH_BODY: set[str] = set(_METHODS_WITH_BODY)
"""The methods whose operations may document a request body."""

__all__ = ["METHODS_WITH_BODY", "REF_PREFIX", "REF_TEMPLATE"]

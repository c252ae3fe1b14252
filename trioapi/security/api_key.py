"""API keys in a query parameter, a header or a cookie (``fastapi.security.api_key``).

Each scheme returns the key as a string. Without one (or with an empty one)
the request gets 401 ``{"detail": "Not authenticated"}`` with
``WWW-Authenticate: APIKey``, or, with ``auto_error=False``, the dependency
gets None. The schemes only read the key: checking it is the application's
job (a dependency on top of the scheme).
"""

from __future__ import annotations

from typing import Literal

from .._exceptions import HTTPException
from ..requests import HTTPConnection
from ..status import HTTP_401_UNAUTHORIZED
from .base import SecurityBase, SecuritySchemeModel

__all__ = ["APIKeyBase", "APIKeyCookie", "APIKeyHeader", "APIKeyQuery"]


class APIKeyBase(SecurityBase):
    """What the three API key schemes share; subclass one of them instead.

    Args:
        location: Where the key is sent: ``"query"``, ``"header"`` or ``"cookie"``.
        name: The query parameter's, header's or cookie's name.
        description: Describes the scheme in the OpenAPI document.
        scheme_name: The scheme's name in the OpenAPI document (the class name
            by default).
        auto_error: Answer 401 when the key is missing (the default); False
            hands the dependency None instead, for optional authentication.
    """

    def __init__(
        self,
        location: Literal["query", "header", "cookie"],
        name: str,
        description: str | None,
        scheme_name: str | None,
        auto_error: bool,
    ) -> None:
        # Enum members (FastAPI's ``APIKeyIn.header``) are accepted too.
        where = str(getattr(location, "value", location))
        self.model = SecuritySchemeModel.build(
            [("type", "apiKey"), ("description", description), ("in", where), ("name", name)]
        )
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_not_authenticated_error(self) -> HTTPException:
        """The error for a request without a key: 401 with an ``APIKey`` challenge.

        HTTP requires a ``WWW-Authenticate`` header on every 401, and API keys
        have no standard challenge, so the scheme names itself. Override it
        to answer differently.
        """
        return HTTPException(
            status_code=HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "APIKey"},
        )

    def check_api_key(self, api_key: str | None) -> str | None:
        """Returns the key, or handles its absence as ``auto_error`` says.

        Args:
            api_key: The value found in the request, if any.

        Raises:
            HTTPException: No key (or an empty one) and ``auto_error`` is set.
        """
        if api_key:
            return api_key
        if self.auto_error:
            raise self.make_not_authenticated_error()
        return None


class APIKeyQuery(APIKeyBase):
    """An API key in a query parameter: ``GET /items?api_key=...``.

    ``api_key: str = Depends(APIKeyQuery(name="api_key"))``.

    Args:
        name: The query parameter's name.
        scheme_name: The scheme's name in the OpenAPI document.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without a key (the default), or give None.
    """

    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__("query", name, description, scheme_name, auto_error)

    async def __call__(self, request: HTTPConnection) -> str | None:
        """Reads the key from the query string.

        Raises:
            HTTPException: 401, when the key is missing and ``auto_error`` is set.
        """
        return self.check_api_key(request.query_params.get(self.model["name"]))


class APIKeyHeader(APIKeyBase):
    """An API key in a request header: ``X-API-Key: ...``.

    ``key: str = Depends(APIKeyHeader(name="X-API-Key"))``; the name is
    matched without regard to case, as header names are.

    Args:
        name: The header's name.
        scheme_name: The scheme's name in the OpenAPI document.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without a key (the default), or give None.
    """

    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__("header", name, description, scheme_name, auto_error)

    async def __call__(self, request: HTTPConnection) -> str | None:
        """Reads the key from the header.

        Raises:
            HTTPException: 401, when the key is missing and ``auto_error`` is set.
        """
        return self.check_api_key(request.headers.get(self.model["name"]))


class APIKeyCookie(APIKeyBase):
    """An API key in a cookie: ``Cookie: session=...``.

    ``session: str = Depends(APIKeyCookie(name="session"))``.

    Args:
        name: The cookie's name.
        scheme_name: The scheme's name in the OpenAPI document.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without a key (the default), or give None.
    """

    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__("cookie", name, description, scheme_name, auto_error)

    async def __call__(self, request: HTTPConnection) -> str | None:
        """Reads the key from the cookie.

        Raises:
            HTTPException: 401, when the key is missing and ``auto_error`` is set.
        """
        return self.check_api_key(request.cookies.get(self.model["name"]))

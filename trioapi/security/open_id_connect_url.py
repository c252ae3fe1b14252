"""OpenID Connect, for the OpenAPI document (``fastapi.security.open_id_connect_url``)."""

from __future__ import annotations

from .._exceptions import HTTPException
from ..requests import HTTPConnection
from ..status import HTTP_401_UNAUTHORIZED
from .base import SecurityBase, SecuritySchemeModel

__all__ = ["OpenIdConnect"]


class OpenIdConnect(SecurityBase):
    """OpenID Connect: documents the provider's discovery URL; checking the token is yours.

    As a dependency it returns the ``Authorization`` header as sent (scheme
    included); it neither fetches the discovery document nor verifies the
    token. Subclass it to do so.

    Args:
        openIdConnectUrl: The provider's discovery URL
            (``.../.well-known/openid-configuration``).
        scheme_name: The scheme's name in the OpenAPI document (the class name
            by default).
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without an ``Authorization`` header (the
            default); False hands the dependency None instead.
    """

    def __init__(
        self,
        *,
        openIdConnectUrl: str,  # camelCase: FastAPI's (and OpenAPI's) spelling
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = SecuritySchemeModel.build(
            [
                ("type", "openIdConnect"),
                ("description", description),
                ("openIdConnectUrl", openIdConnectUrl),
            ]
        )
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_not_authenticated_error(self) -> HTTPException:
        """The error for a request without credentials: 401 with a ``Bearer`` challenge."""
        return HTTPException(
            status_code=HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def __call__(self, request: HTTPConnection) -> str | None:
        """Returns the ``Authorization`` header as sent.

        Raises:
            HTTPException: 401, when there is none and ``auto_error`` is set.
        """
        authorization = request.headers.get("Authorization")
        if authorization:
            return authorization
        if self.auto_error:
            raise self.make_not_authenticated_error()
        return None

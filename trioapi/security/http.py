"""HTTP authentication schemes: Basic, Bearer, Digest (FastAPI's ``fastapi.security.http``).

Each reads the ``Authorization`` header. Without usable credentials a request
gets 401 ``{"detail": "Not authenticated"}`` with a ``WWW-Authenticate``
challenge for the scheme (``Basic``, ``Basic realm="..."``, ``Bearer``,
``Digest``), or, with ``auto_error=False``, the dependency gets None. One
exception, as in FastAPI: a ``Basic`` header whose credentials cannot be
decoded is always answered with 401, whatever ``auto_error`` says.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal, final

import attrs

from .._exceptions import HTTPException
from ..requests import HTTPConnection
from ..status import HTTP_401_UNAUTHORIZED
from .base import SecurityBase, SecuritySchemeModel
from .utils import get_authorization_scheme_param

__all__ = [
    "HTTPAuthorizationCredentials",
    "HTTPBase",
    "HTTPBasic",
    "HTTPBasicCredentials",
    "HTTPBearer",
    "HTTPDigest",
]


@final
@attrs.frozen
class HTTPBasicCredentials:
    """What :class:`HTTPBasic` gives the dependency: the decoded user name and password.

    Attributes:
        username: Everything before the first ``:`` of the decoded credentials.
        password: Everything after it (it may contain ``:``).
    """

    username: str
    password: str

    def model_dump(self, *, mode: Literal["python", "json"] = "python") -> dict[str, str]:
        """The fields as a dict, as FastAPI's pydantic model gives them.

        Args:
            mode: Accepted for pydantic's signature; both modes give the same
                two strings.
        """
        del mode
        return {"username": self.username, "password": self.password}


@final
@attrs.frozen
class HTTPAuthorizationCredentials:
    """What :class:`HTTPBearer`, :class:`HTTPDigest` and :class:`HTTPBase` give the dependency.

    The ``Authorization`` header split at its first space:
    ``Authorization: Bearer abc123`` gives ``scheme="Bearer"`` (as sent) and
    ``credentials="abc123"``.
    """

    scheme: str
    credentials: str

    def model_dump(self, *, mode: Literal["python", "json"] = "python") -> dict[str, str]:
        """The fields as a dict, as FastAPI's pydantic model gives them.

        Args:
            mode: Accepted for pydantic's signature; both modes give the same
                two strings.
        """
        del mode
        return {"scheme": self.scheme, "credentials": self.credentials}


class HTTPBase(SecurityBase):
    """Any HTTP authentication scheme, by name; the base of the others.

    It accepts an ``Authorization`` header with a scheme and credentials,
    whatever the scheme, and returns them as :class:`HTTPAuthorizationCredentials`.

    Args:
        scheme: The scheme's name as the OpenAPI document writes it
            (``"bearer"``, ``"basic"``, or another registered one); its title
            case is the ``WWW-Authenticate`` challenge.
        scheme_name: The scheme's name in the OpenAPI document (the class name
            by default).
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without credentials (the default); False hands
            the dependency None instead, for optional authentication.
    """

    def __init__(
        self,
        *,
        scheme: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _http_model(scheme, description)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_authenticate_headers(self) -> dict[str, str]:
        """The headers of the 401 answer: the ``WWW-Authenticate`` challenge."""
        scheme: str = self.model["scheme"]
        return {"WWW-Authenticate": scheme.title()}

    def make_not_authenticated_error(self) -> HTTPException:
        """The error for a request without usable credentials (401)."""
        return HTTPException(
            status_code=HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers=self.make_authenticate_headers(),
        )

    def _credentials(
        self, request: HTTPConnection, expected: str | None = None
    ) -> HTTPAuthorizationCredentials | None:
        """The header's scheme and credentials, when it has both (and the scheme is ``expected``).

        Raises:
            HTTPException: 401, when they are missing or of another scheme and
                ``auto_error`` is set.
        """
        header = request.headers.get("Authorization")
        scheme, credentials = get_authorization_scheme_param(header)
        if not (scheme and credentials) or (expected is not None and scheme.lower() != expected):
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        """Reads the ``Authorization`` header.

        Raises:
            HTTPException: 401, when the header is missing or has no credentials
                and ``auto_error`` is set.
        """
        return self._credentials(request)


class HTTPBasic(HTTPBase):
    """HTTP Basic authentication (RFC 7617): a user name and a password.

    ``credentials: HTTPBasicCredentials = Depends(HTTPBasic())``. The header
    must use the ``Basic`` scheme (in any case) with base64 of
    ``username:password`` in ASCII.

    Args:
        scheme_name: The scheme's name in the OpenAPI document.
        realm: Named in the challenge: ``WWW-Authenticate: Basic realm="..."``.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without Basic credentials (the default), or
            give None. Credentials that are sent but cannot be decoded get
            401 either way.
    """

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        realm: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="basic", scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        self.realm = realm

    def make_authenticate_headers(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` challenge: ``Basic``, with the realm when there is one."""
        if self.realm:
            return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}
        return {"WWW-Authenticate": "Basic"}

    # The credentials of Basic are a user and a password, not a token: the
    # return type differs from the base class's on purpose (FastAPI's too).
    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        """Reads and decodes the Basic credentials.

        Raises:
            HTTPException: 401, when there are no Basic credentials and
                ``auto_error`` is set, or when they are not base64 of ASCII
                text with a ``:``.
        """
        header = request.headers.get("Authorization")
        scheme, encoded = get_authorization_scheme_param(header)
        if not header or scheme.lower() != "basic":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        try:
            decoded = base64.b64decode(encoded).decode("ascii")
        except (binascii.Error, ValueError) as error:  # UnicodeDecodeError is a ValueError
            raise self.make_not_authenticated_error() from error
        username, colon, password = decoded.partition(":")
        if not colon:
            raise self.make_not_authenticated_error()
        return HTTPBasicCredentials(username=username, password=password)


class HTTPBearer(HTTPBase):
    """HTTP Bearer tokens: ``Authorization: Bearer <token>``.

    ``credentials: HTTPAuthorizationCredentials = Depends(HTTPBearer())``;
    ``credentials.credentials`` is the token. The scheme is matched without
    regard to case.

    Args:
        bearerFormat: How the token is made (``"JWT"``, say), for the OpenAPI
            document.
        scheme_name: The scheme's name in the OpenAPI document.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without a bearer token (the default), or give None.
    """

    def __init__(
        self,
        *,
        bearerFormat: str | None = None,  # camelCase: FastAPI's (and OpenAPI's) spelling
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="bearer", scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        self.model = _http_model("bearer", description, bearer_format=bearerFormat)

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        """Reads the bearer token.

        Raises:
            HTTPException: 401, when there is no token, or the header uses
                another scheme, and ``auto_error`` is set.
        """
        return self._credentials(request, "bearer")


class HTTPDigest(HTTPBase):
    """HTTP Digest authentication (RFC 7616), for the OpenAPI document only.

    It checks that the header uses the ``Digest`` scheme and returns its
    parameters unparsed in :class:`HTTPAuthorizationCredentials`; verifying
    the digest is up to the application (subclass it and override
    ``__call__``).

    Args:
        scheme_name: The scheme's name in the OpenAPI document.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without Digest credentials (the default), or give None.
    """

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="digest", scheme_name=scheme_name, description=description, auto_error=auto_error
        )

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        """Reads the Digest credentials.

        Raises:
            HTTPException: 401, when there are none, or the header uses another
                scheme, and ``auto_error`` is set.
        """
        return self._credentials(request, "digest")


def _http_model(
    scheme: str, description: str | None, *, bearer_format: str | None = None
) -> SecuritySchemeModel:
    return SecuritySchemeModel.build(
        [
            ("type", "http"),
            ("description", description),
            ("scheme", scheme),
            ("bearerFormat", bearer_format),
        ]
    )

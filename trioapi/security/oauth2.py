"""OAuth2: bearer tokens, the password flow's form, scopes (``fastapi.security.oauth2``).

- :class:`OAuth2PasswordBearer` and :class:`OAuth2AuthorizationCodeBearer`
  return the token of an ``Authorization: Bearer <token>`` header;
  :class:`OAuth2` returns the whole header, whatever its scheme. Without one
  the request gets 401 ``{"detail": "Not authenticated"}`` with
  ``WWW-Authenticate: Bearer``, or, with ``auto_error=False``, the
  dependency gets None. Checking the token is the application's job.
- :class:`OAuth2PasswordRequestForm` (``Depends()``) reads the password
  flow's login form; :class:`OAuth2PasswordRequestFormStrict` also requires
  ``grant_type=password``.
- :class:`SecurityScopes` tells a dependency the scopes that
  ``Security(..., scopes=[...])`` declared on the way to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from .._exceptions import HTTPException
from .._http.markers import Form
from .._http.markers import SecurityScopes as SecurityScopes
from ..requests import HTTPConnection
from ..status import HTTP_401_UNAUTHORIZED
from .base import SecurityBase, SecuritySchemeModel
from .utils import get_authorization_scheme_param

__all__ = [
    "OAuth2",
    "OAuth2AuthorizationCodeBearer",
    "OAuth2PasswordBearer",
    "OAuth2PasswordRequestForm",
    "OAuth2PasswordRequestFormStrict",
    "SecurityScopes",
]


class OAuth2PasswordRequestForm:
    """The login form of OAuth2's password flow, as a dependency class.

    ``form: Annotated[OAuth2PasswordRequestForm, Depends()]`` reads these
    fields from an urlencoded or multipart body (OAuth2 says the token
    request is a form, not JSON). A missing ``username`` or ``password``, or
    a ``grant_type`` other than ``password``, is a 422 like any other invalid
    form field. ``grant_type`` may be left out; use
    :class:`OAuth2PasswordRequestFormStrict` to require it.

    Args:
        grant_type: ``"password"`` when sent.
        username: The user's name (OAuth2 fixes the field's name).
        password: The user's password.
        scope: Scopes separated by spaces; read them as the list ``scopes``.
        client_id: The client's id, when it is sent in the form (OAuth2
            prefers HTTP Basic for it).
        client_secret: The client's secret, likewise.

    Attributes:
        scopes: ``scope`` split at whitespace: ``"items:read me"`` gives
            ``["items:read", "me"]``.
    """

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form()],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        self.grant_type = grant_type
        self.username = username
        self.password = password
        self.scopes = scope.split()
        self.client_id = client_id
        self.client_secret = client_secret


class OAuth2PasswordRequestFormStrict(OAuth2PasswordRequestForm):
    """:class:`OAuth2PasswordRequestForm` that requires ``grant_type=password``, as OAuth2 does.

    Args:
        grant_type: Must be ``"password"``.
        username: The user's name.
        password: The user's password.
        scope: Scopes separated by spaces; read them as the list ``scopes``.
        client_id: The client's id, when it is sent in the form.
        client_secret: The client's secret, likewise.
    """

    # The fields keep FastAPI's order and may be passed by position, as there.
    def __init__(
        self,
        grant_type: Annotated[str, Form(pattern="^password$")],
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form()] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


# The fields each OAuth2 flow requires, in the OpenAPI Security Scheme Object.
_FLOW_URLS = {
    "implicit": ("authorizationUrl",),
    "password": ("tokenUrl",),
    "clientCredentials": ("tokenUrl",),
    "authorizationCode": ("authorizationUrl", "tokenUrl"),
}


def _flows_model(flows: Any) -> SecuritySchemeModel:
    """OAuth2's ``flows`` as OpenAPI writes them: each flow with its ``scopes`` (``{}`` if none)."""
    if flows is None:
        return SecuritySchemeModel()
    if not isinstance(flows, Mapping):
        # A model object (pydantic, attrs, dataclass): its fields, by alias.
        from ..encoders import jsonable_encoder

        flows = jsonable_encoder(flows, by_alias=True, exclude_none=True)
        if not isinstance(flows, Mapping):
            msg = f"OAuth2 flows must be a mapping of flow name to flow, not {flows!r}"
            raise TypeError(msg)
    items: list[tuple[str, Any]] = []
    for name, flow in flows.items():
        if flow is None:
            continue
        required = _FLOW_URLS.get(name)
        if required is None:  # an extension: kept as given
            items.append((name, flow))
            continue
        if not isinstance(flow, Mapping):
            from ..encoders import jsonable_encoder

            flow = jsonable_encoder(flow, by_alias=True, exclude_none=True)
        missing = [url for url in required if not flow.get(url)]
        if missing:
            msg = f"the OAuth2 {name!r} flow needs {' and '.join(missing)} (got {dict(flow)!r})"
            raise ValueError(msg)
        fields = {"refreshUrl": flow.get("refreshUrl"), "scopes": dict(flow.get("scopes") or {})}
        fields.update((key, value) for key, value in flow.items() if key not in fields)
        items.append((name, fields))
    return SecuritySchemeModel.build(items)


class OAuth2(SecurityBase):
    """Any OAuth2 flow; the base of the bearer schemes.

    As a dependency it returns the whole ``Authorization`` header (scheme
    included), whatever its scheme: subclass it to check more.

    Args:
        flows: The flows, as OpenAPI's OAuth Flows Object:
            ``{"password": {"tokenUrl": "token", "scopes": {"me": "Read me"}}}``
            (``implicit``, ``password``, ``clientCredentials``,
            ``authorizationCode``); a model object with those fields works too.
        scheme_name: The scheme's name in the OpenAPI document (the class name
            by default).
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without an ``Authorization`` header (the
            default); False hands the dependency None instead.

    Raises:
        ValueError: A flow lacks the URL OAuth2 requires for it.
    """

    def __init__(
        self,
        *,
        flows: Mapping[str, Any] | Any = None,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = SecuritySchemeModel.build(
            [("type", "oauth2"), ("description", description), ("flows", _flows_model(flows))]
        )
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_not_authenticated_error(self) -> HTTPException:
        """The error for a request without credentials: 401 with a ``Bearer`` challenge.

        OAuth2 defines no challenge of its own; bearer tokens are what
        OAuth2 servers hand out in practice. Override it for another scheme.
        """
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

    def _bearer_token(self, request: HTTPConnection) -> str | None:
        """The token of a ``Bearer`` header (possibly empty: ``Authorization: Bearer``)."""
        authorization = request.headers.get("Authorization")
        scheme, token = get_authorization_scheme_param(authorization)
        if authorization and scheme.lower() == "bearer":
            return token
        if self.auto_error:
            raise self.make_not_authenticated_error()
        return None


class OAuth2PasswordBearer(OAuth2):
    """The password flow: the client logs in at ``tokenUrl`` and sends the token it got.

    ``token: str = Depends(OAuth2PasswordBearer(tokenUrl="token"))`` gives the
    token of ``Authorization: Bearer <token>`` (scheme in any case).

    Args:
        tokenUrl: Where the client gets a token: the path operation that reads
            an :class:`OAuth2PasswordRequestForm` (relative URLs are relative
            to the docs page).
        scheme_name: The scheme's name in the OpenAPI document.
        scopes: The scopes the flow offers, name to description.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without a bearer token (the default), or give None.
        refreshUrl: Where a token can be refreshed.
    """

    def __init__(
        self,
        tokenUrl: str,  # camelCase: FastAPI's (and OpenAPI's) spelling
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
        refreshUrl: str | None = None,
    ) -> None:
        flow = {"tokenUrl": tokenUrl, "refreshUrl": refreshUrl, "scopes": scopes or {}}
        super().__init__(
            flows={"password": flow},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )

    async def __call__(self, request: HTTPConnection) -> str | None:
        """Returns the bearer token.

        Raises:
            HTTPException: 401, when there is no ``Bearer`` header and
                ``auto_error`` is set.
        """
        return self._bearer_token(request)


class OAuth2AuthorizationCodeBearer(OAuth2):
    """The authorization code flow: a login at ``authorizationUrl``, a token from ``tokenUrl``.

    As a dependency it gives the token of ``Authorization: Bearer <token>``.

    Args:
        authorizationUrl: Where the user authorizes the client.
        tokenUrl: Where the client exchanges the code for a token.
        refreshUrl: Where a token can be refreshed.
        scheme_name: The scheme's name in the OpenAPI document.
        scopes: The scopes the flow offers, name to description.
        description: Describes the scheme in the OpenAPI document.
        auto_error: Answer 401 without a bearer token (the default), or give None.
    """

    def __init__(
        self,
        authorizationUrl: str,  # camelCase: FastAPI's (and OpenAPI's) spelling
        tokenUrl: str,
        refreshUrl: str | None = None,
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        flow = {
            "authorizationUrl": authorizationUrl,
            "tokenUrl": tokenUrl,
            "refreshUrl": refreshUrl,
            "scopes": scopes or {},
        }
        super().__init__(
            flows={"authorizationCode": flow},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )

    async def __call__(self, request: HTTPConnection) -> str | None:
        """Returns the bearer token.

        Raises:
            HTTPException: 401, when there is no ``Bearer`` header and
                ``auto_error`` is set.
        """
        return self._bearer_token(request)

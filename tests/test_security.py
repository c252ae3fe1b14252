"""Security schemes: what each reads, when it answers 401, what it documents.

Every scheme runs as a dependency of a real app, through the in-process
client (one test through the sync ``trioapi.testclient.TestClient``).
Annotations are evaluated eagerly (no ``from __future__ import
annotations``), so endpoints may name schemes local to a test.
"""

import base64
import subprocess
import sys
from typing import Annotated, Any

import attrs
import pytest

from trioapi import Depends, HTTPException, Security, TrioAPI
from trioapi.requests import HTTPConnection
from trioapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
    OAuth2,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    OpenIdConnect,
    SecurityScopes,
)
from trioapi.security.api_key import APIKeyBase
from trioapi.security.base import SecurityBase, SecuritySchemeModel
from trioapi.security.http import HTTPBase
from trioapi.security.utils import get_authorization_scheme_param
from trioapi.testing import TestClient

NOT_AUTHENTICATED = {"detail": "Not authenticated"}


def scheme_app(scheme: Any, *, marker: Any = Security) -> TrioAPI:
    """An app whose ``GET /`` answers ``{"value": <what the scheme returned>}``."""
    app = TrioAPI()

    # No return annotation: credentials are attrs objects, which pydantic
    # cannot dump inside a ``dict[str, Any]`` response model.
    @app.get("/")
    async def read(value: Annotated[Any, marker(scheme)]):  # type: ignore[no-untyped-def]
        return {"value": value}

    return app


async def get(app: TrioAPI, **kwargs: Any) -> tuple[int, Any, str | None]:
    """``GET /``: status, JSON body and ``WWW-Authenticate``."""
    async with TestClient(app) as client:
        response = await client.get("/", **kwargs)
    return response.status_code, response.json(), response.headers.get("www-authenticate")


def authorization(value: str) -> dict[str, str]:
    return {"headers": {"Authorization": value}}


def basic(text: str) -> dict[str, str]:
    """The ``Authorization`` header of Basic credentials (``user:password``)."""
    return authorization("Basic " + base64.b64encode(text.encode("utf-8")).decode("ascii"))


# --- get_authorization_scheme_param -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("", "")),
        ("", ("", "")),
        ("Bearer", ("Bearer", "")),
        ("Bearer abc", ("Bearer", "abc")),
        ("Bearer   abc  ", ("Bearer", "abc")),
        ("Digest a=1, b=2", ("Digest", "a=1, b=2")),
        (" Bearer abc", ("", "Bearer abc")),
    ],
)
def test_the_authorization_header_splits_at_its_first_space(
    value: str | None, expected: tuple[str, str]
) -> None:
    assert get_authorization_scheme_param(value) == expected


# --- API keys -----------------------------------------------------------------------

API_KEY_CASES = [
    pytest.param(
        APIKeyHeader, {"headers": {"X-Key": "secret"}}, {"headers": {"X-Key": ""}}, id="header"
    ),
    pytest.param(
        APIKeyQuery, {"params": {"X-Key": "secret"}}, {"params": {"X-Key": ""}}, id="query"
    ),
    pytest.param(
        APIKeyCookie,
        {"cookies": {"X-Key": "secret"}},
        {"headers": {"Cookie": "X-Key="}},
        id="cookie",
    ),
]


@pytest.mark.parametrize(("cls", "present", "empty"), API_KEY_CASES)
async def test_an_api_key_scheme_returns_the_key(
    cls: type[APIKeyBase], present: dict[str, Any], empty: dict[str, Any]
) -> None:
    assert await get(scheme_app(cls(name="X-Key")), **present) == (200, {"value": "secret"}, None)


@pytest.mark.parametrize(("cls", "present", "empty"), API_KEY_CASES)
async def test_a_missing_or_empty_api_key_is_401_with_an_apikey_challenge(
    cls: type[APIKeyBase], present: dict[str, Any], empty: dict[str, Any]
) -> None:
    app = scheme_app(cls(name="X-Key"))
    assert await get(app) == (401, NOT_AUTHENTICATED, "APIKey")
    assert await get(app, **empty) == (401, NOT_AUTHENTICATED, "APIKey")


@pytest.mark.parametrize(("cls", "present", "empty"), API_KEY_CASES)
async def test_an_optional_api_key_scheme_gives_none_without_a_key(
    cls: type[APIKeyBase], present: dict[str, Any], empty: dict[str, Any]
) -> None:
    app = scheme_app(cls(name="X-Key", auto_error=False))
    assert await get(app) == (200, {"value": None}, None)
    assert await get(app, **empty) == (200, {"value": None}, None)
    assert await get(app, **present) == (200, {"value": "secret"}, None)


async def test_an_api_key_header_is_found_whatever_the_case_of_its_name() -> None:
    app = scheme_app(APIKeyHeader(name="X-API-Key"), marker=Depends)
    assert await get(app, headers={"x-api-key": "k"}) == (200, {"value": "k"}, None)


async def test_an_api_key_in_the_wrong_place_is_not_found() -> None:
    app = scheme_app(APIKeyQuery(name="key"))
    assert await get(app, headers={"key": "k"}, cookies={"key": "k"}) == (
        401,
        NOT_AUTHENTICATED,
        "APIKey",
    )


# --- HTTP Basic -----------------------------------------------------------------------


async def test_http_basic_decodes_the_user_and_password() -> None:
    app = scheme_app(HTTPBasic())
    expected = {"value": {"username": "john", "password": "se:cret"}}
    assert await get(app, **basic("john:se:cret")) == (200, expected, None)


async def test_http_basic_matches_its_scheme_in_any_case_and_allows_empty_fields() -> None:
    app = scheme_app(HTTPBasic())
    encoded = base64.b64encode(b":").decode()
    status, body, _ = await get(app, **authorization(f"bAsIc   {encoded}  "))
    assert (status, body) == (200, {"value": {"username": "", "password": ""}})


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no header"),
        pytest.param(authorization("Bearer token"), id="another scheme"),
        pytest.param(authorization("Basic"), id="no credentials"),
    ],
)
async def test_http_basic_without_basic_credentials_is_401(headers: dict[str, Any]) -> None:
    assert await get(scheme_app(HTTPBasic()), **headers) == (401, NOT_AUTHENTICATED, "Basic")


async def test_http_basic_names_its_realm_in_the_challenge() -> None:
    app = scheme_app(HTTPBasic(realm="simple"))
    assert await get(app) == (401, NOT_AUTHENTICATED, 'Basic realm="simple"')


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(authorization("Basic notabase64token"), id="not base64"),
        pytest.param(basic("johnsecret"), id="no colon"),
        pytest.param(basic("jöhn:secret"), id="not ascii"),
    ],
)
@pytest.mark.parametrize("auto_error", [True, False])
async def test_undecodable_basic_credentials_are_401_even_when_optional(
    headers: dict[str, Any], auto_error: bool
) -> None:
    app = scheme_app(HTTPBasic(auto_error=auto_error, realm="r"))
    assert await get(app, **headers) == (401, NOT_AUTHENTICATED, 'Basic realm="r"')


async def test_optional_http_basic_gives_none_without_basic_credentials() -> None:
    app = scheme_app(HTTPBasic(auto_error=False))
    assert await get(app) == (200, {"value": None}, None)
    assert await get(app, **authorization("Bearer token")) == (200, {"value": None}, None)
    assert await get(app, **basic("a:b")) == (
        200,
        {"value": {"username": "a", "password": "b"}},
        None,
    )


# --- HTTP Bearer, Digest and any scheme ------------------------------------------------


async def test_http_bearer_returns_the_scheme_as_sent_and_the_token() -> None:
    app = scheme_app(HTTPBearer())
    expected = {"value": {"scheme": "bEaReR", "credentials": "abc.def"}}
    assert await get(app, **authorization("bEaReR  abc.def ")) == (200, expected, None)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no header"),
        pytest.param(authorization("Bearer"), id="no token"),
        pytest.param(authorization("Basic abc"), id="another scheme"),
    ],
)
async def test_http_bearer_without_a_bearer_token_is_401(headers: dict[str, Any]) -> None:
    assert await get(scheme_app(HTTPBearer()), **headers) == (401, NOT_AUTHENTICATED, "Bearer")


async def test_optional_http_bearer_gives_none_without_a_bearer_token() -> None:
    app = scheme_app(HTTPBearer(auto_error=False))
    assert await get(app) == (200, {"value": None}, None)
    assert await get(app, **authorization("Basic abc")) == (200, {"value": None}, None)
    assert await get(app, **authorization("Bearer")) == (200, {"value": None}, None)


async def test_http_digest_returns_the_parameters_unparsed() -> None:
    app = scheme_app(HTTPDigest())
    expected = {"value": {"scheme": "Digest", "credentials": 'username="u", nonce="n"'}}
    assert await get(app, **authorization('Digest username="u", nonce="n"')) == (
        200,
        expected,
        None,
    )


@pytest.mark.parametrize("headers", [{}, authorization("Bearer abc"), authorization("Digest")])
async def test_http_digest_without_digest_credentials_is_401(headers: dict[str, Any]) -> None:
    assert await get(scheme_app(HTTPDigest()), **headers) == (401, NOT_AUTHENTICATED, "Digest")
    optional = scheme_app(HTTPDigest(auto_error=False))
    assert await get(optional, **headers) == (200, {"value": None}, None)


async def test_http_base_accepts_any_scheme_and_challenges_with_its_own() -> None:
    app = scheme_app(HTTPBase(scheme="other"))
    expected = {"value": {"scheme": "Whatever", "credentials": "x"}}
    assert await get(app, **authorization("Whatever x")) == (200, expected, None)
    assert await get(app, **authorization("Whatever")) == (401, NOT_AUTHENTICATED, "Other")
    assert await get(app) == (401, NOT_AUTHENTICATED, "Other")
    optional = scheme_app(HTTPBase(scheme="other", auto_error=False))
    assert await get(optional) == (200, {"value": None}, None)


async def test_a_subclass_can_call_the_scheme_with_request_by_keyword() -> None:
    class LoggingBearer(HTTPBearer):
        async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
            found = await super().__call__(request=request)
            return None if found is None else attrs.evolve(found, credentials="seen")

    app = scheme_app(LoggingBearer())
    expected = {"value": {"scheme": "Bearer", "credentials": "seen"}}
    assert await get(app, **authorization("Bearer abc")) == (200, expected, None)
    assert await get(app) == (401, NOT_AUTHENTICATED, "Bearer")


# --- OAuth2 and OpenID Connect ----------------------------------------------------------


@pytest.mark.parametrize(
    "scheme",
    [
        pytest.param(OAuth2(), id="OAuth2"),
        pytest.param(OpenIdConnect(openIdConnectUrl="/conf"), id="OpenIdConnect"),
    ],
)
async def test_oauth2_and_openid_connect_return_the_whole_header(scheme: Any) -> None:
    app = scheme_app(scheme)
    assert await get(app, **authorization("Other tok")) == (200, {"value": "Other tok"}, None)
    assert await get(app) == (401, NOT_AUTHENTICATED, "Bearer")
    scheme.auto_error = False
    assert await get(scheme_app(scheme)) == (200, {"value": None}, None)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda **kw: OAuth2PasswordBearer(tokenUrl="token", **kw), id="password"),
        pytest.param(
            lambda **kw: OAuth2AuthorizationCodeBearer("authorize", "token", **kw),
            id="authorization code",
        ),
    ],
)
async def test_an_oauth2_bearer_returns_the_token_of_a_bearer_header(make: Any) -> None:
    app = scheme_app(make())
    assert await get(app, **authorization("bearer tok.en")) == (200, {"value": "tok.en"}, None)
    # FastAPI's rule: a Bearer header with no token gives an empty token, not a 401.
    assert await get(app, **authorization("Bearer")) == (200, {"value": ""}, None)
    assert await get(app, **authorization("Basic tok")) == (401, NOT_AUTHENTICATED, "Bearer")
    assert await get(app) == (401, NOT_AUTHENTICATED, "Bearer")
    optional = scheme_app(make(auto_error=False))
    assert await get(optional) == (200, {"value": None}, None)
    assert await get(optional, **authorization("Basic tok")) == (200, {"value": None}, None)


async def test_security_scopes_reach_the_dependency_behind_an_oauth2_bearer() -> None:
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"items": "Read items", "me": "Me"})
    granted = {"tok-me": ["me"], "tok-all": ["me", "items"]}

    async def current_user(
        security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]
    ) -> str:
        challenge = f'Bearer scope="{security_scopes.scope_str}"'
        for scope in security_scopes.scopes:
            if scope not in granted.get(token, []):
                raise HTTPException(403, "Not enough permissions", {"WWW-Authenticate": challenge})
        return token

    app = TrioAPI()

    @app.get("/items")
    async def items(user: Annotated[str, Security(current_user, scopes=["items"])]) -> str:
        return user

    @app.get("/me")
    async def me(user: Annotated[str, Security(current_user, scopes=["me"])]) -> str:
        return user

    async with TestClient(app) as client:
        all_items = await client.get("/items", headers={"Authorization": "Bearer tok-all"})
        me_only = await client.get("/items", headers={"Authorization": "Bearer tok-me"})
        me_page = await client.get("/me", headers={"Authorization": "Bearer tok-me"})
        anonymous = await client.get("/me")
    assert (all_items.status_code, all_items.json()) == (200, "tok-all")
    assert (me_only.status_code, me_only.json()) == (403, {"detail": "Not enough permissions"})
    assert me_only.headers["www-authenticate"] == 'Bearer scope="items"'
    assert (me_page.status_code, me_page.json()) == (200, "tok-me")
    assert (anonymous.status_code, anonymous.headers["www-authenticate"]) == (401, "Bearer")


# --- the password flow's form -------------------------------------------------------------


def form_app() -> TrioAPI:
    app = TrioAPI()

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Any:
        return form

    @app.post("/strict")
    async def strict(form: Annotated[OAuth2PasswordRequestFormStrict, Depends()]) -> Any:
        return form

    return app


def form_result(**fields: Any) -> dict[str, Any]:
    base = {"grant_type": None, "scopes": [], "client_id": None, "client_secret": None}
    return {**base, **fields}


def missing(name: str) -> dict[str, Any]:
    return {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": None}


def pattern_mismatch(value: str) -> dict[str, Any]:
    return {
        "type": "string_pattern_mismatch",
        "loc": ["body", "grant_type"],
        "msg": "String should match pattern '^password$'",
        "input": value,
        "ctx": {"pattern": "^password$"},
    }


async def test_the_password_form_reads_an_urlencoded_body_and_splits_the_scopes() -> None:
    data = {
        "username": "john",
        "password": "secret",
        "scope": " items:read  me\tprofile ",
        "client_id": "app",
        "client_secret": "s3",
    }
    async with TestClient(form_app()) as client:
        response = await client.post("/token", data=data)
    assert response.status_code == 200, response.text
    assert response.json() == form_result(
        username="john",
        password="secret",
        scopes=["items:read", "me", "profile"],
        client_id="app",
        client_secret="s3",
    )


async def test_the_password_form_reads_a_multipart_body() -> None:
    boundary = "xyz"
    parts = [("username", "john"), ("password", "secret"), ("grant_type", "password")]
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in parts
        )
        + f"--{boundary}--\r\n"
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    async with TestClient(form_app()) as client:
        response = await client.post("/token", content=body.encode(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == form_result(grant_type="password", username="john", password="secret")


async def test_the_password_form_requires_the_user_and_password_but_not_the_grant_type() -> None:
    async with TestClient(form_app()) as client:
        empty = await client.post("/token")
        json_body = await client.post("/token", json={"username": "john", "password": "secret"})
        no_grant = await client.post("/token", data={"username": "john", "password": "p"})
    assert (empty.status_code, empty.json()) == (
        422,
        {"detail": [missing("username"), missing("password")]},
    )
    assert json_body.json() == {"detail": [missing("username"), missing("password")]}
    assert (no_grant.status_code, no_grant.json()) == (
        200,
        form_result(username="john", password="p"),
    )


@pytest.mark.parametrize("path", ["/token", "/strict"])
@pytest.mark.parametrize("grant_type", ["passwordx", "xpassword", "client_credentials"])
async def test_a_grant_type_other_than_password_is_422(path: str, grant_type: str) -> None:
    data = {"username": "john", "password": "secret", "grant_type": grant_type}
    async with TestClient(form_app()) as client:
        response = await client.post(path, data=data)
    assert (response.status_code, response.json()) == (
        422,
        {"detail": [pattern_mismatch(grant_type)]},
    )


async def test_the_strict_password_form_requires_the_grant_type() -> None:
    async with TestClient(form_app()) as client:
        empty = await client.post("/strict")
        no_grant = await client.post("/strict", data={"username": "john", "password": "p"})
        ok = await client.post(
            "/strict", data={"username": "john", "password": "p", "grant_type": "password"}
        )
    assert empty.json() == {
        "detail": [missing("grant_type"), missing("username"), missing("password")]
    }
    assert (no_grant.status_code, no_grant.json()) == (422, {"detail": [missing("grant_type")]})
    assert (ok.status_code, ok.json()) == (
        200,
        form_result(grant_type="password", username="john", password="p"),
    )


def test_the_password_form_is_a_plain_class_that_can_be_built_directly() -> None:
    form = OAuth2PasswordRequestFormStrict("password", "john", "p", "a b")
    assert (form.grant_type, form.username, form.password, form.scopes) == (
        "password",
        "john",
        "p",
        ["a", "b"],
    )
    assert vars(form) == {
        "grant_type": "password",
        "username": "john",
        "password": "p",
        "scopes": ["a", "b"],
        "client_id": None,
        "client_secret": None,
    }


# --- credentials objects -----------------------------------------------------------------


def test_credentials_are_values_that_dump_like_fastapis_models() -> None:
    basic_credentials = HTTPBasicCredentials(username="u", password="p")
    token = HTTPAuthorizationCredentials(scheme="Bearer", credentials="t")
    assert basic_credentials == HTTPBasicCredentials(username="u", password="p")
    assert basic_credentials.model_dump() == {"username": "u", "password": "p"}
    assert token.model_dump(mode="json") == {"scheme": "Bearer", "credentials": "t"}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        token.credentials = "other"  # type: ignore[misc]


# --- what a scheme documents ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "name", "model"),
    [
        (
            APIKeyHeader(name="X-Key", description="A key"),
            "APIKeyHeader",
            {"type": "apiKey", "description": "A key", "in": "header", "name": "X-Key"},
        ),
        (APIKeyQuery(name="k"), "APIKeyQuery", {"type": "apiKey", "in": "query", "name": "k"}),
        (
            APIKeyCookie(name="s", scheme_name="Session"),
            "Session",
            {"type": "apiKey", "in": "cookie", "name": "s"},
        ),
        (HTTPBasic(realm="r"), "HTTPBasic", {"type": "http", "scheme": "basic"}),
        (
            HTTPBearer(bearerFormat="JWT", description="d"),
            "HTTPBearer",
            {"type": "http", "description": "d", "scheme": "bearer", "bearerFormat": "JWT"},
        ),
        (HTTPDigest(), "HTTPDigest", {"type": "http", "scheme": "digest"}),
        (HTTPBase(scheme="Other"), "HTTPBase", {"type": "http", "scheme": "Other"}),
        (OAuth2(), "OAuth2", {"type": "oauth2", "flows": {}}),
        (
            OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "Me"}, refreshUrl="refresh"),
            "OAuth2PasswordBearer",
            {
                "type": "oauth2",
                "flows": {
                    "password": {
                        "refreshUrl": "refresh",
                        "scopes": {"me": "Me"},
                        "tokenUrl": "token",
                    }
                },
            },
        ),
        (
            OAuth2AuthorizationCodeBearer("auth", "token", scheme_name="Code", description="d"),
            "Code",
            {
                "type": "oauth2",
                "description": "d",
                "flows": {
                    "authorizationCode": {
                        "scopes": {},
                        "authorizationUrl": "auth",
                        "tokenUrl": "token",
                    }
                },
            },
        ),
        (
            OpenIdConnect(openIdConnectUrl="/conf"),
            "OpenIdConnect",
            {"type": "openIdConnect", "openIdConnectUrl": "/conf"},
        ),
    ],
)
def test_a_scheme_documents_itself_as_an_openapi_security_scheme(
    scheme: SecurityBase, name: str, model: dict[str, Any]
) -> None:
    assert isinstance(scheme, SecurityBase)
    assert scheme.scheme_name == name
    assert isinstance(scheme.model, SecuritySchemeModel)
    assert scheme.model == model


def test_a_scheme_model_reads_as_fastapis_models_do() -> None:
    key = APIKeyHeader(name="X-Key").model
    assert (key.type_, key.in_, key.name, key.description) == ("apiKey", "header", "X-Key", None)
    flows = OAuth2PasswordBearer(tokenUrl="token").model.flows
    assert (flows.password.tokenUrl, flows.password.refreshUrl, flows.implicit) == (
        "token",
        None,
        None,
    )
    assert flows.password.scopes == {}
    with pytest.raises(AttributeError, match="no field 'tokenurl'"):
        _ = flows.password.tokenurl


def test_oauth2_flows_are_completed_as_openapi_writes_them() -> None:
    @attrs.frozen
    class Flows:
        clientCredentials: dict[str, Any]  # OpenAPI's spelling

    model = OAuth2(
        flows={
            "password": {"tokenUrl": "t", "x-extra": 1},
            "implicit": None,
            "x-custom": {"a": None},
        }
    ).model
    assert model["flows"] == {
        "password": {"scopes": {}, "tokenUrl": "t", "x-extra": 1},
        "x-custom": {},
    }
    from_object = OAuth2(flows=Flows(clientCredentials={"tokenUrl": "t"})).model
    assert from_object["flows"] == {"clientCredentials": {"scopes": {}, "tokenUrl": "t"}}


def test_an_oauth2_flow_without_its_url_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="'authorizationCode' flow needs authorizationUrl"):
        OAuth2(flows={"authorizationCode": {"tokenUrl": "t"}})


# --- FastAPI's sync client, and imports ------------------------------------------------------


def test_schemes_work_through_the_sync_test_client() -> None:
    from trioapi.testclient import TestClient as SyncTestClient

    app = scheme_app(HTTPBasic())
    with SyncTestClient(app) as client:
        ok = client.get("/", auth=("john", "secret"))
        denied = client.get("/")
    assert (ok.status_code, ok.json()) == (
        200,
        {"value": {"username": "john", "password": "secret"}},
    )
    assert (denied.status_code, denied.headers["WWW-Authenticate"]) == (401, "Basic")


def test_importing_trioapi_security_does_not_import_pydantic() -> None:
    code = "import sys, trioapi.security; print('pydantic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


async def test_security_with_scopes_caches_apart_per_set_of_scopes() -> None:
    # FastAPI's rule: Security(f, scopes=[...]) keeps f's value apart per set
    # of scopes even when f never reads them; without scopes it is one call.
    calls: list[int] = []

    async def counter() -> int:
        calls.append(1)
        return len(calls)

    app = TrioAPI()

    @app.get("/")
    async def read(
        plain: Annotated[int, Security(counter)],
        again: Annotated[int, Depends(counter)],
        scoped: Annotated[int, Security(counter, scopes=["items"])],
        same_scope: Annotated[int, Security(counter, scopes=["items"])],
    ) -> list[int]:
        return [plain, again, scoped, same_scope]

    async with TestClient(app) as client:
        assert (await client.get("/")).json() == [1, 1, 2, 2]

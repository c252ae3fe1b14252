"""FastAPI's import paths exist in trioapi: ``fastapi.X`` becomes ``trioapi.X``, name for name.

The table is FastAPI 0.165's documented public names, module by module
(with ``FastAPI`` spelled ``TrioAPI``). A name missing here is an
``ImportError`` in a user's code after the swap.
"""

import importlib
import subprocess
import sys

import pytest

PUBLIC = {
    "trioapi": [
        "TrioAPI",
        "APIRouter",
        "BackgroundTasks",
        "Body",
        "Cookie",
        "Depends",
        "File",
        "Form",
        "Header",
        "HTTPException",
        "Path",
        "Query",
        "Request",
        "Response",
        "Security",
        "UploadFile",
        "WebSocket",
        "WebSocketDisconnect",
        "WebSocketException",
        "status",
    ],
    "trioapi.applications": ["TrioAPI"],
    "trioapi.routing": ["APIRoute", "APIRouter", "APIWebSocketRoute"],
    "trioapi.params": [
        "Body",
        "Cookie",
        "Depends",
        "File",
        "Form",
        "Header",
        "Param",
        "ParamTypes",
        "Path",
        "Query",
        "Security",
    ],
    "trioapi.param_functions": [
        "Body",
        "Cookie",
        "Depends",
        "File",
        "Form",
        "Header",
        "Path",
        "Query",
        "Security",
    ],
    "trioapi.requests": ["HTTPConnection", "Request"],
    "trioapi.responses": [
        "FileResponse",
        "HTMLResponse",
        "JSONResponse",
        "ORJSONResponse",
        "PlainTextResponse",
        "RedirectResponse",
        "Response",
        "StreamingResponse",
        "UJSONResponse",
        "EventSourceResponse",
    ],
    "trioapi.exceptions": [
        "HTTPException",
        "RequestValidationError",
        "ResponseValidationError",
        "WebSocketException",
        "WebSocketRequestValidationError",
        "TrioAPIError",
        "TrioAPIDeprecationWarning",
        "PydanticV1NotSupportedError",
    ],
    "trioapi.exception_handlers": [
        "http_exception_handler",
        "request_validation_exception_handler",
        "websocket_request_validation_exception_handler",
    ],
    "trioapi.encoders": ["jsonable_encoder"],
    "trioapi.background": ["BackgroundTasks"],
    "trioapi.concurrency": [
        "run_in_threadpool",
        "iterate_in_threadpool",
        "contextmanager_in_threadpool",
    ],
    "trioapi.datastructures": [
        "Default",
        "DefaultPlaceholder",
        "FormData",
        "Headers",
        "QueryParams",
        "State",
        "UploadFile",
        "URL",
        "Address",
    ],
    "trioapi.testclient": ["TestClient"],
    "trioapi.websockets": ["WebSocket", "WebSocketDisconnect", "WebSocketState"],
    "trioapi.staticfiles": ["StaticFiles"],
    "trioapi.sse": ["EventSourceResponse", "ServerSentEvent"],
    "trioapi.types": ["DecoratedCallable", "IncEx"],
    "trioapi.middleware": ["Middleware"],
    "trioapi.middleware.cors": ["CORSMiddleware"],
    "trioapi.middleware.gzip": ["GZipMiddleware"],
    "trioapi.middleware.trustedhost": ["TrustedHostMiddleware"],
    "trioapi.middleware.httpsredirect": ["HTTPSRedirectMiddleware"],
    "trioapi.security": [
        "APIKeyCookie",
        "APIKeyHeader",
        "APIKeyQuery",
        "HTTPAuthorizationCredentials",
        "HTTPBasic",
        "HTTPBasicCredentials",
        "HTTPBearer",
        "HTTPDigest",
        "OAuth2",
        "OAuth2AuthorizationCodeBearer",
        "OAuth2PasswordBearer",
        "OAuth2PasswordRequestForm",
        "OAuth2PasswordRequestFormStrict",
        "OpenIdConnect",
        "SecurityScopes",
    ],
    "trioapi.openapi.utils": ["get_openapi"],
    "trioapi.openapi.docs": [
        "get_redoc_html",
        "get_swagger_ui_html",
        "get_swagger_ui_oauth2_redirect_html",
    ],
    "trioapi.openapi.constants": ["METHODS_WITH_BODY", "REF_PREFIX"],
}


@pytest.mark.parametrize(("module", "names"), sorted(PUBLIC.items()))
def test_fastapi_public_names_exist_at_the_same_paths(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == []


def test_param_functions_build_the_marker_classes() -> None:
    from trioapi import param_functions, params

    assert isinstance(param_functions.Query(3), params.Query)
    assert isinstance(param_functions.File(), params.Form)
    assert isinstance(param_functions.Security(lambda: None, scopes=["a"]), params.Depends)


def test_the_openapi_models_read_an_apps_document() -> None:
    pytest.importorskip("pydantic")
    from trioapi import TrioAPI
    from trioapi.openapi.models import OpenAPI

    app = TrioAPI(title="shop")

    @app.get("/items/{item_id}", tags=["items"])
    async def read_item(item_id: int, q: str | None = None) -> dict[str, int]:
        return {"item_id": item_id}

    document = OpenAPI.model_validate(app.openapi())
    assert document.info.title == "shop"
    assert "/items/{item_id}" in document.paths


def test_importing_the_public_modules_loads_no_optional_library() -> None:
    modules = ", ".join(sorted(m for m in PUBLIC if m != "trioapi.openapi.models"))
    code = (
        f"import sys, importlib\n"
        f"for m in {modules!r}.split(', '): importlib.import_module(m)\n"
        "print(sorted(m for m in ('pydantic', 'msgspec', 'orjson', 'ujson', 'jinja2')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

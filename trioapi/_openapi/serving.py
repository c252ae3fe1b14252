"""What the app serves for its document: ``/openapi.json``, ``/docs``, ``/redoc``.

The pages are ordinary routes of the app's route table, left out of the
document (``include_in_schema=False``), registered when the app is built, as
FastAPI registers them. The document itself is built on the first request
for it (or the first ``app.openapi()`` call), never at import, and kept in
``app.openapi_schema`` until the routes change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from .._http.requests import Request
from .._http.responses import HTMLResponse, JSONResponse, Response
from .._http.routing import APIRoute, APIRouter
from . import assets, pages
from .document import build_document

if TYPE_CHECKING:
    from .._http.app import TrioAPI

logger = logging.getLogger("trioapi")


class WebhookRouter(APIRouter):
    """``app.webhooks``: routes that describe the requests the API sends, for the document only.

    A webhook's "path" is a name (``"new-subscription"``), not a URL path,
    so it need not start with ``/``. These routes are never served.
    """

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        tags: Any = None,
        dependencies: Any = None,
        **options: Any,
    ) -> APIRoute:
        """Registers a webhook description (see :meth:`APIRouter.add_api_route`)."""
        named = not path.startswith("/")
        route = super().add_api_route(
            "/" + path if named else path,
            endpoint,
            methods=methods,
            tags=tags,
            dependencies=dependencies,
            **options,
        )
        if named:
            route.path = self.prefix + path
        return route


def document_of(app: TrioAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once and kept in ``app.openapi_schema``.

    A route added after the document was built makes the next call build it
    again; a document that the app's code stored itself is kept as it is.
    """
    webhooks = list(getattr(app.webhooks, "routes", None) or ())
    version = (len(app.routes), len(webhooks))
    built = app.__dict__.get("_openapi_built_for")
    if app.openapi_schema and (built is None or built == version):
        return app.openapi_schema
    app.openapi_schema = build_document(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        terms_of_service=app.terms_of_service,
        contact=app.contact,
        license_info=app.license_info,
        routes=app.routes,
        webhooks=webhooks,
        tags=app.openapi_tags,
        servers=app.servers,
        separate_input_output_schemas=app.separate_input_output_schemas,
        external_docs=app.openapi_external_docs,
    )
    app.__dict__["_openapi_built_for"] = version
    return app.openapi_schema


def _root_path(app: TrioAPI, request: Request) -> str:
    root: str = request.scope.get("root_path") or app.root_path or ""
    return root.rstrip("/")


def add_docs_routes(app: TrioAPI) -> None:
    """Registers the document and the docs pages at the app's URLs (None: not served)."""
    if not app.openapi_url:
        return
    if not app.title:
        msg = "an app that serves an OpenAPI document needs a title: TrioAPI(title='My API')"
        raise ValueError(msg)
    if not app.version:
        msg = "an app that serves an OpenAPI document needs a version: TrioAPI(version='1.0')"
        raise ValueError(msg)

    async def openapi(request: Request) -> Any:
        root = _root_path(app, request)
        document = app.openapi()
        if root and app.root_path_in_servers:
            servers = document.get("servers") or []
            if root not in {server.get("url") for server in servers}:
                document = {**document, "servers": [{"url": root}, *servers]}
        return JSONResponse(document)

    _add(app, app.openapi_url, openapi)

    bundled = app.docs_assets == "bundled" and assets.available()
    if app.docs_assets == "bundled" and not bundled:
        logger.warning(
            "trioapi: the docs pages' bundled assets are missing (run "
            "scripts/fetch_docs_assets.py); /docs and /redoc load them from a CDN"
        )

    if app.docs_url:
        swagger_files = assets.swagger_ui_assets(app.docs_url) if bundled else {}

        async def swagger_ui(request: Request) -> Any:
            root = _root_path(app, request)
            redirect = app.swagger_ui_oauth2_redirect_url
            from ..openapi.docs import get_swagger_ui_html

            urls = {role: root + asset.url for role, asset in swagger_files.items()}
            return get_swagger_ui_html(
                openapi_url=root + (app.openapi_url or ""),
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=root + redirect if redirect else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
                swagger_js_url=urls.get("js", pages.CDN_SWAGGER_JS),
                swagger_css_url=urls.get("css", pages.CDN_SWAGGER_CSS),
                swagger_favicon_url=urls.get("favicon", pages.FAVICON),
            )

        _add(app, app.docs_url, swagger_ui)
        for asset in swagger_files.values():
            _add(app, asset.url, _asset_endpoint(asset))

        if app.swagger_ui_oauth2_redirect_url:

            async def oauth2_redirect() -> Any:
                return HTMLResponse(pages.OAUTH2_REDIRECT_PAGE)

            _add(app, app.swagger_ui_oauth2_redirect_url, oauth2_redirect)

    if app.redoc_url:
        redoc_files = assets.redoc_assets(app.redoc_url) if bundled else {}

        async def redoc(request: Request) -> Any:
            root = _root_path(app, request)
            urls = {role: root + asset.url for role, asset in redoc_files.items()}
            page = pages.redoc_page(
                openapi_url=root + (app.openapi_url or ""),
                title=f"{app.title} - ReDoc",
                redoc_js_url=urls.get("js", pages.CDN_REDOC_JS),
                redoc_favicon_url=urls.get("favicon", pages.FAVICON),
                # Offline means no web fonts either: ReDoc falls back to system
                # fonts; and no image from elsewhere (ReDoc's footer logo).
                with_google_fonts=not bundled,
                images_from_here_only=bundled,
            )
            return HTMLResponse(page)

        _add(app, app.redoc_url, redoc)
        for asset in redoc_files.values():
            _add(app, asset.url, _asset_endpoint(asset))


def _asset_endpoint(asset: assets.Asset) -> Callable[..., Any]:
    async def serve_asset() -> Any:
        # Read once, in a worker thread: the bundles are megabytes.
        body = await trio.to_thread.run_sync(assets.content, asset.path)
        return Response(
            body,
            media_type=asset.media_type,
            headers={"Cache-Control": assets.CACHE_CONTROL},
        )

    return serve_asset


def _add(app: TrioAPI, path: str, endpoint: Callable[..., Any]) -> None:
    # Not through add_api_route: the app's dependencies (an API key check,
    # say) guard the API, not its description, as in FastAPI.
    route = APIRoute(
        path=path,
        endpoint=endpoint,
        methods=frozenset({"GET"}),
        include_in_schema=False,
        response_model=None,
    )
    app._register(route)

"""The interactive docs pages (FastAPI's ``fastapi.openapi.docs``).

Use these to serve the pages yourself (``docs_url=None`` on the app, then a
route of your own), for example with other asset URLs.
"""

from __future__ import annotations

from typing import Any

from .._http.responses import HTMLResponse
from .._openapi import pages

__all__ = [
    "get_redoc_html",
    "get_swagger_ui_html",
    "get_swagger_ui_oauth2_redirect_html",
    "swagger_ui_default_parameters",
]

swagger_ui_default_parameters: dict[str, Any] = dict(pages.SWAGGER_UI_DEFAULT_PARAMETERS)
"""The Swagger UI configuration the page starts from; ``swagger_ui_parameters`` adds to it."""


def get_swagger_ui_html(
    *,
    openapi_url: str,
    title: str,
    swagger_js_url: str = pages.CDN_SWAGGER_JS,
    swagger_css_url: str = pages.CDN_SWAGGER_CSS,
    swagger_favicon_url: str = pages.FAVICON,
    oauth2_redirect_url: str | None = None,
    init_oauth: dict[str, Any] | None = None,
    swagger_ui_parameters: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The Swagger UI page for the document at ``openapi_url``.

    Args:
        openapi_url: Where the page loads the OpenAPI document from.
        title: The page's ``<title>``.
        swagger_js_url: The Swagger UI bundle (``swagger-ui-bundle.js``).
        swagger_css_url: The Swagger UI stylesheet (``swagger-ui.css``).
        swagger_favicon_url: The page's icon.
        oauth2_redirect_url: The path of the OAuth2 redirect page, for
            "Authorize" with OAuth2 flows.
        init_oauth: Settings for ``ui.initOAuth`` (``clientId``, ``appName``...).
        swagger_ui_parameters: Swagger UI settings added to
            :data:`swagger_ui_default_parameters`.

    Returns:
        The page.
    """
    return HTMLResponse(
        pages.swagger_ui_page(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=swagger_js_url,
            swagger_css_url=swagger_css_url,
            swagger_favicon_url=swagger_favicon_url,
            oauth2_redirect_url=oauth2_redirect_url,
            init_oauth=init_oauth,
            swagger_ui_parameters={
                **swagger_ui_default_parameters,
                **(swagger_ui_parameters or {}),
            },
        )
    )


def get_redoc_html(
    *,
    openapi_url: str,
    title: str,
    redoc_js_url: str = pages.CDN_REDOC_JS,
    redoc_favicon_url: str = pages.FAVICON,
    with_google_fonts: bool = True,
) -> HTMLResponse:
    """The ReDoc page for the document at ``openapi_url``.

    Args:
        openapi_url: Where the page loads the OpenAPI document from.
        title: The page's ``<title>``.
        redoc_js_url: The ReDoc bundle (``redoc.standalone.js``).
        redoc_favicon_url: The page's icon.
        with_google_fonts: Load the fonts ReDoc is designed with from Google Fonts.

    Returns:
        The page.
    """
    return HTMLResponse(
        pages.redoc_page(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=redoc_js_url,
            redoc_favicon_url=redoc_favicon_url,
            with_google_fonts=with_google_fonts,
        )
    )


def get_swagger_ui_oauth2_redirect_html() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flows redirect to (``swagger_ui_oauth2_redirect_url``).

    Returns:
        The page.
    """
    return HTMLResponse(pages.OAUTH2_REDIRECT_PAGE)

"""The HTML of the docs pages: Swagger UI, ReDoc, the OAuth2 redirect (no I/O).

Each function returns the page as a string; :mod:`trioapi.openapi.docs`
wraps them in ``HTMLResponse`` for custom docs routes, and the app serves
them at ``docs_url``, ``redoc_url`` and ``swagger_ui_oauth2_redirect_url``.
Values put into the page's script are JSON with ``<``, ``>`` and ``&``
escaped, so no value can close the ``<script>`` element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SWAGGER_UI_DEFAULT_PARAMETERS: dict[str, Any] = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
}
"""The Swagger UI configuration every page starts from (``swagger_ui_parameters`` adds to it)."""

CDN_SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
CDN_SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
CDN_REDOC_JS = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"
FAVICON = "https://fastapi.tiangolo.com/img/favicon.png"


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element."""
    from ..encoders import jsonable_encoder

    text = json.dumps(jsonable_encoder(value))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def script_string(text: str) -> str:
    """``text`` as a single-quoted JavaScript string that is safe inside ``<script>``."""
    inner = json.dumps(text)[1:-1].replace("'", "\\'")
    return "'" + inner.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "'"


def swagger_ui_page(
    *,
    openapi_url: str,
    title: str,
    swagger_js_url: str = CDN_SWAGGER_JS,
    swagger_css_url: str = CDN_SWAGGER_CSS,
    swagger_favicon_url: str = FAVICON,
    oauth2_redirect_url: str | None = None,
    init_oauth: Mapping[str, Any] | None = None,
    swagger_ui_parameters: Mapping[str, Any] | None = None,
) -> str:
    """The Swagger UI page for the document at ``openapi_url``.

    ``swagger_ui_parameters`` is the whole configuration (None: the defaults).
    """
    parameters = (
        SWAGGER_UI_DEFAULT_PARAMETERS if swagger_ui_parameters is None else swagger_ui_parameters
    )
    settings = "".join(
        f"{script_json(key)}: {script_json(value)},\n" for key, value in parameters.items()
    )
    redirect = (
        f"oauth2RedirectUrl: window.location.origin + {script_string(oauth2_redirect_url)},"
        if oauth2_redirect_url
        else ""
    )
    oauth = f"\n    ui.initOAuth({script_json(dict(init_oauth))})\n" if init_oauth else ""
    return f"""<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{swagger_css_url}">
<link rel="shortcut icon" href="{swagger_favicon_url}">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui">
</div>
<script src="{swagger_js_url}"></script>
<!-- `SwaggerUIBundle` is now available on the page -->
<script>
const ui = SwaggerUIBundle({{
    url: {script_string(openapi_url)},
{settings}{redirect}
    presets: [
        SwaggerUIBundle.presets.apis,
        SwaggerUIBundle.SwaggerUIStandalonePreset
        ],
    }}){oauth}
</script>
</body>
</html>
"""


def redoc_page(
    *,
    openapi_url: str,
    title: str,
    redoc_js_url: str = CDN_REDOC_JS,
    redoc_favicon_url: str = FAVICON,
    with_google_fonts: bool = True,
    images_from_here_only: bool = False,
) -> str:
    """The ReDoc page for the document at ``openapi_url``.

    ``images_from_here_only`` adds a content security policy that lets the
    page load images only from its own origin: ReDoc's footer always asks
    ``cdn.redoc.ly`` for a logo, which an offline page must not do (the
    browser then blocks it before any request, and ReDoc hides the image).
    """
    policy = (
        """<meta http-equiv="Content-Security-Policy" content="img-src 'self' data:">\n"""
        if images_from_here_only
        else ""
    )
    fonts = (
        '<link href="https://fonts.googleapis.com/css?family=Montserrat:300,400,700|'
        'Roboto:300,400,700" rel="stylesheet">\n'
        if with_google_fonts
        else ""
    )
    return f"""<!DOCTYPE html>
<html>
<head>
<title>{title}</title>
<!-- needed for adaptive design -->
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1">
{policy}{fonts}<link rel="shortcut icon" href="{redoc_favicon_url}">
<!-- ReDoc does not change the page's outer styles -->
<style>
  body {{
    margin: 0;
    padding: 0;
  }}
</style>
</head>
<body>
<noscript>
    ReDoc requires Javascript to function. Please enable it to browse the documentation.
</noscript>
<redoc spec-url="{openapi_url}"></redoc>
<script src="{redoc_js_url}"> </script>
</body>
</html>
"""


# Swagger UI opens this page in a popup as the OAuth2 redirect target: it
# reads the authorization server's answer from the URL and hands it back to
# the opener's ``swaggerUIRedirectOauth2`` (the protocol of swagger-ui's own
# ``oauth2-redirect.html``).
OAUTH2_REDIRECT_PAGE = """<!doctype html>
<html lang="en-US">
<head>
    <title>Swagger UI: OAuth2 Redirect</title>
</head>
<body>
<script>
'use strict';
function run() {
    var oauth2 = window.opener.swaggerUIRedirectOauth2;
    var sentState = oauth2.state;
    var redirectUrl = oauth2.redirectUrl;
    var raw = /code|token|error/.test(window.location.hash)
        ? window.location.hash.substring(1).replace('?', '&')
        : window.location.search.substring(1);
    var answer = {};
    new URLSearchParams(raw).forEach(function (value, key) { answer[key] = value; });
    var isValid = answer.state === sentState;
    var flow = oauth2.auth.schema.get("flow");
    var codeFlow = flow === "accessCode" || flow === "authorizationCode"
        || flow === "authorization_code";
    if (codeFlow && !oauth2.auth.code) {
        if (!isValid) {
            oauth2.errCb({
                authId: oauth2.auth.name,
                source: "auth",
                level: "warning",
                message: "Authorization may be unsafe: the state returned by the " +
                    "authorization server differs from the state sent."
            });
        }
        if (answer.code) {
            delete oauth2.state;
            oauth2.auth.code = answer.code;
            oauth2.callback({auth: oauth2.auth, redirectUrl: redirectUrl});
        } else {
            var message = "[Authorization failed]: no accessCode received from the server.";
            if (answer.error) {
                message = "[" + answer.error + "]: " +
                    (answer.error_description ? answer.error_description + ". "
                        : "no accessCode received from the server. ") +
                    (answer.error_uri ? "More info: " + answer.error_uri : "");
            }
            oauth2.errCb({
                authId: oauth2.auth.name, source: "auth", level: "error", message: message
            });
        }
    } else {
        oauth2.callback({
            auth: oauth2.auth, token: answer, isValid: isValid, redirectUrl: redirectUrl
        });
    }
    window.close();
}
if (document.readyState !== 'loading') {
    run();
} else {
    document.addEventListener('DOMContentLoaded', function () { run(); });
}
</script>
</body>
</html>
"""

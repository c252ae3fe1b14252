"""The docs pages' JavaScript and CSS, shipped inside trioapi (``assets/``).

``scripts/fetch_docs_assets.py`` puts them there from the npm registry,
pinned by version and checked by SHA-256, with their licences; this module
says where each file is and serves it. The files' URLs carry the package and
version (``/docs/swagger-ui-dist@5.35.0/swagger-ui-bundle.js``), so a browser
may keep them for a year: a new version is a new URL.
"""

from __future__ import annotations

import functools
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent / "assets"

SWAGGER_UI = "swagger-ui-dist@5.35.0"
"""The Swagger UI package and version the pages use (Swagger UI 5 reads OpenAPI 3.1)."""
REDOC = "redoc@2.5.4"
"""The ReDoc package and version the pages use."""

CACHE_CONTROL = "public, max-age=31536000, immutable"

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


@attrs.frozen
class Asset:
    """One file a docs page loads: where the app serves it, and where it is on disk."""

    url: str
    path: Path

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self.path.suffix]


def available() -> bool:
    """The files are there (a source checkout that never ran the fetch script has none)."""
    return (ROOT / SWAGGER_UI / "swagger-ui-bundle.js").is_file() and (
        ROOT / REDOC / "redoc.standalone.js"
    ).is_file()


def swagger_ui_assets(docs_url: str) -> dict[str, Asset]:
    """The Swagger UI page's files, by role (``js``, ``css``, ``favicon``)."""
    base = f"{docs_url.rstrip('/')}/{SWAGGER_UI}"
    folder = ROOT / SWAGGER_UI
    return {
        "js": Asset(f"{base}/swagger-ui-bundle.js", folder / "swagger-ui-bundle.js"),
        "css": Asset(f"{base}/swagger-ui.css", folder / "swagger-ui.css"),
        "favicon": Asset(f"{base}/favicon-32x32.png", folder / "favicon-32x32.png"),
    }


def redoc_assets(redoc_url: str) -> dict[str, Asset]:
    """The ReDoc page's files, by role (``js``, ``favicon``)."""
    base = f"{redoc_url.rstrip('/')}/{REDOC}"
    return {
        "js": Asset(f"{base}/redoc.standalone.js", ROOT / REDOC / "redoc.standalone.js"),
        "favicon": Asset(f"{base}/favicon-32x32.png", ROOT / SWAGGER_UI / "favicon-32x32.png"),
    }


@functools.cache
def content(path: Path) -> bytes:
    """The file's bytes, read once per process."""
    return path.read_bytes()

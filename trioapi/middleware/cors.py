"""``CORSMiddleware``: Cross-Origin Resource Sharing, as browsers ask for it.

Two kinds of request:

- a *preflight* (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) is answered here, without calling the
  app: 200 ``OK`` with what the options allow, or 400 naming what was
  refused (the browser enforces the answer; the 400 is for people reading
  it);
- any other request goes to the app, and its response gets the
  ``Access-Control-*`` headers for the request's ``Origin``. Every response
  says ``Vary: Origin``, so caches keep one answer per origin.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import final

from .._http.requests import Message, Receive, Scope, Send
from .._http.responses import PlainTextResponse
from ._stack import ASGIApp

__all__ = ["ALL_METHODS", "SAFELISTED_HEADERS", "CORSMiddleware"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
"""What ``allow_methods=["*"]`` stands for."""

SAFELISTED_HEADERS = frozenset({"Accept", "Accept-Language", "Content-Language", "Content-Type"})
"""Request headers always allowed (browsers send them without asking)."""

_PREFLIGHT_VARY = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


@final
class CORSMiddleware:
    """Adds CORS headers to responses and answers preflight requests.

    Args:
        app: The ASGI app to wrap.
        allow_origins: Origins allowed (``"https://example.com"``), or
            ``["*"]`` for any.
        allow_methods: Methods a preflight may ask for, or ``["*"]`` for all
            (:data:`ALL_METHODS`). Default: ``GET`` only.
        allow_headers: Request headers a preflight may ask for (besides the
            :data:`SAFELISTED_HEADERS`), or ``["*"]`` for any.
        allow_credentials: Allow cookies and ``Authorization``; the allowed
            origin is then named, never ``*``.
        allow_origin_regex: A regular expression an allowed origin must
            match in full (``r"https://.*\\.example\\.com"``), besides
            ``allow_origins``.
        allow_private_network: Answer Private Network Access preflights.
        expose_headers: Response headers the browser may show to scripts.
        max_age: Seconds a browser may cache a preflight answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
    ) -> None:
        self.app = app
        self.allow_origins = allow_origins
        self.allow_methods: Collection[str] = ALL_METHODS if "*" in allow_methods else allow_methods
        self.allow_all_origins = "*" in allow_origins
        self.allow_all_headers = "*" in allow_headers
        self.allow_credentials = allow_credentials
        self.allow_origin_regex = (
            re.compile(allow_origin_regex) if allow_origin_regex is not None else None
        )
        self.allow_private_network = allow_private_network
        listed = sorted(SAFELISTED_HEADERS | set(allow_headers))
        self.allow_headers = [name.lower() for name in listed]
        # Preflights must name the origin unless any origin is allowed without credentials.
        self.preflight_explicit_allow_origin = not self.allow_all_origins or allow_credentials

        simple: dict[str, str] = {}
        if self.allow_all_origins:
            simple["access-control-allow-origin"] = "*"
        if allow_credentials:
            simple["access-control-allow-credentials"] = "true"
        if expose_headers:
            simple["access-control-expose-headers"] = ", ".join(expose_headers)
        self.simple_headers = simple
        # What a simple request's response gets: these headers, replacing any of the app's.
        self._simple_raw = [
            (name.encode(), value.encode("latin-1")) for name, value in simple.items()
        ]
        self._replaced = frozenset({b"vary", *(name for name, _ in self._simple_raw)})
        self._replaced_naming = self._replaced | {b"access-control-allow-origin"}
        self._simple_naming = [pair for pair in self._simple_raw if pair[0] != _ALLOW_ORIGIN]

        preflight: dict[str, str] = {"vary": _PREFLIGHT_VARY}
        if not self.preflight_explicit_allow_origin:
            preflight["access-control-allow-origin"] = "*"
        preflight["access-control-allow-methods"] = ", ".join(self.allow_methods)
        preflight["access-control-max-age"] = str(max_age)
        if not self.allow_all_headers:
            preflight["access-control-allow-headers"] = ", ".join(listed)
        if allow_credentials:
            preflight["access-control-allow-credentials"] = "true"
        self.preflight_headers = preflight

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether ``origin`` may read responses.

        Args:
            origin: The request's ``Origin`` header.

        Returns:
            True when any origin is allowed, or it is listed or matches the regex.
        """
        if self.allow_all_origins:
            return True
        if self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin):
            return True
        return origin in self.allow_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin: bytes | None = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                if origin is None:
                    origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is not None and preflight and scope["method"] == "OPTIONS":
            await self._preflight(scope, send)
            return
        added: list[tuple[bytes, bytes]]
        if origin is None:
            added, replaced = [], _VARY
        elif (self.allow_all_origins and self.allow_credentials) or (
            not self.allow_all_origins and self.is_allowed_origin(bytes(origin).decode("latin-1"))
        ):
            # Named, not "*": credentials need it, and so does a list of origins.
            added = [*self._simple_naming, (_ALLOW_ORIGIN, bytes(origin))]
            replaced = self._replaced_naming
        else:
            added, replaced = self._simple_raw, self._replaced

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_cors(message.get("headers", ()), added, replaced)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send) -> None:
        requested: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _PREFLIGHT_REQUEST_HEADERS and name not in requested:
                requested[name] = bytes(value).decode("latin-1")
        origin = requested[b"origin"]
        headers = dict(self.preflight_headers)
        refused: list[str] = []
        if not self.is_allowed_origin(origin):
            refused.append("origin")
        elif self.preflight_explicit_allow_origin:
            headers["access-control-allow-origin"] = origin
        if requested[b"access-control-request-method"] not in self.allow_methods:
            refused.append("method")
        asked = requested.get(b"access-control-request-headers")
        if asked is not None:
            if self.allow_all_headers:
                headers["access-control-allow-headers"] = asked
            elif any(name.strip().lower() not in self.allow_headers for name in asked.split(",")):
                refused.append("headers")
        if b"access-control-request-private-network" in requested:
            if self.allow_private_network:
                headers["access-control-allow-private-network"] = "true"
            else:
                refused.append("private-network")
        if refused:
            response = PlainTextResponse(
                "Disallowed CORS " + ", ".join(refused), status_code=400, headers=headers
            )
        else:
            response = PlainTextResponse("OK", status_code=200, headers=headers)
        await response.send_to(send)


_PREFLIGHT_REQUEST_HEADERS = frozenset(
    {
        b"origin",
        b"access-control-request-method",
        b"access-control-request-headers",
        b"access-control-request-private-network",
    }
)


_VARY = frozenset({b"vary"})
_ALLOW_ORIGIN = b"access-control-allow-origin"


def _with_cors(
    headers: Iterable[tuple[bytes, bytes]],
    added: list[tuple[bytes, bytes]],
    replaced: frozenset[bytes],
) -> list[tuple[bytes, bytes]]:
    """A new header list (the app's may be a response object's own): ``added`` in, and
    the ``Vary`` lines made one that also names ``Origin``."""
    result: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    for pair in headers:
        name = pair[0]
        if name == b"vary":
            vary.append(bytes(pair[1]))
        elif name not in replaced:
            result.append(pair)
    result += added
    vary.append(b"Origin")
    result.append((b"vary", b", ".join(vary)))
    return result

"""Mounts, ``root_path``, and URLs built from route names.

**Where a request is, relative to its app.** ASGI gives a request its
``path`` and the ``root_path`` its app is mounted under. Servers fill them in
two ways: hypercorn (and a proxy that strips its prefix) sends ``path`` without
the root; Starlette's convention, used by uvicorn, FastAPI's test client
and every mount, sends the full path, root included. An app routes on the
path *within* it (:func:`route_path`): the root is taken off when the path
starts with it, otherwise the path is already relative. Both conventions
then give the same routes and the same ``request.url``.

**A mount** hands every request under its prefix to another ASGI app (a
sub-application, ``StaticFiles``, any ASGI callable). The mounted app gets a
copy of the scope whose ``root_path`` grows by the prefix and whose ``path``
is the full one (Starlette's convention, whichever the server used), so it
finds its own route path the same way; ``app_root_path`` keeps the outermost
app's root and ``router`` the outermost router, for ``request.url_for``. An
app matches its own routes first and its mounts after, in the order they were
added, before answering 404; ``/prefix`` without the slash is redirected to
``/prefix/`` (Starlette's behaviour).

**Names to URLs.** ``url_path_for(name, **params)`` looks for a route of that
name whose parameters are exactly the given ones, then into each mount:
``name`` itself for a named mount (with ``path=``), ``"mount:child"`` or a
child's plain name for a mount without a name. :class:`NoMatchFound` says
there is none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, final
from urllib.parse import quote

import attrs

from .._exceptions import RouteDefinitionError, TrioAPIError
from ..telemetry._api import TELEMETRY_RECORD
from .forms import merge_form_limits

if TYPE_CHECKING:
    from .app import TrioAPI
    from .requests import Receive, Scope, Send

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")


class NoMatchFound(TrioAPIError):
    """``url_path_for`` / ``url_for`` found no route of that name taking those parameters.

    Args:
        name: The route name asked for.
        path_params: The parameters given.
    """

    def __init__(self, name: str, path_params: Mapping[str, Any]) -> None:
        params = ", ".join(path_params)
        super().__init__(f'No route exists for name "{name}" and params "{params}".')
        self.name = name
        self.path_params = dict(path_params)


@final
class URLPath(str):
    """A path built by ``url_path_for``: a ``str``, with the protocol it is for.

    Args:
        path: The path (``/items/42``).
        protocol: ``"http"``, ``"websocket"`` or ``""`` (either).
        host: A host the path belongs to, if any.
    """

    protocol: str
    host: str

    def __new__(
        cls, path: str, protocol: Literal["http", "websocket", ""] = "", host: str = ""
    ) -> URLPath:
        if path.startswith("//"):
            path = "/%2F" + path[2:]  # a leading "//" would read as a host
        self = super().__new__(cls, path)
        self.protocol = protocol
        self.host = host
        return self

    def make_absolute_url(self, base_url: Any) -> Any:
        """The absolute URL of this path under ``base_url`` (a ``URL`` or a string)."""
        from .datastructures import URL

        base = base_url if isinstance(base_url, URL) else URL(str(base_url))
        scheme = base.scheme
        if self.protocol == "websocket":
            scheme = "wss" if base.is_secure else "ws"
        elif self.protocol == "http":
            scheme = "https" if base.is_secure else "http"
        netloc = self.host or base.netloc
        return URL(f"{scheme}://{netloc}{base.path.rstrip('/')}{self}")


# --- root_path -----------------------------------------------------------------------------


def holds_root(path: str, root: str) -> bool:
    """True when ``path`` starts with the mount point ``root`` (Starlette's convention)."""
    return bool(root) and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/")


def route_path(scope: Scope) -> str:
    """The path within the app: ``path`` without ``root_path`` when it starts with it."""
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    return path[len(root) :] if holds_root(path, root) else path


def strip_root(root: str, path: str, raw: bytes | None) -> tuple[str, bytes | None]:
    """``path`` and ``raw_path`` without the ``root_path`` prefix, when they hold it."""
    if not holds_root(path, root):
        return path, raw
    if raw is not None:
        # As many segments as the root has, whatever their encoding in raw.
        cut = 0
        for _ in range(root.count("/")):
            cut = raw.find(b"/", cut + 1)
            if cut < 0:
                cut = len(raw)
                break
        raw = raw[cut:]
    return path[len(root) :] or "/", raw or b"/"


def absolute_url(scope: Scope, target: str) -> str:
    """``target`` (a path as the app sees it, query included) as an absolute URL.

    The scheme and host come from the request (``Host``, else the server's
    address); the ``root_path`` is put in front unless the target holds it.
    """
    scheme = scope.get("scheme", "http")
    host = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if host is None:
        server = scope.get("server")
        if server:
            default = 443 if scheme in ("https", "wss") else 80
            host = server[0] if server[1] in (None, default) else f"{server[0]}:{server[1]}"
        else:
            host = "localhost"
    root: str = scope.get("root_path") or ""
    if root and not holds_root(target.split("?", 1)[0], root):
        target = quote(root) + target
    return f"{scheme}://{host}{target}"


# --- names to paths ----------------------------------------------------------------------------


def _param_text(value: Any, converter: str | None) -> str:
    # Starlette's convertors' to_string: ints and floats in their canonical form.
    if converter == "int":
        return str(int(value))
    if converter == "float":
        number = float(value)
        if not math.isfinite(number):
            msg = f"cannot put {value!r} in a path"
            raise ValueError(msg)
        return f"{number:0.20f}".rstrip("0").rstrip(".")
    return str(value)


def fill_template(template: str, params: Mapping[str, Any]) -> str:
    """``/items/{id}`` with ``{"id": 42}`` → ``/items/42`` (not escaped, as in Starlette)."""

    def replace(match: re.Match[str]) -> str:
        return _param_text(params[match.group(1)], match.group(2))

    return _PARAM.sub(replace, template)


def template_params(template: str) -> frozenset[str]:
    """The parameter names of a path template."""
    return frozenset(match.group(1) for match in _PARAM.finditer(template))


def url_path_for(router: Any, name: str, params: Mapping[str, Any]) -> URLPath:
    """The path of the route (or mount) called ``name`` that takes exactly ``params``.

    Raises:
        NoMatchFound: There is none.
    """
    given = frozenset(params)
    for route in getattr(router, "routes", ()):
        if route.name == name and frozenset(route.template.param_names) == given:
            return URLPath(fill_template(route.path, params), "http")
    for route in getattr(router, "websocket_routes", ()):
        if route.name == name and frozenset(route.template.param_names) == given:
            return URLPath(fill_template(route.path, params), "websocket")
    for mount in getattr(router, "mounts", ()):
        try:
            found: URLPath = mount.url_path_for(name, params)
        except NoMatchFound:
            continue
        return found
    raise NoMatchFound(name, params)


# --- mounts ------------------------------------------------------------------------------------


@final
@attrs.define(eq=False)
class Mount:
    """Another ASGI app served under a path prefix (``app.mount("/static", StaticFiles(...))``).

    Attributes:
        path: The prefix, without a trailing slash (``""`` mounts at the root).
        app: The ASGI app.
        name: For ``url_path_for(name, path=...)`` and ``"name:child"`` names.
    """

    path: str
    app: Any
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.path and not self.path.startswith("/"):
            msg = f"mount path {self.path!r} must start with '/'"
            raise RouteDefinitionError(msg)
        if "{" in self.path or "}" in self.path:
            msg = f"mount path {self.path!r}: a mount prefix cannot hold parameters"
            raise RouteDefinitionError(msg)
        self.path = self.path.rstrip("/")

    @property
    def routes(self) -> list[Any]:
        """The mounted app's routes, when it has any."""
        return list(getattr(self.app, "routes", ()))

    def matches(self, path: str) -> bool:
        """True when ``path`` (within the parent app) is under this mount."""
        prefix = self.path
        return path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/"

    def child_scope(self, scope: Scope, path: str, router: Any) -> dict[str, Any]:
        """The scope the mounted app gets for ``path`` (the parent's route path)."""
        root: str = scope.get("root_path") or ""
        raw: bytes | None = scope.get("raw_path")
        full = scope["path"]
        if not holds_root(full, root):
            # The server sent the path without the root (hypercorn): the child
            # gets the full one, as every mount gives it.
            full = root + path
            if raw is not None:
                raw = quote(root).encode("ascii") + raw
        child = dict(scope)
        child["path"] = full
        if raw is not None:
            child["raw_path"] = raw
        child["root_path"] = root + self.path
        child["app_root_path"] = scope.get("app_root_path", root)
        child["router"] = scope.get("router") or router
        limits = getattr(router, "form_limits", None)
        if limits:
            # The parent app's form limits hold in the mounted app too, under
            # its own (FastAPI's rule): RequestContext.form() merges them.
            ours = dict(scope.get("trioapi") or {})
            ours["form_limits"] = merge_form_limits(ours.get("form_limits"), limits)
            child["trioapi"] = ours
        return child

    def url_path_for(self, name: str, params: Mapping[str, Any]) -> URLPath:
        """The path for ``name`` under this mount (see the module's documentation).

        Raises:
            NoMatchFound: Neither this mount nor anything inside it has that name.
        """
        if self.name is not None and name == self.name and set(params) == {"path"}:
            return URLPath(f"{self.path}/{str(params['path']).lstrip('/')}")
        if self.name is None or name.startswith(self.name + ":"):
            inner = name if self.name is None else name[len(self.name) + 1 :]
            finder = getattr(self.app, "url_path_for", None)
            if finder is not None:
                try:
                    found = finder(inner, **params)
                except NoMatchFound:
                    pass
                else:
                    protocol = getattr(found, "protocol", "")
                    return URLPath(
                        self.path + str(found),
                        "http" if protocol == "http" else "websocket" if protocol else "",
                    )
        raise NoMatchFound(name, params)


def find_mount(mounts: list[Mount], path: str) -> Mount | None:
    """The first mount ``path`` is under, or None."""
    for mount in mounts:
        if mount.matches(path):
            return mount
    return None


async def call_mounted(
    app: TrioAPI, mount: Mount, path: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Hands the request to the mounted app.

    An exception it raises before starting a response is answered by the
    parent app's exception handlers, as in Starlette (``StaticFiles``
    raises ``HTTPException(404)``, which becomes FastAPI's JSON 404); after
    the response started, it goes on to the server.
    """
    started = False

    async def send_through(message: dict[str, Any]) -> None:
        nonlocal started
        started = True
        await send(message)

    child = mount.child_scope(scope, path, app)
    record = scope.get(TELEMETRY_RECORD)
    if record is not None:
        record.mounted_at(mount.path, child)  # telemetry=: the route is the full one
    try:
        await mount.app(child, receive, send_through)
    except Exception as error:
        if started:
            raise
        response = await app._error_response(error, scope, receive, None)
        await app._deliver(response, scope, send)
        app._reraise(error, response)
    finally:
        child.pop(TELEMETRY_RECORD, None)  # the request's record lives no longer than it

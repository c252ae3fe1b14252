"""Serving a directory of files (FastAPI's ``fastapi.staticfiles``, Starlette's behaviour).

::

    app.mount("/static", StaticFiles(directory="static"), name="static")

``StaticFiles`` is a plain ASGI app. It serves ``GET`` and ``HEAD`` (405
otherwise) from the files under ``directory`` (and the ``statics`` folders of
``packages``), looking each one up in a worker thread. A path that leaves
the directory (``..``, an absolute path, a symlink pointing out unless
``follow_symlink=True``) is a 404, as is a missing file. A matching
``If-None-Match`` or ``If-Modified-Since`` gets 304. With ``html=True`` a
directory serves its ``index.html`` (redirecting to the slashed URL first)
and a missing file the directory's ``404.html``, if there is one. Ranges
are ``FileResponse``'s.

Mounted in an app, its errors are ``HTTPException``s that the app's
exception handlers answer (FastAPI's ``{"detail": "Not Found"}``, or your
own 404 handler); served on its own, it answers them in plain text.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import stat
from collections.abc import Mapping, Sequence
from email.utils import parsedate
from typing import Any

import trio

from ._exceptions import HTTPException
from ._http.datastructures import Headers
from ._http.files import FileResponse
from ._http.mounts import absolute_url, route_path
from ._http.requests import Receive, Scope, Send
from ._http.responses import PlainTextResponse, RedirectResponse, Response

PathLike = str | os.PathLike[str]

__all__ = ["NotModifiedResponse", "StaticFiles"]


class NotModifiedResponse(Response):
    """A ``304 Not Modified`` carrying the validators and caching headers of the file's response."""

    NOT_MODIFIED_HEADERS = ("cache-control", "content-location", "date", "etag", "expires", "vary")

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(
            status_code=304,
            headers={
                name: value
                for name, value in headers.items()
                if name.lower() in self.NOT_MODIFIED_HEADERS
            },
        )


class StaticFiles:
    """An ASGI app serving the files of a directory (see the module's documentation).

    Args:
        directory: The directory to serve.
        packages: Packages whose ``statics`` folder (or ``(package, folder)``)
            is served too, after ``directory``.
        html: Serve ``index.html`` for a directory and ``404.html`` for a
            missing file (a static site).
        check_dir: Refuse, at once, a ``directory`` that does not exist.
        follow_symlink: Serve files that symlinks inside the directory point
            to, wherever they are.

    Raises:
        RuntimeError: ``check_dir`` and ``directory`` does not exist.
    """

    def __init__(
        self,
        *,
        directory: PathLike | None = None,
        packages: Sequence[str | tuple[str, str]] | None = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
    ) -> None:
        self.directory = directory
        self.packages = packages
        self.all_directories = self.get_directories(directory, packages)
        self.html = html
        self.config_checked = False
        self.follow_symlink = follow_symlink
        if check_dir and directory is not None and not os.path.isdir(directory):
            msg = f"Directory '{directory}' does not exist"
            raise RuntimeError(msg)

    def get_directories(
        self,
        directory: PathLike | None = None,
        packages: Sequence[str | tuple[str, str]] | None = None,
    ) -> list[PathLike]:
        """The directories to serve from: ``directory``, then each package's folder.

        Raises:
            AssertionError: A package or its folder cannot be found.
        """
        directories: list[PathLike] = []
        if directory is not None:
            directories.append(directory)
        for package in packages or []:
            name, folder = package if isinstance(package, tuple) else (package, "statics")
            spec = importlib.util.find_spec(name)
            assert spec is not None, f"Package {name!r} could not be found."
            assert spec.origin is not None, f"Package {name!r} could not be found."
            found = os.path.normpath(os.path.join(spec.origin, "..", folder))
            assert os.path.isdir(found), (
                f"Directory '{folder!r}' in package {name!r} could not be found."
            )
            directories.append(found)
        return directories

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serves one request (a websocket is closed at once)."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            msg = f"StaticFiles serves http requests, not ASGI {scope['type']!r}"
            raise RuntimeError(msg)
        if not self.config_checked:
            await self.check_config()
            self.config_checked = True
        try:
            response = await self.get_response(self.get_path(scope), scope)
        except HTTPException as error:
            if "app" in scope:
                raise  # mounted: the app's exception handlers answer it
            response = PlainTextResponse(
                str(error.detail), status_code=error.status_code, headers=error.headers
            )
        await response(scope, receive, send)

    def get_path(self, scope: Scope) -> str:
        """The file path the request asks for, relative, with ``.`` and ``..`` resolved."""
        return os.path.normpath(os.path.join(*route_path(scope).split("/")))

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The response for ``path`` (from :meth:`get_path`).

        Raises:
            HTTPException: 405 for a method other than GET and HEAD, 404 for
                a missing file, 401 for one the server may not read.
        """
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        try:
            full_path, stat_result = await trio.to_thread.run_sync(self.lookup_path, path)
        except PermissionError:
            raise HTTPException(401) from None
        except ValueError:
            raise HTTPException(404) from None  # a null byte, or the like, in the path
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                raise HTTPException(404) from None
            raise
        if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
            return self.file_response(full_path, stat_result, scope)
        if stat_result is not None and stat.S_ISDIR(stat_result.st_mode) and self.html:
            index = os.path.join(path, "index.html")
            full_path, stat_result = await trio.to_thread.run_sync(self.lookup_path, index)
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                if not scope["path"].endswith("/"):
                    # A directory's URL ends in "/", so its page's relative links work.
                    raw = scope.get("raw_path") or scope["path"].encode()
                    target = raw.decode("latin-1") + "/"
                    query = scope.get("query_string", b"")
                    if query:
                        target += "?" + query.decode("latin-1")
                    return RedirectResponse(absolute_url(scope, target))
                return self.file_response(full_path, stat_result, scope)
        if self.html:
            full_path, stat_result = await trio.to_thread.run_sync(self.lookup_path, "404.html")
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                return FileResponse(full_path, stat_result=stat_result, status_code=404)
        raise HTTPException(404)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """Finds ``path`` in the served directories (blocking: runs in a worker thread).

        Returns:
            The full path and its stat, or ``("", None)`` when no directory has
            it or it would leave the directory.
        """
        if path.startswith(("/", "\\")):
            return "", None
        for directory in self.all_directories:
            joined = os.path.join(directory, path)
            if self.follow_symlink:
                full_path, root = os.path.abspath(joined), os.path.abspath(directory)
            else:
                full_path, root = os.path.realpath(joined), os.path.realpath(directory)
            if os.path.commonpath([full_path, root]) != str(root):
                continue  # outside the directory: a traversal attempt
            try:
                return full_path, os.stat(full_path)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return "", None

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        """The file's response, or a 304 when the request's validators still match it."""
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope.get("headers", ()))):
            return NotModifiedResponse(response.headers)
        return response

    async def check_config(self) -> None:
        """Checks, once, that ``directory`` is a directory.

        Raises:
            RuntimeError: It does not exist or is no directory.
        """
        if self.directory is None:
            return
        try:
            stat_result = await trio.to_thread.run_sync(os.stat, self.directory)
        except FileNotFoundError:
            msg = f"StaticFiles directory '{self.directory}' does not exist."
            raise RuntimeError(msg) from None
        if not (stat.S_ISDIR(stat_result.st_mode) or stat.S_ISLNK(stat_result.st_mode)):
            msg = f"StaticFiles path '{self.directory}' is not a directory."
            raise RuntimeError(msg)

    def is_not_modified(
        self, response_headers: Mapping[str, str], request_headers: Mapping[str, str]
    ) -> bool:
        """True when the request's ``If-None-Match`` / ``If-Modified-Since`` still match."""
        if_none_match = request_headers.get("if-none-match")
        if if_none_match:
            if if_none_match.strip() == "*":
                return True
            etag = response_headers["etag"]
            return etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        since_header = request_headers.get("if-modified-since")
        modified_header = response_headers.get("last-modified")
        if since_header is None or modified_header is None:
            return False
        since: Any = parsedate(since_header)
        modified: Any = parsedate(modified_header)
        return since is not None and modified is not None and since >= modified

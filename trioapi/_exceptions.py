"""One error hierarchy for the whole framework.

Every error trioapi raises on purpose derives from :class:`TrioAPIError` and
carries ``status_hint``: the HTTP status a request should get when the error
escapes an endpoint. Where a builtin exception describes the same situation,
ours also subclasses it (``RequestValidationError`` is a ``ValueError``), so
code that already catches the builtin keeps working.
"""

from __future__ import annotations

import http
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, final


class TrioAPIError(RuntimeError):
    """Base class of the errors trioapi raises.

    Attributes:
        status_hint: The HTTP status code a request gets when this error
            escapes a path operation without a handler of its own.
    """

    status_hint: int = 500


class HTTPException(TrioAPIError):
    """Raise in a path operation or dependency to answer with an HTTP error.

    Args:
        status_code: The response's status code.
        detail: Goes into the JSON body as ``{"detail": detail}``; defaults to
            the status code's reason phrase.
        headers: Extra response headers (``WWW-Authenticate``, ``Retry-After``...).
    """

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            try:
                detail = http.HTTPStatus(status_code).phrase
            except ValueError:
                detail = ""
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.status_hint = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class EndpointContext(TypedDict, total=False):
    """Where a validation error happened, for its message (FastAPI's ``endpoint_ctx``)."""

    function: str
    """The endpoint's name."""
    path: str
    """``"GET /users/{user_id}"``, with the prefix of any app it is mounted under."""
    file: str
    """The file the endpoint is defined in."""
    line: int
    """The line of its definition."""


class ValidationException(TrioAPIError, ValueError):
    """Base of the validation errors: a list of FastAPI-shaped error entries.

    Each entry is ``{"type": ..., "loc": ("query", "limit"), "msg": ...,
    "input": ...}`` (``ctx`` when there is one); ``loc`` is a tuple, as in
    FastAPI, and becomes a list in the JSON answer. ``endpoint_ctx`` says
    which endpoint it was (the app fills it in for the errors it raises);
    ``str()`` shows it after the entries.
    """

    def __init__(
        self,
        errors: Sequence[Mapping[str, Any]],
        *,
        body: Any = None,
        endpoint_ctx: EndpointContext | None = None,
    ) -> None:
        super().__init__(f"{len(errors)} validation error{'' if len(errors) == 1 else 's'}")
        self._errors = [_with_tuple_loc(error) for error in errors]
        self.body = body
        self.endpoint_ctx = endpoint_ctx

    @property
    def endpoint_function(self) -> str | None:
        return (self.endpoint_ctx or {}).get("function")

    @property
    def endpoint_path(self) -> str | None:
        return (self.endpoint_ctx or {}).get("path")

    @property
    def endpoint_file(self) -> str | None:
        return (self.endpoint_ctx or {}).get("file")

    @property
    def endpoint_line(self) -> int | None:
        return (self.endpoint_ctx or {}).get("line")

    def errors(self) -> list[dict[str, Any]]:
        """Returns the list of error entries (a copy)."""
        return [dict(error) for error in self._errors]

    def __str__(self) -> str:
        count = len(self._errors)
        lines = [f"{count} validation error{'' if count == 1 else 's'}:"]
        lines.extend(f"  {error}" for error in self._errors)
        where, line, path = self.endpoint_file, self.endpoint_line, self.endpoint_path
        if where and line and self.endpoint_function:
            lines.append(f'  File "{where}", line {line}, in {self.endpoint_function}')
            if path:
                lines.append(f"    {path}")
        elif path:
            lines.append(f"  Endpoint: {path}")
        return "\n".join(lines)


def endpoint_context(endpoint: Any, method: str, path: str) -> EndpointContext:
    """The context of a validation error in ``endpoint``, serving ``method path``."""
    context = EndpointContext(path=f"{method} {path}")
    name = getattr(endpoint, "__name__", None)
    code = getattr(inspect.unwrap(endpoint), "__code__", None) if callable(endpoint) else None
    if name is not None:
        context["function"] = name
    if code is not None:
        context["file"] = code.co_filename
        context["line"] = code.co_firstlineno
    return context


def _with_tuple_loc(error: Mapping[str, Any]) -> dict[str, Any]:
    entry = dict(error)
    loc = entry.get("loc")
    if isinstance(loc, list):
        entry["loc"] = tuple(loc)
    return entry


class RequestValidationError(ValidationException):
    """The request's path, query, headers, cookies or body did not validate (422)."""

    status_hint = 422


class WebSocketRequestValidationError(ValidationException):
    """A websocket's parameters did not validate (the socket closes with 1008)."""

    status_hint = 422


class WebSocketException(TrioAPIError):
    """Raise in a websocket endpoint or dependency to close the socket with ``code``.

    Before the handshake it refuses the connection, after it closes the
    socket; either way the client sees ``code`` and ``reason``. Escaping an
    HTTP path operation, it is a server error (500), as in FastAPI.

    Args:
        code: A close code (RFC 6455, section 7.4), such as
            ``status.WS_1008_POLICY_VIOLATION``.
        reason: Why, in at most 123 bytes of UTF-8 (a close frame's room).
    """

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(code, reason or "")
        self.code = code
        self.reason = reason or ""

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class ResponseValidationError(ValidationException):
    """A path operation returned a value its response model does not accept (500).

    This is the server's mistake, not the client's: it is logged with the
    entries, and the client gets a plain 500.
    """

    status_hint = 500


@final
class MalformedRequestError(TrioAPIError, ValueError):
    """The request cannot be read at all: bad JSON, bad encoding, bad framing."""

    status_hint = 400

    def __init__(self, detail: str, *, status_code: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_hint = status_code


class BackgroundError(TrioAPIError):
    """Base class of the background runtime's refusals."""


@final
class BackgroundCapacityError(BackgroundError):
    """``add_task`` was refused: the runtime's pending-task cap is reached.

    Escaping an endpoint, it becomes ``503 Service Unavailable`` with a
    ``Retry-After`` header, so clients back off instead of losing work silently.
    """

    status_hint = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@final
class BackgroundClosedError(BackgroundError, RuntimeError):
    """``add_task`` was refused: the runtime is draining for shutdown or closed.

    Escaping an endpoint, it becomes ``503 Service Unavailable``.
    """

    status_hint = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@final
class BackgroundTaskTimeout(BackgroundError, TimeoutError):
    """A background task ran past the timeout it was given.

    Passed to error hooks (and logged) like any other task failure.
    """


class TaskStoreError(BackgroundError):
    """The durable task store could not do what was asked: it is down, full or refused.

    Raised while committing a request's durable tasks, it becomes
    ``503 Service Unavailable``: nothing was stored, the client may retry.
    """

    status_hint = 503
    retry_after = 1


class RouteDefinitionError(TrioAPIError, TypeError, AssertionError):
    """A path operation or dependency cannot be registered as written.

    Raised at import time, never per request: the message names the function,
    the parameter and what to write instead. It is also an ``AssertionError``,
    which is what FastAPI raises for the same mistakes.
    """


class TrioAPIDeprecationWarning(UserWarning):
    """A trioapi feature that will go away (FastAPI's ``FastAPIDeprecationWarning``).

    A ``UserWarning``, not a ``DeprecationWarning``: Python hides the latter
    by default, and these should be seen.
    """

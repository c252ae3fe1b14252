"""What trioapi knows about hypercorn's trio server (hypercorn 0.18).

Three things live here, all tied to hypercorn's internals (the version range
is pinned in ``pyproject.toml`` and in :data:`HYPERCORN_RANGE`; the in-memory
harness checks these internals and fails loudly if they move):

- :func:`find_config`: ASGI gives an app no view of its server's settings,
  but the lifespan call is made by hypercorn's ``Lifespan.handle_lifespan``,
  whose frame is up the call chain while the app starts up. The app reads
  ``shutdown_timeout`` there to warn when the drain cannot fit.

- :class:`GuardedTCPServer`: hypercorn's ``TCPServer._close`` calls
  ``stream.send_eof()`` outside the ``send_lock`` that ``protocol_send`` holds
  around ``send_all``. When a connection is closed from one side (the app's
  response ended) while the other is writing (the read loop sending its own
  400 for a broken chunk, a client gone mid-body), one of the writes gets
  ``trio.BusyResourceError``. Nothing catches it in the read loop: it escapes
  the connection and stops the whole server, so a single malformed request
  could take a server down. The guard treats it as the closed connection it
  is. :func:`install_guard` puts it in place of hypercorn's class when the
  app starts under hypercorn (hypercorn looks the class up after startup).

- :func:`sends_whole_bodies`: in hypercorn's HTTP/1 path, an
  ``http.response.body`` message with ``more_body=True`` raises ``Cancelled``
  only *before* any of its bytes are written (at the send lock), never after:
  the write itself is shielded, and nothing after it checkpoints until the
  call returns. The app relies on this to keep "response delivered" and
  "tasks handed over" together without a cancel scope of its own
  (``_responses.send_final``), but only where the ``send`` it was given is
  hypercorn's own (an ASGI middleware around the app may buffer the body
  and write it later) and for the checked versions. HTTP/2 queues the data
  and then waits on flow control, so it does not qualify.
  ``tests/test_harness.py`` checks the property on the real code.
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from typing import Any

import trio
from hypercorn.events import Closed
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.trio.tcp_server import TCPServer

logger = logging.getLogger("trioapi")

HYPERCORN_RANGE = ((0, 18), (0, 19))
"""The hypercorn versions trioapi was checked against: at least the first, below the second."""

WHOLE_BODY_HTTP_VERSIONS = frozenset({"1.0", "1.1"})
"""``scope["http_version"]`` values whose body sends have the property above."""


def hypercorn_version() -> tuple[str, bool]:
    """hypercorn's installed version, and whether it is inside :data:`HYPERCORN_RANGE`."""
    try:
        version = metadata.version("hypercorn")
    except metadata.PackageNotFoundError:  # pragma: no cover - hypercorn is a dependency
        return "unknown", False
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return version, False
    low, high = HYPERCORN_RANGE
    return version, low <= major_minor < high


def sends_whole_bodies(send: Any, scope: Any) -> bool:
    """Whether ``send`` writes a body message whole or raises before writing any of it.

    True only for hypercorn's own send (not a middleware's) on HTTP/1; the
    caller also checks, once, that hypercorn's version is a checked one
    (:func:`hypercorn_version`).
    """
    return (
        getattr(send, "__func__", None) is HTTPStream.app_send
        and scope["http_version"] in WHOLE_BODY_HTTP_VERSIONS
    )


class GuardedTCPServer(TCPServer):
    """hypercorn's trio ``TCPServer``, minus the self-inflicted ``BusyResourceError``."""

    async def protocol_send(self, event: Any) -> None:
        try:
            await super().protocol_send(event)
        except trio.BusyResourceError:
            # Its own close raced this write: the connection is going away.
            await self.protocol.handle(Closed())


def install_guard() -> None:
    """Makes hypercorn's trio worker build :class:`GuardedTCPServer` connections."""
    import hypercorn.trio.run as hypercorn_run

    if getattr(hypercorn_run, "TCPServer", None) is TCPServer:
        setattr(hypercorn_run, "TCPServer", GuardedTCPServer)  # noqa: B010 - not re-exported
        logger.debug("trioapi: guarding hypercorn's TCPServer against its close/send race")


def find_config() -> Any:
    """Finds the hypercorn ``Config`` whose lifespan is calling us, if any.

    Anything unexpected means "not hypercorn", and None.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__module__.startswith("hypercorn.") and type(owner).__name__ == "Lifespan":
            config = getattr(owner, "config", None)
            if config is not None and hasattr(config, "shutdown_timeout"):
                return config
        frame = frame.f_back  # type: ignore[assignment]
    return None

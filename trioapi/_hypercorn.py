"""What trioapi knows about hypercorn's trio server (hypercorn 0.18).

Two things live here, both tied to hypercorn's internals (the version range is
pinned in ``pyproject.toml``; the in-memory harness checks these internals and
fails loudly if they move):

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
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import trio
from hypercorn.events import Closed
from hypercorn.trio.tcp_server import TCPServer

logger = logging.getLogger("trioapi")


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

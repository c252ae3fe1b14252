"""Serving on hypercorn's trio worker, inside any trio program.

``server = await nursery.start(trioapi.serve, app, "127.0.0.1:0")`` binds,
starts the lifespan (and with it the background runtime), and hands back a
:class:`Server`. ``await server.shutdown()`` runs the graceful sequence:
stop accepting → in-flight requests finish within hypercorn's
``graceful_timeout`` → ``lifespan.shutdown`` → background drain within
``drain_timeout`` → return. Cancelling the surrounding scope instead stops
everything at once: hypercorn never sends ``lifespan.shutdown``, so there is
no drain and the report counts the unfinished tasks as cancelled.

A background task that ignores cancellation (it shields itself, or catches
``Cancelled`` and carries on) cannot hold either up for more than 1 s: the
runtime abandons it, names it, and lists it in ``app.background.stragglers``.
trio itself waits for it before ``trio.run`` returns; ``python -m trioapi``
exits without waiting (``os._exit``), an embedding program decides.

Limits on clients (see ``docs/reliability.md``), all on by default:

- a request head (request line and headers) over ``DEFAULT_MAX_HEAD_SIZE``
  gets 431 (hypercorn's ``h11_max_incomplete_size``);
- a client has ``keep_alive_timeout`` (5 s) from connecting, or from its
  previous response, to send a complete request head: hypercorn's idle timer
  only stops once the head is parsed, so headers sent a byte at a time cannot
  hold a connection;
- once the head is in, a request body that stops arriving while the app
  reads it gets 408 after the app's ``body_timeout`` (60 s), and the
  connection closes (``TrioAPI(body_timeout=...)``: the app owns body reading,
  so this holds under any server).

Off by default: ``max_connections=N`` caps the connections open at once;
with N open the server stops accepting, and new connections wait in the
kernel's backlog until one closes (``_server/connections.py``). Either way,
when accept fails for lack of descriptors, one WARNING per 10 s says so
instead of trio's traceback per retry.

hypercorn's own ``read_timeout`` stays off (its default): it bounds every
wait on the socket, so it also fires while an endpoint works and its client
quietly waits for the answer, or while a long streaming response flows to a
client that has nothing to say; the app then gets ``http.disconnect``, which
it cannot tell from a client that left. The body timeout only runs while the
app waits for body bytes, so slow endpoints and long streams are never cut.
"""

from __future__ import annotations

import copy
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, final

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from .._http.requests import DEFAULT_BODY_TIMEOUT as DEFAULT_BODY_TIMEOUT
from .._runtime.background import UNWIND_GRACE, DrainReport, RuntimeState
from ..middleware._stack import ASGIApp, find_app
from .connections import check_max_connections, limit_connections

if TYPE_CHECKING:
    from .._http.app import TrioAPI

logger = logging.getLogger("trioapi")

DEFAULT_BACKLOG = 2048
"""hypercorn's default of 100 overflows with 200 simultaneous connects (~1 s TCP retry)."""

SHUTDOWN_MARGIN = 5.0
"""Seconds that hypercorn's ``shutdown_timeout`` keeps above ``drain_timeout``."""

DEFAULT_MAX_HEAD_SIZE = 16 * 1024
"""Bytes of request line plus headers (hypercorn's ``h11_max_incomplete_size``); more: 431."""

DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
"""Seconds an idle connection stays open; also the time allowed to send a request head."""

STUCK_MARGIN = 1.0
"""Seconds past ``graceful_timeout`` after which hypercorn counts as stuck on a connection."""


def make_config(
    app: TrioAPI | ASGIApp,
    bind: str | Sequence[str] = "127.0.0.1:8000",
    config: Config | None = None,
) -> Config:
    """Returns a hypercorn ``Config`` with trioapi's production defaults.

    Binds are set from ``bind``; without ``config``, the accept backlog is
    2048, request heads are capped at 16 KiB (431) and idle connections close
    after 5 s (see the module docstring); and
    ``shutdown_timeout`` is raised, if needed, so that hypercorn waits for the
    whole background drain.
    """
    if config is None:
        config = Config()
        config.backlog = DEFAULT_BACKLOG
        config.accesslog = None
        config.h11_max_incomplete_size = DEFAULT_MAX_HEAD_SIZE
        config.keep_alive_timeout = DEFAULT_KEEP_ALIVE_TIMEOUT
    else:
        config = copy.copy(config)
    config.bind = [bind] if isinstance(bind, str) else list(bind)
    config.worker_class = "trio"
    inner = find_app(app)  # the TrioAPI inside middleware wrapped around it
    drain = inner.background.drain_timeout if inner is not None else None
    needed = drain + UNWIND_GRACE + SHUTDOWN_MARGIN if drain is not None else 0.0
    if config.shutdown_timeout < needed:
        config.shutdown_timeout = needed
    return config


@final
@attrs.define(eq=False)
class Server:
    """A running server, as handed back by :func:`serve`.

    Attributes:
        urls: The bound URLs (``http://127.0.0.1:54321``, ``http://unix:...``).
        app: The application being served (a ``TrioAPI``, or middleware around one).
        forced: True when a second signal stopped it at once, without a drain.
    """

    app: TrioAPI | ASGIApp
    urls: list[str] = attrs.Factory(list)
    _stop: trio.Event = attrs.Factory(trio.Event)
    _stopped: trio.Event = attrs.Factory(trio.Event)
    _stopping_now: trio.Event = attrs.Factory(trio.Event)

    @property
    def port(self) -> int:
        """The first TCP port bound (the real one when binding port 0)."""
        for url in self.urls:
            host_port = url.split("://", 1)[-1]
            head, sep, port = host_port.rpartition(":")
            if sep and port.isdigit() and not head.startswith("unix"):
                return int(port)
        msg = f"the server has no TCP bind: {self.urls!r}"
        raise RuntimeError(msg)

    forced: bool = False
    """True when the server was stopped at once (a second signal), without a drain."""

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_shutdown(self) -> None:
        """Starts the graceful sequence without waiting for it."""
        self._stop.set()

    async def shutdown(self) -> DrainReport | None:
        """Stops gracefully and returns the drain report once the server stopped.

        A background task that ignores cancellation does not hold this up: it
        is abandoned at ``drain_timeout`` + 1 s, named in the report, and
        listed in ``app.background.stragglers`` while it still runs (the
        trio run cannot return before it does; see ``docs/deploy.md``).
        """
        self._stop.set()
        await self._stopped.wait()
        inner = find_app(self.app)
        return inner.background.last_report if inner is not None else None


async def _watch_signals(server: Server, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not server.stopping:
                logger.warning(
                    "trioapi: %s received: stopping gracefully (again to stop at once)",
                    signal.Signals(signum).name,
                )
                server.request_shutdown()
            else:
                logger.warning("trioapi: second signal: stopping at once, without a drain")
                server.forced = True
                server._stopping_now.set()
                cancel_scope.cancel("a second shutdown signal")
                return


async def _drain_if_stuck(server: Server, graceful_timeout: float) -> None:
    """Drains the background tasks here when hypercorn cannot close its connections.

    hypercorn writes to a socket inside a shielded scope, so a client that
    stops reading its response holds that write past the cancellation at
    ``graceful_timeout``, and hypercorn never reaches the lifespan shutdown
    where the drain runs: until that client reads or leaves, the server
    cannot stop, and an orchestrator's SIGKILL would end tasks that nobody
    drained or reported. Draining here keeps the promise that every task is
    completed or reported; the lifespan shutdown, when it comes, finds the
    runtime closed and its report written.
    """
    await server._stop.wait()
    await trio.sleep(graceful_timeout + STUCK_MARGIN)
    inner = find_app(server.app)
    runtime = inner.background if inner is not None else None
    if runtime is not None and runtime.state is RuntimeState.ACCEPTING:
        logger.warning(
            "trioapi: connections are still open %g s after shutdown began (a client that "
            "stops reading its response holds hypercorn's write); draining background "
            "tasks now instead of waiting for them to close",
            graceful_timeout + STUCK_MARGIN,
        )
        await runtime.drain()


async def serve(
    app: TrioAPI | ASGIApp,
    bind: str | Sequence[str] = "127.0.0.1:8000",
    *,
    config: Config | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    handle_signals: bool = False,
    max_connections: int | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> Server:
    """Serves ``app`` with hypercorn's trio worker until shut down.

    Args:
        app: The application: a ``TrioAPI``, or any ASGI app (middleware
            wrapped around a ``TrioAPI``, whose drain report it then returns).
        bind: ``"HOST:PORT"`` (port 0 picks a free one), ``"[::1]:PORT"``,
            ``"unix:/path/to.sock"``, or a list of them.
        config: A hypercorn ``Config`` to start from (copied; its binds are
            replaced by ``bind``).
        shutdown_trigger: An async function whose return starts the graceful
            sequence, as an alternative to ``Server.shutdown()``.
        handle_signals: Run the graceful sequence on SIGTERM/SIGINT (main
            thread only); a second signal stops at once: every background
            task is cancelled and named, and gets 1 s to unwind.
        max_connections: At most this many connections open at once, over
            all binds; with that many open, new connections wait in the
            backlog until one closes (none is refused). None: no limit.
        task_status: Receives the :class:`Server` once every bind listens.

    Returns:
        The same :class:`Server`, once stopped.

    Raises:
        ValueError: ``max_connections`` is below 1.
    """
    check_max_connections(max_connections)
    config = make_config(app, bind, config)
    server = Server(app)

    async def trigger() -> None:
        async with trio.open_nursery() as nursery:

            async def user_trigger() -> None:
                assert shutdown_trigger is not None
                await shutdown_trigger()
                server.request_shutdown()

            if shutdown_trigger is not None:
                nursery.start_soon(user_trigger)
            await server._stop.wait()
            nursery.cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:

            async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
                try:
                    with limit_connections(max_connections):
                        await hypercorn_serve(
                            app,  # type: ignore[arg-type]
                            config,
                            shutdown_trigger=trigger,
                            task_status=task_status,
                        )
                finally:
                    # Stopped (gracefully or not): nothing else here may linger.
                    nursery.cancel_scope.cancel()

            if handle_signals:
                nursery.start_soon(_watch_signals, server, nursery.cancel_scope)
            nursery.start_soon(_drain_if_stuck, server, float(config.graceful_timeout))
            server.urls = await nursery.start(run_hypercorn)
            inner = find_app(app)
            if inner is not None and inner.background.state is RuntimeState.CLOSED:
                # Startup failed: hypercorn reports "started" before the
                # failure reaches its nursery. Wait for that error instead of
                # handing back a server that is not serving.
                await trio.sleep_forever()
            task_status.started(server)
    finally:
        server._stopped.set()
    return server

"""Connections: a limit on how many are open, and one quiet log line when accept runs dry.

Theory of operation. hypercorn's trio worker hands its listeners and its
per-connection handler to ``trio.serve_listeners``; trioapi's serve paths
route that call through :func:`serve_listeners` here
(``hypercorn.route_serve_listeners``), which wraps each listener:

- with a limit (``serve(max_connections=N)``, ``--max-connections N``, per
  process), ``accept()`` first takes one of N slots and the handler gives it
  back once its connection is closed. With N open, nothing calls
  ``accept(2)``: new connections wait in the kernel's backlog (nothing is
  refused) until one closes;
- without one, the wrapper only watches accept fail.

When ``accept(2)`` fails for lack of resources (``EMFILE``: the process is
out of descriptors; ``ENFILE``, ``ENOMEM``, ``ENOBUFS``), trio retries every
0.1 s and logs each failure at ERROR with a traceback on the
``trio.serve_listeners`` logger: measured, 187 tracebacks in 20 s, outside
the log format. :class:`AcceptFailureLog`, a ``logging.Filter`` on that
logger, drops those records (and only those) and says it on the
``trioapi`` logger instead: one WARNING when the failures start, then at
most one per :data:`ACCEPT_LOG_WINDOW` while they go on, with the count;
and one INFO line once accept has not failed for :data:`RECOVERY_QUIET`
seconds (a server that frees one descriptor at a time, accepting one
connection between two failures, is still short of them). The wrapped
listener tells a small task per server that failures started, and that
task waits for the quiet.

Times come from trio's clock inside a trio run (``MockClock`` in tests), from
``time.monotonic`` elsewhere; the filter's state belongs to one run.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, final

import attrs
import trio

from .hypercorn import route_serve_listeners

logger = logging.getLogger("trioapi")

TRIO_ACCEPT_LOGGER = "trio.serve_listeners"
"""The logger on which trio reports each failed ``accept`` (with a traceback)."""

ACCEPT_LOG_WINDOW = 10.0
"""Seconds between two WARNING lines while accept keeps failing."""

RECOVERY_QUIET = 1.0
"""Seconds without a failed accept after which accept works again (trio retries every 0.1 s)."""

CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""The ``accept(2)`` errors that trio retries rather than raises (``ACCEPT_CAPACITY_ERRNOS``)."""

_HINTS = {
    errno.EMFILE: ("descriptors free up", "raise `ulimit -n` or set --max-connections"),
    errno.ENFILE: (
        "the system's file table has room",
        "raise fs.file-max or set --max-connections",
    ),
    errno.ENOMEM: ("the kernel has memory for them", "set --max-connections"),
    errno.ENOBUFS: ("the kernel has buffers for them", "set --max-connections"),
}


def _clock() -> tuple[trio.lowlevel.TrioToken | None, float]:
    """The current trio run (None outside one) and the time on its clock."""
    try:
        return trio.lowlevel.current_trio_token(), trio.current_time()
    except RuntimeError:
        return None, time.monotonic()


def _capacity_errno(record: logging.LogRecord) -> int | None:
    """The errno of trio's "accept returned EMFILE" record, None for any other record."""
    if record.levelno < logging.ERROR:
        return None
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, OSError):
        return error.errno if error.errno in CAPACITY_ERRNOS else None
    # Without the traceback: trio's message names the errno first.
    if isinstance(record.msg, str) and record.msg.startswith("accept returned") and record.args:
        code = getattr(errno, str(record.args[0]), None)  # type: ignore[index]
        return code if code in CAPACITY_ERRNOS else None
    return None


@attrs.define
class _Streak:
    """Failed accepts with no quiet of :data:`RECOVERY_QUIET` between them."""

    run: trio.lowlevel.TrioToken | None
    first: float
    last: float
    code: int
    failures: int = 0
    unreported: int = 0
    next_warning: float = 0.0


@final
class AcceptFailureLog(logging.Filter):
    """Replaces trio's traceback per failed accept with one WARNING per window, then an INFO.

    Installed on the ``trio.serve_listeners`` logger (:func:`install_accept_log`);
    records other than trio's capacity failures pass through untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._streak: _Streak | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        code = _capacity_errno(record)
        if code is None:
            return True
        self.failed(code)
        return False

    def _current(self, run: trio.lowlevel.TrioToken | None) -> _Streak | None:
        streak = self._streak
        # A streak of an earlier trio run (its clock) is no one's any more.
        return streak if streak is not None and streak.run is run else None

    def failed(self, code: int) -> None:
        """Counts one failed accept; logs a WARNING if none was logged this window."""
        run, now = _clock()
        with self._lock:
            streak = self._current(run)
            if streak is None:
                streak = self._streak = _Streak(run, now, now, code, next_warning=now)
            streak.last, streak.code = now, code
            streak.failures += 1
            streak.unreported += 1
            if now < streak.next_warning:
                return
            count, streak.unreported = streak.unreported, 0
            streak.next_warning = now + ACCEPT_LOG_WINDOW
        waits_until, fix = _HINTS.get(code, ("it recovers", "set --max-connections"))
        logger.warning(
            "trioapi: accept failed: %s (%s); connections wait in the backlog until %s "
            "(%d failure%s in the last %g s; %s)",
            errno.errorcode.get(code, str(code)),
            os.strerror(code),
            waits_until,
            count,
            "" if count == 1 else "s",
            ACCEPT_LOG_WINDOW,
            fix,
        )

    def recovery_due(self) -> float | None:
        """When accepting counts as working again if nothing fails before; None: not failing."""
        run, _ = _clock()
        streak = self._current(run)
        return None if streak is None else streak.last + RECOVERY_QUIET

    def recover(self) -> bool:
        """Logs the INFO line and ends the failures if none came for :data:`RECOVERY_QUIET` s."""
        run, now = _clock()
        with self._lock:
            streak = self._current(run)
            if streak is None or now < streak.last + RECOVERY_QUIET:
                return False
            self._streak = None
        logger.info(
            "trioapi: accepting connections again: accept failed with %s for %.2f s (%d failure%s)",
            errno.errorcode.get(streak.code, str(streak.code)),
            streak.last - streak.first,
            streak.failures,
            "" if streak.failures == 1 else "s",
        )
        return True


ACCEPT_LOG = AcceptFailureLog()
"""The process's filter; :func:`install_accept_log` puts it on trio's logger."""


def install_accept_log() -> None:
    """Puts :data:`ACCEPT_LOG` on the ``trio.serve_listeners`` logger (once)."""
    trio_logger = logging.getLogger(TRIO_ACCEPT_LOGGER)
    if ACCEPT_LOG not in trio_logger.filters:
        trio_logger.addFilter(ACCEPT_LOG)


@attrs.define(eq=False)
class _RecoveryWatch:
    """One per server: waits for accept to fail, then for the quiet that ends it."""

    log: AcceptFailureLog
    _failing: trio.Event = attrs.Factory(trio.Event)

    def failed(self) -> None:
        self._failing.set()

    async def run(self) -> NoReturn:
        while True:
            await self._failing.wait()
            self._failing = trio.Event()
            # trio logged the failure (the filter counted it) before this task ran.
            while (due := self.log.recovery_due()) is not None:
                await trio.sleep_until(due)
                self.log.recover()


@final
@attrs.define(eq=False)
class _WatchedListener(trio.abc.Listener[Any]):
    """A listener whose ``accept`` waits for a free slot, and tells the watch when it fails."""

    listener: trio.abc.Listener[Any]
    slots: trio.Semaphore | None
    watch: _RecoveryWatch

    async def accept(self) -> Any:
        if self.slots is not None:
            await self.slots.acquire()
        try:
            return await self.listener.accept()
        except BaseException as error:
            if self.slots is not None:
                self.slots.release()
            if isinstance(error, OSError) and error.errno in CAPACITY_ERRNOS:
                self.watch.failed()
            raise

    async def aclose(self) -> None:
        await self.listener.aclose()


async def _serve_then_release(
    handler: Callable[[Any], Awaitable[object]], slots: trio.Semaphore, stream: Any
) -> None:
    try:
        await handler(stream)
    finally:
        try:
            # Closed before its slot frees, so the next accept has its descriptor.
            await trio.aclose_forcefully(stream)
        finally:
            slots.release()


_MAX_CONNECTIONS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "trioapi_max_connections", default=None
)


async def serve_listeners(
    handler: Callable[[Any], Awaitable[object]],
    listeners: list[trio.abc.Listener[Any]],
    *,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[list[trio.abc.Listener[Any]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """``trio.serve_listeners``, with the connection limit of the server calling it.

    The limit is the one :func:`limit_connections` set around the hypercorn
    server (none outside it).
    """
    await _serve_listeners(
        handler,
        listeners,
        handler_nursery=handler_nursery,
        task_status=task_status,
        max_connections=_MAX_CONNECTIONS.get(),
        log=ACCEPT_LOG,
    )


async def _serve_listeners(
    handler: Callable[[Any], Awaitable[object]],
    listeners: list[trio.abc.Listener[Any]],
    *,
    handler_nursery: trio.Nursery | None,
    task_status: trio.TaskStatus[list[trio.abc.Listener[Any]]],
    max_connections: int | None,
    log: AcceptFailureLog,
) -> NoReturn:
    slots = None
    if max_connections is not None:
        slots = trio.Semaphore(max_connections, max_value=max_connections)
        handler = functools.partial(_serve_then_release, handler, slots)
        logger.info(
            "trioapi: accepting at most %d connection%s at once; more wait in the backlog "
            "until one closes",
            max_connections,
            "" if max_connections == 1 else "s",
        )
    watch = _RecoveryWatch(log)
    watched: list[trio.abc.Listener[Any]] = [
        _WatchedListener(listener, slots, watch) for listener in listeners
    ]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.serve_listeners(
            handler, watched, handler_nursery=handler_nursery, task_status=task_status
        )
    raise AssertionError("trio.serve_listeners returned")  # pragma: no cover


def check_max_connections(max_connections: int | None) -> None:
    """Raises ``ValueError`` unless ``max_connections`` is None or at least 1."""
    if max_connections is not None and (
        isinstance(max_connections, bool) or not isinstance(max_connections, int)
    ):
        msg = f"max_connections must be an int or None (no limit), got {max_connections!r}"
        raise TypeError(msg)
    if max_connections is not None and max_connections < 1:
        msg = f"max_connections must be at least 1 (None: no limit), got {max_connections}"
        raise ValueError(msg)


def watch_accept() -> bool:
    """Installs :data:`ACCEPT_LOG` and the route through :func:`serve_listeners`, without a limit.

    Called by the app's startup under hypercorn (plain hypercorn's trio
    worker included: it hands over its listeners after the startup), and
    by :func:`limit_connections`.

    Returns:
        Whether hypercorn's listeners now go through :func:`serve_listeners`.
    """
    install_accept_log()
    return route_serve_listeners(serve_listeners)


@contextlib.contextmanager
def limit_connections(max_connections: int | None) -> Iterator[None]:
    """Within: a hypercorn trio server started here accepts at most ``max_connections`` at once.

    Also installs :data:`ACCEPT_LOG` and the route through :func:`serve_listeners`.

    Raises:
        ValueError: ``max_connections`` is below 1.
        RuntimeError: a limit was asked for but hypercorn no longer calls
            ``trio.serve_listeners`` the way trioapi routes it.
    """
    check_max_connections(max_connections)
    if not watch_accept() and max_connections is not None:
        msg = (
            "cannot limit connections: hypercorn's trio worker no longer hands its listeners "
            "to trio.serve_listeners (see trioapi/_server/hypercorn.py); run without "
            "max_connections, or use a checked hypercorn version"
        )
        raise RuntimeError(msg)
    token = _MAX_CONNECTIONS.set(max_connections)
    try:
        yield
    finally:
        _MAX_CONNECTIONS.reset(token)

"""``python -m trioapi --workers N``: a supervisor that lets every worker drain.

hypercorn's own supervisor (``hypercorn.run.run``) wakes when *one* worker
exits and then terminates the others. On shutdown that kills a worker still
draining longer background tasks (it does not handle SIGTERM, so it dies at
once): measured, a worker with 2.5 s tasks was gone 0.26 s after SIGTERM,
and the command still exited 0. This supervisor waits for every worker.

- The sockets are bound here, once, and each spawned worker inherits them.
- SIGTERM or SIGINT here closes the write end of a shutdown pipe; every
  worker, waiting for its read end to turn readable, runs the graceful
  sequence (requests, then its drain) and exits; the supervisor waits for
  all of them, then exits 0 (1 if any worker failed). A pipe rather than a
  ``multiprocessing.Event``: ``Event.set()`` blocks until every waiting
  process has acknowledged, forever if one was killed or stopped meanwhile
  (a second signal arriving during ``set()`` hung the supervisor). Closing
  a pipe never waits, and a supervisor that dies closes it too, so its
  workers stop gracefully instead of serving on as orphans.
- A second signal kills the workers at once and exits 1.
- Workers ignore SIGINT (a terminal's Ctrl+C reaches the whole process group;
  the supervisor decides) and treat their own SIGTERM as "stop gracefully"
  (systemd's default kill mode signals every process of the service).
- A worker that exits while serving (a crash, the OOM killer, a SIGKILL) is
  replaced, in its slot, and the others serve on; its in-memory background
  tasks are lost (said in a WARNING; durable tasks are not). One that exits
  before it served (its app's startup failed: a database down) failed at
  startup: the next replacement waits ``RESTART_BACKOFF`` seconds, doubled
  after each such failure in a row (at most ``RESTART_BACKOFF_MAX``); after
  ``STARTUP_FAILURES_MAX`` in a row the supervisor gives up, stops the others
  gracefully and exits 1 (``RestartPolicy``). Each worker tells the
  supervisor it serves by setting its slot in a shared array. Nothing is
  replaced once a shutdown began.
- A worker left with a background task that ignores cancellation exits
  without it after its drain, as ``python -m trioapi`` does (see ``cli.py``).
- ``--max-connections N`` holds in each worker: a worker with N open
  stops accepting, and the shared backlog feeds the others
  (``connections.py``).
"""

from __future__ import annotations

import functools
import logging
import logging.config
import multiprocessing
import multiprocessing.connection
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, final

import attrs
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from .._runtime.background import RuntimeState
from ..middleware._stack import find_app
from .connections import limit_connections

logger = logging.getLogger("trioapi")

RESTART_BACKOFF = 0.5
"""Seconds before the replacement of a worker that failed at startup; doubled each time in a row."""

RESTART_BACKOFF_MAX = 30.0
"""The longest wait before a replacement."""

STARTUP_FAILURES_MAX = 5
"""Failures at startup in a row after which the supervisor gives up."""


@final
@attrs.define
class RestartPolicy:
    """When to replace a worker that exited while serving (pure: no clock, no I/O).

    A worker that served (its lifespan started, its sockets listened) is
    replaced at once, and clears the count of failures. One that exited
    before it served failed at startup (its app's startup hook failed, a
    dependency is down): the wait doubles with each such failure in a row,
    from ``RESTART_BACKOFF`` up to ``RESTART_BACKOFF_MAX``, and the
    ``STARTUP_FAILURES_MAX``-th gives up. The count is shared by all slots:
    workers failing at startup one after another have a common cause.
    """

    failures: int = 0

    def after_exit(self, served: bool) -> float | None:
        """Seconds to wait before replacing a worker that exited; None: give up."""
        if served:
            self.failures = 0
            return 0.0
        self.failures += 1
        if self.failures >= STARTUP_FAILURES_MAX:
            return None
        return min(RESTART_BACKOFF * 2.0 ** (self.failures - 1), RESTART_BACKOFF_MAX)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _listen(sockets: Sockets, backlog: int) -> None:
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(backlog)


def _close(sockets: Sockets) -> None:
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()


def run_workers(
    target: str,
    config: Config,
    workers: int,
    settings: dict[str, Any],
    log_config: dict[str, Any],
    *,
    max_connections: int | None = None,
) -> int:
    """Runs ``workers`` worker processes serving ``target`` until shut down.

    Args:
        target: The app, as ``MODULE:ATTRIBUTE`` (each worker imports it).
        config: The hypercorn configuration (binds, timeouts, limits).
        workers: How many worker processes.
        settings: ``drain_timeout``, ``body_timeout`` and ``body_min_rate`` to set on each
            worker's app after import.
        log_config: The logging configuration each worker applies first.
        max_connections: The connections each worker keeps open at once at
            most (None: no limit); more wait in the shared backlog.

    Returns:
        The exit code: 0 when every worker drained and exited cleanly.
    """
    sockets = config.create_sockets()
    context = multiprocessing.get_context("spawn")
    # Workers get the read end; the supervisor closes the write end to stop them.
    shutdown, stop = context.Pipe(duplex=False)
    # Ignored while the workers start, so they inherit "ignore SIGINT".
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # served[slot] turns 1 once the slot's worker serves (see RestartPolicy).
    served = context.RawArray("b", workers)

    def spawn(slot: int) -> BaseProcess:
        served[slot] = 0
        return context.Process(
            target=_worker,
            args=(
                target,
                config,
                sockets,
                shutdown,
                settings,
                log_config,
                served,
                slot,
                max_connections,
            ),
            name=f"trioapi-worker-{slot}",
            daemon=True,
        )

    processes = [spawn(slot) for slot in range(workers)]
    for process in processes:
        process.start()

    stopping = False
    forced = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping, forced
        if not stopping:
            stopping = True
            logger.warning(
                "trioapi: %s received: stopping %d workers gracefully (again to stop at once)",
                signal.Signals(signum).name,
                len(processes),
            )
            stop.close()
        else:
            forced = True
            logger.warning("trioapi: second signal: stopping the workers at once, without a drain")
            for process in processes:
                if process.is_alive():
                    process.kill()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gave_up = False
    policy = RestartPolicy()
    replace_at: dict[int, float] = {}  # slot: when its replacement starts (time.monotonic)
    try:
        while True:
            alive = [process.sentinel for process in processes if process.is_alive()]
            if stopping:
                replace_at.clear()
            if not alive and not replace_at:
                break
            timeout = 1.0
            if replace_at:
                timeout = min(timeout, max(0.0, min(replace_at.values()) - time.monotonic()))
            if alive:
                multiprocessing.connection.wait(alive, timeout=timeout)
            else:
                time.sleep(timeout)
            if stopping:
                continue
            now = time.monotonic()
            for slot, process in enumerate(processes):
                if slot in replace_at or process.exitcode is None:
                    continue
                has_served = bool(served[slot])
                delay = policy.after_exit(has_served)
                if delay is None:
                    logger.error(
                        "trioapi: worker %d (pid %s) %s; %d workers in a row failed at "
                        "startup: giving up, stopping the others",
                        slot,
                        process.pid,
                        _exit_reason(process.exitcode),
                        STARTUP_FAILURES_MAX,
                    )
                    gave_up = stopping = True
                    stop.close()
                    break
                if has_served:
                    logger.warning(
                        "trioapi: worker %d (pid %s) %s while serving; the background tasks "
                        "it held in memory are lost. Starting a replacement",
                        slot,
                        process.pid,
                        _exit_reason(process.exitcode),
                    )
                else:
                    logger.warning(
                        "trioapi: worker %d (pid %s) %s before it served (its startup "
                        "failed); starting a replacement in %g s",
                        slot,
                        process.pid,
                        _exit_reason(process.exitcode),
                        delay,
                    )
                replace_at[slot] = now + delay
            for slot, when in list(replace_at.items()):
                if stopping or when > now:
                    continue
                del replace_at[slot]
                processes[slot] = replacement = spawn(slot)
                replacement.start()
                if forced:  # a second signal came while it started
                    replacement.kill()
        for process in processes:
            process.join()
    finally:
        stop.close()
        shutdown.close()
        _close(sockets)
    if forced or gave_up:
        return 1
    return 0 if all(process.exitcode == 0 for process in processes) else 1


def _worker(
    target: str,
    config: Config,
    sockets: Sockets,
    shutdown: Connection,
    settings: dict[str, Any],
    log_config: dict[str, Any],
    served: Any,
    slot: int,
    max_connections: int | None = None,
) -> None:
    from .cli import load_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.config.dictConfig(log_config)
    app = load_app(target)
    inner = find_app(app)  # the TrioAPI, when middleware wraps it
    if inner is not None:
        if settings["drain_timeout"] is not None:
            inner.background.drain_timeout = settings["drain_timeout"]
        inner.body_timeout = settings["body_timeout"]
        if settings.get("body_min_rate") is not None:
            inner.body_min_rate = settings["body_min_rate"] or None
    _listen(sockets, config.backlog)

    def serving() -> None:
        served[slot] = 1

    trio.run(_serve, app, config, sockets, shutdown, serving, max_connections)


async def _serve(
    app: Any,
    config: Config,
    sockets: Sockets,
    shutdown: Connection,
    serving: Callable[[], None],
    max_connections: int | None = None,
) -> None:
    async def trigger() -> None:
        # The supervisor's pipe turning readable (closed), or this worker's own SIGTERM.
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def on_sigterm() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(on_sigterm)
                # Waited for in a thread (portable: trio waits on sockets
                # only, on Windows), which a SIGTERM abandons.
                await trio.to_thread.run_sync(shutdown.poll, None, abandon_on_cancel=True)
                nursery.cancel_scope.cancel()

    # The limit (and the accept log) apply to hypercorn's server started in here.
    with limit_connections(max_connections):
        async with trio.open_nursery() as nursery:
            # hypercorn reports "started" once the lifespan started and it listens.
            await nursery.start(
                functools.partial(
                    worker_serve,
                    wrap_app(app, config.wsgi_max_body_size, "asgi"),
                    config,
                    sockets=sockets,
                    shutdown_trigger=trigger,
                )
            )
            runtime = find_app(app)
            if runtime is None or runtime.background.state is not RuntimeState.CLOSED:
                # (hypercorn says "started" even when the app's startup failed)
                serving()
    stragglers = runtime.background.stragglers if runtime is not None else []
    if stragglers:
        from .cli import _exit_now

        # As in `python -m trioapi`: trio.run would wait for these tasks.
        logger.warning(
            "trioapi: exiting without waiting for %d abandoned background task(s) that "
            "ignore cancellation: %s",
            len(stragglers),
            ", ".join(handle.name for handle in stragglers),
        )
        _exit_now(0)

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
- A worker that exits while the others serve (a crash) stops them gracefully,
  and the supervisor exits 1.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import multiprocessing.connection
import signal
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

logger = logging.getLogger("trioapi")


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
) -> int:
    """Runs ``workers`` worker processes serving ``target`` until shut down.

    Args:
        target: The app, as ``MODULE:ATTRIBUTE`` (each worker imports it).
        config: The hypercorn configuration (binds, timeouts, limits).
        workers: How many worker processes.
        settings: ``drain_timeout`` and ``body_timeout`` to set on each
            worker's app after import.
        log_config: The logging configuration each worker applies first.

    Returns:
        The exit code: 0 when every worker drained and exited cleanly.
    """
    sockets = config.create_sockets()
    context = multiprocessing.get_context("spawn")
    # Workers get the read end; the supervisor closes the write end to stop them.
    shutdown, stop = context.Pipe(duplex=False)
    # Ignored while the workers start, so they inherit "ignore SIGINT".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes = [
        context.Process(
            target=_worker,
            args=(target, config, sockets, shutdown, settings, log_config),
            name=f"trioapi-worker-{number}",
            daemon=True,
        )
        for number in range(workers)
    ]
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
    crashed = False
    try:
        while any(process.is_alive() for process in processes):
            alive = [process.sentinel for process in processes if process.is_alive()]
            multiprocessing.connection.wait(alive, timeout=1.0)
            if not stopping and any(process.exitcode is not None for process in processes):
                crashed = stopping = True
                logger.error("trioapi: a worker exited while serving: stopping the others")
                stop.close()
        for process in processes:
            process.join()
    finally:
        stop.close()
        shutdown.close()
        _close(sockets)
    if forced or crashed:
        return 1
    return 0 if all(process.exitcode == 0 for process in processes) else 1


def _worker(
    target: str,
    config: Config,
    sockets: Sockets,
    shutdown: Connection,
    settings: dict[str, Any],
    log_config: dict[str, Any],
) -> None:
    from .cli import load_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.config.dictConfig(log_config)
    app = load_app(target)
    app.background.drain_timeout = settings["drain_timeout"]
    app.body_timeout = settings["body_timeout"]
    _listen(sockets, config.backlog)
    trio.run(_serve, app, config, sockets, shutdown)


async def _serve(app: Any, config: Config, sockets: Sockets, shutdown: Connection) -> None:
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

    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, "asgi"),
        config,
        sockets=sockets,
        shutdown_trigger=trigger,
    )

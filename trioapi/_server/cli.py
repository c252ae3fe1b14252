"""``python -m trioapi module:app``: serve an app with production defaults.

Also ``python -m trioapi worker module:app`` (durable tasks without HTTP,
``_server/worker.py``) and ``python -m trioapi tasks`` (a task store's
counts and dead letters, ``_server/tasks_cli.py``), and ``python -m trioapi
migrate PATH`` (port a FastAPI code base's imports, ``_server/migrate.py``).

One worker (the default) runs in this process: SIGTERM or SIGINT start the
graceful sequence, a second signal stops at once, and the exit code is 0
after a clean drain. With ``--workers N`` a supervisor (``_server/workers.py``)
starts N worker processes sharing the sockets; SIGTERM/SIGINT to it stop
all of them gracefully, and it waits until every worker has drained.

The process always ends on time, even when something ignores cancellation:

- a background task that shields itself (or catches ``Cancelled`` and
  carries on) is abandoned at the drain deadline plus 1 s and named in the
  report; the server then stops, and since trio would wait for that task
  before ``trio.run`` returns, the process exits without it (``os._exit``,
  after the logs are flushed), naming it once more;
- after a second signal, the process exits with code 1 within
  ``FORCED_EXIT_AFTER`` seconds whatever still runs (a task that shields
  itself, hypercorn's shielded write to a client that stopped reading),
  with a log line naming every background task cut off.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import inspect
import logging
import logging.config
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import trio
from hypercorn.config import Config

from ..middleware._stack import ASGIApp, find_app
from .serve import (
    DEFAULT_BACKLOG,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_HEAD_SIZE,
    Server,
    make_config,
    serve,
)

LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"

FORCED_EXIT_AFTER = 1.5
"""Seconds after a second signal before the process exits, stopped or not.

The runtime gives cancelled tasks 1 s to unwind (``UNWIND_GRACE``); this
leaves room for that, within the 2 s an operator may expect."""

logger = logging.getLogger("trioapi")


def load_app(target: str) -> Any:
    """Imports ``module:attribute`` (the current directory is importable).

    Any ASGI app is accepted: a ``TrioAPI``, or middleware wrapped around one
    (``app = SomeMiddleware(app)``), whose ``TrioAPI`` is found inside.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        msg = f"expected MODULE:APP (for example examples.notify:app), got {target!r}"
        raise SystemExit(msg)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        msg = f"cannot import {module_name!r}: {error}"
        raise SystemExit(msg) from None
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            msg = f"module {module_name!r} has no attribute {attribute!r}"
            raise SystemExit(msg) from None
    if not _is_asgi(app):
        msg = (
            f"{target} is a {type(app).__name__}, not a TrioAPI application nor an ASGI "
            "app around one (async def app(scope, receive, send))"
        )
        raise SystemExit(msg)
    return app


def _is_asgi(app: Any) -> bool:
    # An ASGI 3 app is awaited when called: a coroutine function or an async __call__.
    return callable(app) and (
        inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(type(app).__call__)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trioapi",
        description="Serve a trioapi application on hypercorn's trio worker.",
    )
    parser.add_argument("app", help="the application, as MODULE:ATTRIBUTE")
    parser.add_argument(
        "-b",
        "--bind",
        action="append",
        default=None,
        help="HOST:PORT, [IPV6]:PORT or unix:PATH; repeat to bind several (default 127.0.0.1:8000)",
    )
    parser.add_argument("-w", "--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        help=f"accept backlog per socket (default {DEFAULT_BACKLOG})",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="seconds shutdown waits for background tasks (default: the app's, 25)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=3.0,
        help="seconds shutdown waits for in-flight requests (default 3)",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=DEFAULT_KEEP_ALIVE_TIMEOUT,
        help=(
            "seconds an idle keep-alive connection stays open, and the time a client has "
            f"to send a complete request head (default {DEFAULT_KEEP_ALIVE_TIMEOUT:g})"
        ),
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=None,
        help=(
            "seconds a request body may stop arriving before the request gets 408; "
            f"0 disables (default: the app's, {DEFAULT_BODY_TIMEOUT:g} unless it sets "
            "body_timeout=)"
        ),
    )
    parser.add_argument(
        "--body-min-rate",
        type=float,
        default=None,
        help=(
            "bytes per second a request body must average once --body-timeout has passed "
            "since the app began reading it, or it gets 408; 0 disables (default: the "
            "app's, 1024 unless it sets body_min_rate=)"
        ),
    )
    parser.add_argument(
        "--max-head-size",
        type=int,
        default=DEFAULT_MAX_HEAD_SIZE,
        help=(
            "bytes allowed for the request line and headers together; larger heads get 431 "
            f"(default {DEFAULT_MAX_HEAD_SIZE})"
        ),
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help=(
            "connections open at once, per worker; more wait in the accept backlog until "
            "one closes (default: no limit)"
        ),
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log every request to stdout (default off)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level for trioapi and hypercorn (default info)",
    )
    return parser


def _log_config(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT, "datefmt": LOG_DATE_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "trioapi": {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
        },
    }


def configure(app: ASGIApp, args: argparse.Namespace) -> Config:
    config = Config()
    config.backlog = args.backlog
    config.graceful_timeout = args.graceful_timeout
    config.keep_alive_timeout = args.keep_alive_timeout
    config.h11_max_incomplete_size = args.max_head_size
    config.loglevel = args.log_level.upper()
    config.accesslog = "-" if args.access_log else None
    config.logconfig_dict = _log_config(args.log_level)
    inner = find_app(app)
    if inner is not None:
        if args.drain_timeout is not None:
            inner.background.drain_timeout = args.drain_timeout
        if args.body_timeout is not None:
            inner.body_timeout = args.body_timeout or None
        if args.body_min_rate is not None:
            inner.body_min_rate = args.body_min_rate or None
    return make_config(app, args.bind or ["127.0.0.1:8000"], config)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "tasks":
        from .tasks_cli import main as tasks_main

        return tasks_main(argv[1:])
    if argv and argv[0] == "worker":
        return worker_main(argv[1:])
    if argv and argv[0] == "migrate":
        from .migrate import main as migrate_main

        return migrate_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    if (args.body_timeout is not None and args.body_timeout < 0) or args.keep_alive_timeout <= 0:
        raise SystemExit("--body-timeout must be >= 0 and --keep-alive-timeout > 0 seconds")
    if args.body_min_rate is not None and args.body_min_rate < 0:
        raise SystemExit("--body-min-rate must be >= 0 bytes per second (0 disables)")
    if args.max_head_size < 1024:
        raise SystemExit("--max-head-size must be at least 1024 bytes")
    if args.max_connections is not None and args.max_connections < 1:
        raise SystemExit("--max-connections must be at least 1 (leave it out for no limit)")
    app = load_app(args.app)
    config = configure(app, args)
    logging.config.dictConfig(_log_config(args.log_level))
    if args.workers == 1:
        try:
            server = trio.run(_serve_here, app, config, args.max_connections)
        except BaseExceptionGroup as group:
            failed, _ = group.split(_is_startup_failure)
            if failed is None:
                raise
            # The app said why (logged above); hypercorn's traceback adds nothing.
            logger.error("trioapi: not serving: the application's startup failed")  # noqa: TRY400
            return 3
        # A forced stop (second signal) dropped tasks without a drain.
        return 1 if server.forced else 0
    # Several processes: each worker imports the app anew and gets these.
    from .workers import run_workers

    inner = find_app(app)
    settings = (
        {
            "drain_timeout": inner.background.drain_timeout,
            "body_timeout": inner.body_timeout,
            "body_min_rate": inner.body_min_rate,
        }
        if inner is not None
        else {
            "drain_timeout": args.drain_timeout,
            "body_timeout": args.body_timeout or None,
            "body_min_rate": args.body_min_rate,
        }
    )
    return run_workers(
        args.app,
        config,
        args.workers,
        settings,
        _log_config(args.log_level),
        max_connections=args.max_connections,
    )


def _is_startup_failure(error: BaseException) -> bool:
    from hypercorn.utils import LifespanFailureError

    return isinstance(error, LifespanFailureError)


def worker_main(argv: Sequence[str]) -> int:
    """``python -m trioapi worker MODULE:APP``: run durable tasks without serving HTTP."""
    parser = argparse.ArgumentParser(
        prog="python -m trioapi worker",
        description="Run an app's durable tasks from its task store, without serving HTTP.",
    )
    parser.add_argument("app", help="the application, as MODULE:ATTRIBUTE")
    parser.add_argument("--drain-timeout", type=float, default=None, help="seconds (default 25)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    app = load_app(args.app)
    inner = find_app(app)
    if inner is None:
        raise SystemExit(f"{args.app} is not a TrioAPI app (nor middleware around one)")
    if args.drain_timeout is not None:
        inner.background.drain_timeout = args.drain_timeout
    logging.config.dictConfig(_log_config(args.log_level))
    from .worker import LifespanFailed, run_worker

    try:
        code = trio.run(run_worker, app)
    except BaseExceptionGroup as group:
        failed, _ = group.split(LifespanFailed)
        if failed is None:
            raise
        logger.error("trioapi worker: not running: the application's startup failed")  # noqa: TRY400
        return 3
    stragglers = inner.background.stragglers
    if stragglers:
        _exit_now(code or 1)
    return code


async def _serve_here(app: ASGIApp, config: Config, max_connections: int | None = None) -> Server:
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            functools.partial(
                serve,
                app,
                config.bind,
                config=config,
                handle_signals=True,
                max_connections=max_connections,
            )
        )
        nursery.start_soon(_exit_if_a_forced_stop_hangs, server)
        await server._stopped.wait()
        nursery.cancel_scope.cancel()
    inner = find_app(app)
    stragglers = inner.background.stragglers if inner is not None else []
    if stragglers:
        # Abandoned tasks that ignore cancellation: trio.run would wait for
        # them to return. The report named them; nothing else is left to do.
        logger.warning(
            "trioapi: exiting without waiting for %d abandoned background task(s) that "
            "ignore cancellation: %s",
            len(stragglers),
            ", ".join(handle.name for handle in stragglers),
        )
        _exit_now(1 if server.forced else 0)
    return server


async def _exit_if_a_forced_stop_hangs(server: Server) -> None:
    """Ends the process ``FORCED_EXIT_AFTER`` s after a second signal if still running.

    Something ignores the cancellation: a task that shields itself, or
    hypercorn's (shielded) write to a client that stopped reading.
    """
    await server._stopping_now.wait()
    await trio.sleep(FORCED_EXIT_AFTER)
    inner = find_app(server.app)
    runtime = inner.background if inner is not None else None
    cut_off = (
        [handle.name for handle in (*runtime.in_flight(), *runtime.stragglers)] if runtime else []
    )
    logger.warning(
        "trioapi: not stopped %g s after the second signal: exiting now; background tasks "
        "cut off: %s",
        FORCED_EXIT_AFTER,
        ", ".join(cut_off) if cut_off else "none",
    )
    _exit_now(1)


def _exit_now(code: int) -> NoReturn:
    """Exits without waiting for trio to unwind (or for anything else), logs flushed."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a pipe nobody reads
            stream.flush()
    os._exit(code)

"""``python -m trioapi module:app``: serve an app with production defaults.

One worker (the default) runs in this process: SIGTERM or SIGINT start the
graceful sequence, a second signal stops at once, and the exit code is 0
after a clean drain. With ``--workers N`` a supervisor (``_server/workers.py``)
starts N worker processes sharing the sockets; SIGTERM/SIGINT to it stop
all of them gracefully, and it waits until every worker has drained.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging.config
import os
import sys
from collections.abc import Sequence
from typing import Any

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
        default=DEFAULT_BODY_TIMEOUT,
        help=(
            "seconds a request body may stop arriving before the request gets 408; "
            f"0 disables (default {DEFAULT_BODY_TIMEOUT:g})"
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
        inner.body_timeout = args.body_timeout or None
    return make_config(app, args.bind or ["127.0.0.1:8000"], config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    if args.body_timeout < 0 or args.keep_alive_timeout <= 0:
        raise SystemExit("--body-timeout must be >= 0 and --keep-alive-timeout > 0 seconds")
    if args.max_head_size < 1024:
        raise SystemExit("--max-head-size must be at least 1024 bytes")
    app = load_app(args.app)
    config = configure(app, args)
    logging.config.dictConfig(_log_config(args.log_level))
    if args.workers == 1:
        server = trio.run(_serve_here, app, config)
        # A forced stop (second signal) dropped tasks without a drain.
        return 1 if server.forced else 0
    # Several processes: each worker imports the app anew and gets these.
    from .workers import run_workers

    inner = find_app(app)
    settings = (
        {"drain_timeout": inner.background.drain_timeout, "body_timeout": inner.body_timeout}
        if inner is not None
        else {"drain_timeout": args.drain_timeout, "body_timeout": args.body_timeout or None}
    )
    return run_workers(args.app, config, args.workers, settings, _log_config(args.log_level))


async def _serve_here(app: ASGIApp, config: Config) -> Server:
    return await serve(app, config.bind, config=config, handle_signals=True)

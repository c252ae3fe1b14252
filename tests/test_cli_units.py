"""The command line's and serve()'s configuration, without starting servers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from hypercorn.config import Config

from trioapi import TrioAPI
from trioapi._server.cli import build_parser, configure, load_app
from trioapi._server.serve import DEFAULT_BACKLOG, SHUTDOWN_MARGIN, Server, make_config


def test_load_app_imports_module_and_attribute() -> None:
    app = load_app("examples.background_tasks:app")
    assert isinstance(app, TrioAPI)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("examples.background_tasks", "expected MODULE:APP"),
        ("no_such_module_here:app", "cannot import 'no_such_module_here'"),
        ("examples.background_tasks:nope", "has no attribute 'nope'"),
        ("examples.background_tasks:write_notification", "not a TrioAPI application"),
    ],
)
def test_load_app_says_what_is_wrong(target: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        load_app(target)


def test_parser_defaults_are_the_production_ones() -> None:
    args = build_parser().parse_args(["examples.background_tasks:app"])
    assert args.bind is None
    assert args.workers == 1
    assert args.backlog == DEFAULT_BACKLOG == 2048
    assert args.graceful_timeout == 3.0
    assert args.access_log is False


def test_configure_applies_options_and_keeps_shutdown_above_the_drain() -> None:
    app = TrioAPI()
    args = build_parser().parse_args(
        [
            "m:app",
            "--bind",
            "127.0.0.1:9000",
            "--bind",
            "[::1]:9000",
            "--drain-timeout",
            "70",
            "--graceful-timeout",
            "5",
            "--access-log",
            "--log-level",
            "warning",
        ]
    )
    config = configure(app, args)
    assert config.bind == ["127.0.0.1:9000", "[::1]:9000"]
    assert app.background.drain_timeout == 70
    assert config.graceful_timeout == 5
    assert config.accesslog == "-"
    assert config.shutdown_timeout >= 70 + SHUTDOWN_MARGIN
    assert config.logconfig_dict["loggers"]["trioapi"]["level"] == "WARNING"


def test_make_config_keeps_a_longer_shutdown_timeout_and_copies_the_config() -> None:
    app = TrioAPI(drain_timeout=10)
    mine = Config()
    mine.shutdown_timeout = 300
    config = make_config(app, "unix:/tmp/app.sock", mine)
    assert config is not mine
    assert config.shutdown_timeout == 300
    assert config.bind == ["unix:/tmp/app.sock"]
    assert config.worker_class == "trio"


def test_server_port_reads_the_first_tcp_bind() -> None:
    server = Server(TrioAPI(), urls=["http://unix:/tmp/a.sock", "http://[::1]:8123"])
    assert server.port == 8123
    with pytest.raises(RuntimeError, match="no TCP bind"):
        Server(TrioAPI(), urls=["http://unix:/tmp/a.sock"]).port  # noqa: B018


def test_drain_timeout_from_the_environment_applies_at_startup(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = TrioAPI()
    monkeypatch.setenv("TRIOAPI_DRAIN_TIMEOUT", "7.5")
    app._check_server({})
    assert app.background.drain_timeout == 7.5
    monkeypatch.setenv("TRIOAPI_DRAIN_TIMEOUT", "soon")
    with caplog.at_level(logging.WARNING, logger="trioapi"):
        app._check_server({})
    assert "ignoring TRIOAPI_DRAIN_TIMEOUT='soon'" in caplog.text
    assert app.background.drain_timeout == 7.5


def test_python_m_trioapi_help_runs(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "trioapi", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "--drain-timeout" in result.stdout

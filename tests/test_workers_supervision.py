"""``python -m trioapi --workers N``: a worker that dies is replaced; shutdown still drains all.

Found by: SIGKILL to one of two workers made the supervisor stop the other
and exit 1, and every later connection was refused. Production supervisors
(gunicorn's, hypercorn's own) replace a dead worker; ours does now, in its
slot, with a back-off when workers keep failing at startup
(``RestartPolicy``, tested here without a clock), and gives up after
``STARTUP_FAILURES_MAX`` failures in a row.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from trioapi._server.workers import (
    RESTART_BACKOFF,
    RESTART_BACKOFF_MAX,
    STARTUP_FAILURES_MAX,
    RestartPolicy,
)

from .test_e2e import (
    CLIENT_TIMEOUT,
    RUNNING_ON,
    STARTUP_TIMEOUT,
    TRIOAPI,
    ServerProcess,
    client_for,
    launch,
    wait_until,
)

__all__ = ["launch"]  # the fixture, used by the e2e tests below

FLAG_ENV = "FLAKY_START_FLAG"  # tests/flaky_start_app.py
EXIT_GUARD = 30.0
"""Seconds the supervisor may take to exit before a test fails: a guard, not a bound."""


# --- the policy ----------------------------------------------------------------------


def test_a_worker_that_served_is_replaced_at_once() -> None:
    policy = RestartPolicy()
    assert policy.after_exit(served=True) == 0.0
    assert policy.after_exit(served=True) == 0.0


def test_failures_at_startup_double_the_wait_and_the_last_one_gives_up() -> None:
    policy = RestartPolicy()
    waits = [policy.after_exit(served=False) for _ in range(STARTUP_FAILURES_MAX)]
    assert waits == [RESTART_BACKOFF * 2**n for n in range(STARTUP_FAILURES_MAX - 1)] + [None]


def test_a_worker_that_served_clears_the_count_of_failures() -> None:
    policy = RestartPolicy()
    assert [policy.after_exit(served=False) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert policy.after_exit(served=True) == 0.0
    assert policy.after_exit(served=False) == RESTART_BACKOFF


def test_the_wait_never_exceeds_its_maximum() -> None:
    policy = RestartPolicy()
    policy.failures = 20
    assert policy.after_exit(served=False) is None
    policy = RestartPolicy(failures=STARTUP_FAILURES_MAX - 2)
    wait = policy.after_exit(served=False)
    assert wait is not None
    assert wait <= RESTART_BACKOFF_MAX


# --- the supervisor, in subprocesses ------------------------------------------------


def workers_of(server: ServerProcess) -> list[int]:
    """The pids of the supervisor's workers (not multiprocessing's resource tracker)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def serving_pids(port: int, attempts: int = 2000) -> set[int]:
    """The workers that answer new connections (the kernel spreads them), bounded.

    A worker that just started is cold and loses most accept races to a warm
    one on a loaded machine (CI once saw 200 connections in a row go to the
    old worker): the bound is generous, and the loop stops at both.
    """
    seen: set[int] = set()
    with client_for(port) as client:
        for index in range(attempts):
            response = client.post(
                "/task",
                params={"seconds": 0, "name": f"probe-{index}"},
                headers={"Connection": "close"},
            )
            assert response.status_code == 200
            seen.add(response.json()["pid"])
            if len(seen) == 2:
                break
    return seen


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads children from /proc"
)


@pytest.mark.e2e
@needs_proc
def test_a_killed_worker_is_replaced_and_the_server_serves_on_then_drains_all(
    launch: Callable[..., ServerProcess],
) -> None:
    server = launch(
        *TRIOAPI,
        "tests.flaky_start_app:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--drain-timeout",
        "5",
        "--graceful-timeout",
        "1",
    )
    port = server.wait_ready(listeners=2)
    first = workers_of(server)
    assert len(first) == 2, first
    os.kill(first[0], signal.SIGKILL)  # a child of the server we started

    # Before: "a worker exited while serving: stopping the others", exit 1.
    wait_until(
        lambda: len(RUNNING_ON.findall(server.stderr)) >= 3,
        STARTUP_TIMEOUT,
        "the replacement to listen",
    )
    assert server.process.poll() is None, server.stderr
    stderr = server.stderr
    assert re.search(
        rf"\[WARNING\] trioapi: worker \d \(pid {first[0]}\) was killed by SIGKILL while "
        r"serving; the background tasks it held in memory are lost\. Starting a replacement\n",
        stderr,
    ), stderr
    now = workers_of(server)
    assert len(now) == 2, now
    assert first[1] in now, (first, now)
    assert first[0] not in now, (first, now)
    assert serving_pids(port) == set(now)  # both serve, the replacement included

    code, _ = server.signal_and_wait(signal.SIGTERM, EXIT_GUARD)
    assert code == 0
    drained = re.findall(r"\[(\d+)\] \[INFO\] background drain finished", server.stderr)
    assert sorted(int(pid) for pid in drained) == sorted(now), server.stderr


@pytest.mark.e2e
@needs_proc
def test_workers_failing_at_startup_are_replaced_after_a_growing_wait(
    launch: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    flag = tmp_path / "refuse-startup"
    server = launch(
        *TRIOAPI,
        "tests.flaky_start_app:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        env={FLAG_ENV: str(flag)},
    )
    port = server.wait_ready(listeners=2)
    flag.touch()  # from now on, a worker's startup fails (its database is down)
    os.kill(workers_of(server)[0], signal.SIGKILL)

    wait_until(
        lambda: "starting a replacement in 1 s" in server.stderr,
        STARTUP_TIMEOUT,
        "a second failure at startup",
    )
    flag.unlink()  # the database is back
    wait_until(
        lambda: server.stderr.count("application startup complete") >= 3,
        STARTUP_TIMEOUT,
        "the replacement to start",
    )
    stderr = server.stderr
    waits = re.findall(
        r"before it served \(its startup failed\); starting a replacement in ([\d.]+) s", stderr
    )
    assert waits[:2] == ["0.5", "1"], stderr
    assert "startup refused" in stderr
    assert "giving up" not in stderr
    assert len(serving_pids(port)) == 2

    code, _ = server.signal_and_wait(signal.SIGTERM, EXIT_GUARD)
    assert code == 0


@pytest.mark.e2e
@needs_proc
def test_a_worker_dying_during_the_shutdown_is_not_replaced(
    launch: Callable[..., ServerProcess],
) -> None:
    # SIGTERM, then a worker dies while draining: the supervisor starts no
    # replacement, waits for the other's drain, and exits 1 (work was lost).
    server = launch(
        *TRIOAPI,
        "tests.flaky_start_app:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--drain-timeout",
        "30",
    )
    port = server.wait_ready(listeners=2)
    survivor, doomed = workers_of(server)
    holding: set[int] = set()
    with client_for(port) as client:  # a task on each worker, which holds its drain
        for index in range(200):
            response = client.post(
                "/task",
                params={"seconds": 5, "name": f"task-{index}"},
                headers={"Connection": "close"},
            )
            assert response.status_code == 200
            holding.add(response.json()["pid"])
            if len(holding) == 2:
                break
    assert holding == {survivor, doomed}
    server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping 2 workers gracefully" in server.stderr, CLIENT_TIMEOUT, "stop")
    os.kill(doomed, signal.SIGKILL)
    try:
        code = server.process.wait(timeout=EXIT_GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the supervisor did not exit; stderr:\n{server.stderr}")
    assert code == 1
    stderr = server.stderr
    assert len(RUNNING_ON.findall(stderr)) == 2  # no replacement
    assert "Starting a replacement" not in stderr
    assert re.search(rf"\[{survivor}\] \[INFO\] background drain finished", stderr), stderr


@pytest.mark.e2e
@needs_proc
def test_workers_that_keep_failing_at_startup_make_the_supervisor_give_up(
    launch: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    flag = tmp_path / "refuse-startup"
    flag.touch()  # no worker can start
    server = launch(
        *TRIOAPI,
        "tests.flaky_start_app:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        env={FLAG_ENV: str(flag)},
    )
    try:
        code = server.process.wait(timeout=60.0)  # a guard: the waits add up to 7.5 s
    except subprocess.TimeoutExpired:
        pytest.fail(f"the supervisor did not give up; stderr:\n{server.stderr}")
    assert code == 1
    stderr = server.stderr
    waits = re.findall(r"starting a replacement in ([\d.]+) s", stderr)
    assert waits == ["0.5", "1", "2", "4"], stderr
    assert re.search(
        rf"\[ERROR\] trioapi: worker \d \(pid \d+\) exited with code 1; {STARTUP_FAILURES_MAX} "
        r"workers in a row failed at startup: giving up, stopping the others\n",
        stderr,
    ), stderr

"""Shared fixtures.

pytest-trio runs every ``async def`` test in its own trio run (``trio_mode``);
its ``autojump_clock`` fixture gives the run a ``MockClock(autojump_threshold=0)``,
so timeouts and drain deadlines happen at exact virtual times.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def in_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """Runs the test with the working directory set to a fresh temporary one.

    The seed examples write ``log.txt`` to the current directory.
    """
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server for the module's tests; they skip when it or redis-py is missing."""
    from ._redis import redis_server, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)")
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'trioapi[redis]')")
    with redis_server() as url:
        yield url

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

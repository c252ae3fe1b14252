"""An app whose startup fails while a flag file exists (``tests/test_workers_supervision.py``).

``FLAKY_START_FLAG`` names the file: a worker started while it exists fails
its startup hook, as an app whose database is down would, and exits.
``POST /task?seconds=S&name=N`` works as in ``tests/e2e_app.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from trioapi import BackgroundTasks, TrioAPI

from .e2e_app import sleep_then_append

FLAG_ENV = "FLAKY_START_FLAG"


def fail_while_flagged() -> None:
    flag = os.environ.get(FLAG_ENV)
    if flag and Path(flag).exists():
        msg = f"startup refused: {flag} exists"
        raise RuntimeError(msg)


app = TrioAPI(on_startup=[fail_while_flagged])


@app.post("/task")
async def add_task(seconds: float, name: str, tasks: BackgroundTasks) -> dict[str, str | int]:
    tasks.options(name=name).add_task(sleep_then_append, seconds, name)
    return {"added": name, "pid": os.getpid()}

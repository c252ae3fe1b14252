"""An app with ``/metrics`` for the multiprocess test (``test_metrics_workers.py``).

``POST /work`` adds one background task and answers the PID of the worker
that served it, so the test can tell its workers apart.
"""

from __future__ import annotations

import os

from trioapi import BackgroundTasks, TrioAPI

app = TrioAPI()
app.add_metrics_route()


def note() -> None:
    """The task: nothing to do, it is counted."""


@app.post("/work")
async def work(background_tasks: BackgroundTasks) -> dict[str, int]:
    background_tasks.add_task(note)
    return {"pid": os.getpid()}

"""The application the load and limit tests serve as a real subprocess.

``POST /jobs/{task_id}`` adds one background task named ``t<task_id>`` and
answers ``{"id": task_id}``. What the task does depends on its id, so the
client knows the expected outcome of every request it sent:

- ``task_id % FAIL_EVERY == FAIL_AT``: writes ``fail <id>`` to the output
  file, then raises (the runtime must count it as failed);
- ``task_id % SLOW_EVERY == 0``: sleeps ``SLOW_SECONDS`` first (longer than
  any drain the tests allow, so the drain must cancel it and name it);
- ``task_id % SYNC_EVERY == 0``: runs as a sync function in a worker thread;
- otherwise: an async task, after a short sleep (so that tasks overlap).

Every task that completes writes ``done <id>``. The output file is named by
the ``LOAD_OUT`` environment variable; each line is one ``write`` to a file
opened in append mode, so lines from threads and tasks never interleave.

``POST /upload`` takes a JSON object body (the body-cap test sends it 64 MiB);
``GET /health`` answers ``{"ok": true}``.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import trio

from trioapi import BackgroundTasks, Body, TrioAPI

OUT_ENV = "LOAD_OUT"
FAIL_EVERY, FAIL_AT = 10, 7
SLOW_EVERY = 101
SYNC_EVERY = 3
SLOW_SECONDS = 60.0
PAUSE_SECONDS = 0.005

app = TrioAPI()


class IntentionalFailure(Exception):
    """Raised by the tasks the tests expect to fail."""


def _write(line: str) -> None:
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(f"{line}\n")


def expected_outcome(task_id: int) -> str:
    """``fail``, ``slow`` or ``done``: what the task for ``task_id`` will do."""
    if task_id % FAIL_EVERY == FAIL_AT:
        return "fail"
    if task_id % SLOW_EVERY == 0:
        return "slow"
    return "done"


async def async_task(task_id: int) -> None:
    outcome = expected_outcome(task_id)
    if outcome == "fail":
        _write(f"fail {task_id}")
        raise IntentionalFailure(f"task {task_id} fails on purpose")
    await trio.sleep(SLOW_SECONDS if outcome == "slow" else PAUSE_SECONDS)
    _write(f"done {task_id}")


def sync_task(task_id: int) -> None:
    if expected_outcome(task_id) == "fail":
        _write(f"fail {task_id}")
        raise IntentionalFailure(f"task {task_id} fails on purpose")
    time.sleep(PAUSE_SECONDS)
    _write(f"done {task_id}")


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/jobs/{task_id}")
async def work(task_id: int, background_tasks: BackgroundTasks) -> dict[str, int]:
    is_sync = task_id % SYNC_EVERY == 0 and expected_outcome(task_id) != "slow"
    func = sync_task if is_sync else async_task
    background_tasks.options(name=f"t{task_id}").add_task(func, task_id)
    return {"id": task_id}


@app.post("/upload")
async def upload(payload: Annotated[dict[str, Any], Body()]) -> dict[str, int]:
    return {"keys": len(payload)}

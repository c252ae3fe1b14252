"""The application the end-to-end tests serve as a real subprocess (see test_e2e.py).

``POST /task?seconds=S&name=N`` adds an async background task, named N, that
sleeps S seconds (``slow_pid=P&slow_seconds=T``: T on the worker whose pid is P) and
then appends the line ``N`` to the file named by the ``E2E_OUT`` environment
variable. ``POST /sync-task`` does the same from a
sync function (run in a worker thread). Each task appends ``start N`` first,
so a test can see that it is running; the answer names the worker process
(``{"added": N, "pid": ...}``). ``GET /sleep?seconds=S`` appends ``request
started`` and then takes S seconds to answer: a request in flight at
shutdown. ``GET /`` answers ``{"ok": true}``.
"""

from __future__ import annotations

import os
import time

import trio

from trioapi import BackgroundTasks, TrioAPI

OUT_ENV = "E2E_OUT"

app = TrioAPI()


def _append(line: str) -> None:
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(f"{line}\n")


async def sleep_then_append(seconds: float, name: str) -> None:
    _append(f"start {name}")
    await trio.sleep(seconds)
    _append(name)


def sleep_then_append_sync(seconds: float, name: str) -> None:
    _append(f"start {name}")
    time.sleep(seconds)
    _append(name)


@app.get("/")
async def root() -> dict[str, bool]:
    return {"ok": True}


@app.get("/sleep")
async def slow_request(seconds: float) -> dict[str, bool]:
    _append("request started")
    await trio.sleep(seconds)
    return {"ok": True}


@app.post("/task")
async def add_task(
    seconds: float,
    name: str,
    background_tasks: BackgroundTasks,
    slow_pid: int | None = None,
    slow_seconds: float | None = None,
) -> dict[str, str | int]:
    # slow_seconds: another duration on the worker whose pid is slow_pid, so
    # two workers' drains end at different times (see the --workers test).
    if slow_seconds is not None and os.getpid() == slow_pid:
        seconds = slow_seconds
    background_tasks.options(name=name).add_task(sleep_then_append, seconds, name)
    return {"added": name, "pid": os.getpid()}


@app.post("/sync-task")
async def add_sync_task(
    seconds: float, name: str, background_tasks: BackgroundTasks
) -> dict[str, str | int]:
    background_tasks.options(name=name).add_task(sleep_then_append_sync, seconds, name)
    return {"added": name, "pid": os.getpid()}

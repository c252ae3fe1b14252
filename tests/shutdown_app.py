"""An app whose background tasks misbehave, for the shutdown and saturation e2e tests.

Served as a real subprocess by ``tests/test_shutdown_escalation.py`` (and
``tests/test_thread_saturation.py``). Every task appends ``start N`` and then
``N`` to the file named by ``E2E_OUT`` (see ``tests/e2e_app.py``):

- ``POST /shielded?seconds=S&name=N``: sleeps S seconds shielded from
  cancellation, so the drain cannot stop it;
- ``POST /persistent?seconds=S&name=N``: catches every ``Cancelled`` and goes
  on (a ``except BaseException`` in user code), until S seconds have passed;
- ``POST /task?seconds=S&name=N``: an ordinary async task;
- ``POST /sync-task?seconds=S&name=N&count=C``: C sync tasks (one request
  each would be slow to send), each its own group, like C requests;
- ``POST /watch-drain``: a task that appends ``draining`` once the drain began;
- ``GET /sleep?seconds=S``: a request in flight (appends ``request started``);
- ``GET /big?mib=M``: an M MiB answer, for a client that stops reading.

``SHUTDOWN_APP_THREADS`` sets ``max_task_threads``.
"""

from __future__ import annotations

import os
import time

import trio

from trioapi import BackgroundTasks, Response, RuntimeState, TrioAPI

from .e2e_app import OUT_ENV

THREADS_ENV = "SHUTDOWN_APP_THREADS"

app = TrioAPI(max_task_threads=int(os.environ.get(THREADS_ENV, "40")))


def _append(line: str) -> None:
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(f"{line}\n")


async def shielded(seconds: float, name: str) -> None:
    _append(f"start {name}")
    with trio.CancelScope(shield=True):
        await trio.sleep(seconds)
    _append(name)


async def persistent(seconds: float, name: str) -> None:
    _append(f"start {name}")
    deadline = trio.current_time() + seconds
    swallowed = 0
    while trio.current_time() < deadline:
        try:
            await trio.sleep_until(deadline)
        except BaseException:  # the point: user code that swallows Cancelled
            # Cancelled again at once: a busy loop, as such code is in real life.
            swallowed += 1
    _append(f"{name} after {swallowed} cancellations")


async def ordinary(seconds: float, name: str) -> None:
    _append(f"start {name}")
    await trio.sleep(seconds)
    _append(name)


def blocking(seconds: float, name: str) -> None:
    _append(f"start {name}")
    time.sleep(seconds)
    _append(name)


@app.post("/shielded")
async def add_shielded(seconds: float, name: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.options(name=name).add_task(shielded, seconds, name)
    return {"added": name}


@app.post("/persistent")
async def add_persistent(seconds: float, name: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.options(name=name).add_task(persistent, seconds, name)
    return {"added": name}


@app.post("/task")
async def add_ordinary(seconds: float, name: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.options(name=name).add_task(ordinary, seconds, name)
    return {"added": name}


@app.post("/sync-task")
async def add_blocking(seconds: float, name: str, count: int = 1) -> dict[str, str]:
    for index in range(count):
        label = name if count == 1 else f"{name}-{index}"
        app.background.options(name=label).add_task(blocking, seconds, label)
    return {"added": name}


@app.post("/watch-drain")
async def add_drain_watch(tasks: BackgroundTasks) -> dict[str, str]:
    async def watch() -> None:
        while app.background.state is RuntimeState.ACCEPTING:
            await trio.sleep(0.01)
        _append("draining")

    tasks.options(name="watch-drain").add_task(watch)
    return {"added": "watch-drain"}


@app.get("/sleep")
async def in_flight(seconds: float) -> dict[str, bool]:
    _append("request started")
    await trio.sleep(seconds)
    return {"ok": True}


@app.get("/big")
async def big(mib: int) -> Response:
    return Response(b"x" * (mib << 20), media_type="application/octet-stream")

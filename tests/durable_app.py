"""The application the durable chaos tests serve as a real subprocess (test_durable_chaos.py).

The task store comes from ``TRIOAPI_TASK_STORE`` (the tests give each one a
fresh SQLite file). Every line a task writes goes to the file named by
``DURABLE_OUT``, one ``write`` per line on a file opened in append mode and
closed again, so a SIGKILL keeps every line whose ``write`` returned and
never leaves half of one:

``start <task id> <key> <attempt> <pid>``
    ``chaos.record`` began (after its failpoint ``first-line``).
``done <task id> <key> <attempt> <pid>``
    ``chaos.record``'s effect: the one line the tests count.
``poison <task id> <key> <attempt> <failures> <pid>``
    ``chaos.poison`` ran, and raises.

Routes: ``POST /jobs/{key}?seconds=S`` adds ``chaos.record(key, S)`` (S
seconds between its start and done lines) and answers ``{"key": key}``;
``POST /poison/{key}`` adds ``chaos.poison(key)``, which always raises
(``retries=2, backoff=0.05``); ``GET /health``.

Environment, per process (a restarted process is given none of it):

``DURABLE_HOLD=SECONDS``
    added to every ``chaos.record`` run by this process: its tasks are still
    running when the test kills it; another process runs the same task quickly.
``DURABLE_FAILPOINT``
    ``first-line``: the task SIGKILLs the process as its first statement
    (the task was committed, and claimed, and nothing of it happened);
    ``after-effect``: after the done line, before returning (the effect
    happened, the ack did not); ``before-response``: ``failing_app`` (this
    app behind a middleware) SIGKILLs the process when the response to
    ``POST /jobs`` starts, after the commit and before the client sees a byte.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import trio

from trioapi import BackgroundTasks, TrioAPI, current_task

OUT_ENV = "DURABLE_OUT"
HOLD_ENV = "DURABLE_HOLD"
FAILPOINT_ENV = "DURABLE_FAILPOINT"

app = TrioAPI()


class PoisonError(Exception):
    """What ``chaos.poison`` raises, every time."""


def _append(line: str) -> None:
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(f"{line}\n")


def _die_at(point: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


@app.durable_task(name="chaos.record", retries=3, backoff=0.05)
async def record(key: str, seconds: float) -> None:
    _die_at("first-line")
    task = current_task()
    _append(f"start {task.id} {key} {task.attempt} {os.getpid()}")
    pause = seconds + float(os.environ.get(HOLD_ENV) or 0)
    if pause > 0:
        await trio.sleep(pause)
    _append(f"done {task.id} {key} {task.attempt} {os.getpid()}")
    _die_at("after-effect")


@app.durable_task(name="chaos.poison", retries=2, backoff=0.05)
async def poison(key: str) -> None:
    task = current_task()
    _append(f"poison {task.id} {key} {task.attempt} {task.failures} {os.getpid()}")
    msg = f"poison task {key} always fails"
    raise PoisonError(msg)


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/jobs/{key}")
async def add_job(
    key: str, background_tasks: BackgroundTasks, seconds: float = 0.0
) -> dict[str, str]:
    background_tasks.add_task(record, key, seconds)
    return {"key": key}


@app.post("/poison/{key}")
async def add_poison(key: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(poison, key)
    return {"key": key}


class _KillBeforeResponse:
    """ASGI middleware: the failpoint ``before-response`` (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app  # find_app() looks here for the TrioAPI inside

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/jobs/"):
            await self.app(scope, receive, send)
            return

        async def killing_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                _die_at("before-response")
            await send(message)

        await self.app(scope, receive, killing_send)


failing_app = _KillBeforeResponse(app)

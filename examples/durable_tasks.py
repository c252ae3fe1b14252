"""Durable background tasks: a 2xx means the task runs, even across a crash.

``send_welcome`` is committed to ``tasks.db`` (SQLite, next to where you
start the server) before the response goes out. Kill the server with
SIGKILL while tasks run, start it again, and they run: each delivery is
written to ``outbox.txt`` once per attempt, with the task's id, so a
duplicate after a crash is visible (and a real mail sender would pass that
id to its provider as the idempotency key).

    python -m trioapi examples.durable_tasks:app
    curl -X POST http://127.0.0.1:8000/signup/ada@example.com
    python -m trioapi tasks --store sqlite:///tasks.db

``TASK_STORE`` picks another store (``redis://127.0.0.1:6379/0``), and
``SEND_SECONDS`` how long a delivery takes (0.5 s by default).
"""

import os

import trio

from trioapi import BackgroundTasks, TrioAPI, current_task

app = TrioAPI(task_store=os.environ.get("TASK_STORE", "sqlite:///tasks.db"))

OUTBOX = os.environ.get("OUTBOX", "outbox.txt")
SEND_SECONDS = float(os.environ.get("SEND_SECONDS", "0.5"))


@app.durable_task(retries=5, backoff=1.0, timeout=30.0, name="welcome.send")
async def send_welcome(email: str, *, plan: str = "free") -> None:
    """Sends the welcome mail (here: appends a line to the outbox)."""
    task = current_task()
    await trio.sleep(SEND_SECONDS)  # the mail provider's round trip
    line = f"{task.id} attempt={task.attempt} to={email} plan={plan}\n"
    await trio.to_thread.run_sync(_append, line)


def _append(line: str) -> None:
    with open(OUTBOX, "a") as outbox:
        outbox.write(line)


@app.post("/signup/{email}", status_code=202)
async def signup(
    email: str, background_tasks: BackgroundTasks, plan: str = "free"
) -> dict[str, str]:
    background_tasks.add_task(send_welcome, email, plan=plan)
    return {"status": "accepted", "email": email}


@app.get("/tasks")
async def tasks() -> dict[str, int]:
    """The store's counts per state (queued, running, retrying, dead)."""
    store = app.background.store
    return await store.counts() if store is not None else {}

"""The app ``test_websocket_shutdown.py`` serves with ``python -m trioapi`` (a subprocess).

``/ws/{name}`` accepts, adds one background task named ``ws-<name>``, then
echoes every text message as ``"<name>: <text>"`` until the socket closes.
The task waits for the drain to begin (so that every websocket's task is
still running when the drain starts, and only the drain can let it finish),
then appends the line ``<name>`` to the file named by ``E2E_OUT``.
"""

from __future__ import annotations

import os

from trioapi import BackgroundTasks, TrioAPI, WebSocket

from .e2e_app import OUT_ENV

app = TrioAPI()


async def finish_in_the_drain(name: str) -> None:
    await app.background.wait_draining()
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(f"{name}\n")


@app.websocket("/ws/{name}")
async def echo(websocket: WebSocket, name: str, tasks: BackgroundTasks) -> None:
    await websocket.accept()
    tasks.options(name=f"ws-{name}").add_task(finish_in_the_drain, name)
    # The server's 1001 at shutdown ends the loop (a normal end: the task runs).
    async for text in websocket.iter_text():
        await websocket.send_text(f"{name}: {text}")

"""``python -m trioapi worker MODULE:APP``: run durable tasks, serve no HTTP.

A worker imports the app (so its ``@app.durable_task`` functions are
registered), runs its ASGI lifespan (startup hooks, the background runtime,
the task store) and then only claims and runs what the store holds: tasks
released by a drain, taken over from a process that died, retries that are
due, and, with a shared store (Redis), every task any web process commits.
SIGTERM or SIGINT drain it like the server (``drain_timeout``); a second
signal stops it at once. Several workers, on several machines with Redis,
share the work.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import MutableMapping
from typing import Any

import trio

from ..middleware._stack import ASGIApp, find_app

logger = logging.getLogger("trioapi")


class LifespanFailed(RuntimeError):
    """The app's lifespan startup failed (its message says why)."""


async def run_worker(
    app: ASGIApp,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Runs the app's lifespan until a signal (or cancellation); returns an exit code.

    Raises:
        LifespanFailed: The startup failed.
    """
    inner = find_app(app)
    if inner is None:
        msg = "a worker needs a TrioAPI app (or middleware around one)"
        raise TypeError(msg)
    to_app, app_receives = trio.open_memory_channel[dict[str, Any]](math.inf)
    app_sends, from_app = trio.open_memory_channel[dict[str, Any]](math.inf)
    scope: dict[str, Any] = {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return await app_receives.receive()

    async def send(message: MutableMapping[str, Any]) -> None:
        await app_sends.send(dict(message))

    # Shielded: cancelling the worker (from outside) must still let the
    # app's lifespan answer the shutdown below, so the drain happens.
    lifespan_scope = trio.CancelScope(shield=True)

    async def lifespan() -> None:
        try:
            with lifespan_scope:
                await app(scope, receive, send)
        finally:
            app_sends.close()  # whoever waits for an answer learns there is none

    code = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lifespan)
        await to_app.send({"type": "lifespan.startup"})
        try:
            answer = await from_app.receive()
        except trio.EndOfChannel:
            answer = {"type": "lifespan.startup.failed", "message": "the lifespan call returned"}
        if answer["type"] != "lifespan.startup.complete":
            lifespan_scope.cancel()
            raise LifespanFailed(answer.get("message") or "the lifespan startup failed")
        store = inner.background._active_store
        logger.info(
            "trioapi worker: running durable tasks from %s (%d task function(s)); "
            "SIGTERM or SIGINT drain and stop",
            store.url if store is not None else "no store",
            len(inner.background.durable),
        )
        task_status.started()
        if handle_signals:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for number in signals:
                    logger.info(
                        "trioapi worker: %s received: draining", signal.Signals(number).name
                    )
                    break
                watch = trio.CancelScope()
                nursery.start_soon(_stop_at_second_signal, signals, lifespan_scope, watch)
                code = await _shut_down(to_app, from_app)
                watch.cancel()
        else:
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    code = await _shut_down(to_app, from_app)
        lifespan_scope.cancel()
    return code


async def _shut_down(
    to_app: trio.MemorySendChannel[dict[str, Any]],
    from_app: trio.MemoryReceiveChannel[dict[str, Any]],
) -> int:
    await to_app.send({"type": "lifespan.shutdown"})
    try:
        answer = await from_app.receive()
    except (trio.EndOfChannel, trio.ClosedResourceError):
        return 1  # stopped without a drain (a second signal)
    if answer["type"] != "lifespan.shutdown.complete":
        logger.error("trioapi worker: the lifespan shutdown failed: %s", answer.get("message"))
        return 1
    return 0


async def _stop_at_second_signal(
    signals: Any, lifespan: trio.CancelScope, watch: trio.CancelScope
) -> None:
    with watch:
        async for number in signals:
            logger.warning(
                "trioapi worker: %s received again: stopping at once, without a drain "
                "(durable tasks in progress stay in the store and run again)",
                signal.Signals(number).name,
            )
            lifespan.cancel()
            return

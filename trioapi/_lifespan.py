"""The ASGI lifespan call: where the background runtime lives.

Startup: open a nursery, start the runtime in it, enter the user's
``lifespan`` context, run ``on_startup`` hooks, report ``startup.complete``.
Shutdown: drain the runtime first (tasks may still need what the user's
hooks are about to close), then ``on_shutdown`` hooks, then leave the
user's ``lifespan`` context, and only then report ``shutdown.complete``:
hypercorn cancels the whole lifespan call right after that message, so
nothing may be left to do by then.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import trio

from ._background import RuntimeState
from ._requests import Receive, Scope, Send

if TYPE_CHECKING:
    from ._app import TrioAPI

logger = logging.getLogger("trioapi")


async def _run_hook(hook: Callable[[], Any]) -> None:
    outcome = hook()
    if inspect.isawaitable(outcome):
        await outcome


async def handle_lifespan(app: TrioAPI, scope: Scope, receive: Receive, send: Send) -> None:
    """Serves one ASGI lifespan call for ``app``."""
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    runtime = app.background
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        try:
            async with AsyncExitStack() as stack:
                try:
                    if app.lifespan_context is not None:
                        state = await stack.enter_async_context(app.lifespan_context(app))
                        if isinstance(state, Mapping) and isinstance(scope.get("state"), dict):
                            scope["state"].update(state)
                    for hook in app.on_startup:
                        await _run_hook(hook)
                    app._check_server(scope)
                except Exception as error:
                    logger.exception("trioapi: application startup failed")
                    nursery.cancel_scope.cancel("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
                logger.info("trioapi: application startup complete")

                message = await receive()
                # Anything other than lifespan.shutdown here means the server
                # is going away without asking; drain all the same.
                await runtime.drain()
                for hook in app.on_shutdown:
                    try:
                        await _run_hook(hook)
                    except Exception:
                        logger.exception("trioapi: shutdown hook %r failed", hook)
        except Exception:
            # Raised while leaving the user's lifespan context.
            logger.exception("trioapi: the lifespan context failed while shutting down")
        finally:
            if runtime.state is not RuntimeState.CLOSED:
                nursery.cancel_scope.cancel("the lifespan ended")
    await send({"type": "lifespan.shutdown.complete"})

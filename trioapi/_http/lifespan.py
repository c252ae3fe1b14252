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

from .._runtime.background import RuntimeState
from .requests import Receive, Scope, Send
from .routing import as_lifespan

if TYPE_CHECKING:
    from .app import TrioAPI

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
        try:
            await nursery.start(runtime.run)
        except Exception as error:
            # The task store could not be opened (a missing directory, Redis
            # down): the app must not serve requests whose tasks it cannot keep.
            logger.error(  # noqa: TRY400 - the message is the cause
                "trioapi: application startup failed: the background runtime could not start: %s",
                error,
            )
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        failure: Exception | None = None
        try:
            stack = await _start(app, scope, send, nursery)
            if stack is None:
                return
            await receive()
            # Whatever arrives (lifespan.shutdown, or the channel closing
            # because the server is going away), drain all the same.
            failure = await _stop(app, stack)
        finally:
            # The runtime closed its own nursery after the drain; this only
            # matters when startup failed or we are being cancelled.
            if runtime.state is not RuntimeState.CLOSED:
                nursery.cancel_scope.cancel("the lifespan ended")
        # Said from inside the nursery: a task that shields itself from
        # cancellation may still keep it open, but the drain report is final
        # and the server must not wait on it to hear that we are done.
        if failure is None:
            await send({"type": "lifespan.shutdown.complete"})
        else:
            # As Starlette reports it: the server logs it, a test client raises it.
            await send({"type": "lifespan.shutdown.failed", "message": repr(failure)})


async def _start(
    app: TrioAPI, scope: Scope, send: Send, nursery: trio.Nursery
) -> AsyncExitStack | None:
    """Runs startup; returns the user's lifespan context to leave at shutdown."""
    stack = AsyncExitStack()
    try:
        if app.lifespan_context is not None:
            state = await stack.enter_async_context(as_lifespan(app.lifespan_context)(app))
            if isinstance(state, Mapping) and isinstance(scope.get("state"), dict):
                scope["state"].update(state)
        for hook in app.on_startup:
            await _run_hook(hook)
        app._check_server(scope)
    except Exception as error:
        logger.exception("trioapi: application startup failed")
        await _close_stack(stack)
        try:
            await send({"type": "lifespan.startup.failed", "message": repr(error)})
        finally:
            nursery.cancel_scope.cancel("startup failed")
        return None
    await send({"type": "lifespan.startup.complete"})
    logger.info("trioapi: application startup complete")
    return stack


async def _stop(app: TrioAPI, stack: AsyncExitStack) -> Exception | None:
    """Drains, runs the shutdown hooks and leaves the lifespan context.

    Every hook runs even if one fails, and the context is left all the
    same; the first failure is returned, to be reported.
    """
    # The drain comes first: tasks may still need what the hooks and the
    # user's lifespan context are about to close.
    await app.background.drain()
    failure: Exception | None = None
    for hook in app.on_shutdown:
        try:
            await _run_hook(hook)
        except Exception as error:
            logger.exception("trioapi: shutdown hook %r failed", hook)
            failure = failure or error
    closing = await _close_stack(stack)
    return failure or closing


async def _close_stack(stack: AsyncExitStack) -> Exception | None:
    try:
        await stack.aclose()
    except Exception as error:
        logger.exception("trioapi: the lifespan context failed while shutting down")
        return error
    return None

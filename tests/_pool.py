"""A helper for tests that block the trio thread while a sync job runs."""

from __future__ import annotations

import trio
import trio.testing


async def until_sync_job_sent() -> None:
    """Returns once the worker pool has sent a thread for the jobs submitted so far.

    A job submitted while the loop is busy is held until the run goes idle.
    The first idle moment wakes us and the pool's dispatcher together, in
    either order; by the second, the dispatcher has sent a worker. Waiting
    for idle never lets the autojump clock move.
    """
    await trio.testing.wait_all_tasks_blocked()
    await trio.testing.wait_all_tasks_blocked()

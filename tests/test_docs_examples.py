"""The examples printed in docs/ run as written."""

from __future__ import annotations

import trio

from trioapi import BackgroundTasks, TrioAPI
from trioapi.testing import TestClient


async def test_slow_tasks_are_cut_at_the_drain_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # docs/background-tasks.md, "Testing background work and shutdown".
    app = TrioAPI(drain_timeout=5)

    async def crunch(seconds: float) -> None:
        await trio.sleep(seconds)

    @app.post("/jobs")
    async def jobs(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.options(name="quick").add_task(crunch, 1)
        tasks.options(name="slow").add_task(crunch, 60)
        return {"status": "accepted"}

    async with TestClient(app, wait_background=False) as client:
        response = await client.post("/jobs")
        assert response.status_code == 200
        report = await client.shutdown()

    assert trio.current_time() == 5.0  # shutdown began at 0: drain_timeout later
    assert (report.completed, report.cancelled) == (1, 1)
    assert report.cancelled_tasks == ("slow",)


async def test_the_in_memory_server_example_in_testing_md() -> None:
    from trioapi.testing import InMemoryServer

    app = TrioAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    async with InMemoryServer(app) as server:
        async with await server.connect() as connection:
            response = await connection.request("GET", "/items/1")
            assert response.status == 200
            assert response.body == b'{"item_id":1}'
        report = await server.shutdown()
    assert report is not None
    assert server.timeline.stopped is not None

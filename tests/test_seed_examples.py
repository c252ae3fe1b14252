"""The seed examples, unchanged but for imports, produce the documented log.txt."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from trioapi.testing import TestClient


async def test_background_tasks_example_writes_the_notification(in_tmp_path: Path) -> None:
    from examples.background_tasks import app

    async with TestClient(app) as client:
        response = await client.post("/send-notification/foo@example.com")
        assert response.status_code == 200
        assert response.json() == {"message": "Notification sent in the background"}
        # The request returns after its background task: the file is there.
        assert (in_tmp_path / "log.txt").read_text() == (
            "notification for foo@example.com: some notification"
        )
        report = await client.shutdown()
    assert (report.completed, report.failed, report.cancelled) == (1, 0, 0)


@pytest.mark.parametrize(
    "module", ["examples.dependency_tasks", "examples.dependency_tasks_default"]
)
async def test_dependency_example_logs_query_then_message(in_tmp_path: Path, module: str) -> None:
    app = importlib.import_module(module).app
    async with TestClient(app) as client:
        with_query = await client.post("/send-notification/a@example.com", params={"q": "hello"})
        without_query = await client.post("/send-notification/b@example.com")
        report = await client.shutdown()
    assert with_query.json() == without_query.json() == {"message": "Message sent"}
    assert (in_tmp_path / "log.txt").read_text() == (
        "found query: hello\nmessage to a@example.com\nmessage to b@example.com\n"
    )
    assert report.completed == 3

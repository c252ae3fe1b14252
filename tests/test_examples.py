"""The programs in examples/ do what their docstrings say."""

from __future__ import annotations

import pytest

from examples import embed


async def test_embedded_server_drains_its_tasks_on_shutdown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    embed.processed.clear()
    report = await embed.main(items=3)
    assert report is not None
    assert (report.completed, report.cancelled, report.failed) == (3, 0, 0)
    assert sorted(embed.processed) == ["item-0", "item-1", "item-2"]
    out = capsys.readouterr().out
    assert out.count("HTTP/1.1 200") == 3
    assert "serving on http://127.0.0.1:" in out

"""The programs in examples/ do what their docstrings say."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from examples import embed, upload_tasks
from trioapi.testing import TestClient


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


async def test_an_upload_is_accepted_at_once_and_processed_after_the_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(upload_tasks, "UPLOAD_DIR", str(tmp_path))
    data = b"x" * (3 * 1024 * 1024)  # past the 1 MiB spill: the upload is on disk
    async with TestClient(upload_tasks.app) as client:
        response = await client.post("/uploads", files={"file": ("big.bin", data)})
    assert (response.status_code, response.json()) == (
        202,
        {"status": "accepted", "filename": "big.bin"},
    )
    expected = hashlib.sha256(data).hexdigest()
    assert (tmp_path / "log.txt").read_text() == f"big.bin: sha256 {expected}\n"
    assert list(tmp_path.glob("upload-*")) == []  # the task removed its copy

"""The loop watchdog names code that blocks the event loop.

These run on the real clock (under MockClock the watchdog is off): a task
blocks the loop with ``time.sleep`` well past the threshold, which is what
the watchdog must see; nothing asserts how long anything took.
"""

import logging
import time

import pytest
import trio

from trioapi import BackgroundRuntime, TrioAPI
from trioapi.testing import TestClient


def hog_the_loop() -> None:
    time.sleep(0.6)  # a blocking call in async code: the mistake being caught


async def test_a_task_that_blocks_the_loop_is_named_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = TrioAPI(loop_watchdog=0.1)

    async def report_rows() -> None:
        hog_the_loop()

    with caplog.at_level(logging.INFO, logger="trioapi.watchdog"):
        async with TestClient(app):
            await app.background.add_task(report_rows)
            # The watchdog's thread reports the stall; let the loop run again
            # until the all-clear line arrives (bounded).
            for _ in range(200):
                if any("ran again" in record.getMessage() for record in caplog.records):
                    break
                await trio.sleep(0.01)
    messages = [
        record.getMessage() for record in caplog.records if record.name == "trioapi.watchdog"
    ]
    blocked = [message for message in messages if "has been blocked" in message]
    assert len(blocked) == 1
    assert "hog_the_loop" in blocked[0]
    assert "test_watchdog.py" in blocked[0]
    assert "trio.to_thread.run_sync" in blocked[0]
    assert any("ran again after being held" in message for message in messages)
    assert app.background.watchdog is not None
    assert app.background.watchdog.stalls == 1


async def test_the_watchdog_stays_off_under_a_mock_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runtime = BackgroundRuntime(loop_watchdog=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        await trio.sleep(100)  # virtual: a watchdog thread would have been spinning
        await runtime.drain()
    assert runtime.watchdog is not None
    assert runtime.watchdog._thread_id is None


def test_the_threshold_must_be_positive_and_none_turns_it_off() -> None:
    with pytest.raises(ValueError, match="threshold must be positive"):
        TrioAPI(loop_watchdog=0)
    assert TrioAPI(loop_watchdog=None).background.watchdog is None

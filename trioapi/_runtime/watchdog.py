"""A watchdog for the event loop: says when code holds it too long, and where.

An ``async def`` task (or endpoint) that calls ``time.sleep(3)`` or a
blocking client stops every request and task of the process for that long,
and nothing says so. The runtime runs a *heartbeat* task that stamps the time
every ``threshold / 4`` seconds, and a daemon thread that looks at the stamp:
when it is older than ``threshold``, the loop is blocked. The thread then
takes the trio thread's current stack (``sys._current_frames``), names the
innermost frame of user code (not trio's, trioapi's, hypercorn's or the
standard library's), and logs one WARNING with the stack; when the loop runs
again, one more line says for how long it was held.

Its cost is one trio sleep per ``threshold / 4`` (8 per second at the
default 0.5 s) and a thread that wakes as often: cheap enough to stay on.
Under ``MockClock`` it does not run (virtual time says nothing of blocking).
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
import threading
import time
import traceback
from types import FrameType

import trio

logger = logging.getLogger("trioapi.watchdog")

_SKIP = tuple(
    os.path.normcase(os.path.abspath(path)) + os.sep
    for path in {
        os.path.dirname(trio.__file__),
        os.path.dirname(os.path.dirname(__file__)),  # trioapi
        sysconfig.get_paths()["stdlib"],
    }
)
_SKIP_NAMES = ("hypercorn", "outcome", "h11", "anyio")


def _is_library(filename: str) -> bool:
    path = os.path.normcase(os.path.abspath(filename))
    if path.startswith(_SKIP):
        return True
    return any(f"{os.sep}{name}{os.sep}" in path for name in _SKIP_NAMES)


def culprit(frame: FrameType | None) -> str:
    """The innermost frame of user code on a stack, as ``function (file:line)``."""
    while frame is not None:
        code = frame.f_code
        if not _is_library(code.co_filename):
            return f"{code.co_qualname} ({code.co_filename}:{frame.f_lineno})"
        frame = frame.f_back
    return "trio or trioapi itself"


class LoopWatchdog:
    """Watches one trio run's loop from a thread; see the module docstring.

    Args:
        threshold: Seconds the loop may be held before a WARNING.
    """

    def __init__(self, threshold: float) -> None:
        if not threshold > 0:
            msg = f"the loop watchdog's threshold must be positive seconds, not {threshold!r}"
            raise ValueError(msg)
        self.threshold = threshold
        self.stalls = 0
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread_id: int | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The heartbeat; starts the watching thread, which it stops when cancelled."""
        # A MockClock exists only if trio.testing was imported: no import here.
        testing = sys.modules.get("trio.testing")
        if testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock):
            task_status.started()
            return
        self._thread_id = threading.get_ident()
        self._beat = time.monotonic()
        self._stop.clear()
        watcher = threading.Thread(target=self._watch, name="trioapi loop watchdog", daemon=True)
        watcher.start()
        task_status.started()
        try:
            interval = self.threshold / 4
            while True:
                await trio.sleep(interval)
                self._beat = time.monotonic()
        finally:
            self._stop.set()

    def _watch(self) -> None:
        interval = self.threshold / 4
        stalled_since: float | None = None
        woke = time.monotonic()
        while not self._stop.wait(interval):
            now = time.monotonic()
            late = now - woke - interval
            woke = now
            if late > interval:
                # This thread was not scheduled on time either: the whole
                # process was starved (a loaded machine, a stopped VM), which
                # is nobody's blocking call. Look again at the next wake-up.
                continue
            held = now - self._beat
            if held > self.threshold:
                if stalled_since is None:
                    stalled_since = self._beat
                    self.stalls += 1
                    self._report(held)
            elif stalled_since is not None:
                logger.info(
                    "the event loop ran again after being held for about %.2f s",
                    self._beat - stalled_since,
                )
                stalled_since = None

    def _report(self, held: float) -> None:
        frame = sys._current_frames().get(self._thread_id) if self._thread_id else None
        stack = "".join(traceback.format_stack(frame, limit=12)) if frame is not None else ""
        logger.warning(
            "the event loop has been blocked for %.2f s (threshold %g s) by %s: every "
            "request and background task of this process waits. Blocking calls in async "
            "code belong in trio.to_thread.run_sync (or a sync def task). Where it is:\n%s",
            held,
            self.threshold,
            culprit(frame),
            stack,
        )

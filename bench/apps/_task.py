"""The background task every app runs: one appended line per notification."""

import os

LOG_PATH = os.environ.get("BENCH_LOG") or os.devnull


def write_notification(email: str) -> None:
    """Appends one line for ``email`` to the benchmark log (sync, like the seed)."""
    with open(LOG_PATH, "a") as log:
        log.write(f"notification for {email}\n")

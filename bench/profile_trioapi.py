"""Profiles trioapi's in-process GET and POST paths (cProfile, or pyinstrument).

The same harness as ``micro.py``: the app's lifespan runs, requests go
through its ASGI callable, and each POST waits until its background task
completed. cProfile's own overhead inflates small functions, so read the
ranking, not the absolute times (``micro.py`` has those).

    python bench/profile_trioapi.py [--requests N] [--pyinstrument] [--out PATH]

The report lists, per path, the functions in trioapi's own code with the
most time of their own (tottime) and the most time including callees
(cumtime), then the top functions overall.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import micro
import trio

PACKAGE = os.sep + "trioapi" + os.sep


def _where(filename: str) -> str:
    """A location without machine paths: trioapi/..., a package's path, stdlib/..."""
    path = filename.replace(os.sep, "/")
    for marker in ("/site-packages/", "/trioapi/", "/bench/"):
        if marker in path:
            tail = path.rsplit(marker, 1)[1]
            return tail if marker == "/site-packages/" else marker.strip("/") + "/" + tail
    stdlib = sysconfig.get_paths()["stdlib"].replace(os.sep, "/")
    if path.startswith(stdlib):
        return "stdlib" + path[len(stdlib) :]
    return path


def _is_trioapi(filename: str) -> bool:
    return PACKAGE in filename and "site-packages" not in filename


def _rows(stats: pstats.Stats, key: str, only_trioapi: bool, limit: int) -> list[str]:
    entries = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        if only_trioapi and not _is_trioapi(filename):
            continue
        entries.append((filename, line, function, calls, tottime, cumtime))
    entries.sort(key=lambda e: e[4] if key == "tottime" else e[5], reverse=True)
    return [
        f"| {_where(filename)}:{line} {function} | {calls:,} | {tottime * 1e3:.1f} "
        f"| {cumtime * 1e3:.1f} |"
        for filename, line, function, calls, tottime, cumtime in entries[:limit]
    ]


def _table(title: str, rows: list[str]) -> str:
    head = ["", title, "", "| function | calls | tottime ms | cumtime ms |", "|---|---:|---:|---:|"]
    return "\n".join(head + rows)


async def _drive(app: Any, method: str, path: str, count: int) -> None:
    call = micro.request_caller(app, method, path)
    for _ in range(count):
        await call()
        if method == "POST":
            await app.background.wait_idle()


def profile_path(app: Any, method: str, path: str, count: int, use_pyinstrument: bool) -> str:
    async def scenario() -> str:
        async with micro.lifespan(app):
            await _drive(app, method, path, 200)  # warm-up, outside the profile
            if use_pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0001, async_mode="enabled")
                profiler.start()
                await _drive(app, method, path, count)
                profiler.stop()
                return str(profiler.output_text(unicode=False, color=False, show_all=False))
            profile = cProfile.Profile()
            profile.enable()
            await _drive(app, method, path, count)
            profile.disable()
        stats = pstats.Stats(profile, stream=io.StringIO())
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        total = sum(entry[2] for entry in raw.values())
        ours = sum(entry[2] for (filename, _, _), entry in raw.items() if _is_trioapi(filename))
        parts = [
            f"### {method} {path}: {count:,} requests",
            "",
            f"Own time in trioapi's code: {ours * 1e3:.1f} ms of {total * 1e3:.1f} ms profiled "
            f"({ours / total:.0%}); per request {ours / count * 1e6:.1f} µs of "
            f"{total / count * 1e6:.1f} µs (under cProfile).",
            _table("trioapi, by own time (tottime)", _rows(stats, "tottime", True, 15)),
            _table("trioapi, by time with callees (cumtime)", _rows(stats, "cumtime", True, 12)),
            _table("everything, by own time", _rows(stats, "tottime", False, 15)),
        ]
        return "\n".join(parts)

    return trio.run(scenario)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000, help="requests per path (5000)")
    parser.add_argument("--pyinstrument", action="store_true", help="pyinstrument, not cProfile")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trioapi-profile-") as scratch:
        os.environ["BENCH_LOG"] = str(Path(scratch) / "notifications.log")
        app = micro.load_apps()["trioapi"]
        report = "\n\n".join(
            profile_path(app, method, path, args.requests, args.pyinstrument)
            for method, path in (("GET", "/"), ("POST", micro.POST_PATH))
        )
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

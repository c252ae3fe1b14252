"""Profiles a whole server under load: where does a request's time go?

Runs hypercorn's trio server in this process (``hypercorn.trio.serve``, the
same code the ``--worker-class trio`` worker runs) with one app from
``bench/apps``, drives it with wrk for a few seconds while cProfile records
the event-loop thread, and sums the time of each function into the package
it belongs to: hypercorn, h11, trio, the framework, the standard library, C
built-ins (socket calls, ``epoll``). Worker threads (sync background tasks)
are not profiled; their cost shows up as the loop's wait in ``epoll``.

cProfile slows Python code more than C code, so shares are an upper bound
for Python-heavy packages; read them as a ranking.

    python bench/profile_server.py [--framework trioapi] [--route GET] [--seconds 5]
    python bench/profile_server.py --framework FastAPI --route UPLOAD
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import importlib
import json
import os
import pstats
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import run
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

STDLIB = sysconfig.get_paths()["stdlib"].replace(os.sep, "/")


def package_of(filename: str) -> str:
    path = filename.replace(os.sep, "/")
    if path.startswith(("~", "<")):
        return "C built-ins (sockets, epoll, json, ...)"
    if "/site-packages/" in path:
        return path.rsplit("/site-packages/", 1)[1].split("/", 1)[0]
    if "/trioapi/" in path:
        return "trioapi"
    if "/bench/" in path:
        return "bench app"
    if path.startswith(STDLIB):
        return "stdlib (Python)"
    return "other"


async def drive(app: Any, args: argparse.Namespace, wrk: str) -> tuple[cProfile.Profile, dict]:
    config = Config()
    port = run.free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    url = f"http://127.0.0.1:{port}{run.ROUTES[args.route].path}"
    route_args = run.wrk_route_args(args.route, run.write_bodies(args.scratch))
    _, client_pin, _ = run.cpu_plan()
    command = [*client_pin, wrk, "-t1", f"-c{args.connections}"]
    command += [*run.wrk_header_args(args.framework), "-s", str(run.WRK_SCRIPT)]
    stop = trio.Event()
    profile = cProfile.Profile()
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve, app, config, shutdown_trigger=stop.wait))
        await trio.run_process([*command, "-d1s", url, "--", *route_args], capture_stdout=True)
        profile.enable()
        done = await trio.run_process(
            [*command, f"-d{args.seconds}s", url, "--", *route_args], capture_stdout=True
        )
        profile.disable()
        stop.set()
    match = re.search(rb"^BENCH_RESULT (\{.*\})$", done.stdout, re.MULTILINE)
    if match is None:
        msg = f"no result from wrk:\n{done.stdout.decode(errors='replace')}"
        raise RuntimeError(msg)
    return profile, json.loads(match.group(1))


def report(profile: cProfile.Profile, result: dict, args: argparse.Namespace) -> str:
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    requests = result["requests"]
    by_package: collections.Counter[str] = collections.Counter()
    for (filename, _, _), entry in raw.items():
        by_package[package_of(filename)] += entry[2]
    total = sum(by_package.values())
    lines = [
        f"### {args.framework}, {args.route}: {requests:,} requests in {args.seconds} s under "
        f"cProfile (wrk -c{args.connections}), "
        f"{total / requests * 1e6:.0f} µs profiled per request",
        "",
        "| package | share of own time | µs per request (profiled) |",
        "|---|---:|---:|",
    ]
    for package, seconds in by_package.most_common():
        lines.append(f"| {package} | {seconds / total:.0%} | {seconds / requests * 1e6:.1f} |")
    lines += ["", "| top functions by own time | calls per request | µs per request |"]
    lines.append("|---|---:|---:|")
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[: args.top]
    for (filename, line, function), entry in top:
        where = f"{package_of(filename)}: {Path(filename).name}:{line} {function}"
        if filename.startswith("~"):
            where = f"{package_of(filename)}: {function}"
        lines.append(f"| {where} | {entry[1] / requests:.1f} | {entry[2] / requests * 1e6:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default="trioapi", help="an app of run.py (trioapi)")
    parser.add_argument("--route", choices=list(run.ROUTES), default="POST")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=20, help="functions to list (20)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    name = run.ALIASES.get(args.framework.lower(), args.framework)
    matches = [known for known in run.APP_FILES if known.lower() == name.lower()]
    if not matches:
        parser.error(
            f"unknown framework {args.framework!r}; choose from {', '.join(run.APP_FILES)}"
        )
    args.framework = matches[0]
    if not run.serves(args.framework, args.route):
        parser.error(f"{args.framework} has no {args.route} route")
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    server_pin, _, _ = run.cpu_plan()
    if server_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(server_pin[-1])})
    with tempfile.TemporaryDirectory(prefix="trioapi-profile-server-") as scratch:
        os.environ["BENCH_LOG"] = str(Path(scratch) / "notifications.log")
        args.scratch = Path(scratch)  # the request bodies of ITEMS and UPLOAD
        sys.path.insert(0, str(run.APPS))
        module = run.APP_FILES[args.framework].removesuffix(".py")
        app = importlib.import_module(module).app
        profile, result = trio.run(drive, app, args, wrk)
    text = report(profile, result, args)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paired A/B: two servers loaded at the same time on one core, for changes of 1-3 %.

``run.py`` measures one server at a time; on a shared machine its rounds
drift by ±10 % in a minute, so a change worth 2 % cannot be told from noise
there. Here two servers share the server core and two wrk processes (on the
other core) load them at once, round after round: whatever the machine does
meanwhile, it does to both, and the ratio of their request rates is the
ratio of their costs per request.

The core is shared per process only when each server sits in a cgroup of
its own with the same CPU weight (cgroup v1 ``cpu`` or v2, writable: root in
a container); otherwise the scheduler shares it per *thread*, and a server
with busy worker threads (a sync task) gets more than half. The report says
which held. Use it to compare two versions of trioapi (``--b-ref``: a git
revision, checked out in a temporary folder) or two apps::

    python bench/paired.py --a trioapi --b trioapi --b-ref HEAD~1 --rounds 10
    python bench/paired.py --a raw --b trioapi --route POST
    python bench/paired.py --a trioapi --b trioapi --b-env X=1   # an experiment's switch

Calibrate first (``--a trioapi --b trioapi``): the ratio should be 1.00 with
a spread of about ±1 % per round. The server started second tends to gain
about 1 %: ``--mirror`` runs the rounds again with the two exchanged and
reports the geometric mean of both ratios, which takes that out. Not a
replacement for ``run.py``: both servers see caches shared with a
neighbour, so absolute rates are lower.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import run

CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")


def checkout(ref: str, into: Path) -> Path:
    """The ``trioapi`` package of revision ``ref``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(run.REPO), "archive", ref, "trioapi"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


@contextlib.contextmanager
def cgroups() -> Iterator[tuple[Path, Path] | None]:
    """Two sibling cgroups of equal CPU weight, or None where none can be made."""
    made: list[Path] = []
    try:
        for base in (CGROUP_V1, CGROUP_V2):
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            if base == CGROUP_V2 and "cpu" not in (base / "cgroup.controllers").read_text():
                continue
            try:
                for name in ("trioapi-paired-a", "trioapi-paired-b"):
                    group = base / f"{name}-{os.getpid()}"
                    group.mkdir()
                    made.append(group)
            except OSError:
                continue
            yield made[0], made[1]
            return
        yield None
    finally:
        for group in made:
            # Empty once its servers have exited; a worker may outlive its
            # parent's wait by a moment.
            deadline = time.monotonic() + 10
            while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(OSError):
                group.rmdir()


def start(
    framework: str, port: int, tree: Path | None, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    pin, _, _ = run.cpu_plan()
    app = run.APPS / run.APP_FILES[framework]
    command = [*pin, sys.executable, "-m", "hypercorn", "--worker-class", "trio"]
    command += ["--workers", "1", "--bind", f"127.0.0.1:{port}", f"{app.stem}:app"]
    # The apps folder for the app; a checked-out tree first, so that its
    # trioapi is the one imported (python -m puts the working folder first).
    path = [str(run.APPS), *([os.environ["PYTHONPATH"]] if "PYTHONPATH" in os.environ else [])]
    full_env = dict(os.environ, **env, BENCH_LOG=str(log), PYTHONPATH=os.pathsep.join(path))
    return subprocess.Popen(
        command,
        cwd=tree or run.REPO,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def place(process: subprocess.Popen[bytes], group: Path) -> None:
    # The hypercorn parent and its worker; threads started later follow them.
    for pid in [process.pid, *run._children(process.pid)]:
        (group / "cgroup.procs").write_text(str(pid))


def load_both(
    wrk: str,
    ports: tuple[int, int],
    args: argparse.Namespace,
    bodies: dict[str, run.Body],
    b_first: bool = False,
) -> tuple[float, float]:
    """One round: both servers under wrk at once; their request rates (A's, B's).

    ``b_first`` starts B's wrk first: rounds alternate, so that neither
    side always has the head start.
    """
    _, pin, _ = run.cpu_plan()
    route = run.ROUTES[args.route]
    runs = []
    for port in reversed(ports) if b_first else ports:
        command = [*pin, wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s"]
        command += ["--timeout", "5s", "-s", str(run.WRK_SCRIPT), f"http://127.0.0.1:{port}"]
        command[-1] += route.path
        command += ["--", *run.wrk_route_args(args.route, bodies)]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    rates = []
    for process in runs:
        out, _ = process.communicate(timeout=args.seconds + 30)
        match = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.MULTILINE)
        if process.returncode != 0 or match is None:
            msg = f"wrk failed ({process.returncode}):\n{out}"
            raise RuntimeError(msg)
        result = json.loads(match.group(1))
        rates.append(result["requests"] / (result["duration_us"] / 1e6))
    if b_first:
        rates.reverse()
    return rates[0], rates[1]


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--a-env/--b-env take NAME=VALUE, not {pair!r}")
        env[name] = value
    return env


def measure(
    sides: list[tuple[str, Path | None, dict[str, str], str]],
    args: argparse.Namespace,
    wrk: str,
    bodies: dict[str, run.Body],
    folder: Path,
    groups: tuple[Path, Path] | None,
) -> list[float]:
    """Serves the two sides at once, round after round; each round's rate of side 1 / side 0.

    ``sides``: (app name, checked-out tree or None, environment, label) for
    the servers started first and second.
    """
    ports = (run.free_port(), run.free_port())
    servers = []
    try:
        for index, (name, tree, env, _) in enumerate(sides):
            log = folder / f"{'ab'[index]}.log"
            servers.append(start(name, ports[index], tree, env, log))
        for port, server, side in zip(ports, servers, sides, strict=True):
            run.wait_answering(server, port, f"the server of {side[3]} (port {port})")
        if groups is not None:
            for server, group in zip(servers, groups, strict=True):
                place(server, group)
        sharing = "per process (a cgroup each)" if groups else "per thread (no cgroup)"
        print(f"A = {sides[0][3]}\nB = {sides[1][3]}")
        print(f"{args.route}, {args.rounds} rounds of {args.seconds} s; core shared {sharing}")
        warm = argparse.Namespace(**{**vars(args), "seconds": 1})
        load_both(wrk, ports, warm, bodies)  # caches, pools, first threads: not counted
        ratios = []
        for number in range(1, args.rounds + 1):
            a, b = load_both(wrk, ports, args, bodies, b_first=number % 2 == 0)
            ratios.append(b / a)
            print(f"round {number:2}: A {a:8.0f} req/s   B {b:8.0f} req/s   B/A {b / a:.3f}")
        print(
            f"B/A median {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
    finally:
        for server in servers:
            run.terminate(server)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="trioapi", help="an app of run.py (alias or name)")
    parser.add_argument("--b", default="trioapi")
    parser.add_argument("--a-ref", help="serve A from this git revision's trioapi")
    parser.add_argument("--b-ref", help="serve B from this git revision's trioapi")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--route", default="POST", choices=sorted(run.ROUTES))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="run again with A and B exchanged, and report both (the second server gains ~1 %%)",
    )
    args = parser.parse_args(argv)
    names = [run.ALIASES.get(args.a, args.a), run.ALIASES.get(args.b, args.b)]
    for name in names:
        if name not in run.APP_FILES or not run.serves(name, args.route):
            parser.error(f"{name!r} is not an app of run.py serving {args.route}")
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk is not installed (nox -s bench installs it)")
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be between 1 and 100")
    with tempfile.TemporaryDirectory(prefix="trioapi-paired-") as scratch, cgroups() as groups:
        folder = Path(scratch)
        sides = []
        for index, (side, ref) in enumerate((("a", args.a_ref), ("b", args.b_ref))):
            tree = folder / side
            tree.mkdir()
            env = parse_env(args.a_env if side == "a" else args.b_env)
            label = f"{names[index]}{f' @ {ref}' if ref else ''}{f' {env}' if env else ''}"
            sides.append((names[index], checkout(ref, tree) if ref else None, env, label))
        bodies = run.write_bodies(folder)
        ratios = measure(sides, args, wrk, bodies, folder, groups)
        if args.mirror:
            print("mirrored: the same two, started the other way round")
            back = measure(sides[::-1], args, wrk, bodies, folder, groups)
            forward, reverse = statistics.median(ratios), 1 / statistics.median(back)
            print(
                f"B/A {forward:.3f} as the second server, {reverse:.3f} as the first: "
                f"{(forward * reverse) ** 0.5:.3f} with the position's advantage taken out"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

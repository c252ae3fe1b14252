"""In-process micro-benchmarks: no server, no sockets, only the ASGI callables.

Two parts:

1. **Per request** (µs): raw ASGI, trioapi, Starlette and FastAPI called with a
   minimal hand-rolled scope, ``receive`` and ``send``, each with its lifespan
   running (trioapi needs it for its background runtime). ``POST`` is timed
   until its sync background task has completed: Starlette and FastAPI run
   the task inside the request call; trioapi hands it to its runtime, so the
   timer also waits on ``app.background.wait_idle()``. One more row sends
   1,000 POSTs back to back and then waits until the runtime is idle: the
   amortised cost when tasks overlap, as they do behind a busy server.
2. **trioapi's background runtime**: task throughput against raw
   ``nursery.start_soon`` / ``trio.to_thread.run_sync``, memory per pending
   task (tracemalloc), drain time for 10,000 quick tasks, and how long
   cancellation takes once the drain deadline has passed.

Repetitions are interleaved across the contenders and the median is
reported with its min-max: the machine may be shared, so single numbers lie.

    python bench/micro.py [--reps N] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from trioapi import BackgroundTasks, TrioAPI

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "apps"
DASH = "\u2013"
TIMES = "\u00d7"

EMAIL = "bench@example.com"
POST_PATH = f"/send-notification/{EMAIL}"
HELLO = {"message": "hello"}
SENT = {"message": "Notification sent in the background"}

# The cancellation benchmark cuts off thousands of tasks on purpose; trioapi
# warns about each abandoned thread and lists every cancelled task: keep
# errors, drop those expected warnings.
logging.getLogger("trioapi").setLevel(logging.ERROR)

# Each timed batch aims at this many seconds (fewer requests for slow cases).
BATCH_SECONDS = 0.12
MAX_THREADS = 40  # trioapi's default max_task_threads, used for the raw baseline too


def summarize(values: list[float]) -> dict[str, Any]:
    """Median with min-max over repetitions (values kept for the record)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": [round(v, 4) for v in values],
    }


# --- a minimal ASGI harness ----------------------------------------------------------


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"micro")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


_REQUEST = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT = {"type": "http.disconnect"}


class _Receive:
    """The body once, then ``http.disconnect`` (what hypercorn does after a response)."""

    __slots__ = ("_given",)

    def __init__(self) -> None:
        self._given = False

    async def __call__(self) -> dict[str, Any]:
        if self._given:
            return _DISCONNECT
        self._given = True
        return _REQUEST


async def _discard(message: dict[str, Any]) -> None:
    return None


def request_caller(app: Any, method: str, path: str) -> Callable[[], Awaitable[None]]:
    """One ASGI request to ``app``; the response is thrown away."""
    base = http_scope(method, path)

    async def one() -> None:
        await app(base.copy(), _Receive(), _discard)

    return one


async def check_response(app: Any, method: str, path: str, expected: Any) -> None:
    """Fails loudly if ``app`` does not answer 200 with ``expected`` JSON."""
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(http_scope(method, path), _Receive(), send)
    status = messages[0]["status"]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    if status != 200 or json.loads(body) != expected:
        msg = f"{app!r} answered {method} {path} with {status} {body!r}"
        raise RuntimeError(msg)


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Runs ``app``'s ASGI lifespan around the block (startup, then shutdown)."""
    to_app, app_inbox = trio.open_memory_channel[dict[str, Any]](4)
    app_outbox, from_app = trio.open_memory_channel[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"}, "state": {}}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        reply = await from_app.receive()
        if reply["type"] != "lifespan.startup.complete":
            msg = f"lifespan startup of {app!r} failed: {reply}"
            raise RuntimeError(msg)
        try:
            yield
        finally:
            with trio.move_on_after(30):
                await to_app.send({"type": "lifespan.shutdown"})
                await from_app.receive()


# --- part 1: per request -------------------------------------------------------------


async def time_batch(call: Callable[[], Awaitable[None]], count: int) -> float:
    """µs per call over ``count`` sequential calls."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - start) / count * 1e6


async def calibrate(call: Callable[[], Awaitable[None]], quick: bool) -> int:
    """Warms ``call`` up and picks a batch size that takes about BATCH_SECONDS."""
    await time_batch(call, 50)
    per_call = await time_batch(call, 200)
    seconds = BATCH_SECONDS / (3 if quick else 1)
    return max(30, min(20_000, int(seconds / (per_call / 1e6))))


def _with_idle_wait(app: TrioAPI, call: Callable[[], Awaitable[None]]) -> Any:
    async def one() -> None:
        await call()
        await app.background.wait_idle()

    return one


def _back_to_back(app: Any, count: int, runtime: Any = None) -> Callable[[], Awaitable[None]]:
    """``count`` POSTs in a row, then (trioapi) wait until every task is done."""
    post = request_caller(app, "POST", POST_PATH)

    async def batch() -> None:
        for _ in range(count):
            await post()
        if runtime is not None:
            await runtime.wait_idle()

    return batch


def load_apps() -> dict[str, Any]:
    """Imports the apps the way hypercorn does (their folder first on sys.path).

    They read ``BENCH_LOG`` when imported: ``main`` points it at a scratch file.
    """
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))
    modules = {
        "raw ASGI": "app_raw",
        "trioapi": "app_trioapi",
        "Starlette": "app_starlette",
        "FastAPI": "app_fastapi",
    }
    return {name: importlib.import_module(module).app for name, module in modules.items()}


async def bench_requests(reps: int, quick: bool) -> dict[str, Any]:
    apps = load_apps()
    trioapi_app: TrioAPI = apps["trioapi"]
    log = Path(os.environ["BENCH_LOG"])
    log.write_text("")
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(lifespan(app))
        for app in apps.values():
            await check_response(app, "GET", "/", HELLO)
            await check_response(app, "POST", POST_PATH, SENT)
        await trioapi_app.background.wait_idle()

        cases: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {}
        for name, app in apps.items():
            cases[name, "GET"] = request_caller(app, "GET", "/")
            post = request_caller(app, "POST", POST_PATH)
            cases[name, "POST"] = _with_idle_wait(app, post) if app is trioapi_app else post
        burst = 200 if quick else 1_000
        burst_label = f"POST x{burst} back to back"
        for name, app in apps.items():
            runtime = trioapi_app.background if app is trioapi_app else None
            cases[name, burst_label] = _back_to_back(app, burst, runtime)

        sizes: dict[tuple[str, str], int] = {}
        for key, call in cases.items():
            sizes[key] = 1 if key[1] == burst_label else await calibrate(call, quick)
        samples: dict[tuple[str, str], list[float]] = {key: [] for key in cases}
        for _ in range(reps):
            for key, call in cases.items():
                per_call = await time_batch(call, sizes[key])
                if key[1] == burst_label:
                    per_call /= burst
                samples[key].append(per_call)
        await trioapi_app.background.wait_idle()

    # Every POST wrote one line (check, warm-up, timed): nothing may be missing.
    lines = sum(1 for _ in log.open())
    expected = sum(1 + 250 + reps * (sizes[name, "POST"] + burst) for name in apps)
    result: dict[str, Any] = {"unit": "µs per request", "burst": burst, "routes": {}}
    for (name, route), values in samples.items():
        route_key = "POST burst" if route == burst_label else route
        entry = summarize(values)
        entry["batch"] = sizes[name, route]
        result["routes"].setdefault(route_key, {})[name] = entry
    result["log_lines"] = {"expected": expected, "written": lines}
    if lines != expected:
        print(f"warning: {expected} POSTs but {lines} log lines", file=sys.stderr)
    return result


# --- part 2: the background runtime ------------------------------------------------


async def _noop_async() -> None:
    return None


def _noop_sync() -> None:
    return None


async def raw_start_soon(count: int) -> float:
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(_noop_async)
    return time.perf_counter() - start


async def raw_to_thread(count: int) -> float:
    limiter = trio.CapacityLimiter(MAX_THREADS)

    async def one() -> None:
        await trio.to_thread.run_sync(_noop_sync, limiter=limiter)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return time.perf_counter() - start


def _submit_one(runtime: Any, func: Callable[..., Any], *args: Any) -> None:
    """What a request does: its own BackgroundTasks, one task, one group."""
    tasks = BackgroundTasks(runtime, "bench")
    tasks.add_task(func, *args)
    runtime.submit(tasks._take())  # as the app hands a request's group over


async def trioapi_tasks(runtime: Any, func: Callable[..., Any], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        _submit_one(runtime, func)
    await runtime.wait_idle()
    return time.perf_counter() - start


@asynccontextmanager
async def running_runtime(**options: Any) -> AsyncIterator[TrioAPI]:
    """A fresh app whose background runtime runs (as the lifespan would start it)."""
    app = TrioAPI(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.background.run)
        try:
            yield app
        finally:
            if app.background.state.value != "closed":
                await app.background.drain(timeout=5)


async def bench_throughput(reps: int, quick: bool) -> dict[str, Any]:
    n_async = 2_000 if quick else 10_000
    n_sync = 500 if quick else 2_000
    samples: dict[str, list[float]] = {
        "raw start_soon": [],
        "trioapi async": [],
        "raw to_thread": [],
        "trioapi sync": [],
    }
    async with running_runtime(max_pending_tasks=4 * n_async) as app:
        runtime = app.background
        # Warm up both paths (and trio's worker-thread cache).
        await raw_start_soon(500)
        await trioapi_tasks(runtime, _noop_async, 500)
        await raw_to_thread(200)
        await trioapi_tasks(runtime, _noop_sync, 200)
        for _ in range(reps):
            gc.collect()
            samples["raw start_soon"].append(n_async / await raw_start_soon(n_async))
            gc.collect()
            samples["trioapi async"].append(
                n_async / await trioapi_tasks(runtime, _noop_async, n_async)
            )
            gc.collect()
            samples["raw to_thread"].append(n_sync / await raw_to_thread(n_sync))
            gc.collect()
            samples["trioapi sync"].append(
                n_sync / await trioapi_tasks(runtime, _noop_sync, n_sync)
            )
    out: dict[str, Any] = {"unit": "tasks/s", "n_async": n_async, "n_sync": n_sync}
    for key, values in samples.items():
        out[key] = summarize(values)
    for kind, raw, ours in (
        ("async", "raw start_soon", "trioapi async"),
        ("sync", "raw to_thread", "trioapi sync"),
    ):
        raw_median = out[raw]["median"]
        ours_median = out[ours]["median"]
        # Cost per task, trioapi over raw: raw tasks/s divided by trioapi tasks/s.
        out[f"{kind}_cost_ratio"] = raw_median / ours_median
        out[f"{kind}_us_per_task"] = {"raw": 1e6 / raw_median, "trioapi": 1e6 / ours_median}
    return out


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def bench_memory(count: int) -> dict[str, Any]:
    """Bytes per task while admitted, queued, and waiting (1,000 running, the rest pending)."""
    gate = trio.Event()

    async def blocked(_email: str) -> None:
        await gate.wait()

    email = EMAIL  # one shared argument: measure the runtime, not the payload
    out: dict[str, Any] = {"unit": "bytes per task", "tasks": count}
    async with running_runtime(max_pending_tasks=count) as app:
        runtime = app.background
        await trio.testing.wait_all_tasks_blocked()
        tracemalloc.start()
        try:
            base = _traced()
            held = []
            for _ in range(count):
                tasks = BackgroundTasks(runtime, "POST /send-notification/{email}")
                tasks.add_task(blocked, email)
                held.append(tasks)
            out["admitted"] = (_traced() - base) / count
            for tasks in held:
                runtime.submit(tasks._take())
            out["submitted, not started"] = (_traced() - base) / count
            await trio.testing.wait_all_tasks_blocked()
            out["waiting (1,000 running, rest pending)"] = (_traced() - base) / count
            out["running"] = runtime.running
            out["pending"] = runtime.pending
            gate.set()
            await runtime.wait_idle()
            await trio.testing.wait_all_tasks_blocked()  # idle runners park or exit
            held.clear()
            out["retained after completion"] = (_traced() - base) / count

            # The same number of bare trio tasks blocked on an event, for scale.
            raw_gate = trio.Event()

            async def bare() -> None:
                await raw_gate.wait()

            base = _traced()
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(bare)
                await trio.testing.wait_all_tasks_blocked()
                out["raw trio task, blocked"] = (_traced() - base) / count
                raw_gate.set()
        finally:
            tracemalloc.stop()
    return out


async def _quick_async() -> None:
    await trio.lowlevel.checkpoint()


async def drain_once(count: int, func: Callable[..., Any]) -> dict[str, float]:
    async with running_runtime(max_pending_tasks=count) as app:
        runtime = app.background
        for _ in range(count):
            _submit_one(runtime, func)
        start = time.perf_counter()
        report = await runtime.drain()
        seconds = time.perf_counter() - start
    if report.completed != count or report.deadline_hit:
        msg = f"drain of {count} quick tasks did not complete them all: {report}"
        raise RuntimeError(msg)
    return {"seconds": seconds}


async def cancel_once(count: int, kind: str, timeout: float) -> dict[str, Any]:
    """Tasks that never finish; the drain deadline passes; how late does drain() return?"""
    release = threading.Event()

    async def forever() -> None:
        await trio.sleep_forever()

    def stuck() -> None:
        release.wait(30)

    func = forever if kind == "async" else stuck
    try:
        async with running_runtime(max_pending_tasks=count) as app:
            runtime = app.background
            for _ in range(count):
                _submit_one(runtime, func)
            await trio.testing.wait_all_tasks_blocked()
            start = time.perf_counter()
            report = await runtime.drain(timeout=timeout)
            late = time.perf_counter() - start - timeout
    finally:
        release.set()
    return {
        "latency_s": late,
        "cancelled": report.cancelled,
        "abandoned": report.abandoned,
        "completed": report.completed,
    }


async def bench_drain_and_cancel(reps: int, quick: bool) -> dict[str, Any]:
    n = 2_000 if quick else 10_000
    out: dict[str, Any] = {"tasks": n}
    runs: dict[str, list[float]] = {"async": [], "sync": []}
    for _ in range(reps):
        runs["async"].append((await drain_once(n, _quick_async))["seconds"])
        runs["sync"].append((await drain_once(n, _noop_sync))["seconds"])
    out["drain_seconds"] = {kind: summarize(values) for kind, values in runs.items()}

    cancel_n = {"async": 1_000, "sync": 200}
    timeout = 0.2
    latencies: dict[str, list[float]] = {"async": [], "sync": []}
    last: dict[str, Any] = {}
    for _ in range(reps):
        for kind, count in cancel_n.items():
            outcome = await cancel_once(count, kind, timeout)
            latencies[kind].append(outcome["latency_s"])
            last[kind] = outcome
    out["cancel"] = {
        "drain_timeout_s": timeout,
        "tasks": cancel_n,
        "latency_ms": {k: summarize([v * 1e3 for v in vals]) for k, vals in latencies.items()},
        "outcome": last,
    }
    return out


# --- reporting ---------------------------------------------------------------------------


def fmt_range(entry: dict[str, Any], digits: int = 1) -> str:
    low, high = entry["min"], entry["max"]
    return f"{entry['median']:.{digits}f} ({low:.{digits}f}{DASH}{high:.{digits}f})"


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    req = results["requests"]["routes"]
    burst = results["requests"]["burst"]
    lines.append(f"In-process µs per request: median (min{DASH}max)")
    lines.append("")
    lines.append(
        f"| framework | GET | POST, task completed | POST, {burst} back to back, amortised |"
    )
    lines.append("|---|---:|---:|---:|")
    for name in req["GET"]:
        lines.append(
            f"| {name} | {fmt_range(req['GET'][name])} | {fmt_range(req['POST'][name])} "
            f"| {fmt_range(req['POST burst'][name])} |"
        )
    rt = results["runtime"]
    tp = rt["throughput"]
    lines.append("")
    lines.append(
        f"Background-task throughput, tasks/s: median (min{DASH}max); one group per task, "
        f"{tp['n_async']:,} async / {tp['n_sync']:,} sync tasks per run"
    )
    lines.append("")
    lines.append("| path | tasks/s | µs per task |")
    lines.append("|---|---:|---:|")
    for key in ("raw start_soon", "trioapi async", "raw to_thread", "trioapi sync"):
        entry = tp[key]
        lines.append(f"| {key} | {fmt_range(entry, 0)} | {1e6 / entry['median']:.1f} |")
    lines.append("")
    lines.append(
        f"Cost per task, trioapi / raw: async {tp['async_cost_ratio']:.2f}{TIMES}, "
        f"sync {tp['sync_cost_ratio']:.2f}{TIMES}"
    )
    mem = rt["memory"]
    lines.append("")
    lines.append(f"Memory per task (tracemalloc, {mem['tasks']:,} tasks, bytes)")
    lines.append("")
    lines.append("| stage | bytes per task |")
    lines.append("|---|---:|")
    labels = {
        "admitted": "admitted (held by its request)",
        "submitted, not started": "submitted, not started",
        "waiting (1,000 running, rest pending)": "waiting (1,000 running, rest pending)",
        "retained after completion": "retained after completion (set/dict capacity; flat "
        "over repeated batches, not a leak)",
        "raw trio task, blocked": "for scale: a bare trio task blocked on an Event",
    }
    for key, label in labels.items():
        lines.append(f"| {label} | {mem[key]:,.0f} |")
    dc = rt["drain"]
    lines.append("")
    lines.append(f"Drain of {dc['tasks']:,} pending quick tasks, seconds: median (min{DASH}max)")
    lines.append("")
    lines.append("| task | seconds |")
    lines.append("|---|---:|")
    for kind, entry in dc["drain_seconds"].items():
        lines.append(f"| {kind} | {fmt_range(entry, 3)} |")
    cancel = dc["cancel"]
    lines.append("")
    lines.append(
        f"Cancellation past the drain deadline (drain_timeout={cancel['drain_timeout_s']} s): "
        f"ms from the deadline until drain() returned, median (min{DASH}max)"
    )
    lines.append("")
    lines.append("| tasks | ms late | outcome |")
    lines.append("|---|---:|---|")
    for kind, entry in cancel["latency_ms"].items():
        outcome = cancel["outcome"][kind]
        lines.append(
            f"| {cancel['tasks'][kind]:,} {kind} (never finish) | {fmt_range(entry, 2)} "
            f"| {outcome['cancelled']} cancelled, {outcome['abandoned']} abandoned |"
        )
    return "\n".join(lines)


async def main_async(reps: int, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"reps": reps, "quick": quick}
    results["requests"] = await bench_requests(reps, quick)
    results["runtime"] = {
        "throughput": await bench_throughput(reps, quick),
        "memory": await bench_memory(2_000 if quick else 10_000),
        "drain": await bench_drain_and_cancel(max(3, reps // 2), quick),
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions (7)")
    parser.add_argument("--quick", action="store_true", help="smaller batches, for a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trioapi-micro-") as scratch:
        os.environ["BENCH_LOG"] = str(Path(scratch) / "notifications.log")
        results = trio.run(main_async, args.reps, args.quick)
    print(markdown(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Durable tasks in one process: commit + run + ack throughput, and time to resume.

    python bench/durable.py [--tasks 20000] [--concurrency 200] [--rounds 3]

*Throughput*: ``concurrency`` trio tasks act as requests: each adds one
durable task (an async function that does nothing), commits it as the app
does before a response, and submits it; the clock stops when every task
ran and its ack is durable (``store.flush()``). The in-memory line does the
same with a plain task (no commit, no ack): the ratio is the price of
durability. Rounds alternate between the stores; medians are reported.

*Resume*: ``--queued`` tasks (100,000 by default) are written to a fresh
SQLite file as held by a process that is gone; the time from the runtime's
start to the first resumed task running is measured.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from trioapi import BackgroundRuntime, BackgroundTasks
from trioapi._runtime.durable import DurableTask
from trioapi.stores import SQLiteStore, TaskStore

done = 0
target = 0
all_done: trio.Event | None = None


async def noop(number: int) -> None:
    global done
    done += 1
    if done == target and all_done is not None:
        all_done.set()


DURABLE = DurableTask(noop, name="bench.noop", retries=0)


async def throughput(store: TaskStore | None, tasks: int, concurrency: int) -> float:
    global done, target, all_done
    done = 0
    target = tasks // concurrency * concurrency
    all_done = trio.Event()
    runtime = BackgroundRuntime(store=store, max_pending=tasks + 10)
    runtime.durable.add(DURABLE)
    func: Any = DURABLE if store is not None else noop
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        start = time.perf_counter()
        per_worker = tasks // concurrency

        async def request(offset: int) -> None:
            for number in range(per_worker):
                group = BackgroundTasks(runtime, "bench")
                group.add_task(func, offset + number)
                handles = group._take()
                if store is not None:
                    await runtime.commit(handles)
                else:
                    await trio.lowlevel.checkpoint()
                runtime.submit(handles)

        async with trio.open_nursery() as requests:
            for worker in range(concurrency):
                requests.start_soon(request, worker * per_worker)
        await all_done.wait()  # a shared store (Redis) runs them as the dispatcher claims them
        await runtime.wait_idle()
        if store is not None:
            await store.flush()
        elapsed = time.perf_counter() - start
        assert done == per_worker * concurrency, done
        await runtime.drain()
    return per_worker * concurrency / elapsed


SEED = """
import os, sys, trio
from trioapi._runtime import codec
from trioapi.stores import Owner, SQLiteStore, TaskRecord

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.open(Owner.this_process(store.lease))
    payload = codec.encode("bench.noop", (1,), {})
    for start in range(0, int(sys.argv[2]), 10000):
        await store.commit(
            [TaskRecord(f"t{n}", "bench.noop", payload) for n in range(start, start + 10000)],
            claimed=True,
        )
    os._exit(0)  # gone without a word: its tasks stay held by a dead pid

trio.run(main)
"""


async def resume(path: Path, queued: int) -> float:
    first = trio.Event()

    async def mark(number: int) -> None:
        first.set()

    runtime = BackgroundRuntime(store=SQLiteStore(path), max_pending=queued + 10)
    runtime.durable.add(DurableTask(mark, name="bench.noop", retries=0))
    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        nursery.start_soon(runtime.run)
        await first.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--redis", help="also measure the Redis store at this URL")
    args = parser.parse_args(argv)
    labels = ["in-memory", "SQLite"] + (["Redis"] if args.redis else [])
    results: dict[str, list[float]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as directory:
        for round_number in range(args.rounds):
            for label in labels:
                store: TaskStore | None = None
                if label == "SQLite":
                    store = SQLiteStore(Path(directory) / f"round{round_number}.db")
                elif label == "Redis":
                    from trioapi.stores import RedisStore

                    store = RedisStore(args.redis, prefix=f"bench-{round_number}-{time.time()}")
                rate = trio.run(throughput, store, args.tasks, args.concurrency)
                results[label].append(rate)
                print(f"round {round_number + 1}: {label}: {rate:,.0f} tasks/s", flush=True)
        memory = statistics.median(results["in-memory"])
        sqlite = statistics.median(results["SQLite"])
        print(
            f"median: in-memory {memory:,.0f} tasks/s, SQLite {sqlite:,.0f} tasks/s "
            f"committed+run+acked ({sqlite / memory:.2f}x in-memory)"
        )
        if args.redis:
            redis_rate = statistics.median(results["Redis"])
            print(
                f"median: Redis {redis_rate:,.0f} tasks/s committed+claimed+run+acked "
                f"({redis_rate / memory:.2f}x in-memory)"
            )
        seeded = Path(directory) / "resume.db"
        subprocess.run([sys.executable, "-c", SEED, str(seeded), str(args.queued)], check=True)
        times = [trio.run(resume, seeded, args.queued)]
        print(
            f"restart to first resumed task with {args.queued:,} held by a dead process: "
            f"{times[0] * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

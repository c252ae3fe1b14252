"""``python -m trioapi tasks``: look into a task store and act on its dead letters.

    python -m trioapi tasks --store sqlite:///tasks.db           counts per state
    python -m trioapi tasks --store URL --dead                   the dead letters
    python -m trioapi tasks --store URL retry ID [ID ...]        queue dead letters again
    python -m trioapi tasks --store URL purge --dead             delete every dead letter

``--app MODULE:APP`` takes the app's ``task_store`` instead of ``--store``;
``TRIOAPI_TASK_STORE`` is used when neither is given.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import trio

from .._stores.base import Owner, TaskStore
from .._stores.registry import ENVIRONMENT, open_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trioapi tasks",
        description="Counts, dead letters and retries of a durable task store.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", help=f"the store's URL (default: ${ENVIRONMENT})")
    where.add_argument("--app", help="MODULE:APP whose task_store to use")
    parser.add_argument(
        "--dead", action="store_true", help="list (or with purge: delete) dead letters"
    )
    parser.add_argument("--limit", type=int, default=100, help="dead letters to list (default 100)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("action", nargs="?", choices=["retry", "purge"], help="what to do")
    parser.add_argument("ids", nargs="*", help="task ids (for retry)")
    return parser


def find_store(args: argparse.Namespace) -> TaskStore:
    if args.app:
        from ..middleware._stack import find_app
        from .cli import load_app

        inner = find_app(load_app(args.app))
        if inner is None or inner.background.store is None:
            raise SystemExit(f"{args.app} has no task_store")
        return inner.background.store
    url = args.store or os.environ.get(ENVIRONMENT)
    if not url:
        raise SystemExit(f"which store? give --store URL, --app MODULE:APP or ${ENVIRONMENT}")
    try:
        return open_url(url)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "retry" and not args.ids:
        raise SystemExit("retry needs the ids of the dead letters to queue again")
    if args.action == "purge" and not args.dead:
        raise SystemExit("purge deletes dead letters only: write purge --dead")
    store = find_store(args)
    return trio.run(_run, store, args, out or sys.stdout)


async def _run(store: TaskStore, args: argparse.Namespace, out: TextIO) -> int:
    await store.open(Owner.this_process(store.lease))
    try:
        if args.action == "retry":
            missing = [task_id for task_id in args.ids if not await store.retry_dead(task_id)]
            for task_id in args.ids:
                if task_id not in missing:
                    print(f"queued again: {task_id}", file=out)
            for task_id in missing:
                print(f"no dead letter with id {task_id}", file=out)
            return 1 if missing else 0
        if args.action == "purge":
            print(f"purged {await store.purge_dead()} dead letter(s)", file=out)
            return 0
        if args.dead:
            letters = await store.dead_letters(args.limit)
            if args.json:
                rows: list[dict[str, Any]] = [
                    {
                        "id": letter.id,
                        "name": letter.name,
                        "attempts": letter.attempts,
                        "failures": letter.failures,
                        "error": letter.error,
                        "died_at": letter.died_at,
                    }
                    for letter in letters
                ]
                print(json.dumps(rows, indent=2), file=out)
                return 0
            if not letters:
                print("no dead letters", file=out)
            for letter in letters:
                died = datetime.datetime.fromtimestamp(letter.died_at, datetime.UTC)
                print(
                    f"{letter.id}  {letter.name}  attempts={letter.attempts}  "
                    f"died={died:%Y-%m-%d %H:%M:%S}Z\n    {letter.error}",
                    file=out,
                )
            return 0
        counts = await store.counts()
        if args.json:
            print(json.dumps(counts), file=out)
        else:
            print(f"{store.url}", file=out)
            for state in ("queued", "running", "retrying", "dead"):
                print(f"  {state:<9}{counts.get(state, 0):>10}", file=out)
        return 0
    finally:
        await store.close()

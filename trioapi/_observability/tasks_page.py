"""The live tasks page: what the background runtime is doing, in a browser.

``app.add_tasks_page("/tasks", dependencies=[Depends(check)])`` adds three
routes, each behind the dependencies given (the page is never public unless
asked for with ``public=True``):

- ``GET /tasks``: one HTML page with its CSS and script inline, nothing
  loaded from elsewhere. The script reads ``state.json`` every second and
  draws it with DOM nodes and ``textContent`` only: task names, requests and
  errors are user data and never become markup. A ``Content-Security-Policy``
  allows exactly the page's own script and style (by their hashes) and
  requests to the app itself.
- ``GET /tasks/state.json``: the snapshot the page draws (``TasksPage.snapshot``).
- ``POST /tasks/dead/{task_id}/retry``: queues a dead letter again. The page
  sends it with an ``X-Tasks-Page`` header, which a form on another site
  cannot send without the app's consent (CORS): a guard that relies on
  cookies or Basic credentials the browser sends by itself is not enough
  against cross-site requests.

:class:`TasksPage` observes the runtime (``events.py``) to keep the tasks
that ended badly, which the runtime itself forgets: the last
``RECENT_TASKS`` failed, cancelled or abandoned tasks, and failed attempts of
durable tasks. Everything else is read from the runtime and its task store
when the snapshot is taken. With several worker processes each page shows
the worker that answered; the store's counts and dead letters are shared.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import html
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from .._exceptions import HTTPException
from .._http.params import Depends
from .._http.requests import Request
from .._http.responses import HTMLResponse, JSONResponse, Response
from .events import TaskObserver

if TYPE_CHECKING:
    from .._http.app import TrioAPI
    from .._runtime.background import BackgroundRuntime, TaskHandle, TaskState

logger = logging.getLogger("trioapi.background")

# Tasks that ended badly, kept for the page; older ones fall off.
RECENT_TASKS = 100
# Tasks in flight listed in a snapshot at most (the total is always given).
IN_FLIGHT_SHOWN = 200
# Dead letters listed at most (the store's count is always given).
DEAD_LETTERS_SHOWN = 100
# Names of cut-off tasks from the drain report listed at most.
REPORT_NAMES_SHOWN = 50
# An error's text is cut to this many characters.
ERROR_CHARS = 2000
# How long the snapshot waits for the task store (a store that hangs must
# not hang the page; it says so instead).
STORE_TIMEOUT = 2.0
# The header the page's retry button sends (see the module's docstring).
RETRY_HEADER = "x-tasks-page"

_OUTCOMES = frozenset({"failed", "cancelled", "abandoned"})


@final
@attrs.frozen
class EndedTask:
    """A task that failed, was cancelled or abandoned, as the page lists it.

    Attributes:
        outcome: ``failed``, ``cancelled``, ``abandoned``, ``dead-lettered``
            (a durable task out of retries) or ``retrying`` (a durable task's
            failed attempt, run again after ``retry_in`` seconds).
        error: The exception (``Type: message``) or the cancellation's reason.
        at: Wall-clock time it ended (``time.time()``).
        duration: Seconds it ran; None if it never started.
    """

    name: str
    request: str
    outcome: str
    error: str
    at: float
    duration: float | None
    task_id: str | None
    attempt: int | None
    retry_in: float | None = None


def _error_text(error: BaseException | None, reason: str | None) -> str:
    if error is None:
        return (reason or "")[:ERROR_CHARS]
    try:
        message = str(error)
    except Exception:  # a broken __str__ must not break the observer
        message = "(its message could not be read)"
    text = f"{type(error).__qualname__}: {message}" if message else type(error).__qualname__
    return text[:ERROR_CHARS]


class TasksPage(TaskObserver):
    """The tasks page's memory of recent failures, and its snapshot of the runtime.

    Args:
        runtime: The runtime shown (``app.background``).
        keep: How many ended tasks to remember.
    """

    def __init__(self, runtime: BackgroundRuntime, keep: int = RECENT_TASKS) -> None:
        self.runtime = runtime
        self.recent: collections.deque[EndedTask] = collections.deque(maxlen=keep)
        # Handles dead-lettered whose task_finished has not come yet (it follows).
        self._dead: set[int] = set()

    # --- events --------------------------------------------------------------------------

    def task_finished(
        self,
        handle: TaskHandle[Any],
        state: TaskState,
        duration: float | None,
        wait: float | None,
    ) -> None:
        outcome = state.value
        if outcome not in _OUTCOMES:
            return
        if handle.id in self._dead:
            self._dead.discard(handle.id)
            outcome = "dead-lettered"
        self._keep(handle, outcome, duration)

    def task_retried(self, handle: TaskHandle[Any], delay: float) -> None:
        started = handle.started_at
        duration = trio.current_time() - started if started is not None else None
        self._keep(handle, "retrying", duration, retry_in=delay)

    def task_dead(self, handle: TaskHandle[Any]) -> None:
        self._dead.add(handle.id)

    def _keep(
        self,
        handle: TaskHandle[Any],
        outcome: str,
        duration: float | None,
        retry_in: float | None = None,
    ) -> None:
        task_id = handle.task_id
        self.recent.append(
            EndedTask(
                name=handle.name,
                request=handle.request,
                outcome=outcome,
                error=_error_text(handle.exception, handle.cancel_reason),
                at=time.time(),
                duration=duration,
                task_id=task_id,
                attempt=handle.attempt if task_id is not None else None,
                retry_in=retry_in,
            )
        )

    # --- the snapshot --------------------------------------------------------------------

    async def snapshot(self, limit: int = IN_FLIGHT_SHOWN) -> dict[str, Any]:
        """What the page shows, as JSON-ready data (``state.json``).

        Args:
            limit: Tasks in flight listed at most, oldest first.
        """
        runtime = self.runtime
        in_flight = runtime.in_flight()
        now = trio.current_time()
        report = runtime.last_report
        return {
            "state": runtime.state.value,
            "now": time.time(),
            "stats": runtime.stats(),
            "drain": None
            if report is None
            else {
                "text": str(report),
                "completed": report.completed,
                "failed": report.failed,
                "cancelled": report.cancelled,
                "abandoned": report.abandoned,
                "skipped": report.skipped,
                "resumable": report.resumable,
                "deadline_hit": report.deadline_hit,
                "duration": report.duration,
                "cancelled_tasks": list(report.cancelled_tasks[:REPORT_NAMES_SHOWN]),
                "abandoned_tasks": list(report.abandoned_tasks[:REPORT_NAMES_SHOWN]),
            },
            "in_flight": {
                "total": len(in_flight),
                "tasks": [_live_task(handle, now) for handle in in_flight[:limit]],
            },
            "recent": [attrs.asdict(task) for task in reversed(self.recent)],
            "store": await self._store_snapshot(),
        }

    async def _store_snapshot(self) -> dict[str, Any] | None:
        runtime = self.runtime
        # The store the runtime opened: the configured one, or the memory store
        # it uses when durable tasks have none. Not open (before startup,
        # after shutdown): only its URL.
        store = runtime._active_store
        if store is None:
            if runtime.store is None:
                return None
            return {
                "url": runtime.store.url,
                "open": False,
                "counts": None,
                "dead_letters": None,
                "error": None,
            }
        found: dict[str, Any] = {
            "url": store.url,
            "open": True,
            "counts": None,
            "dead_letters": None,
            "error": None,
        }
        try:
            with trio.move_on_after(STORE_TIMEOUT) as waited:
                found["counts"] = await store.counts()
                dead = await store.dead_letters(DEAD_LETTERS_SHOWN)
                found["dead_letters"] = [
                    {
                        "id": letter.id,
                        "name": letter.name,
                        "attempts": letter.attempts,
                        "failures": letter.failures,
                        "error": letter.error[:ERROR_CHARS],
                        "died_at": letter.died_at,
                    }
                    for letter in dead
                ]
        except Exception as error:
            found["error"] = f"the task store failed: {_error_text(error, None)}"
        else:
            if waited.cancelled_caught:
                found["error"] = f"the task store did not answer within {STORE_TIMEOUT:g} s"
        return found

    # --- the routes ----------------------------------------------------------------------

    def add_routes(self, app: TrioAPI, path: str, dependencies: Sequence[Depends]) -> None:
        """Adds the page, its ``state.json`` and the retry route under ``path``."""
        base = path.rstrip("/")

        async def tasks_page(request: Request) -> Response:
            root = request.scope.get("root_path", "")
            return HTMLResponse(
                render_page(f"{root}{base}/state.json", f"{root}{base}/dead/"),
                headers=PAGE_HEADERS,
            )

        async def tasks_page_state() -> Response:
            return JSONResponse(await self.snapshot(), headers=DATA_HEADERS)

        async def tasks_page_retry(task_id: str, request: Request) -> Response:
            if RETRY_HEADER not in request.headers:
                raise HTTPException(
                    403,
                    f"send the retry from the tasks page (it sets the {RETRY_HEADER} header)",
                )
            store = self.runtime._active_store
            if store is None:
                raise HTTPException(503, "the task store is not open")
            if not await store.retry_dead(task_id):
                raise HTTPException(404, f"no dead letter {task_id!r}")
            logger.info("dead letter %s queued again from the tasks page", task_id)
            self.runtime._poke_dispatcher()  # claimed now, not at the next poll
            return JSONResponse({"retried": True}, headers=DATA_HEADERS)

        for route_path, endpoint, method in (
            (path, tasks_page, "GET"),
            (f"{base}/state.json", tasks_page_state, "GET"),
            (f"{base}/dead/{{task_id}}/retry", tasks_page_retry, "POST"),
        ):
            app.add_api_route(
                route_path,
                endpoint,
                methods=[method],
                dependencies=dependencies,
                include_in_schema=False,
                name=endpoint.__name__,
            )


def _live_task(handle: TaskHandle[Any], now: float) -> dict[str, Any]:
    task_id = handle.task_id
    started = handle.started_at
    return {
        "id": handle.id,
        "name": handle.name,
        "request": handle.request,
        "state": handle.state.value,
        "age": now - handle.created_at,
        "running_for": now - started if started is not None else None,
        "task_id": task_id,
        "attempt": handle.attempt if task_id is not None else None,
    }


# --- the page ----------------------------------------------------------------------------

STYLE = """
:root { color-scheme: light dark; --line: #8884; --muted: #777; --bad: #c62828; --ok: #2e7d32;
  --warn: #b26a00; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.badge { border-radius: 1rem; padding: .1rem .7rem; font-weight: 600; color: #fff;
  background: var(--muted); }
.badge.accepting { background: var(--ok); }
.badge.draining { background: var(--warn); }
.badge.closed { background: var(--bad); }
#status { color: var(--muted); }
#status.error, .error { color: var(--bad); }
dl { display: flex; flex-wrap: wrap; gap: .5rem; margin: 0; }
dl div { border: 1px solid var(--line); border-radius: .4rem; padding: .3rem .7rem; }
dt { color: var(--muted); font-size: .85em; }
dd { margin: 0; font-size: 1.2em; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td { overflow-wrap: break-word; }
th { color: var(--muted); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
p.empty { color: var(--muted); margin: .3rem 0; }
"""

SCRIPT = """
"use strict";
const urls = document.body.dataset;
const POLL_MS = 1000;
let timer = 0;
let asked = 0;
let shown = 0;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 1) return Math.round(value * 1000) + " ms";
  if (value < 60) return value.toFixed(1) + " s";
  const minutes = Math.floor(value / 60);
  if (minutes < 60) return minutes + " min " + Math.floor(value % 60) + " s";
  return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
}

function durable(task) {
  return task.task_id ? task.task_id + " (attempt " + task.attempt + ")" : "";
}

function fill(id, items, cells) {
  const table = document.getElementById(id);
  table.tBodies[0].replaceChildren(...items.map(item => {
    const row = el("tr");
    for (const value of cells(item)) {
      const cell = el("td");
      if (value instanceof Node) cell.append(value);
      else cell.textContent = value === null || value === undefined ? "" : String(value);
      if (typeof value === "number") cell.className = "num";
      row.append(cell);
    }
    return row;
  }));
  table.hidden = items.length === 0;
  document.getElementById(id + "-empty").hidden = items.length !== 0;
}

function counters(id, values) {
  document.getElementById(id).replaceChildren(...Object.entries(values).map(([name, value]) => {
    const item = el("div");
    item.append(el("dt", name), el("dd", value));
    return item;
  }));
}

function say(id, text, bad) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.classList.toggle("error", Boolean(bad));
}

function retryButton(id) {
  const button = el("button", "Retry");
  button.type = "button";
  button.addEventListener("click", () => retry(id, button));
  return button;
}

async function retry(id, button) {
  button.disabled = true;
  try {
    const answer = await fetch(urls.retry + encodeURIComponent(id) + "/retry", {
      method: "POST", headers: {"X-Tasks-Page": "retry"},
    });
    if (answer.ok) say("dead-note", "Task " + id + " is queued again.", false);
    else if (answer.status === 404) say("dead-note", "Task " + id + " is not dead now.", true);
    else say("dead-note", "Retrying task " + id + " failed: HTTP " + answer.status, true);
  } catch (error) {
    say("dead-note", "Retrying task " + id + " failed: " + error.message, true);
    button.disabled = false;
  }
  refresh();
}

function render(state) {
  const badge = document.getElementById("state");
  badge.textContent = state.state;
  badge.className = "badge " + state.state;
  counters("stats", state.stats);
  document.getElementById("drain").hidden = !state.drain;
  if (state.drain) say("drain-text", state.drain.text, state.drain.deadline_hit);
  const flight = state.in_flight;
  document.getElementById("in-flight-count").textContent = flight.tasks.length < flight.total
    ? "(the oldest " + flight.tasks.length + " of " + flight.total + ")"
    : "(" + flight.total + ")";
  fill("in-flight", flight.tasks, task => [
    task.name, task.request, task.state, seconds(task.age), seconds(task.running_for),
    durable(task),
  ]);
  fill("recent", state.recent, task => [
    new Date(task.at * 1000).toLocaleTimeString() + " (" + seconds(state.now - task.at) + " ago)",
    task.name, task.request,
    task.retry_in === null ? task.outcome : task.outcome + " in " + seconds(task.retry_in),
    task.error, durable(task),
  ]);
  const store = state.store;
  document.getElementById("store").hidden = !store;
  if (!store) return;
  document.getElementById("store-url").textContent = store.url;
  say("store-error", store.error || (store.open ? "" : "not open"), Boolean(store.error));
  counters("store-counts", store.counts || {});
  fill("dead", store.dead_letters || [], letter => [
    letter.id, letter.name, letter.attempts, letter.error, retryButton(letter.id),
  ]);
}

async function refresh() {
  const mine = ++asked;
  try {
    const answer = await fetch(urls.state, {
      cache: "no-store", headers: {Accept: "application/json"},
    });
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    const state = await answer.json();
    if (mine > shown) {
      shown = mine;
      render(state);
      say("status", "live, updated " + new Date().toLocaleTimeString(), false);
    }
  } catch (error) {
    say("status", "cannot read the tasks' state (" + error.message + "); trying again", true);
  } finally {
    clearTimeout(timer);
    timer = setTimeout(refresh, POLL_MS);
  }
}

refresh();
"""


def _source_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_source_hash(SCRIPT)}; style-src {_source_hash(STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
DATA_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

_HEAD = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Background tasks</title>
<style>{STYLE}</style>
</head>
"""

_BODY = f"""
<header>
<h1>Background tasks</h1>
<span id="state" class="badge">loading</span>
<span id="status">loading…</span>
</header>
<section id="drain" hidden>
<h2>Drain report</h2>
<p id="drain-text"></p>
</section>
<section>
<h2>Counters</h2>
<dl id="stats"></dl>
</section>
<section>
<h2>In flight <span id="in-flight-count"></span></h2>
<table id="in-flight" hidden>
<thead><tr><th>Task</th><th>Request</th><th>State</th><th>Age</th><th>Running for</th>
<th>Durable id</th></tr></thead>
<tbody></tbody>
</table>
<p id="in-flight-empty" class="empty">No task is pending or running.</p>
</section>
<section>
<h2>Recently failed, cancelled or abandoned</h2>
<table id="recent" hidden>
<thead><tr><th>Ended</th><th>Task</th><th>Request</th><th>Outcome</th><th>Error</th>
<th>Durable id</th></tr></thead>
<tbody></tbody>
</table>
<p id="recent-empty" class="empty">Nothing has failed since the page's memory began.</p>
</section>
<section id="store" hidden>
<h2>Task store <code id="store-url"></code></h2>
<p id="store-error"></p>
<dl id="store-counts"></dl>
<h2>Dead letters</h2>
<p id="dead-note"></p>
<table id="dead" hidden>
<thead><tr><th>Task id</th><th>Task</th><th>Attempts</th><th>Error</th><th></th></tr></thead>
<tbody></tbody>
</table>
<p id="dead-empty" class="empty">No dead letters.</p>
</section>
<script>{SCRIPT}</script>
</body>
</html>
"""


def render_page(state_url: str, retry_url: str) -> str:
    """The page, reading its state from ``state_url``; retries go to ``retry_url + id``."""
    return (
        f'{_HEAD}<body data-state="{html.escape(state_url)}" '
        f'data-retry="{html.escape(retry_url)}">{_BODY}'
    )

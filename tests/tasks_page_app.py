"""The app the tasks page's browser test serves (see test_tasks_page_browser.py).

Run as ``python -m trioapi tests.tasks_page_app:app``; ``TASKS_PAGE_STORE``
names its task store (``sqlite:///...``). Every route, the tasks page's
included, answers only clients on 127.0.0.1 (a guard Chromium satisfies
without credentials).

- ``POST /hold?name=N`` adds a task named N that waits until
  ``POST /release?name=N``, then fails with ``RuntimeError: N gave up``.
- ``POST /deliver?to=ADDRESS`` adds the durable task ``mail.send`` (no
  retries): it fails, and is dead-lettered, until ``POST /heal``.
- ``GET /harness`` shows the tasks page in an iframe, clicks the first dead
  letter's Retry button, waits until that letter is gone from the page, and
  writes what it saw into its ``<pre>``.
"""

from __future__ import annotations

import os

import trio

from trioapi import BackgroundTasks, Depends, HTMLResponse, HTTPException, Request, TrioAPI

STORE_ENV = "TASKS_PAGE_STORE"


async def only_loopback(request: Request) -> None:
    if request.client is None or request.client.host != "127.0.0.1":
        raise HTTPException(403, "the tasks page answers 127.0.0.1 only")


app = TrioAPI(task_store=os.environ.get(STORE_ENV), dependencies=[Depends(only_loopback)])
app.add_tasks_page("/tasks", dependencies=[Depends(only_loopback)])

_gates: dict[str, trio.Event] = {}
_health = {"broken": True}


async def held(name: str) -> None:
    await _gates[name].wait()
    raise RuntimeError(f"{name} gave up")


@app.durable_task(retries=0, name="mail.send")
async def send_mail(to: str) -> None:
    if _health["broken"]:
        raise ConnectionError(f"cannot reach {to}")


@app.post("/hold")
async def hold(name: str, tasks: BackgroundTasks) -> dict[str, str]:
    _gates[name] = trio.Event()
    tasks.options(name=name).add_task(held, name)
    return {"held": name}


@app.post("/release")
async def release(name: str) -> dict[str, str]:
    _gates[name].set()
    return {"released": name}


@app.post("/deliver")
async def deliver(to: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(send_mail, to)
    return {"queued": to}


@app.post("/heal")
async def heal() -> dict[str, bool]:
    _health["broken"] = False
    return {"broken": False}


HARNESS = """<!DOCTYPE html>
<html>
<head><title>Retry harness</title></head>
<body>
<pre id="result">pending</pre>
<iframe id="page" src="/tasks" width="1200" height="900"></iframe>
<script>
const frame = document.getElementById("page");
const deadline = Date.now() + 8000;

function waitFor(what, find) {
  return new Promise((resolve, reject) => {
    (function poll() {
      let found = null;
      try { found = find(frame.contentDocument); } catch (error) {}
      if (found) resolve(found);
      else if (Date.now() > deadline) reject(new Error("no " + what));
      else setTimeout(poll, 50);
    })();
  });
}

function letterIds(page) {
  return Array.from(page.querySelectorAll("#dead tbody tr"), row => row.cells[0].textContent);
}

async function retryFirst() {
  const button = await waitFor("Retry button", page => page.querySelector("#dead tbody button"));
  const id = button.closest("tr").cells[0].textContent;
  button.click();
  const note = await waitFor("note", page => page.getElementById("dead-note").textContent);
  await waitFor("dead letter gone", page => !letterIds(page).includes(id) && page);
  return "retried " + id + "\\n" + note;
}

retryFirst().then(
  text => { document.getElementById("result").textContent = text; },
  error => { document.getElementById("result").textContent = "failed: " + error.message; });
</script>
</body>
</html>
"""


@app.get("/harness", include_in_schema=False)
async def harness() -> HTMLResponse:
    return HTMLResponse(HARNESS)

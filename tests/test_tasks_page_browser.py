"""The tasks page in a real browser: headless Chromium against a real server.

``python -m trioapi tests.tasks_page_app:app`` runs in a subprocess on
127.0.0.1 (an SQLite task store in the test's directory), and Debian's
``chromium`` loads ``/tasks`` with ``--dump-dom``: the DOM it prints once the
page's script has polled ``state.json`` and drawn it (under a virtual time
budget, see ``test_docs_browser.py``, whose Chromium runner and DOM reader
this reuses, with its refusing proxy: the page may load nothing from
elsewhere). The page must show a held task while it runs and its failure
after it was released, show a hostile task name as text, and its Retry
button (clicked by a harness page the app serves, as a user would) must
queue a dead letter again.

The tests skip when ``chromium`` is not installed. Every wait is a bounded
poll; the server is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.tasks_page_app import STORE_ENV
from tests.test_docs_browser import DomReader, Element, Page, refusing_proxy, run_chromium
from tests.test_e2e import ServerProcess, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="headless Chromium is not installed (Debian/Ubuntu: apt-get install chromium; "
        "nox -s tests installs it when run as root)",
    ),
]

APP = "tests.tasks_page_app:app"
CLIENT_TIMEOUT = 5.0
TASK_TIMEOUT = 20.0
"""Seconds the server gets to run (or end) a task: a guard against a hang, not a measure."""
STOP_TIMEOUT = 15.0
HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass
class Site:
    server: ServerProcess
    url: str
    proxy_port: int
    workdir: Path
    runs: int = 0

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT)

    def post(self, path: str, **params: str) -> None:
        with self.client() as client:
            answer = client.post(path, params=params)
        assert answer.status_code == 200, answer.text

    def state(self) -> dict[str, Any]:
        with self.client() as client:
            answer = client.get("/tasks/state.json")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def load(self, path: str) -> Page:
        """``path`` in a fresh headless Chromium, its DOM once the scripts have run."""
        self.runs += 1
        page = run_chromium(self.url + path, self.workdir / f"chromium{self.runs}", self.proxy_port)
        assert page.off_machine == [], page.off_machine
        return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("tasks-page")
    store = f"sqlite:///{workdir / 'tasks.db'}"
    server = ServerProcess(
        [sys.executable, "-m", "trioapi", APP, "--bind", "127.0.0.1:0", "--drain-timeout", "2"],
        workdir,
        {STORE_ENV: store},
    )
    try:
        port = server.wait_ready()
        with contextlib.closing(refusing_proxy()) as proxy:
            yield Site(server, f"http://127.0.0.1:{port}", proxy.getsockname()[1], workdir)
        server.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=STOP_TIMEOUT)
    finally:
        server.kill()  # by PID, if it is still there


# --- reading the page -----------------------------------------------------------------------


def rows(dom: DomReader, table: str) -> list[list[str]]:
    """The text of each cell of each body row of the table with id ``table``."""
    [found] = dom.find(tag="table", id=table)
    [body] = dom.find(tag="tbody", within=found)
    return [
        [cell.content for cell in dom.find(tag="td", within=row)]
        for row in dom.find(tag="tr", within=body)
    ]


def counters(dom: DomReader, list_id: str) -> dict[str, str]:
    [found] = dom.find(tag="dl", id=list_id)
    items: list[Element] = dom.find(tag="div", within=found)
    return {
        dom.find(tag="dt", within=item)[0].content: dom.find(tag="dd", within=item)[0].content
        for item in items
    }


def names_in(dom: DomReader, table: str) -> list[str]:
    column = 0 if table == "in-flight" else 1
    return [cells[column] for cells in rows(dom, table)]


# --- the tests ------------------------------------------------------------------------------


def test_the_page_shows_a_task_while_it_runs_and_its_failure_after(site: Site) -> None:
    site.post("/hold", name="nightly-report")
    wait_until(
        lambda: any(
            task["name"] == "nightly-report" and task["state"] == "running"
            for task in site.state()["in_flight"]["tasks"]
        ),
        TASK_TIMEOUT,
        "the held task to run",
    )

    running = DomReader(site.load("/tasks").dom)
    assert running.texts(id="state") == ["accepting"]
    [row] = [cells for cells in rows(running, "in-flight") if cells[0] == "nightly-report"]
    assert row[1:3] == ["POST /hold", "running"]
    assert row[3].endswith((" ms", " s", " min")), row  # its age, as the page writes it
    assert "nightly-report" not in names_in(running, "recent")
    assert counters(running, "stats")["running"] != "0"

    site.post("/release", name="nightly-report")
    wait_until(
        lambda: any(task["name"] == "nightly-report" for task in site.state()["recent"]),
        TASK_TIMEOUT,
        "the released task to fail",
    )

    after = DomReader(site.load("/tasks").dom)
    assert "nightly-report" not in names_in(after, "in-flight")
    [row] = [cells for cells in rows(after, "recent") if cells[1] == "nightly-report"]
    assert row[2:5] == ["POST /hold", "failed", "RuntimeError: nightly-report gave up"]
    assert int(counters(after, "stats")["failed"]) >= 1


def test_a_hostile_task_name_is_shown_as_text(site: Site) -> None:
    site.post("/hold", name=HOSTILE)
    try:
        wait_until(
            lambda: HOSTILE in [task["name"] for task in site.state()["in_flight"]["tasks"]],
            TASK_TIMEOUT,
            "the hostile task to be in flight",
        )
        page = site.load("/tasks")
    finally:
        site.post("/release", name=HOSTILE)
    dom = DomReader(page.dom)
    assert HOSTILE in names_in(dom, "in-flight")
    assert dom.find(tag="img") == []  # it stayed text: no element was made of it
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.dom


def test_the_retry_button_queues_a_dead_letter_again(site: Site) -> None:
    site.post("/deliver", to="ada@example.com")
    wait_until(
        lambda: site.state()["store"]["counts"]["dead"] == 1,
        TASK_TIMEOUT,
        "mail.send to be dead-lettered",
    )
    [letter] = site.state()["store"]["dead_letters"]
    assert letter["error"] == "ConnectionError: cannot reach ada@example.com"
    completed = site.state()["stats"]["completed"]

    # The dead letter as the page shows it, with its button.
    dom = DomReader(site.load("/tasks").dom)
    [row] = rows(dom, "dead")
    assert row == [letter["id"], "mail.send", "1", letter["error"], "Retry"]
    [table] = dom.find(tag="table", id="dead")
    assert [button.content for button in dom.find(tag="button", within=table)] == ["Retry"]

    site.post("/heal")
    result = DomReader(site.load("/harness").dom).texts(tag="pre", id="result")[0]
    assert result == f"retried {letter['id']}\nTask {letter['id']} is queued again.", result
    wait_until(
        lambda: site.state()["stats"]["completed"] == completed + 1,
        TASK_TIMEOUT,
        "the retried mail.send to complete",
    )
    assert site.state()["store"]["counts"] == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}

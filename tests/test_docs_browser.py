"""``/docs`` and ``/redoc`` in a real browser: headless Chromium, offline.

The seed example (``examples/background_tasks.py``, unchanged) is served on
127.0.0.1 by ``trioapi.serve`` in a thread of this process, and Debian's
``chromium`` loads its pages with ``--dump-dom``: the DOM it prints once the
page's scripts have run (``--virtual-time-budget``) must show every operation
of the app's ``/openapi.json``, as Swagger UI and ReDoc render them.

Nothing may come from elsewhere: Chromium gets a proxy that refuses every
connection (it bypasses proxies for loopback addresses only) and a host
resolver that resolves nothing, so a page that needs a CDN renders nothing;
and its network log (``--log-net-log``) lists every request it tried, so the
tests check that the page asked for nothing outside 127.0.0.1. Requests that
Chromium makes on its own (update checks, its clock) have no initiating
origin in that log and are left out. The controls serve the same app with
``docs_assets="cdn"``: the pages stay empty and the log shows the CDN
requests, so the checks above can fail.

"Try it out" is driven by a page of the test's own, served next to the app on
the same origin: it shows ``/docs`` in an iframe and clicks Swagger UI's
buttons as a user would (expand the POST, "Try it out", fill in the email,
"Execute"), then writes the live response it sees into its own DOM.

The tests skip when ``chromium`` is not installed; ``nox -s tests`` (and
therefore CI) installs it with apt-get when it runs as root. Every wait has a
generous deadline, and a Chromium still running when its run ends is killed
by its process group, which is its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

import trioapi
from trioapi import HTMLResponse, TrioAPI
from trioapi._openapi import assets

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="headless Chromium is not installed (Debian/Ubuntu: apt-get install chromium; "
        "nox -s tests installs it when run as root)",
    ),
]

STARTUP_TIMEOUT = 20.0
CHROMIUM_TIMEOUT = 90.0
"""Seconds one Chromium run may take in all: a guard against a hang, not a measure."""
VIRTUAL_TIME_BUDGET_MS = 10_000
"""Virtual milliseconds the page's scripts get before the DOM is printed.

Virtual time stands still while a request is in flight, so this is not a race
against the server; an idle page reaches the budget at once.
"""
HARNESS_TIMEOUT_MS = 8_000
"""Virtual milliseconds the "Try it out" page waits for each element (within the budget)."""
POLL_INTERVAL = 0.02
BROWSER_FLAGS = (
    "--headless",
    # Only the test's own pages from 127.0.0.1 are loaded; as root (CI) and in
    # most containers Chromium cannot start its sandbox at all.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No host name resolves: a request past the proxy would still go nowhere.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
HARNESS_PATH = "/__browser_test__/try-it-out"
EMAIL = "browser@example.com"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


# --- the server ---------------------------------------------------------------------


class ThreadServer:
    """``trioapi.serve(app, "127.0.0.1:0")`` in a trio run of its own, in a thread."""

    def __init__(self, app: Any) -> None:
        self._ready = threading.Event()
        self._server: trioapi.Server | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(app,), daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            pytest.fail(f"the server did not listen within {STARTUP_TIMEOUT:g} s")
        if self._error is not None or self._server is None:
            raise RuntimeError("the server did not start") from self._error
        self.url: str = f"http://127.0.0.1:{self._server.port}"

    def _run(self, app: Any) -> None:
        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._server = await nursery.start(trioapi.serve, app, "127.0.0.1:0")
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()

        try:
            trio.run(main)
        except BaseException as exc:  # reported by the constructor or stop()
            self._error = exc
        finally:
            self._ready.set()

    def stop(self) -> None:
        """Shuts the server down gracefully (requests, then background tasks)."""
        if self._server is not None and self._token is not None and self._thread.is_alive():
            trio.from_thread.run(self._server.shutdown, trio_token=self._token)
        self._thread.join(STARTUP_TIMEOUT)
        if self._thread.is_alive():
            pytest.fail(f"the server was still running {STARTUP_TIMEOUT:g} s after shutdown")
        if self._error is not None:
            raise RuntimeError("the server failed") from self._error


HARNESS_PAGE = string.Template(r"""<!DOCTYPE html>
<html>
<head><title>Try it out</title></head>
<body>
<pre id="result">pending</pre>
<iframe id="docs" src="/docs" style="width: 1280px; height: 2000px"></iframe>
<script>
const frame = document.getElementById("docs");
const deadline = Date.now() + $timeout_ms;

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

function type(input, value) {
  // Swagger UI's inputs are React's: set the value as typing does, then say so.
  const view = frame.contentWindow;
  Object.getOwnPropertyDescriptor(view.HTMLInputElement.prototype, "value").set.call(input, value);
  input.dispatchEvent(new view.Event("input", {bubbles: true}));
}

async function tryItOut() {
  const operation = await waitFor("POST operation", d => d.querySelector(".opblock-post"));
  operation.querySelector(".opblock-summary-control").click();
  (await waitFor("'Try it out' button", () => operation.querySelector(".try-out__btn"))).click();
  type(await waitFor("email field", () => operation.querySelector("input[placeholder=email]")),
       $email);
  // The field passes its value on after a 350 ms debounce; virtual time runs
  // timers in order, so waiting 1 s here always comes after it.
  await new Promise(resolve => setTimeout(resolve, 1000));
  (await waitFor("'Execute' button", () => operation.querySelector(".execute"))).click();
  const status = await waitFor("live response", () =>
      operation.querySelector(".live-responses-table .response .response-col_status"));
  const body = operation.querySelector(".live-responses-table .response-col_description pre");
  return "status " + status.textContent.trim() + "\n" + (body ? body.textContent : "(no body)");
}

tryItOut().then(
  text => { document.getElementById("result").textContent = text; },
  error => {
    // What the operation looked like when the wait ended: for the failure message.
    const operation = frame.contentDocument && frame.contentDocument.querySelector(".opblock-post");
    document.getElementById("result").textContent =
        "failed: " + error.message + "\n" + (operation ? operation.outerHTML : "");
  });
</script>
</body>
</html>
""").substitute(timeout_ms=HARNESS_TIMEOUT_MS, email=json.dumps(EMAIL))


def with_harness(app: Any) -> Any:
    """``app`` plus the "Try it out" page at ``HARNESS_PATH`` (same origin as /docs)."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == HARNESS_PATH:
            await HTMLResponse(HARNESS_PAGE)(scope, receive, send)
        else:
            await app(scope, receive, send)

    return asgi


# --- the browser --------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request Chromium started, from its network log."""

    url: str
    initiator: str
    """The origin of the page that asked for it; ``"not an origin"`` for Chromium's own."""
    request_type: str

    @property
    def from_the_page(self) -> bool:
        return self.initiator != "not an origin" or self.request_type == "main frame"

    @property
    def on_loopback(self) -> bool:
        return urlsplit(self.url).hostname == "127.0.0.1"


@dataclass(frozen=True)
class Page:
    url: str
    dom: str
    requests: list[Request]

    @property
    def page_requests(self) -> list[str]:
        return [request.url for request in self.requests if request.from_the_page]

    @property
    def off_machine(self) -> list[str]:
        """What the page asked for outside 127.0.0.1 (each was refused)."""
        return [
            request.url
            for request in self.requests
            if request.from_the_page and not request.on_loopback
        ]


def network_log_requests(path: Path) -> list[Request]:
    """The URL requests in a Chromium network log (``--log-net-log``)."""
    log = json.loads(path.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start_job and "url" in params:
            requests.append(
                Request(params["url"], params.get("initiator", ""), params.get("request_type", ""))
            )
    return requests


def refusing_proxy() -> socket.socket:
    """A bound TCP port that does not listen: every connection to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def run_chromium(url: str, workdir: Path, proxy_port: int) -> Page:
    """Loads ``url`` in a new headless Chromium profile; returns its DOM and requests."""
    workdir.mkdir()
    net_log = workdir / "net-log.json"
    argv = [
        "chromium",
        *BROWSER_FLAGS,
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        f"--user-data-dir={workdir / 'profile'}",
        f"--log-net-log={net_log}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        "--dump-dom",
        url,
    ]
    # A session of its own: its process group (numbered by its PID) holds the
    # helper processes it starts, so a hung run can be killed whole.
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium still running {CHROMIUM_TIMEOUT:g} s after loading {url}")
    finally:
        if process.poll() is None:  # not reaped yet, so the group is still ours
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace")[-3000:]
        pytest.fail(f"chromium exited with {process.returncode} loading {url}:\n{tail}")
    return Page(url, stdout.decode(), network_log_requests(net_log))


# --- reading the DOM ----------------------------------------------------------------

VOID_ELEMENTS = frozenset(
    (
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    )
)


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str]
    ancestors: tuple[Element, ...]
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def content(self) -> str:
        return "".join(self.text).strip()


class DomReader(HTMLParser):
    """Every element of a document with its attributes, ancestors and text content."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs}, tuple(self._open))
        self.elements.append(element)
        if tag not in VOID_ELEMENTS:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text.append(data)

    def find(
        self,
        *,
        tag: str | None = None,
        cls: str | None = None,
        within: Element | None = None,
        **attrs: str,
    ) -> list[Element]:
        """The elements with this tag, class and attributes (``data_path`` for data-path)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            element
            for element in self.elements
            if (tag is None or element.tag == tag)
            and (cls is None or cls in element.classes)
            and (within is None or any(parent is within for parent in element.ancestors))
            and all(element.attrs.get(name) == value for name, value in wanted.items())
        ]

    def texts(self, **criteria: Any) -> list[str]:
        return [element.content for element in self.find(**criteria)]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    operation_id: str


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation in an OpenAPI document."""
    found = [
        Operation(method, path, operation["summary"], operation["operationId"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    ]
    assert found, "the app documents no operation: nothing to look for"
    return found


# --- fixtures -----------------------------------------------------------------------


@dataclass
class Site:
    server: ThreadServer
    openapi: dict[str, Any]


@dataclass
class Browser:
    sites: dict[str, Site]
    proxy_port: int
    workdir: Path
    seed_cwd: Path
    _pages: dict[tuple[str, str], Page] = field(default_factory=dict)

    def load(self, site: str, path: str) -> Page:
        """The page ``path`` of ``site`` ("bundled" or "cdn"), loaded once per module."""
        key = (site, path)
        if key not in self._pages:
            run_dir = self.workdir / f"run{len(self._pages)}"
            self._pages[key] = run_chromium(
                self.sites[site].server.url + path, run_dir, self.proxy_port
            )
        return self._pages[key]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """The seed served as it is (bundled assets) and with ``docs_assets="cdn"``."""
    from examples import background_tasks

    cdn_app = TrioAPI(docs_assets="cdn")
    cdn_app.post("/send-notification/{email}")(background_tasks.send_notification)

    workdir = tmp_path_factory.mktemp("docs-browser")
    seed_cwd = workdir / "seed-cwd"  # the seed's task writes log.txt to the cwd
    seed_cwd.mkdir()
    before = Path.cwd()
    os.chdir(seed_cwd)
    servers: list[ThreadServer] = []
    try:
        with contextlib.closing(refusing_proxy()) as proxy:
            sites = {}
            for name, app in (("bundled", with_harness(background_tasks.app)), ("cdn", cdn_app)):
                server = ThreadServer(app)
                servers.append(server)
                openapi = httpx.get(server.url + "/openapi.json", timeout=STARTUP_TIMEOUT)
                openapi.raise_for_status()
                sites[name] = Site(server, openapi.json())
            yield Browser(sites, proxy.getsockname()[1], workdir, seed_cwd)
    finally:
        try:
            for server in servers:
                server.stop()
        finally:
            os.chdir(before)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls ``condition`` (another thread's output) until true or the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


# --- the tests ----------------------------------------------------------------------


def test_swagger_ui_renders_every_operation(browser: Browser) -> None:
    page = browser.load("bundled", "/docs")
    dom = DomReader(page.dom)
    for operation in operations(browser.sites["bundled"].openapi):
        # Swagger UI's block for an operation: id="operations-<tag>-<operationId>".
        blocks = [
            block
            for block in dom.find(cls="opblock")
            if block.attrs.get("id", "").endswith(f"-{operation.operation_id}")
        ]
        assert len(blocks) == 1, f"no block for {operation}:\n{page.dom}"
        block = blocks[0]
        assert f"opblock-{operation.method}" in block.classes
        summary = dom.find(cls="opblock-summary", within=block)[0]
        assert dom.texts(cls="opblock-summary-method", within=summary) == [operation.method.upper()]
        path = dom.find(cls="opblock-summary-path", within=summary, data_path=operation.path)
        assert [element.content for element in path] == [operation.path]
        assert dom.texts(cls="opblock-summary-description", within=summary) == [operation.summary]


def test_swagger_ui_loads_everything_from_the_app(browser: Browser) -> None:
    page = browser.load("bundled", "/docs")
    assert page.off_machine == []
    # It did load what it needs, from the app:
    base = browser.sites["bundled"].server.url
    assert base + "/openapi.json" in page.page_requests
    for role in ("js", "css"):
        assert base + assets.swagger_ui_assets("/docs")[role].url in page.page_requests


def test_redoc_renders_every_operation(browser: Browser) -> None:
    page = browser.load("bundled", "/redoc")
    dom = DomReader(page.dom)
    for operation in operations(browser.sites["bundled"].openapi):
        section_id = f"operation/{operation.operation_id}"
        sections = dom.find(tag="div", id=section_id)
        assert len(sections) == 1, f"no section for {operation}:\n{page.dom}"
        assert dom.texts(tag="h2", within=sections[0]) == [operation.summary]
        # The endpoint line: the verb, then the path.
        endpoint = dom.find(cls="http-verb", within=sections[0])[0].ancestors[-1]
        assert endpoint.content == f"{operation.method}{operation.path}"
        # And its entry in the side menu.
        entry = dom.find(tag="li", data_item_id=section_id)
        assert len(entry) == 1
        assert entry[0].attrs["aria-label"] == operation.summary
        assert dom.texts(cls="operation-type", within=entry[0]) == [operation.method]


def test_redoc_loads_everything_but_its_logo_from_the_app(browser: Browser) -> None:
    page = browser.load("bundled", "/redoc")
    base = browser.sites["bundled"].server.url
    assert base + "/openapi.json" in page.page_requests
    assert base + assets.redoc_assets("/redoc")["js"].url in page.page_requests
    assert [url for url in page.off_machine if url != REDOC_LOGO] == []


def test_redoc_does_not_ask_redocly_for_its_logo(browser: Browser) -> None:
    assert REDOC_LOGO not in browser.load("bundled", "/redoc").off_machine


def test_try_it_out_sends_the_seed_post_and_its_task_runs(browser: Browser) -> None:
    page = browser.load("bundled", HARNESS_PATH)
    result = DomReader(page.dom).texts(tag="pre")[0]
    assert result.splitlines()[0] == "status 200", result
    assert json.loads(result.split("\n", 1)[1]) == {
        "message": "Notification sent in the background"
    }
    log = browser.seed_cwd / "log.txt"
    wait_until(log.exists, STARTUP_TIMEOUT, "the background task's log.txt")
    wait_until(
        lambda: log.read_text() == f"notification for {EMAIL}: some notification",
        STARTUP_TIMEOUT,
        "the background task's line in log.txt",
    )
    assert page.off_machine == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_control_a_page_that_needs_the_cdn_renders_nothing(browser: Browser, path: str) -> None:
    page = browser.load("cdn", path)
    dom = DomReader(page.dom)
    assert dom.find(cls="opblock") == []
    for operation in operations(browser.sites["cdn"].openapi):
        assert dom.find(id=f"operation/{operation.operation_id}") == []
        assert operation.summary not in page.dom
    # The network log saw the page ask for the CDN, and that was refused.
    assert any(urlsplit(url).hostname == "cdn.jsdelivr.net" for url in page.off_machine), (
        page.requests
    )

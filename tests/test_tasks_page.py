"""The live tasks page (``app.add_tasks_page``): its guard, its JSON, its page.

The JSON is asserted whole where it is small: under ``autojump_clock`` ages
and durations are exact virtual times. The page itself is checked for what
keeps user data out of its markup; ``test_tasks_page_browser.py`` runs it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
import trio
import trio.testing

from trioapi import BackgroundTasks, Depends, Header, HTTPException, TrioAPI
from trioapi._observability import tasks_page
from trioapi.security import HTTPBasic, HTTPBasicCredentials
from trioapi.stores import DeadLetter, MemoryStore
from trioapi.testing import TestClient

HOSTILE = "<img src=x onerror=alert(1)>"
RETRY = {"X-Tasks-Page": "retry"}
# At module level: the example's dependency names it in a (string) annotation.
basic = HTTPBasic(realm="tasks")


def public_app(**options: Any) -> TrioAPI:
    app = TrioAPI(**options)
    app.add_tasks_page(public=True)
    return app


async def state(client: TestClient, path: str = "/tasks/state.json") -> dict[str, Any]:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    data: dict[str, Any] = answer.json()
    return data


# --- the guard ------------------------------------------------------------------------------


@pytest.mark.parametrize("dependencies", [None, []])
def test_the_page_is_refused_without_a_guard(dependencies: list[Any] | None) -> None:
    app = TrioAPI()
    with pytest.raises(ValueError, match="never public by default") as refused:
        app.add_tasks_page(dependencies=dependencies)
    assert r"dependencies=[Depends(your_auth_check)]" in str(refused.value)
    assert "public=True for local development" in str(refused.value)
    assert not [route for route in app.routes if getattr(route, "path", "").startswith("/tasks")]


def test_a_path_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        TrioAPI().add_tasks_page("tasks", public=True)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_guard_that_refuses_guards_every_route(status: int) -> None:
    app = TrioAPI(task_store=MemoryStore())

    async def check(x_token: str | None = Header(default=None)) -> None:
        if x_token != "secret":
            raise HTTPException(status, "no")

    app.add_tasks_page(dependencies=[Depends(check)])
    routes: list[tuple[str, str, int]] = [
        ("GET", "/tasks", 200),
        ("GET", "/tasks/state.json", 200),
        ("POST", "/tasks/dead/no-such-task/retry", 404),
    ]
    async with TestClient(app) as client:
        for method, path, allowed in routes:
            refused = await client.request(method, path, headers=RETRY)
            assert (refused.status_code, refused.json()) == (status, {"detail": "no"}), path
            let_in = await client.request(method, path, headers={**RETRY, "X-Token": "secret"})
            assert let_in.status_code == allowed, (path, let_in.text)
        assert "/tasks" not in str((await client.get("/openapi.json")).json()["paths"])


async def test_a_public_page_needs_no_guard() -> None:
    async with TestClient(public_app()) as client:
        assert (await client.get("/tasks")).status_code == 200
        assert (await client.get("/tasks/state.json")).status_code == 200


# --- tasks in flight, and how they ended ------------------------------------------------------


async def test_the_json_shows_a_running_task_then_its_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = public_app()
    release = trio.Event()

    async def send_mail() -> None:
        await release.wait()
        raise ConnectionError("smtp.example.com refused <us>")

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> None:
        tasks.add_task(send_mail)

    async with TestClient(app) as client:
        await client.post("/signup", wait_background=False)
        await trio.sleep(5)
        running = await state(client)
        assert running["state"] == "accepting"
        assert running["in_flight"] == {
            "total": 1,
            "tasks": [
                {
                    "id": 1,
                    "name": send_mail.__qualname__,
                    "request": "POST /signup",
                    "state": "running",
                    "age": 5.0,
                    "running_for": 5.0,
                    "task_id": None,
                    "attempt": None,
                }
            ],
        }
        assert running["stats"]["running"] == 1
        assert running["recent"] == []
        assert running["store"] is None  # no durable tasks, no store

        release.set()
        await app.background.wait_idle()
        ended = await state(client)
    assert ended["in_flight"] == {"total": 0, "tasks": []}
    assert ended["stats"]["failed"] == 1
    [failure] = ended["recent"]
    assert isinstance(failure.pop("at"), float)
    assert failure == {
        "name": send_mail.__qualname__,
        "request": "POST /signup",
        "outcome": "failed",
        "error": "ConnectionError: smtp.example.com refused <us>",
        "duration": 5.0,
        "task_id": None,
        "attempt": None,
        "retry_in": None,
    }


async def test_a_pending_task_is_listed_with_its_age(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = public_app(max_running_tasks=1)
    release = trio.Event()

    async def first() -> None:
        await release.wait()

    async def second() -> None:
        pass

    async with TestClient(app) as client:
        app.background.add_task(first)
        await trio.sleep(1)
        app.background.add_task(second)
        await trio.sleep(2)
        tasks = (await state(client))["in_flight"]["tasks"]
        release.set()
    assert [(task["name"], task["state"], task["age"], task["running_for"]) for task in tasks] == [
        (first.__qualname__, "running", 3.0, 3.0),
        (second.__qualname__, "pending", 2.0, None),
    ]


async def test_cancelled_and_timed_out_tasks_are_listed_with_their_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = public_app()

    async def forever() -> None:
        await trio.sleep_forever()

    async with TestClient(app) as client:
        handle = app.background.options(name="report.build").add_task(forever)
        await trio.sleep(2)
        handle.cancel("the operator stopped it")
        await app.background.options(name="slow", timeout=1).add_task(forever)
        recent = (await state(client))["recent"]
    assert [(task["name"], task["outcome"], task["duration"]) for task in recent] == [
        ("slow", "failed", 1.0),
        ("report.build", "cancelled", 2.0),
    ]
    assert recent[0]["error"].startswith("BackgroundTaskTimeout: ")
    assert recent[1]["error"] == "the operator stopped it"


async def test_tasks_that_complete_are_not_kept() -> None:
    app = public_app()

    async def fine() -> None:
        pass

    async with TestClient(app) as client:
        await app.background.add_task(fine)
        data = await state(client)
    assert data["recent"] == []
    assert data["stats"]["completed"] == 1


async def test_the_page_keeps_the_last_hundred_failures() -> None:
    app = public_app()

    async def broken() -> None:
        raise RuntimeError("no")

    async with TestClient(app) as client:
        for number in range(tasks_page.RECENT_TASKS + 5):
            await app.background.options(name=f"job-{number}").add_task(broken)
        recent = (await state(client))["recent"]
    assert [task["name"] for task in recent] == [
        f"job-{number}" for number in range(tasks_page.RECENT_TASKS + 4, 4, -1)
    ]


async def test_in_flight_tasks_are_listed_up_to_a_bound_with_the_total() -> None:
    app = public_app()
    release = trio.Event()

    async def held() -> None:
        await release.wait()

    async with TestClient(app) as client:
        for _ in range(tasks_page.IN_FLIGHT_SHOWN + 5):
            app.background.add_task(held)
        await trio.testing.wait_all_tasks_blocked()
        flight = (await state(client))["in_flight"]
        release.set()
    assert flight["total"] == tasks_page.IN_FLIGHT_SHOWN + 5
    assert len(flight["tasks"]) == tasks_page.IN_FLIGHT_SHOWN
    assert [task["id"] for task in flight["tasks"]] == list(
        range(1, tasks_page.IN_FLIGHT_SHOWN + 1)
    )  # the oldest


async def test_long_errors_are_cut() -> None:
    app = public_app()

    async def verbose() -> None:
        raise ValueError("x" * 10_000)

    async with TestClient(app) as client:
        await app.background.add_task(verbose)
        [failure] = (await state(client))["recent"]
    assert failure["error"] == ("ValueError: " + "x" * 10_000)[: tasks_page.ERROR_CHARS]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


async def test_an_error_that_cannot_be_printed_is_still_listed() -> None:
    app = public_app()

    async def odd() -> None:
        raise Unprintable

    async with TestClient(app) as client:
        await app.background.add_task(odd)
        [failure] = (await state(client))["recent"]
    assert failure["error"] == "Unprintable: (its message could not be read)"


# --- the drain ----------------------------------------------------------------------------


async def test_the_drain_shows_as_draining_then_its_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=10)
    page = app.add_tasks_page(public=True)
    release = trio.Event()

    async def flush_cache() -> None:
        await release.wait()

    async with TestClient(app) as client:
        app.background.add_task(flush_cache)
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.shutdown)
            await trio.testing.wait_all_tasks_blocked()
            draining = await page.snapshot()
            release.set()
    closed = await page.snapshot()
    assert draining["state"] == "draining"
    assert draining["drain"] is None
    assert [task["name"] for task in draining["in_flight"]["tasks"]] == [flush_cache.__qualname__]
    assert closed["state"] == "closed"
    report = app.background.last_report
    assert report is not None
    assert closed["drain"] == {
        "text": str(report),
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "abandoned": 0,
        "skipped": 0,
        "resumable": 0,
        "deadline_hit": False,
        "duration": 0.0,
        "cancelled_tasks": [],
        "abandoned_tasks": [],
    }


async def test_a_drain_that_cuts_tasks_off_lists_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(drain_timeout=3)
    page = app.add_tasks_page(public=True)

    async def forever() -> None:
        await trio.sleep_forever()

    async with TestClient(app) as client:
        app.background.options(name="stuck").add_task(forever)
        await trio.testing.wait_all_tasks_blocked()
        await client.shutdown()
    data = await page.snapshot()
    assert data["drain"]["cancelled_tasks"] == ["stuck"]
    assert data["drain"]["deadline_hit"] is True
    assert data["drain"]["duration"] == 3.0
    assert [(task["name"], task["outcome"]) for task in data["recent"]] == [("stuck", "cancelled")]


# --- durable tasks: the store, dead letters, retry -------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStore()
    return f"sqlite:///{tmp_path / 'tasks.db'}"


async def test_a_dead_letter_is_listed_and_the_retry_route_queues_it_again(store: Any) -> None:
    app = TrioAPI(task_store=store)
    app.add_tasks_page(public=True)
    broken = True
    delivered = trio.Event()

    @app.durable_task(retries=0, name="mail.send")
    async def send(to: str) -> None:
        if broken:
            raise ConnectionError(f"cannot reach {to}")
        delivered.set()

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> None:
        tasks.add_task(send, "ada@example.com")

    with trio.fail_after(20):  # a guard against a hang, not a measure
        async with TestClient(app) as client:
            await client.post("/signup")
            dead = await state(client)
            stored = dead["store"]
            [letter] = stored["dead_letters"]
            assert isinstance(letter.pop("died_at"), float)
            task_id = letter.pop("id")
            assert letter == {
                "name": "mail.send",
                "attempts": 1,
                "failures": 1,
                "error": "ConnectionError: cannot reach ada@example.com",
            }
            assert stored["counts"] == {"queued": 0, "running": 0, "retrying": 0, "dead": 1}
            assert stored["open"] is True
            assert stored["error"] is None
            [ended] = dead["recent"]
            assert (ended["outcome"], ended["task_id"], ended["attempt"]) == (
                "dead-lettered",
                task_id,
                1,
            )

            # Not from the page (no header): refused, and nothing changes.
            refused = await client.post(f"/tasks/dead/{task_id}/retry")
            assert refused.status_code == 403
            assert "x-tasks-page" in refused.json()["detail"]
            assert (await state(client))["store"]["counts"]["dead"] == 1

            broken = False
            retried = await client.post(f"/tasks/dead/{task_id}/retry", headers=RETRY)
            assert (retried.status_code, retried.json()) == (200, {"retried": True})
            await delivered.wait()
            await app.background.wait_idle()
            await app.background.store.flush()  # type: ignore[union-attr]
            after = await state(client)
            again = await client.post(f"/tasks/dead/{task_id}/retry", headers=RETRY)
    assert after["store"]["dead_letters"] == []
    assert after["store"]["counts"] == {"queued": 0, "running": 0, "retrying": 0, "dead": 0}
    assert after["stats"]["completed"] == 1
    assert again.status_code == 404
    assert task_id in again.json()["detail"]


async def test_a_failed_attempt_that_will_be_retried_is_listed_as_retrying(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = TrioAPI(task_store=MemoryStore())
    app.add_tasks_page(public=True)
    attempts: list[int] = []

    @app.durable_task(retries=1, backoff=1.5, jitter=0, name="flaky")
    async def flaky() -> None:
        attempts.append(1)
        await trio.sleep(0.25)
        if len(attempts) == 1:
            raise RuntimeError("first try")

    @app.post("/x")
    async def endpoint(tasks: BackgroundTasks) -> None:
        tasks.add_task(flaky)

    async with TestClient(app) as client:
        await client.post("/x")
        recent = (await state(client))["recent"]
    [retrying] = recent
    assert (retrying["outcome"], retrying["error"], retrying["retry_in"]) == (
        "retrying",
        "RuntimeError: first try",
        1.5,
    )
    assert (retrying["attempt"], retrying["duration"]) == (1, 0.25)


async def test_the_retry_route_without_an_open_store() -> None:
    app = TrioAPI(task_store=MemoryStore())
    app.add_tasks_page(public=True)
    client = TestClient(app)  # no lifespan: the store is never opened
    answer = await client.post("/tasks/dead/abc/retry", headers=RETRY)
    data = (await client.get("/tasks/state.json")).json()
    assert answer.status_code == 503
    assert data["store"] == {
        "url": "memory://",
        "open": False,
        "counts": None,
        "dead_letters": None,
        "error": None,
    }


class BrokenStore(MemoryStore):
    async def counts(self) -> dict[str, int]:
        raise OSError("disk on fire")


class HangingStore(MemoryStore):
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (BrokenStore, "the task store failed: OSError: disk on fire"),
        (HangingStore, "the task store did not answer within 2 s"),
    ],
)
async def test_a_store_that_fails_or_hangs_is_reported_not_raised(
    autojump_clock: trio.testing.MockClock, make: Callable[[], MemoryStore], error: str
) -> None:
    app = TrioAPI(task_store=make())
    app.add_tasks_page(public=True)
    with trio.fail_after(60):  # virtual seconds: a store call without a bound would hang
        async with TestClient(app) as client:
            before = trio.current_time()
            data = await state(client)
            waited = trio.current_time() - before
    assert data["store"]["error"] == error
    assert data["store"]["dead_letters"] is None
    assert waited == (tasks_page.STORE_TIMEOUT if make is HangingStore else 0.0)


# --- escaping -------------------------------------------------------------------------------


async def test_a_hostile_task_name_is_only_ever_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = public_app()
    release = trio.Event()

    async def held() -> None:
        await release.wait()
        raise RuntimeError(HOSTILE)

    async with TestClient(app) as client:
        app.background.options(name=HOSTILE).add_task(held)
        await trio.testing.wait_all_tasks_blocked()
        running = await client.get("/tasks/state.json")
        release.set()
        await app.background.wait_idle()
        ended = await client.get("/tasks/state.json")
        page = await client.get("/tasks")
    # In the JSON it is a string like any other, served as JSON, not HTML.
    assert running.json()["in_flight"]["tasks"][0]["name"] == HOSTILE
    assert running.headers["content-type"] == "application/json"
    assert running.headers["x-content-type-options"] == "nosniff"
    assert ended.json()["recent"][0]["name"] == HOSTILE
    assert ended.json()["recent"][0]["error"] == f"RuntimeError: {HOSTILE}"
    # The page carries no data at all: the script fetches it and sets it as text.
    assert "onerror" not in page.text
    assert "<img" not in page.text


def test_the_script_builds_text_nodes_never_markup() -> None:
    script = tasks_page.SCRIPT
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script
    assert "createElement" in script


async def test_the_policy_allows_exactly_the_page_s_own_script_and_style() -> None:
    async with TestClient(public_app()) as client:
        page = await client.get("/tasks")
    policy = page.headers["content-security-policy"]
    for tag in ("script", "style"):
        [source] = re.findall(rf"<{tag}>(.*?)</{tag}>", page.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"


async def test_the_page_reads_its_state_next_to_its_own_path() -> None:
    app = TrioAPI()
    app.add_tasks_page("/ops/tasks", public=True)
    async with TestClient(app) as client:
        page = await client.get("/ops/tasks")
        assert (await client.get("/ops/tasks/state.json")).status_code == 200
    assert 'data-state="/ops/tasks/state.json"' in page.text
    assert 'data-retry="/ops/tasks/dead/"' in page.text


def test_the_page_s_urls_are_escaped() -> None:
    rendered = tasks_page.render_page('/a"><script>x</script>', "/b")
    assert 'data-state="/a&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in rendered
    assert rendered.count("<script>") == 1


async def test_the_http_basic_guard_in_observability_md(monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/observability.md, "The tasks page" (a memory store instead of tasks.db).
    monkeypatch.setenv("TASKS_PAGE_PASSWORD", "s3cret")
    app = TrioAPI(task_store=MemoryStore())

    def operator(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> None:
        expected = os.environ["TASKS_PAGE_PASSWORD"].encode()
        if not (
            secrets.compare_digest(credentials.username.encode(), b"ops")
            and secrets.compare_digest(credentials.password.encode(), expected)
        ):
            raise HTTPException(401, headers={"WWW-Authenticate": 'Basic realm="tasks"'})

    app.add_tasks_page("/tasks", dependencies=[Depends(operator)])

    def credentials(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async with TestClient(app) as client:
        anonymous = await client.get("/tasks")
        wrong = await client.get("/tasks/state.json", headers=credentials("ops", "guess"))
        page = await client.get("/tasks", headers=credentials("ops", "s3cret"))
        data = await client.get("/tasks/state.json", headers=credentials("ops", "s3cret"))
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Basic realm="tasks"'
    assert (page.status_code, data.status_code) == (200, 200)

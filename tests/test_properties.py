"""Property-based tests: conversions round-trip, no input gets a 5xx, counters always add up.

Each example runs in a fresh ``trio.run`` under ``MockClock(autojump_threshold=0)``
(hypothesis drives a sync test; the trio run is the example). HTTP examples
go through hypercorn's real trio worker in memory (``trioapi._server.harness``), as
raw bytes, so hypercorn's parsing is part of what is tested. Examples are
derandomized and the example database is off: the same examples run on
every machine, and nothing is written next to the code.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trioapi import BackgroundTasks, Body, Header, TrioAPI
from trioapi._exceptions import BackgroundClosedError
from trioapi._runtime.background import BackgroundRuntime, RuntimeState, TaskHandle
from trioapi._server.harness import InMemoryServer

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def run_virtual(func: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(func, clock=trio.testing.MockClock(autojump_threshold=0))


def make_app() -> TrioAPI:
    app = TrioAPI(max_body_size=1 << 20)

    @app.get("/text/{value}")
    async def text(value: str) -> dict[str, str]:
        return {"value": value}

    @app.get("/number/{value}")
    async def number(value: int) -> dict[str, int]:
        return {"value": value}

    @app.get("/query")
    async def query(x: str, f: float = 0.0, n: int = 0, b: bool = False) -> dict[str, Any]:
        return {"x": x, "f": f, "n": n, "b": b}

    @app.get("/header")
    async def header(x_value: Annotated[str, Header()]) -> dict[str, str]:
        return {"value": x_value}

    @app.post("/json")
    async def json_echo(data: Annotated[Any, Body()]) -> Any:
        return data

    @app.post("/object")
    async def object_echo(data: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return data

    return app


async def send_raw(raw: bytes) -> list[tuple[int, bytes]]:
    """Serves a fresh app, sends ``raw``, half-closes; returns (status, body) per response."""
    app = make_app()
    async with InMemoryServer(app) as server, await server.connect() as conn:
        await conn.send_bytes(raw)
        await conn.send_eof()
        with trio.fail_after(60):
            data = await conn.receive_until_closed()
    responses = []
    for part in data.split(b"HTTP/1.1 ")[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        responses.append((int(head[:3]), body))
    return responses


def get(target: str, headers: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target.encode("ascii"), headers)


def post_json(target: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (target.encode("ascii"), len(body), body)
    )


def one_answer(raw: bytes) -> tuple[int, bytes]:
    responses = run_virtual(lambda: send_raw(raw))
    assert len(responses) == 1, responses
    status, body = responses[0]
    assert status < 500, (status, body, raw[:300])
    return status, body


# --- conversions round-trip -------------------------------------------------------------


@SETTINGS
@given(st.text(min_size=1))
def test_any_text_in_a_path_segment_round_trips(value: str) -> None:
    status, body = one_answer(get("/text/" + quote(value, safe="")))
    assert status == 200
    assert json.loads(body) == {"value": value}


@SETTINGS
@given(st.text())
def test_any_text_in_a_query_value_round_trips(value: str) -> None:
    status, body = one_answer(get("/query?x=" + quote(value, safe="")))
    assert status == 200
    assert json.loads(body)["x"] == value


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
)


@SETTINGS
@given(HEADER_TEXT)
def test_any_printable_latin1_header_value_round_trips_without_its_outer_spaces(
    value: str,
) -> None:
    status, body = one_answer(get("/header", b"X-Value: " + value.encode("latin-1") + b"\r\n"))
    assert status == 200
    assert json.loads(body) == {"value": value.strip(" \t")}


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(JSON_VALUES)
def test_any_json_value_round_trips_through_a_body(value: Any) -> None:
    assume(value is not None)  # a null body is a missing body (422), as in FastAPI
    status, body = one_answer(post_json("/json", json.dumps(value).encode()))
    assert status == 200
    assert json.loads(body) == value


# --- no input gets a 5xx -------------------------------------------------------------------

NUMBER_EDGES = st.sampled_from(
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e999",
        "-1e999",
        "1_000",
        " 1 ",
        "0x10",
        "\u0663",
        "9" * 5000,
    ]
)


@SETTINGS
@given(st.one_of(st.text(), NUMBER_EDGES), st.one_of(st.text(), NUMBER_EDGES))
def test_any_text_for_typed_path_and_query_values_gets_2xx_or_4xx(
    path_value: str, query_value: str
) -> None:
    assume(path_value)
    segment = quote(path_value, safe="")
    for target in (
        f"/number/{segment}",
        f"/query?x=a&f={quote(query_value, safe='')}",
        f"/query?x=a&n={quote(query_value, safe='')}",
        f"/query?x=a&b={quote(query_value, safe='')}",
    ):
        status, _ = one_answer(get(target))
        assert status in (200, 422), (target, status)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_in_a_header_value_get_2xx_or_4xx(value: bytes) -> None:
    # A CR or LF in the value ends the header early: what follows is then read
    # as another request, so there may be a second answer (a 400).
    raw = get("/header", b"X-Value: " + value + b"\r\n")
    responses = run_virtual(lambda: send_raw(raw))
    assert 1 <= len(responses) <= 2, responses
    assert all(status in (200, 400) for status, _ in responses), responses


JSON_EDGES = st.sampled_from(
    [
        b"NaN",
        b"[Infinity]",
        b'{"a": -Infinity}',
        b'{"a": 1e999}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'"\\ud800"',
        b'{"\\udfff": "\\ud83d"}',
        b"[" * 5000 + b"]" * 5000,
        b"\xef\xbb\xbf{}",
        b'{"a": 1, "a": 2}',
    ]
)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode), JSON_EDGES))
def test_any_bytes_as_a_json_body_get_2xx_or_4xx(body: bytes) -> None:
    for target in ("/json", "/object"):
        status, _ = one_answer(post_json(target, body))
        assert 200 <= status < 500


# --- the runtime's counters under random interleavings ------------------------------------

BEHAVIOURS = st.sampled_from(["ok", "fail", "hang", "slow", "sync", "stubborn", "defiant"])
OPS = st.one_of(
    st.tuples(
        st.just("request"),
        st.lists(BEHAVIOURS, max_size=4),
        st.sampled_from(["submit", "discard", "hold"]),
    ),
    st.tuples(st.just("release"), st.integers(min_value=0, max_value=40)),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=40)),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 2.5, 10.0])),
    st.tuples(st.just("submit-held"), st.integers(min_value=0, max_value=10)),
)


class Interleaving:
    """Drives one runtime through a list of operations, checking the counters after each."""

    def __init__(self, drain_timeout: float) -> None:
        self.runtime = BackgroundRuntime(drain_timeout=drain_timeout, max_pending=50)
        self.gates: list[trio.Event] = []
        self.handles: list[TaskHandle[Any]] = []
        self.held: list[list[TaskHandle[Any]]] = []
        self.added = 0
        self.refused = 0
        self.steps = 0

    def task_for(self, behaviour: str) -> Callable[[], Any]:
        gate = trio.Event()
        self.gates.append(gate)

        async def ok() -> None:
            await gate.wait()

        async def fail() -> None:
            await gate.wait()
            raise ValueError("fails on purpose")

        async def hang() -> None:
            await trio.sleep_forever()

        async def slow() -> None:
            await trio.sleep(3)

        def sync() -> str:
            return "done in a thread"

        async def stubborn() -> None:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    await trio.sleep(2)  # longer than the drain's unwind grace
                raise

        async def defiant() -> str:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    await trio.sleep(2)
            return "returned after being cancelled"

        tasks = {
            "ok": ok,
            "fail": fail,
            "hang": hang,
            "slow": slow,
            "sync": sync,
            "stubborn": stubborn,
            "defiant": defiant,
        }
        return tasks[behaviour]

    def check(self) -> None:
        self.steps += 1
        stats = self.runtime.stats()
        assert all(count >= 0 for count in stats.values()), stats
        assert sum(stats.values()) == self.added, (stats, self.added)
        assert len(self.runtime.in_flight()) == stats["pending"] + stats["running"]

    async def apply(self, op: tuple[Any, ...]) -> None:
        runtime = self.runtime
        kind = op[0]
        if kind == "request":
            tasks = BackgroundTasks(runtime, f"request {self.steps}")
            for behaviour in op[1]:
                try:
                    tasks.add_task(self.task_for(behaviour))
                except BackgroundClosedError:
                    self.refused += 1
                    continue
                self.added += 1
            self.handles.extend(tasks.tasks)
            if op[2] == "submit":
                runtime.submit(tasks.tasks)
            elif op[2] == "discard":
                runtime.discard(tasks.tasks)
            else:
                self.held.append(tasks.tasks)
        elif kind == "release" and self.gates:
            self.gates[op[1] % len(self.gates)].set()
        elif kind == "cancel" and self.handles:
            self.handles[op[1] % len(self.handles)].cancel("cancelled by the test")
        elif kind == "advance":
            await trio.sleep(op[1])
        elif kind == "submit-held" and self.held:
            runtime.submit(self.held.pop(op[1] % len(self.held)))
        await trio.testing.wait_all_tasks_blocked()
        self.check()

    async def run(self, ops: list[tuple[Any, ...]], shutdown_at: int) -> None:
        runtime = self.runtime
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            self.check()
            drained = trio.Event()

            async def drain() -> None:
                await runtime.drain()
                drained.set()

            for index, op in enumerate(ops):
                if index == shutdown_at:
                    nursery.start_soon(drain)
                    await trio.testing.wait_all_tasks_blocked()
                    self.check()
                await self.apply(op)
            if shutdown_at >= len(ops):
                nursery.start_soon(drain)
            await drained.wait()
            # Requests still in flight at shutdown hand their tasks over late.
            while self.held:
                await self.apply(("submit-held", 0))
        # Every task has unwound now (the nursery waited for the last one).
        for gate in self.gates:
            gate.set()
        self.check()
        report = runtime.last_report
        assert report is not None
        assert runtime.state is RuntimeState.CLOSED
        assert report.total == self.added
        stats = runtime.stats()
        assert (stats["pending"], stats["running"]) == (0, 0)
        assert (report.completed, report.failed, report.cancelled) == (
            stats["completed"],
            stats["failed"],
            stats["cancelled"],
        )
        assert (report.abandoned, report.skipped) == (stats["abandoned"], stats["skipped"])
        assert all(handle.done for handle in self.handles)
        assert len(report.cancelled_tasks) == report.cancelled
        assert len(report.abandoned_tasks) == report.abandoned


@settings(SETTINGS, max_examples=150)
@given(
    st.lists(OPS, max_size=25),
    st.integers(min_value=0, max_value=30),
    st.sampled_from([0.0, 1.0, 4.0]),
)
def test_runtime_counters_add_up_at_every_step_of_any_interleaving(
    ops: list[tuple[Any, ...]], shutdown_at: int, drain_timeout: float
) -> None:
    interleaving = Interleaving(drain_timeout)
    run_virtual(lambda: interleaving.run(ops, shutdown_at))
    assert interleaving.steps >= len(ops) + 1


@pytest.mark.parametrize(
    ("shutdown_at", "expected"), [(0, (0, 0, 0, 0, 0, 7)), (4, (1, 1, 2, 1, 1, 1))]
)
def test_the_interleaving_driver_reaches_every_final_state(
    shutdown_at: int, expected: tuple[int, int, int, int, int, int]
) -> None:
    # A fixed interleaving whose tasks end in every final state: if the driver
    # stopped reaching one, the property above would be testing less.
    ops: list[tuple[Any, ...]] = [
        ("request", ["stubborn"], "submit"),
        ("request", ["ok", "fail"], "submit"),
        ("request", ["hang", "slow"], "submit"),
        ("request", ["ok"], "discard"),
        ("release", 1),
        ("release", 2),
        ("request", ["ok"], "hold"),
        ("advance", 0.5),
    ]
    interleaving = Interleaving(drain_timeout=1.0)
    run_virtual(lambda: interleaving.run(ops, shutdown_at))
    report = interleaving.runtime.last_report
    assert report is not None
    outcome = (
        report.completed,
        report.failed,
        report.cancelled,
        report.abandoned,
        report.skipped,
        interleaving.refused,
    )
    assert outcome == expected
    assert report.total == interleaving.added

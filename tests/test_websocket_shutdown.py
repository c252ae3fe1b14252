"""1 000 websockets on ``python -m trioapi``, every one closed with 1001 by a SIGTERM drain.

The in-process tests (``test_websockets.py``) show the shutdown sequence of
one or two sockets at exact virtual times. This one is the figure against
the real command line: ``python -m trioapi tests.websocket_app:app`` in a
subprocess on 127.0.0.1, 1 000 clients speaking the websocket protocol with
wsproto (hypercorn's own dependency) over trio sockets, each handshaking and
getting one echo back; each endpoint adds a background task that finishes
only once the drain has begun. Once every echo is in, SIGTERM goes to the
server's PID. Then every client must get a close frame with code 1001 and,
after answering it, a clean end of the TCP stream (no reset, none left
open); the drain report must count the 1 000 tasks completed and nothing
else, the tasks' file must name every websocket once, and the process must
exit 0. The times are printed (``pytest -s``) for docs/reliability.md and
never asserted: the waits have generous deadlines, as guards against a hang.
"""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    Request,
    TextMessage,
)

from .test_e2e import EXIT_MARGIN, TRIOAPI, ServerProcess, launch

__all__ = ["launch"]  # the fixture, used by the test below

pytestmark = pytest.mark.e2e

CONNECTIONS = 1_000
HANDSHAKES_AT_ONCE = 64
"""Clients connecting and handshaking at the same time; the others wait their turn."""
RECEIVE_SIZE = 4096
"""Bytes a client reads at once: the handshake answer, an echo and a close all fit."""
DESCRIPTORS = CONNECTIONS + 512
"""Descriptors each process needs: one per connection, plus room for the rest."""
GRACEFUL_TIMEOUT = 3.0
DRAIN_TIMEOUT = 10.0
HANG_GUARD = 120.0
"""Seconds for the whole exchange: a bound against a hang, never the assertion."""

GONE = "1001, then the end of the stream"
"""The outcome expected of every client."""


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Raises the soft RLIMIT_NOFILE for this process and the server it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < DESCRIPTORS:
        pytest.skip(
            f"needs {DESCRIPTORS} file descriptors per process and the hard RLIMIT_NOFILE "
            f"is {hard}: raise it (`ulimit -Hn`) to run this test"
        )
    if soft == resource.RLIM_INFINITY or soft >= DESCRIPTORS:
        yield
        return
    # The server inherits the limit: it is started after this.
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Client:
    """One websocket client: wsproto's state machine over a trio TCP stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Event] = deque()

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def next_event(self) -> Event | None:
        """The next websocket event, or None at the end of the stream."""
        while not self.events:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                return None
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.popleft()

    async def handshake_and_echo(self, name: str) -> None:
        await self.send(Request(host="127.0.0.1", target=f"/ws/{name}"))
        accepted = await self.next_event()
        assert isinstance(accepted, AcceptConnection), (name, accepted)
        await self.send(TextMessage(data="ping"))
        text = ""
        while True:
            event = await self.next_event()
            assert isinstance(event, TextMessage), (name, event)
            text += event.data
            if event.message_finished:
                break
        assert text == f"{name}: ping"

    async def until_closed(self) -> str:
        """Waits for the server's close; answers it; says how the connection ended."""
        try:
            event = await self.next_event()
            if event is None:
                return "the end of the stream without a close frame"
            if isinstance(event, Message):
                return f"a message instead of a close: {event.data!r}"
            if not isinstance(event, CloseConnection):
                return f"{type(event).__name__} instead of a close"
            if (event.code, event.reason) != (1001, "the server is shutting down"):
                return f"close {event.code} {event.reason!r}"
            await self.send(event.response())
            # The server ends the TCP stream once the close handshake is done.
            rest = await self.stream.receive_some(RECEIVE_SIZE)
            if rest:
                return f"data after the close: {rest!r}"
            return GONE
        except trio.BrokenResourceError as error:
            return f"reset: {error.__cause__ or error!r}"
        finally:
            await self.stream.aclose()


async def test_a_sigterm_drain_closes_1000_websockets_with_1001_and_drains_all_their_tasks(
    launch: Callable[..., ServerProcess], descriptors: None
) -> None:
    server = launch(
        *TRIOAPI,
        "tests.websocket_app:app",
        "--bind",
        "127.0.0.1:0",
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        "--drain-timeout",
        str(DRAIN_TIMEOUT),
    )
    port = server.wait_ready()
    names = [str(number) for number in range(CONNECTIONS)]
    outcomes: dict[str, str] = {}
    echoed = 0
    all_echoed = trio.Event()
    all_closed = trio.Event()
    handshakes = trio.CapacityLimiter(HANDSHAKES_AT_ONCE)

    async def session(name: str) -> None:
        nonlocal echoed
        async with handshakes:
            client = Client(await trio.open_tcp_stream("127.0.0.1", port))
            await client.handshake_and_echo(name)
        echoed += 1
        if echoed == CONNECTIONS:
            all_echoed.set()
        outcomes[name] = await client.until_closed()
        if len(outcomes) == CONNECTIONS:
            all_closed.set()

    started = time.monotonic()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(session, name)
            await all_echoed.wait()
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            # Those still open when the server exits would never be closed:
            # the wait ends there, and they are counted below.
            with trio.move_on_after(GRACEFUL_TIMEOUT + DRAIN_TIMEOUT + EXIT_MARGIN):
                await all_closed.wait()
            closes_done = time.monotonic()
            nursery.cancel_scope.cancel()
    try:
        code = server.process.wait(timeout=GRACEFUL_TIMEOUT + DRAIN_TIMEOUT + EXIT_MARGIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after the drain deadline; stderr:\n{server.stderr}")
    exited = time.monotonic()
    stderr = server.stderr
    report = re.search(r"background drain finished in ([\d.]+) s: .*", stderr)
    print(
        f"{CONNECTIONS} websockets echoed {signalled - started:.2f} s after the first connect; "
        f"all closes {closes_done - signalled:.3f} s after SIGTERM, exit "
        f"{exited - signalled:.3f} s after it; {report[0] if report else 'no report'}"
    )

    ended = Counter(outcomes.values())
    ended["still open when the server exited"] = CONNECTIONS - len(outcomes)
    assert +ended == Counter({GONE: CONNECTIONS}), f"{dict(ended)}; stderr:\n{stderr}"
    assert code == 0, stderr
    assert report is not None, stderr
    assert report[0].endswith(
        f": {CONNECTIONS} completed, 0 failed, 0 cancelled, 0 abandoned, 0 skipped"
    ), report[0]
    # Each websocket's own task finished, once: none lost, none run twice.
    assert sorted(server.task_lines, key=int) == names
    assert "Traceback" not in stderr, stderr
    assert "[ERROR]" not in stderr, stderr

"""A trio program that serves an API beside its own work, then stops gracefully.

Run it with ``python -m examples.embed``. The program's own task posts a few
items to the API over HTTP; each request queues a background task; after a
while the program shuts the server down gracefully, which drains those
tasks, and prints the drain report.
"""

from __future__ import annotations

import trio

import trioapi
from trioapi import BackgroundTasks, DrainReport, TrioAPI

app = TrioAPI(drain_timeout=10)
processed: list[str] = []


async def process(item: str) -> None:
    await trio.sleep(0.5)  # stands for real work: a slow API call, a resize...
    processed.append(item)


@app.post("/items/{item}")
async def add_item(item: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.options(name=f"process-{item}").add_task(process, item)
    return {"queued": item}


async def post(port: int, path: str) -> bytes:
    """A minimal HTTP/1.1 client: the program talking to its own API."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    return answer


async def main(items: int = 3) -> DrainReport | None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(trioapi.serve, app, "127.0.0.1:0")
        print(f"serving on {server.urls[0]}")
        for number in range(items):
            answer = await post(server.port, f"/items/item-{number}")
            print(answer.split(b"\r\n", 1)[0].decode())
        # The requests are answered; their tasks are still running. A
        # graceful shutdown waits for them (up to drain_timeout).
        report = await server.shutdown()
    print(report)
    print("processed:", ", ".join(processed))
    return report


if __name__ == "__main__":
    trio.run(main)

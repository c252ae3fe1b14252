"""Diagnostic variant (not in the default run): trioapi, its task handing over to a thread.

The same route and the same ``BackgroundTasks`` as ``app_trioapi``, but the
task is ``async def`` and only puts the email on the queue of one plain
thread (``_handoff``). Against ``app_trioapi`` it shows what the runtime's
worker pool (capacity, results, cancellation) costs over the barest hop.
"""

from _handoff import HandOffThread

from trioapi import BackgroundTasks, TrioAPI

app = TrioAPI()
_writer = HandOffThread()


@app.on_event("startup")
def start_writer() -> None:
    _writer.start()


@app.on_event("shutdown")
async def stop_writer() -> None:
    await _writer.stop()  # after the drain: every task has handed its email over


async def hand_over(email: str) -> None:
    _writer.put(email)


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(hand_over, email)
    return {"message": "Notification sent in the background"}

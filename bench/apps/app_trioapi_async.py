"""Diagnostic variant (not in the default run): trioapi with an *async* task.

The task does the same blocking append, on the event loop, like the raw app:
the difference to ``app_trioapi`` is the cost of the worker-thread hop, the
difference to ``app_trioapi_notask`` the cost of the runtime itself.
"""

from _task import write_notification

from trioapi import BackgroundTasks, TrioAPI

app = TrioAPI()


async def write_notification_async(email: str) -> None:
    write_notification(email)


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_notification_async, email)
    return {"message": "Notification sent in the background"}

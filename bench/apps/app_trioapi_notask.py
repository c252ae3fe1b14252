"""Diagnostic variant (not in the default run): trioapi's POST route, no task.

It asks for ``BackgroundTasks`` but adds nothing, and writes no line: its
req/s is the cost of the route without the runtime (run.py does not count
lost tasks for it).
"""

from trioapi import BackgroundTasks, TrioAPI

app = TrioAPI()


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    return {"message": "Notification sent in the background"}

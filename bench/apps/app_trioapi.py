"""trioapi: the seed's shape (a sync task added through ``BackgroundTasks``)."""

from _task import write_notification

from trioapi import BackgroundTasks, TrioAPI

app = TrioAPI()


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_notification, email)
    return {"message": "Notification sent in the background"}

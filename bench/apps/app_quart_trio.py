"""Quart-Trio: ``add_background_task`` runs the sync task in a worker thread."""

from _task import write_notification
from quart_trio import QuartTrio

app = QuartTrio(__name__)


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/<email>")
async def send_notification(email: str):
    app.add_background_task(write_notification, email)
    return {"message": "Notification sent in the background"}

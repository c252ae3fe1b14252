"""FastAPI: the original seed, with the benchmark's task."""

from _task import write_notification
from fastapi import BackgroundTasks, FastAPI

app = FastAPI()


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_notification, email)
    return {"message": "Notification sent in the background"}

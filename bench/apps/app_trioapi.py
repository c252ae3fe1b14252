"""trioapi: the seed's shape (a sync task added through ``BackgroundTasks``).

Also the two request-body routes (``_bodies``): a pydantic body with a
response model, and a multipart upload.
"""

from typing import Annotated

from _bodies import Item, ItemOut, upload_answer
from _task import write_notification

from trioapi import BackgroundTasks, Form, TrioAPI, UploadFile

app = TrioAPI()


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_notification, email)
    return {"message": "Notification sent in the background"}


@app.post("/items", response_model=ItemOut, status_code=201)
async def create_item(item: Item):
    return item


@app.post("/upload")
async def upload(file: UploadFile, note: Annotated[str, Form(max_length=200)]):
    data = await file.read()
    return upload_answer(file.filename, file.content_type, data, note)

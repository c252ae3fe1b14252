"""Starlette: a ``BackgroundTask`` attached to the response.

Also the two request-body routes (``_bodies``), as a Starlette app writes
them by hand: the body validated with the pydantic model and answered
through ``ItemOut``; the upload read with ``request.form()``.
"""

import json

from _bodies import Item, ItemOut, upload_answer
from _task import write_notification
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def root(request):
    return JSONResponse({"message": "hello"})


async def send_notification(request):
    email = request.path_params["email"]
    return JSONResponse(
        {"message": "Notification sent in the background"},
        background=BackgroundTask(write_notification, email),
    )


async def create_item(request):
    try:
        item = Item.model_validate(await request.json())
    except ClientDisconnect:  # wrk stopping mid-request: no one to answer
        return Response(status_code=400)
    except (ValueError, ValidationError) as error:
        detail = json.loads(error.json()) if isinstance(error, ValidationError) else str(error)
        return JSONResponse({"detail": detail}, status_code=422)
    out = ItemOut.model_validate(item, from_attributes=True)
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


async def upload(request):
    try:
        return await read_upload(request)
    except ClientDisconnect:
        return Response(status_code=400)


async def read_upload(request):
    async with request.form() as form:
        file, note = form.get("file"), form.get("note")
        if not isinstance(file, UploadFile) or not isinstance(note, str) or len(note) > 200:
            return JSONResponse({"detail": "a file and a note of at most 200 characters"}, 422)
        data = await file.read()
        return JSONResponse(upload_answer(file.filename, file.content_type, data, note))


app = Starlette(
    routes=[
        Route("/", root, methods=["GET"]),
        Route("/send-notification/{email}", send_notification, methods=["POST"]),
        Route("/items", create_item, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
    ]
)

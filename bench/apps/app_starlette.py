"""Starlette: a ``BackgroundTask`` attached to the response."""

from _task import write_notification
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse
from starlette.routing import Route


async def root(request):
    return JSONResponse({"message": "hello"})


async def send_notification(request):
    email = request.path_params["email"]
    return JSONResponse(
        {"message": "Notification sent in the background"},
        background=BackgroundTask(write_notification, email),
    )


app = Starlette(
    routes=[
        Route("/", root, methods=["GET"]),
        Route("/send-notification/{email}", send_notification, methods=["POST"]),
    ]
)

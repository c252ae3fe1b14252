"""Diagnostic variant (not in the default run): ``app_fastapi`` behind ``CORSMiddleware``.

The same app object and routes, with FastAPI's (Starlette's) middleware
installed as ``app_trioapi_cors`` installs trioapi's; its req/s against
``app_fastapi``'s is what the middleware costs there.
"""

from _cors import ALLOWED_ORIGINS
from app_fastapi import app
from fastapi.middleware.cors import CORSMiddleware

__all__ = ["app"]  # hypercorn serves it

app.add_middleware(
    CORSMiddleware,
    allow_origins=ALLOWED_ORIGINS,
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)

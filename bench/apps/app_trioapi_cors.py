"""Diagnostic variant (not in the default run): ``app_trioapi`` behind ``CORSMiddleware``.

The same app object and routes; every request ``bench/run.py`` sends it
carries an allowed ``Origin`` (``_cors.ORIGIN``), so each answer gets its
``Access-Control-*`` headers. Its req/s against ``app_trioapi``'s is what
the middleware costs.
"""

from _cors import ALLOWED_ORIGINS
from app_trioapi import app

from trioapi.middleware.cors import CORSMiddleware

__all__ = ["app"]  # hypercorn serves it

app.add_middleware(
    CORSMiddleware,
    allow_origins=ALLOWED_ORIGINS,
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)

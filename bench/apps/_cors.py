"""The CORS options of the two CORS variants, and the origin wrk's requests carry.

The options are FastAPI's tutorial shape (a list of origins, credentials,
every method and header): the allowed origin is named in each answer, with
``Access-Control-Allow-Credentials`` and ``Vary: Origin``. ``ORIGIN`` is
listed, not first, so each request looks it up as a real deployment would.
"""

ALLOWED_ORIGINS = [
    "http://localhost:3000",
    "https://admin.example.com",
    "https://app.example.com",
]
ORIGIN = "https://app.example.com"
"""The ``Origin`` header of every request ``bench/run.py`` sends to a CORS variant."""

"""The same routes in each framework, for ``bench/run.py`` and ``bench/micro.py``.

- ``GET /`` returns ``{"message": "hello"}``;
- ``POST /send-notification/{email}`` returns
  ``{"message": "Notification sent in the background"}`` and, after the
  response, runs a *sync* task that appends ``notification for {email}\\n`` to
  the file named by the ``BENCH_LOG`` environment variable (``os.devnull``
  when unset).

The raw ASGI, trioapi, FastAPI and Starlette apps also serve the two
request-body routes of ``_bodies``: ``POST /items`` (a pydantic ``Item``
answered through the response model ``ItemOut``, 201) and ``POST /upload``
(multipart: a file and a ``note`` field; answers the file's size and CRC-32).

Module names start with ``app_`` so that they never shadow the framework they
import: hypercorn puts this folder first on ``sys.path`` when it loads
``bench/apps/app_x.py:app``.
"""

"""``BackgroundTasks`` (FastAPI's ``fastapi.background``) and Starlette's ``BackgroundTask``.

Both run in trioapi's runtime: a request's ``BackgroundTasks`` parameter, and
a ``BackgroundTask`` or ``BackgroundTasks`` given to a response's
``background=``, start after the response's last byte.
"""

from ._runtime.background import BackgroundTask as BackgroundTask
from ._runtime.background import BackgroundTasks as BackgroundTasks

__all__ = ["BackgroundTask", "BackgroundTasks"]

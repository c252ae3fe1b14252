"""``BackgroundTasks`` (FastAPI's ``fastapi.background``), run by trioapi's runtime."""

from ._runtime.background import BackgroundTasks as BackgroundTasks

__all__ = ["BackgroundTasks"]

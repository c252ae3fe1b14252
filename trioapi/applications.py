"""The application class (FastAPI's ``fastapi.applications``)."""

from ._http.app import TrioAPI as TrioAPI

__all__ = ["TrioAPI"]

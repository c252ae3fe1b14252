"""Response classes (FastAPI's ``fastapi.responses``)."""

from ._http.files import FileResponse as FileResponse
from ._http.responses import EventSourceResponse as EventSourceResponse
from ._http.responses import HTMLResponse as HTMLResponse
from ._http.responses import JSONResponse as JSONResponse
from ._http.responses import ORJSONResponse as ORJSONResponse
from ._http.responses import PlainTextResponse as PlainTextResponse
from ._http.responses import RedirectResponse as RedirectResponse
from ._http.responses import Response as Response
from ._http.responses import StreamingResponse as StreamingResponse
from ._http.responses import UJSONResponse as UJSONResponse

__all__ = [
    "EventSourceResponse",
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "ORJSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
    "UJSONResponse",
]

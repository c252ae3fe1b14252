"""Response classes (FastAPI's ``fastapi.responses``)."""

from ._http.responses import HTMLResponse as HTMLResponse
from ._http.responses import JSONResponse as JSONResponse
from ._http.responses import PlainTextResponse as PlainTextResponse
from ._http.responses import RedirectResponse as RedirectResponse
from ._http.responses import Response as Response
from ._http.responses import StreamingResponse as StreamingResponse

__all__ = [
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]

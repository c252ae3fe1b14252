"""trioapi: FastAPI-style web APIs on trio, with background tasks done right.

This module only re-exports the public names; each lives in a private module
with one job:

- ``_app``: the ASGI application and the per-request flow;
- ``_routing``: path templates, routers and the route table (no I/O);
- ``_params``: parameter markers and signature analysis (no I/O);
- ``_convert``: string and JSON conversion, 422 error entries (no I/O);
- ``_solve``: per-request parameter and dependency resolution;
- ``_requests`` / ``_responses``: the request and response objects;
- ``_background``: the background-task runtime and its lifecycle;
- ``_lifespan``: the ASGI lifespan call that hosts the runtime;
- ``_serve`` / ``_cli``: serving on hypercorn, embedded or from the shell;
- ``testing``: the test client; ``status``: HTTP status constants.
"""

from . import status as status
from ._app import TrioAPI as TrioAPI
from ._background import BackgroundRuntime as BackgroundRuntime
from ._background import BackgroundTasks as BackgroundTasks
from ._background import DrainReport as DrainReport
from ._background import RuntimeState as RuntimeState
from ._background import TaskHandle as TaskHandle
from ._background import TaskOptions as TaskOptions
from ._background import TaskState as TaskState
from ._datastructures import Headers as Headers
from ._datastructures import QueryParams as QueryParams
from ._datastructures import State as State
from ._exceptions import BackgroundCapacityError as BackgroundCapacityError
from ._exceptions import BackgroundClosedError as BackgroundClosedError
from ._exceptions import BackgroundError as BackgroundError
from ._exceptions import BackgroundTaskTimeout as BackgroundTaskTimeout
from ._exceptions import HTTPException as HTTPException
from ._exceptions import MalformedRequestError as MalformedRequestError
from ._exceptions import RequestValidationError as RequestValidationError
from ._exceptions import RouteDefinitionError as RouteDefinitionError
from ._exceptions import TrioAPIError as TrioAPIError
from ._params import Body as Body
from ._params import Cookie as Cookie
from ._params import Depends as Depends
from ._params import Header as Header
from ._params import Path as Path
from ._params import Query as Query
from ._requests import Request as Request
from ._responses import HTMLResponse as HTMLResponse
from ._responses import JSONResponse as JSONResponse
from ._responses import PlainTextResponse as PlainTextResponse
from ._responses import RedirectResponse as RedirectResponse
from ._responses import Response as Response
from ._responses import StreamingResponse as StreamingResponse
from ._routing import APIRoute as APIRoute
from ._routing import APIRouter as APIRouter
from ._serve import Server as Server
from ._serve import serve as serve

__version__ = "0.1.0"

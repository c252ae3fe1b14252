"""trioapi: FastAPI-style web APIs on trio, with background tasks done right.

This module only re-exports the public names. The public modules carry
FastAPI's import paths (``trioapi.responses``, ``trioapi.routing``...); the
machinery lives in private packages, one per layer:

- ``_http``: the ASGI app and the per-request flow, routing, signature
  analysis, conversion and validation, requests and responses (pure where
  it can be: routing, analysis and conversion do no I/O);
- ``_runtime``: the background-task runtime, its lifecycle and worker threads,
  durable task functions and the codec of their arguments;
- ``_stores``: where durable tasks live (``stores`` is its public face):
  the protocol, SQLite, Redis Streams, memory;
- ``_server``: serving on hypercorn (embedded, from the shell, several
  workers) and the in-memory harness the test client runs on;
- ``testing``: the trio-native test client; ``status``: HTTP status constants.
"""

from . import status as status
from ._exceptions import BackgroundCapacityError as BackgroundCapacityError
from ._exceptions import BackgroundClosedError as BackgroundClosedError
from ._exceptions import BackgroundError as BackgroundError
from ._exceptions import BackgroundTaskTimeout as BackgroundTaskTimeout
from ._exceptions import HTTPException as HTTPException
from ._exceptions import MalformedRequestError as MalformedRequestError
from ._exceptions import RequestValidationError as RequestValidationError
from ._exceptions import ResponseValidationError as ResponseValidationError
from ._exceptions import RouteDefinitionError as RouteDefinitionError
from ._exceptions import TaskStoreError as TaskStoreError
from ._exceptions import TrioAPIError as TrioAPIError
from ._exceptions import WebSocketException as WebSocketException
from ._http.app import TrioAPI as TrioAPI
from ._http.datastructures import Headers as Headers
from ._http.datastructures import QueryParams as QueryParams
from ._http.datastructures import State as State
from ._http.markers import Body as Body
from ._http.markers import Cookie as Cookie
from ._http.markers import Depends as Depends
from ._http.markers import File as File
from ._http.markers import Form as Form
from ._http.markers import Header as Header
from ._http.markers import Path as Path
from ._http.markers import Query as Query
from ._http.markers import Security as Security
from ._http.requests import Request as Request
from ._http.responses import HTMLResponse as HTMLResponse
from ._http.responses import JSONResponse as JSONResponse
from ._http.responses import PlainTextResponse as PlainTextResponse
from ._http.responses import RedirectResponse as RedirectResponse
from ._http.responses import Response as Response
from ._http.responses import StreamingResponse as StreamingResponse
from ._http.routing import APIRoute as APIRoute
from ._http.routing import APIRouter as APIRouter
from ._http.uploads import FormData as FormData
from ._http.uploads import UploadFile as UploadFile
from ._http.websockets import WebSocket as WebSocket
from ._http.websockets import WebSocketDisconnect as WebSocketDisconnect
from ._runtime.background import BackgroundRuntime as BackgroundRuntime
from ._runtime.background import BackgroundTasks as BackgroundTasks
from ._runtime.background import DrainReport as DrainReport
from ._runtime.background import RuntimeState as RuntimeState
from ._runtime.background import TaskHandle as TaskHandle
from ._runtime.background import TaskOptions as TaskOptions
from ._runtime.background import TaskState as TaskState
from ._runtime.durable import CurrentTask as CurrentTask
from ._runtime.durable import DurableTask as DurableTask
from ._runtime.durable import current_task as current_task
from ._server.serve import Server as Server
from ._server.serve import serve as serve

__version__ = "0.1.0"

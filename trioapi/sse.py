"""Server-sent events (FastAPI's ``fastapi.sse``).

``response_class=EventSourceResponse`` on a path operation that ``yield``s
streams each item as one event; yield a :class:`ServerSentEvent` to set the
event's fields. See ``trioapi/_http/streams.py``.
"""

from ._http.responses import KEEPALIVE_COMMENT as KEEPALIVE_COMMENT
from ._http.responses import EventSourceResponse as EventSourceResponse
from ._http.streams import PING_INTERVAL as _PING_INTERVAL  # noqa: F401 - FastAPI's name
from ._http.streams import ServerSentEvent as ServerSentEvent
from ._http.streams import format_sse_event as format_sse_event

__all__ = ["KEEPALIVE_COMMENT", "EventSourceResponse", "ServerSentEvent", "format_sse_event"]

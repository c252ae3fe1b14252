"""ASGI middleware (FastAPI's ``fastapi.middleware``).

Each middleware is a plain ASGI callable in a module of its own, usable
around any ASGI app: ``cors.CORSMiddleware``, ``gzip.GZipMiddleware``,
``trustedhost.TrustedHostMiddleware``, ``httpsredirect.HTTPSRedirectMiddleware``,
and ``base.BaseHTTPMiddleware``, which runs the functions that
``@app.middleware("http")`` registers. Install one with
``app.add_middleware(CORSMiddleware, allow_origins=[...])`` or
``TrioAPI(middleware=[Middleware(CORSMiddleware, allow_origins=[...])])``;
the stack they form is described in ``_stack.py``.
"""

from ._stack import Middleware as Middleware

__all__ = ["Middleware"]

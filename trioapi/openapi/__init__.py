"""The OpenAPI document and the docs pages (FastAPI's ``fastapi.openapi``).

- :mod:`.utils`: :func:`~trioapi.openapi.utils.get_openapi`, the document of
  a set of routes (what ``app.openapi()`` returns);
- :mod:`.docs`: the Swagger UI and ReDoc pages, for custom docs routes;
- :mod:`.models`: the document's objects as pydantic models (needs pydantic);
- :mod:`.constants`: ``REF_PREFIX`` and ``METHODS_WITH_BODY``.

The machinery lives in ``trioapi._openapi``; nothing here is imported by
``import trioapi``.
"""

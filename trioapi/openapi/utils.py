"""Building the OpenAPI document (FastAPI's ``fastapi.openapi.utils``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._openapi.document import build_document
from .._openapi.document import generate_unique_id as generate_unique_id

__all__ = ["generate_unique_id", "get_openapi"]


def get_openapi(
    *,
    title: str,
    version: str,
    openapi_version: str = "3.1.0",
    summary: str | None = None,
    description: str | None = None,
    routes: Sequence[Any],
    webhooks: Sequence[Any] | None = None,
    tags: list[dict[str, Any]] | None = None,
    servers: list[dict[str, str | Any]] | None = None,
    terms_of_service: str | None = None,
    contact: dict[str, str | Any] | None = None,
    license_info: dict[str, str | Any] | None = None,
    separate_input_output_schemas: bool = True,
    external_docs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Returns the OpenAPI document of ``routes``, as JSON data (what ``app.openapi()`` does).

    Call it yourself to customise the document: override ``app.openapi``
    with a function that calls this, edits the result, and stores it in
    ``app.openapi_schema``.

    Args:
        title: The API's title (``info.title``).
        version: The API's version (``info.version``), not OpenAPI's.
        openapi_version: The OpenAPI version the document declares.
        summary: A short summary of the API (``info.summary``).
        description: A longer description, Markdown (``info.description``).
        routes: The routes to describe (``app.routes``); routes with
            ``include_in_schema=False`` are left out.
        webhooks: Routes describing the webhooks the API sends (``app.webhooks.routes``).
        tags: Metadata for the tags (``openapi_tags``), in display order.
        servers: The ``servers`` list (``[{"url": ..., "description": ...}]``).
        terms_of_service: A URL (``info.termsOfService``).
        contact: ``info.contact`` (``name``, ``url``, ``email``).
        license_info: ``info.license`` (``name``, ``identifier`` or ``url``).
        separate_input_output_schemas: Describe response models in
            serialization mode, apart from input models (True, the default);
            False describes one schema for both where they are the same model.
        external_docs: The document's ``externalDocs`` (``url``, ``description``).

    Returns:
        The document as a dict of JSON data.
    """
    return build_document(
        title=title,
        version=version,
        openapi_version=openapi_version,
        summary=summary,
        description=description,
        routes=routes,
        webhooks=webhooks,
        tags=tags,
        servers=servers,
        terms_of_service=terms_of_service,
        contact=contact,
        license_info=license_info,
        separate_input_output_schemas=separate_input_output_schemas,
        external_docs=external_docs,
    )

"""The OpenAPI document and docs pages (``fastapi.openapi``): a home for what comes next."""

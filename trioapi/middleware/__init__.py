"""ASGI middleware (FastAPI's ``fastapi.middleware``): a home for what comes next."""

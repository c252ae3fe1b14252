"""The OpenAPI document and the docs pages (no I/O): see ``document.py``."""

"""Serving: hypercorn embedding, the command line, the worker supervisor, the in-memory harness."""

"""The background-task runtime: its lifecycle, runners and worker threads."""

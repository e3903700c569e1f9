"""Sandboxed execution: the Celery app that fans sandbox runs out to worker processes."""

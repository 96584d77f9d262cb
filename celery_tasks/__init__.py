"""Background work on Celery: rollups, retention, charts and alerts.

Run with `celery -A celery_tasks worker|beat|flower` from the repository root.
"""
from celery_tasks.main import app

__all__ = ["app"]

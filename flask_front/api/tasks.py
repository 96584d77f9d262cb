"""API: Celery task status by id (readable from any gunicorn worker)."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("tasks", __name__, description="background tasks")

"""API: health."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("health", __name__, description="health")

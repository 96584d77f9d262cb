"""API: ingest."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("ingest", __name__, description="ingest")

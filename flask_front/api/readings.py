"""API: readings."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("readings", __name__, description="readings")

"""API: charts."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("charts", __name__, description="charts")

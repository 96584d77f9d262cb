"""The trend charts page: the Celery worker's pyecharts renders, and a redraw button for administrators."""
from __future__ import annotations

from flask import render_template

from flask_front.access import caller, read_access
from flask_front.dashboard import bp

SPANS = ("24h", "7d", "30d")


def is_admin() -> bool:
    """True when the caller may change things (administrators)."""
    who = caller()
    return who is not None and who.is_admin


@bp.route("/charts")
@read_access
def charts():
    """Every device's 24 h, 7 d and 30 d charts, each in a sandboxed frame; the list comes from the API."""
    return render_template("dashboard/charts.html", spans=SPANS, is_admin=is_admin())

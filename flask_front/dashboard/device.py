"""The device page `/devices/<id>`: a chart per metric over a chosen range, its alert rules and events."""
from __future__ import annotations

from flask import abort, render_template

from flask_front.access import read_access
from flask_front.api import common
from flask_front.dashboard import bp
from lib.storage.readings import device_name


@bp.route("/devices/<id:device_id>")
@read_access
def device(device_id: int):
    """The charts are drawn by device.js from /api/v1/devices/<id>/readings; the name makes the title."""
    with common.engine().connect() as conn:
        name = device_name(conn, device_id)
    if name is None:
        abort(404, description=f"no device with id {device_id}")
    return render_template("dashboard/device.html", device_id=device_id, device_name=name,
                           offline_ms=common.settings().web.offline_seconds * 1000)

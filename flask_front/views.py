"""The original project's route /realTime (the latest reading); `/` is the dashboard's overview now."""
from __future__ import annotations

from flask import Blueprint, Flask, abort, jsonify, request

from flask_front.access import read_access
from flask_front.api import MAX_ID, common
from lib.storage.readings import devices_with_latest

bp = Blueprint("views", __name__)


def register(app: Flask) -> None:
    """Attach the original routes."""
    app.register_blueprint(bp)


@bp.route("/realTime")
@read_access
def real_time():
    """The newest reading as JSON, of ?device=<id> or of the first device with readings (as the original)."""
    device = request.args.get("device")
    if device is not None:
        if not device.isdigit() or int(device) > MAX_ID:
            abort(404, description=f"no device with id {device[:20]!r}")
        device = int(device)
    names = common.catalogue().names
    with common.engine().connect() as conn:
        rows = devices_with_latest(conn, names, device, active_only=device is None)
    rows = [r for r in sorted(rows, key=lambda r: r.id) if r.last_ms is not None]
    if not rows:
        abort(404, description="no reading stored yet")
    row = rows[0]
    return jsonify({"device_id": row.id, "device": row.name, **row.values, **common.when(row.last_ms, "time")})

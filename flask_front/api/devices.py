"""API: devices (list, register, revoke), their latest readings, and the metric catalogue."""
from __future__ import annotations

from flask import abort
from flask.views import MethodView
from flask_smorest import Blueprint

from flask_front.access import admin_required, read_access
from flask_front.api import common
from flask_front.api.schemas import (CreatedDeviceSchema, DeviceSchema, LatestSchema, MetricSchema,
                                     NewDeviceSchema, NewMetricSchema, RevokeQuerySchema)
from lib import storage
from lib.catalogue import Metric
from lib.storage.readings import DeviceRow, device_name, devices_with_latest

blp = Blueprint("devices", __name__, description="Devices, their latest readings and the metric catalogue")


def device_json(row: DeviceRow, now_ms: int, offline_ms: float) -> dict:
    """A device as the API shows it."""
    online = row.last_ms is not None and row.revoked_ms is None and now_ms - row.last_ms <= offline_ms
    return {"id": row.id, "name": row.name, "online": online, "revoked": row.revoked_ms is not None,
            "latest": row.values, **common.when(row.last_ms, "last_seen"),
            **common.when(row.created_ms, "created")}


def latest_json(row: DeviceRow) -> dict:
    """A device's newest reading."""
    return {"device_id": row.id, "device": row.name, "values": row.values, **common.when(row.last_ms, "time")}


def _no_values() -> dict[str, None]:
    """`latest` of a device without readings: every metric, null."""
    return dict.fromkeys(common.catalogue().names)


def _rows(device_id: int | None = None) -> list[DeviceRow]:
    """Devices with their newest reading; 404 when device_id names no device."""
    names = common.catalogue().names
    with common.engine().connect() as conn:
        rows = devices_with_latest(conn, names, device_id)
    if device_id is not None and not rows:
        abort(404, description=f"no device with id {device_id}")
    return rows


@blp.route("/devices")
class Devices(MethodView):
    """All devices."""

    @read_access
    @blp.response(200, DeviceSchema(many=True))
    def get(self):
        """List every device with its last reading and whether it is online."""
        now, offline = storage.now_ms(), common.settings().web.offline_seconds * 1000
        return [device_json(r, now, offline) for r in _rows()]

    @admin_required
    @common.admin_doc(blp)
    @blp.doc(responses={201: {"links": {
        "GetDevice": common.link("/devices/{device_id}", "get", device_id="$response.body#/id"),
        "RevokeDevice": common.link("/devices/{device_id}", "delete", device_id="$response.body#/id"),
        "GetLatest": common.link("/devices/{device_id}/latest", "get", device_id="$response.body#/id"),
        "GetReadings": common.link("/devices/{device_id}/readings", "get", device_id="$response.body#/id")}}})
    @blp.arguments(NewDeviceSchema)
    @blp.response(201, CreatedDeviceSchema)
    @blp.alt_response(409, schema=common.ERROR, description="the name is taken")
    def post(self, body):
        """Register a device (administrators); its token is returned only in this response."""
        try:
            info, token = storage.add_device(common.engine(), body["name"])
        except ValueError as exc:
            abort(409 if "already exists" in str(exc) else 400, description=str(exc))
        row = DeviceRow(info.id, info.name, info.created_ms, None, None, _no_values())
        return {**device_json(row, storage.now_ms(), 0), "token": token}


@blp.route("/devices/<id:device_id>")
class OneDevice(MethodView):
    """One device."""

    @read_access
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, schema=common.ERROR)
    def get(self, device_id: int):
        """One device with its last reading."""
        offline = common.settings().web.offline_seconds * 1000
        return device_json(_rows(device_id)[0], storage.now_ms(), offline)

    @admin_required
    @common.admin_doc(blp)
    @blp.arguments(RevokeQuerySchema, location="query")
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, schema=common.ERROR)
    def delete(self, args, device_id: int):
        """Revoke a device (administrators): its token stops now; readings stay unless delete_readings."""
        with common.engine().connect() as conn:
            name = device_name(conn, device_id)
        if name is None:
            abort(404, description=f"no device with id {device_id}")
        info = storage.revoke_device(common.engine(), name, args["delete_readings"])
        if args["delete_readings"]:
            row = DeviceRow(info.id, info.name, info.created_ms, info.revoked_ms, None, _no_values())
        else:
            row = _rows(device_id)[0]
        return device_json(row, storage.now_ms(), 0)


@blp.route("/devices/<id:device_id>/latest")
@read_access
@blp.response(200, LatestSchema)
@blp.alt_response(404, schema=common.ERROR)
def device_latest(device_id: int):
    """The newest reading of one device."""
    return latest_json(_rows(device_id)[0])


@blp.route("/latest")
@read_access
@blp.response(200, LatestSchema(many=True))
def latest():
    """The newest reading of every device that is not revoked."""
    return [latest_json(r) for r in _rows() if r.revoked_ms is None]


@blp.route("/metrics")
class Metrics(MethodView):
    """The metric catalogue."""

    @read_access
    @blp.response(200, MetricSchema(many=True))
    def get(self):
        """Every metric devices may report, with its unit and valid range."""
        return [metric_json(m) for m in common.catalogue()]

    @admin_required
    @common.admin_doc(blp)
    @blp.arguments(NewMetricSchema)
    @blp.response(201, MetricSchema)
    @blp.alt_response(409, schema=common.ERROR, description="the metric exists")
    def post(self, body):
        """Add a metric (administrators); ingest servers accept it at once."""
        try:
            metric = Metric(body["name"], body["unit"], body["min"], body["max"], body["label"])
            storage.add_metric(common.engine(), metric)
        except ValueError as exc:
            abort(409 if "already exists" in str(exc) else 400, description=str(exc))
        common.catalogue(refresh=True)
        return metric_json(metric)


def metric_json(metric: Metric) -> dict:
    """A catalogue entry as the API shows it."""
    return {"name": metric.name, "unit": metric.unit, "min": metric.min_value, "max": metric.max_value,
            "label": metric.title}

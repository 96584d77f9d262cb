"""API: the latest rendered charts, and queueing a new render (administrators)."""
from __future__ import annotations

from flask import abort, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from flask_front.access import admin_required, read_access
from flask_front.api import common
from flask_front.api.schemas import timestamp
from flask_front.api.tasks import TaskIdSchema, client, unavailable
from lib import storage, tasks
from lib.storage import charts as chart_store

blp = Blueprint("charts", __name__, description="Pre-rendered trend charts (24 h, 7 d, 30 d per device and metric)")

DRAW_TASK = "celery_tasks.draw_charts"
DEVICE_ID = validate.Range(min=1, max=2**63 - 1)


class ChartQuerySchema(Schema):
    """Which charts to list."""

    device = fields.Integer(validate=DEVICE_ID, metadata={"description": "only this device's charts (its id)"})


class ChartSchema(Schema):
    """The newest complete render of one device, metric and window."""

    device_id = fields.Integer(required=True)
    device = fields.String(required=True, metadata={"description": "the device's name"})
    metric = fields.String(required=True)
    span = fields.String(required=True, metadata={"description": "the window: 24h, 7d or 30d"})
    url = fields.String(required=True, metadata={"description": "the chart page, an HTML file"})
    render = fields.String(required=True, metadata={"description": "the render (folder) it belongs to"})
    rendered, rendered_ms = timestamp("when it was drawn")


class RefreshSchema(Schema):
    """What to draw again."""

    device = fields.Integer(strict=True, validate=DEVICE_ID,  # strict: 1.5 is no device id
                            metadata={"description": "only this device (default: every active one)"})


def _device_names() -> dict[int, str]:
    """Device id → name, revoked devices included (their charts stay until retention)."""
    return {d.id: d.name for d in storage.list_devices(common.engine())}


def _check_device(device_id: int | None, names: dict[int, str]) -> None:
    """404 when device_id names no device."""
    if device_id is not None and device_id not in names:
        abort(404, description=f"no device with id {device_id}")


@blp.route("/charts")
class Charts(MethodView):
    """The charts."""

    @read_access
    @blp.arguments(ChartQuerySchema, location="query")
    @blp.response(200, ChartSchema(many=True))
    @blp.alt_response(404, schema=common.ERROR, description="no such device")
    def get(self, query):
        """The latest complete render per device × metric × window, with its URL."""
        device_id = query.get("device")
        names = _device_names()
        _check_device(device_id, names)
        return [{"device_id": p.device_id, "device": names.get(p.device_id, ""), "metric": p.metric,
                 "span": p.span, "render": p.render,
                 "url": url_for("chart_files.chart_file", filename=p.file),
                 **common.when(p.rendered_ms, "rendered")}
                for p in chart_store.latest_paths(common.engine(), device_id)]


@blp.route("/charts/refresh")
class Refresh(MethodView):
    """Drawing the charts now."""

    @admin_required
    @common.admin_doc(blp)
    @blp.arguments(RefreshSchema, location="json", required=False)
    @blp.response(202, TaskIdSchema)
    @blp.alt_response(404, schema=common.ERROR, description="no such device")
    @blp.alt_response(503, schema=common.ERROR, description="the task queue is unavailable")
    def post(self, body):
        """Queue a render of every active device (or one); follow it at /api/v1/tasks/{task_id}."""
        device_id = (body or {}).get("device")
        kwargs = {}
        if device_id is not None:
            _check_device(device_id, _device_names())
            kwargs["device_ids"] = [device_id]
        try:
            return {"task_id": tasks.send(client(), DRAW_TASK, kwargs=kwargs)}
        except tasks.BrokerUnavailable as exc:
            unavailable(exc)

"""API: alert rules (read; add and delete for administrators) and alert events."""
from __future__ import annotations

from flask import abort
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from flask_front.access import admin_required, read_access
from flask_front.api import MAX_ID, common
from flask_front.api.schemas import PRINTABLE, timestamp
from lib.alerts import Event, rule_spec
from lib.storage import alerts as alert_store

blp = Blueprint("alerts", __name__, description="Alert rules and the events they raised")


class RuleSchema(Schema):
    """An alert rule."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    device_id = fields.Integer(required=True, allow_none=True, metadata={"description": "null: every device"})
    device = fields.String(required=True, allow_none=True)
    kind = fields.String(required=True, metadata={"description": "above, below or nodata"})
    metric = fields.String(required=True, allow_none=True)
    threshold = fields.Float(required=True, allow_none=True)
    duration_s = fields.Float(required=True, metadata={"description": "how long the condition must hold"})
    hysteresis = fields.Float(required=True)
    condition = fields.String(required=True, metadata={"description": "the rule in words"})
    enabled = fields.Boolean(required=True)
    created, created_ms = timestamp("when it was added")


class NewRuleSchema(Schema):
    """A rule to add: metric with above or below, or no_data_minutes."""

    name = fields.String(required=True, validate=[validate.Length(1, 64), PRINTABLE])
    # strict: without it 1.5 would be taken as device 1
    device_id = fields.Integer(strict=True, load_default=None, allow_none=True,
                               validate=validate.Range(0, MAX_ID),
                               metadata={"description": "default: every device"})
    metric = fields.String(load_default=None, allow_none=True)
    above = fields.Float(load_default=None, allow_none=True, allow_nan=False)
    below = fields.Float(load_default=None, allow_none=True, allow_nan=False)
    no_data_minutes = fields.Integer(strict=True, load_default=None, allow_none=True,
                                     validate=validate.Range(1, 525600))
    duration = fields.String(load_default="0", metadata={"description": "seconds, or 90s, 5m, 1h30m"})
    hysteresis = fields.Float(load_default=0.0, allow_nan=False, validate=validate.Range(0))


class EventSchema(Schema):
    """An alert event: fired, and maybe resolved."""

    id = fields.Integer(required=True)
    rule_id = fields.Integer(required=True)
    rule = fields.String(required=True)
    device_id = fields.Integer(required=True)
    device = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "firing or resolved"})
    value = fields.Float(required=True, allow_none=True, metadata={"description": "the reading that fired it"})
    resolved_value = fields.Float(required=True, allow_none=True)
    since, since_ms = timestamp("when the condition began")
    fired, fired_ms = timestamp("when it fired")
    resolved, resolved_ms = timestamp("when it resolved (null: still firing)")


class EventQuerySchema(Schema):
    """Which events."""

    state = fields.String(validate=validate.OneOf(["firing", "resolved"]))
    device_id = fields.Integer(validate=validate.Range(0, MAX_ID))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 1000))


def rule_json(info: alert_store.RuleInfo) -> dict:
    """A rule as the API shows it."""
    rule = info.rule
    return {"id": rule.id, "name": rule.name, "device_id": rule.device_id, "device": info.device_name,
            "kind": rule.kind, "metric": rule.metric, "threshold": rule.threshold,
            "duration_s": rule.duration_ms / 1000, "hysteresis": rule.hysteresis,
            "condition": rule.describe(), "enabled": info.enabled, **common.when(info.created_ms, "created")}


def event_json(event: Event) -> dict:
    """An event as the API shows it."""
    return {"id": event.id, "rule_id": event.rule_id, "rule": event.rule_name, "device_id": event.device_id,
            "device": event.device_name, "state": event.state, "value": event.value,
            "resolved_value": event.resolved_value, **common.when(event.since_ms, "since"),
            **common.when(event.fired_ms, "fired"), **common.when(event.resolved_ms, "resolved")}


@blp.route("/alerts/rules")
class Rules(MethodView):
    """The alert rules."""

    @read_access
    @blp.response(200, RuleSchema(many=True))
    def get(self):
        """Every alert rule, oldest first."""
        return [rule_json(info) for info in alert_store.list_rules(common.engine())]

    @admin_required
    @common.admin_doc(blp)
    @blp.doc(responses={201: {"links": {
        "DeleteRule": common.link("/alerts/rules/{rule_id}", "delete", rule_id="$response.body#/id")}}})
    @blp.arguments(NewRuleSchema)
    @blp.response(201, RuleSchema)
    @blp.alt_response(400, schema=common.ERROR, description="the rule is not valid")
    def post(self, body):
        """Add a rule (administrators): the same checks as `flask --app flask_front add-alert`."""
        engine = common.engine()
        try:
            spec = rule_spec(name=body["name"], metric=body["metric"], above=body["above"],
                             below=body["below"], no_data_minutes=body["no_data_minutes"],
                             hold=body["duration"], hysteresis=body["hysteresis"])
            rule_id = alert_store.add_rule(engine, device_id=body["device_id"], **spec)
        except ValueError as exc:
            abort(400, description=str(exc))
        return rule_json(next(i for i in alert_store.list_rules(engine) if i.rule.id == rule_id))


@blp.route("/alerts/rules/<id:rule_id>", methods=["DELETE"])
@admin_required
@common.admin_doc(blp)
@blp.response(204)
@blp.alt_response(404, schema=common.ERROR)
def delete_rule(rule_id: int):
    """Delete a rule with its events (administrators)."""
    if not alert_store.delete_rule(common.engine(), rule_id):
        abort(404, description=f"no alert rule with id {rule_id}")



@blp.route("/alerts/events")
@read_access
@blp.arguments(EventQuerySchema, location="query")
@blp.response(200, EventSchema(many=True))
def events(args):
    """Alert events, newest first; ?state=firing for those still firing."""
    found = alert_store.list_events(common.engine(), args["limit"], args.get("state"), args.get("device_id"))
    return [event_json(e) for e in found]

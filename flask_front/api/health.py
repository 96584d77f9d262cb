"""API: health of the web app's dependencies, for load balancers and `sh start.sh`."""
from __future__ import annotations

import logging

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from flask_front.extensions import db
from lib import health

log = logging.getLogger(__name__)

blp = Blueprint("health", __name__, description="health")

OK, DOWN = "ok", "unavailable"
NO_CACHE = {"Cache-Control": "no-store"}


class HealthSchema(Schema):
    """Whether the database and the broker answer; each part is "ok" or why it is not."""

    status = fields.String(required=True, validate=validate.OneOf([OK, DOWN]),
                           metadata={"description": "ok when every part is ok"})
    database = fields.String(required=True, metadata={
        "description": "ok, or 'unavailable: <reason>'", "example": OK})
    broker = fields.String(required=True, metadata={
        "description": "ok, or 'unreachable: <reason>' (checked at most every 2 s per process)",
        "example": OK})


def report() -> dict[str, str]:
    """Check both parts now (the broker through its per-process cache)."""
    settings = current_app.config["SENSORS"]
    database = health.check_database(db.engine)
    broker = health.broker_status(health.broker_key(settings), settings)
    return {"status": OK if database is None and broker is None else DOWN,
            "database": OK if database is None else f"unavailable: {database}",
            "broker": OK if broker is None else f"unreachable: {broker}"}


_last_logged: dict[str, str] = {}


def _log_change(body: dict[str, str]) -> None:
    """Log when the health of this process's view changes, not on every poll."""
    if body != _last_logged:
        if body["status"] == OK:
            log.info("health: database and broker ok")
        else:
            log.warning("health: database %s; broker %s", body["database"], body["broker"])
        _last_logged.clear()
        _last_logged.update(body)


# No read_access: a load balancer must be able to poll it with [web] public = off. It tells
# nothing but whether the two services answer.
@blp.route("/healthz")
@blp.response(200, HealthSchema, description="the database and the broker answer",
              headers={"Cache-Control": {"description": "no-store", "schema": {"type": "string"}}})
@blp.alt_response(503, schema=HealthSchema, description="the database or the broker is down; "
                  "the body says which and why")
def healthz():
    """Reachability of the database and the broker: 200, or 503 naming the part that is down."""
    body = report()
    _log_change(body)
    return body, (200 if body["status"] == OK else 503), NO_CACHE


# The same answer at /healthz, outside /api/v1, where the ingest server answers too, so a
# load balancer can poll every server of the stack at one path.
blp.record_once(lambda state: state.app.add_url_rule("/healthz", "healthz", healthz))

"""API: Celery task status by id, readable from any gunicorn worker (results live in the database)."""
from __future__ import annotations

import logging
import re

from celery import Celery
from flask import Flask, abort, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from flask_front.access import read_access
from flask_front.api import common
from lib import tasks

log = logging.getLogger(__name__)

blp = Blueprint("tasks", __name__, description="Background tasks: state and result by id")

EXTENSION = "sensors_celery"
# A task id as Celery makes them (either case): the document says so, and nothing else is taken.
TASK_ID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_TASK_ID = re.compile(TASK_ID)


def init_app(app: Flask) -> None:
    """Give the app a Celery client that sends by name; it connects on its first use, not here."""
    app.extensions[EXTENSION] = tasks.client(app.config["SENSORS"])


def client() -> Celery:
    """The current app's Celery client."""
    return current_app.extensions[EXTENSION]


def unavailable(exc: Exception):
    """503 with the reason: the broker or the result backend could not be reached."""
    log.warning("task queue unavailable: %s", exc)
    abort(503, description=str(exc))


class TaskSchema(Schema):
    """A task's state, with its result or error once it finished."""

    id = fields.String(required=True, metadata={"description": "the task id (a UUID)"})
    state = fields.String(required=True, metadata={
        "description": "PENDING (waiting, or an unknown id), STARTED, RETRY, SUCCESS or FAILURE"})
    ready = fields.Boolean(required=True, metadata={"description": "true once it succeeded or failed"})
    result = fields.Raw(allow_none=True, metadata={"description": "what the task returned (SUCCESS only)"})
    error = fields.String(metadata={"description": "the error, without traceback (FAILURE, RETRY)"})
    done = fields.String(metadata={"description": "when it finished: ISO 8601 UTC time with Z"})
    done_ms = fields.Integer(metadata={"description": "the same time in epoch milliseconds"})


class TaskIdSchema(Schema):
    """A queued task."""

    task_id = fields.String(required=True, metadata={"description": "look it up at /api/v1/tasks/{task_id}"})


@blp.route("/tasks/<task_id>", parameters=[{"in": "path", "name": "task_id", "description": "the task id",
                                            "schema": {"type": "string", "format": "uuid", "pattern": TASK_ID}}])
class Task(MethodView):
    """One task."""

    @read_access
    @blp.response(200, TaskSchema)
    @blp.alt_response(400, schema=common.ERROR, description="the id is not a UUID")
    @blp.alt_response(503, schema=common.ERROR, description="the result backend is unavailable")
    def get(self, task_id: str):
        """A task's state; PENDING also stands for an id nobody sent, as Celery cannot tell them apart."""
        if not _TASK_ID.fullmatch(task_id):
            abort(400, description=f"{task_id[:40]!r} is not a task id (a UUID)")
        try:
            return tasks.task_status(client(), task_id)
        except ValueError as exc:
            common.bad_request(exc)
        except tasks.ResultsUnavailable as exc:
            unavailable(exc)

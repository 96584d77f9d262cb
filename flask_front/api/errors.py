"""JSON errors for the API: {"error": ..., "detail": ...}; pages keep Flask's HTML errors."""
from __future__ import annotations

import logging

from flask import request
from flask_smorest import Api
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


class ErrorSchema(Schema):
    """What every API error returns."""

    error = fields.String(required=True, metadata={"description": "what went wrong, in a few words"})
    detail = fields.Raw(allow_none=True, metadata={"description": "more about it: a message, or the "
                                                   "invalid fields with their errors"})


def error_body(error: HTTPException) -> dict:
    """The JSON body of an HTTP error; webargs' validation messages become the detail."""
    data = getattr(error, "data", None) or {}
    detail = data.get("errors") or data.get("messages") or data.get("message")
    if isinstance(detail, dict) and set(detail) <= {"json", "query", "form", "headers", "files"}:
        # webargs nests messages by location; with one location the nesting says nothing.
        detail = next(iter(detail.values())) if len(detail) == 1 else detail
    if detail is None and error.description != type(error).description:
        detail = error.description  # a description given to abort(code, description=...)
    return {"error": error.name, "detail": detail}


def database_unavailable(exc: Exception):
    """503 when the database cannot be reached; other database errors stay 500s (bugs)."""
    from lib import storage

    if not storage.is_unavailable(exc):
        raise exc
    log.warning("database unavailable for %s %s: %s", request.method, request.path,
                storage.describe_error(exc))
    body = {"error": "Service Unavailable", "detail": "the database is unavailable; try again shortly"}
    if request.path.startswith(API_PREFIX):
        return body, 503, {"Retry-After": "5"}
    return body["detail"], 503, {"Retry-After": "5"}


class SensorsApi(Api):
    """flask-smorest's Api with our error format, applied to /api/ paths only."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        """JSON for API requests; HTML pages get Flask's own error page."""
        if not request.path.startswith(API_PREFIX):
            return error
        data = getattr(error, "data", None) or {}
        return error_body(error), error.code, data.get("headers", {})

"""JSON errors for the API: {"error": ..., "detail": ...}; pages keep Flask's HTML errors."""
from __future__ import annotations

import logging

from flask import abort, request
from flask_smorest import Api
from marshmallow import Schema, fields
from werkzeug.exceptions import ClientDisconnected, HTTPException

from lib.validation import decode_body

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
# Views that read their body themselves (HTTP ingest: lib.validation.parse_frame, as the WebSocket
# server does); a body without a Content-Type is taken as JSON there, for the smallest devices.
RAW_BODY_ENDPOINTS = frozenset({"ingest.post_readings"})


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
    return {"error": error.name, "detail": detail if detail is not None else default_detail(error)}


def default_detail(error: HTTPException) -> str | None:
    """What to do about an error raised without a description (by routing or the server's limits)."""
    if isinstance(error, ClientDisconnected):
        return "the body ended before its Content-Length: send the whole body"
    if error.code == 404:
        return "nothing at this URL: the API's paths are listed in /api/v1/openapi.json"
    if error.code == 405 and getattr(error, "valid_methods", None):
        return f"this URL takes {', '.join(sorted(error.valid_methods))}"
    if error.code == 413:
        return f"the body is larger than [web] max_body_bytes ({request.max_content_length} bytes)"
    return None


def check_request() -> None:
    """Refuse what no API view can read without guessing: repeated headers or parameters, bodies
    that are compressed, not JSON, or JSON with repeated keys (Python's parser keeps the last)."""
    if not request.path.startswith(API_PREFIX) or request.endpoint is None:
        return
    authorization = request.headers.getlist("Authorization")
    # gunicorn joins repeated headers with commas; tokens never hold one.
    if len(authorization) > 1 or "," in "".join(authorization):
        abort(400, description="more than one Authorization header: send one")
    for name, values in request.args.lists():
        if len(values) > 1:
            abort(400, description=f"parameter {name!r} is given {len(values)} times: give it once "
                                   "(lists are comma-separated)")
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.method in ("GET", "HEAD", "OPTIONS") or not (request.content_length or chunked):
        return  # no body a view reads
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        abort(415, description=f"Content-Encoding {encoding!r} is not supported: send the body uncompressed")
    raw = request.endpoint in RAW_BODY_ENDPOINTS
    if not (request.is_json or raw and not request.mimetype):
        abort(415, description="the body must be JSON, sent with Content-Type: application/json "
                               f"(got {request.mimetype or 'none'})")
    data = read_body()
    if data and not raw:  # an empty body is the view's to judge (a missing field, say)
        try:
            decode_body(data)
        except ValueError as exc:
            abort(400, description=str(exc))


def read_body() -> bytes:
    """The body, kept for the view; 400 when it ended early, 413 when a chunked one went on too long."""
    data = request.get_data(cache=True)
    if request.content_length is not None and len(data) < request.content_length:
        raise ClientDisconnected()  # gunicorn hands over what came before the client stopped sending
    limit = request.max_content_length
    # werkzeug stops reading a chunked body at the limit without a word: look one byte further.
    if request.content_length is None and limit is not None and len(data) >= limit:
        if request.environ["wsgi.input"].read(1):
            abort(413)
    return data


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

    def init_app(self, app, *args, **kwargs) -> None:
        """flask-smorest's set-up, then the checks every API request passes first."""
        super().init_app(app, *args, **kwargs)
        app.before_request(check_request)

    def handle_http_exception(self, error: HTTPException):
        """JSON for API requests; HTML pages get Flask's own error page."""
        if not request.path.startswith(API_PREFIX):
            return error
        data = getattr(error, "data", None) or {}
        # werkzeug's own headers (Allow on a 405, as RFC 9110 requires), but not its HTML content type.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return error_body(error), error.code, {**headers, **(data.get("headers") or {})}  # webargs: None

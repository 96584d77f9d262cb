"""The JSON API under /api/v1 (flask-smorest): one blueprint per concern, documented in OpenAPI 3."""
from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter

PREFIX = "/api/v1"
MAX_ID = 2 ** 31 - 1  # ids are INTEGER columns: a larger one names nothing (and overflows SQLite)


class RowId(IntegerConverter):
    """`<id:name>` in routes: a row id, 0 to 2**31 - 1; anything else is a 404 like an unknown id."""

    def __init__(self, url_map) -> None:
        super().__init__(url_map, max=MAX_ID)


def register(app: Flask) -> None:
    """Register every API blueprint with the app's Api (flask_front.extensions.api)."""
    from flask_front.api import alerts, charts, devices, docs, health, ingest, live, readings, tasks, users
    from flask_front.extensions import api

    app.url_map.converters["id"] = RowId  # documented as an integer: it is an IntegerConverter
    if "bearerAuth" not in api.spec.components.security_schemes:
        api.spec.components.security_scheme(
            "bearerAuth", {"type": "http", "scheme": "bearer",
                           "description": "a user's API token (create-api-token) or, for "
                                          "POST /readings, a device token (add-device)"})
    users.document(api.spec)
    for module in (devices, readings, ingest, live, charts, tasks, alerts, users, health):
        api.register_blueprint(module.blp, url_prefix=PREFIX)
    docs.register(app, PREFIX)

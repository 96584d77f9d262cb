"""What the API views share: the engine, settings, a cached metric catalogue, time formats."""
from __future__ import annotations

import threading
import time

from flask import abort, current_app

from flask_front.api.errors import ErrorSchema

from flask_front.extensions import db
from lib import storage
from lib.catalogue import Catalogue
from lib.config import Config
from lib.validation import ms_to_iso

# Re-read the catalogue this often: metrics added by add-metric show up within this time.
CATALOGUE_TTL_S = 30.0
_lock = threading.Lock()
ERROR = ErrorSchema


# How an administrators' operation is called, as the document declares it (bearerAuth, made in
# flask_front.api.register); a logged-in administrator's session cookie works too.
ADMIN_SECURITY = [{"bearerAuth": []}]


def admin_doc(blp):
    """Decorator documenting an administrators' operation: its token, and its 401 and 403 answers."""
    def decorate(view):
        view = blp.alt_response(401, schema=ERROR, description="anonymous, or an unknown API token")(view)
        view = blp.alt_response(403, schema=ERROR, description="not an administrator")(view)
        return blp.doc(security=ADMIN_SECURITY)(view)
    return decorate


def link(path: str, method: str, **parameters: str) -> dict:
    """An OpenAPI link to the operation `method` of `path` (under /api/v1), for clients and schemathesis."""
    pointer = ("/api/v1" + path).replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method}", "parameters": parameters}


def settings() -> Config:
    """Our settings (db_config.ini and SENSORS_* variables) of the current app."""
    return current_app.config["SENSORS"]


def engine():
    """The app's SQLAlchemy engine."""
    return db.engine


def catalogue(refresh: bool = False) -> Catalogue:
    """The metric catalogue, read at most every CATALOGUE_TTL_S per process (or now, with refresh)."""
    cached = current_app.extensions.get("sensors_catalogue")
    if refresh or cached is None or time.monotonic() - cached[0] > CATALOGUE_TTL_S:
        with _lock:
            loaded = storage.load_catalogue(engine())
            cached = (time.monotonic(), loaded)
            current_app.extensions["sensors_catalogue"] = cached
    return cached[1]


def when(ts_ms: int | None, name: str) -> dict:
    """A time as the API gives every time: `name` in ISO 8601 UTC and `name_ms` in epoch ms."""
    return {name: None if ts_ms is None else ms_to_iso(ts_ms), f"{name}_ms": ts_ms}


def bad_request(exc: ValueError):
    """400 with the reason a ValueError gives."""
    abort(400, description=str(exc))

"""The Flask web app: dashboard, charts, JSON API, logins and admin CLI commands."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import sqlalchemy.exc
from flask import Flask

from flask_front.api.errors import database_unavailable
from lib import config as config_mod, storage
from lib.secretfile import read_or_create

log = logging.getLogger(__name__)

SECRET_FILE = "secret_key"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: settings from db_config.ini (or config["SENSORS"]), then `config` on top."""
    app = Flask(__name__)
    config = dict(config or {})
    settings = config.get("SENSORS") or config_mod.load()
    app.config.from_mapping(base_config(settings))
    app.config.from_mapping(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = read_or_create(settings.var_dir / SECRET_FILE)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", storage.engine_options(url))
    if url.startswith("sqlite:///"):
        storage.make_engine(url).dispose()  # creates the folder of the database file
    init_extensions(app, settings)
    register_blueprints(app)
    return app


def base_config(settings: config_mod.Config) -> dict:
    """Flask and extension settings derived from ours."""
    web = settings.web
    return {
        "SENSORS": settings,
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SECRET_KEY": web.secret_key,
        "MAX_CONTENT_LENGTH": web.max_body_bytes,
        # HttpOnly is Flask's default; Lax keeps cookies off cross-site POSTs.
        "SESSION_COOKIE_SAMESITE": "Lax", "SESSION_COOKIE_SECURE": web.secure_cookies,
        "REMEMBER_COOKIE_SAMESITE": "Lax", "REMEMBER_COOKIE_SECURE": web.secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_CHECK_DEFAULT": False,  # see flask_front.access.protect_cookie_writes
        "WTF_CSRF_TIME_LIMIT": None,  # valid for the session: a dashboard tab may stay open for days
        "RATELIMIT_STORAGE_URI": web.limiter_storage,
        "RATELIMIT_HEADERS_ENABLED": True,
        "API_TITLE": "Sensor monitoring API", "API_VERSION": "v1", "OPENAPI_VERSION": "3.0.3",
        # The docs page is flask_front/api/docs.py: flask-smorest's own has an inline script.
        "OPENAPI_URL_PREFIX": "/api/v1", "OPENAPI_JSON_PATH": "openapi.json",
    }


def init_extensions(app: Flask, settings: config_mod.Config) -> None:
    """Bind the extensions of flask_front.extensions to `app`."""
    from flask_front import access
    from flask_front.api import tasks as task_api
    from flask_front.extensions import api, cors, csrf, db, limiter, login_manager

    db.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    limiter.init_app(app)
    # Only the listed origins may call the API from their pages; none by default.
    cors.init_app(app, resources={r"/api/*": {"origins": settings.web.origins}},
                  supports_credentials=False)
    api.init_app(app)
    app.before_request(access.protect_cookie_writes)
    app.register_error_handler(sqlalchemy.exc.DBAPIError, database_unavailable)
    task_api.init_app(app)  # the Celery client that sends tasks by name; connects on first use


def register_blueprints(app: Flask) -> None:
    """The API under /api/v1, logins, the dashboard pages, the original routes, charts and the CLI commands."""
    from flask_front import api, auth, charts, cli, csp, dashboard, views

    api.register(app)  # first: it adds the <id:...> converter that the dashboard's routes use
    auth.register(app)
    dashboard.register(app)
    views.register(app)
    charts.register(app)
    cli.register(app)
    csp.init_app(app)

"""The Flask web app: dashboard, charts, JSON API and admin CLI commands."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from lib import config as config_mod, storage


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: settings from db_config.ini, then `config` on top."""
    app = Flask(__name__)
    settings = config_mod.load()
    url = settings.database_url
    app.config.from_mapping(SENSORS=settings, SQLALCHEMY_DATABASE_URI=url)
    if config:
        app.config.from_mapping(config)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", storage.engine_options(url))
    if url.startswith("sqlite:///"):
        storage.make_engine(url).dispose()  # creates the folder of the database file

    from flask_front.extensions import db
    db.init_app(app)

    from flask_front import charts, cli
    cli.register(app)
    charts.register(app)
    return app

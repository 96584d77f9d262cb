"""Logins: the login and logout pages, and the create-user and create-api-token commands."""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("auth", __name__, cli_group=None)

# The routes and commands attach themselves to bp when imported.
from flask_front.auth import commands, views  # noqa: E402,F401


def register(app: Flask) -> None:
    """Attach the login routes and commands."""
    app.register_blueprint(bp)

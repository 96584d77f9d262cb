"""Logins: the login and logout pages, and the create-user and create-api-token commands."""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("auth", __name__, cli_group=None)


def register(app: Flask) -> None:
    """Attach the login routes and commands."""
    app.register_blueprint(bp)

"""API: the web users (administrators only); users are created with the create-user command."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from flask_front.access import admin_required
from flask_front.api import common
from flask_front.api.schemas import timestamp
from lib.storage import users

blp = Blueprint("users", __name__, description="Web users (create them with `flask --app flask_front create-user`)")


class UserSchema(Schema):
    """A web user, without secrets."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    is_admin = fields.Boolean(required=True, metadata={"description": "may change devices, metrics and alerts"})
    created, created_ms = timestamp("when the user was created")


def user_json(info: users.UserInfo) -> dict:
    """A user as the API shows it."""
    return {"id": info.id, "name": info.name, "is_admin": info.is_admin, **common.when(info.created_ms, "created")}


@blp.route("/users")
@admin_required
@blp.response(200, UserSchema(many=True))
@blp.alt_response(401, schema=common.ERROR, description="not logged in")
@blp.alt_response(403, schema=common.ERROR, description="not an administrator")
def list_users():
    """Every user by name (administrators): names and roles, never password hashes or tokens."""
    return [user_json(info) for info in users.list_users(common.engine())]

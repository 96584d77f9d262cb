"""API: the web users (administrators only): list, add, change role or password, delete."""
from __future__ import annotations

import logging

from flask import abort
from flask_login import current_user, login_user
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from flask_front.access import LoginUser, admin_required, caller
from flask_front.api import common
from flask_front.api.schemas import timestamp
from lib.storage import users

log = logging.getLogger(__name__)

blp = Blueprint("users", __name__, description="Web users (also `flask --app flask_front create-user`)")

PASSWORD_RULES = (f"{users.MIN_PASSWORD} characters to {users.MAX_PASSWORD_BYTES} bytes in UTF-8 "
                  "(bcrypt reads no further)")


class UserSchema(Schema):
    """A web user, without secrets."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    is_admin = fields.Boolean(required=True, metadata={"description": "may change devices, metrics and alerts"})
    created, created_ms = timestamp("when the user was created")


class NewUserSchema(Schema):
    """A user to add; without a password the server generates one and returns it once."""

    name = fields.String(required=True, validate=validate.Length(1, users.MAX_NAME), metadata={
        "description": "1 to 64 characters once leading and trailing spaces are removed, no control "
                       "characters; unique ignoring case"})
    password = fields.String(validate=validate.Length(max=1024), metadata={
        "description": PASSWORD_RULES + "; omit it to have a strong one generated"})
    admin = fields.Boolean(load_default=False)


class CreatedUserSchema(UserSchema):
    """The new user; `password` only when the server generated it, and only in this response."""

    password = fields.String(metadata={"description": "the generated password, shown only now"})


class UserChangeSchema(Schema):
    """What to change: the role, the password, or both."""

    admin = fields.Boolean(metadata={"description": "make or unmake an administrator (never yourself, "
                                                    "never the last one)"})
    password = fields.String(validate=validate.Length(max=1024), metadata={"description": PASSWORD_RULES})

    @validates_schema
    def _something(self, data, **kwargs):
        """An empty change is a mistake of the caller, not a success."""
        if not data:
            raise ValidationError("give admin, password or both")


def document(spec) -> None:
    """Register UserChange with what marshmallow cannot say: an empty change is not valid."""
    if "UserChange" not in spec.components.schemas:
        spec.components.schema("UserChange", {"minProperties": 1}, schema=UserChangeSchema)


def user_json(info: users.UserInfo) -> dict:
    """A user as the API shows it."""
    return {"id": info.id, "name": info.name, "is_admin": info.is_admin, **common.when(info.created_ms, "created")}


def _refuse(exc: ValueError):
    """409 for a change that would lock administrators out or a taken name, else 400; with the reason."""
    conflict = isinstance(exc, users.Refused) or "already exists" in str(exc)
    abort(409 if conflict else 400, description=str(exc))


def _no_user(user_id: int):
    """404 for an unknown user id."""
    abort(404, description=f"no user with id {user_id}")


@blp.route("/users")
class Users(MethodView):
    """All users."""

    @admin_required
    @common.admin_doc(blp)
    @blp.response(200, UserSchema(many=True))
    def get(self):
        """Every user by name (administrators): names and roles, never password hashes or tokens."""
        return [user_json(info) for info in users.list_users(common.engine())]

    @admin_required
    @common.admin_doc(blp)
    @blp.doc(responses={201: {"links": {
        "ChangeUser": common.link("/users/{user_id}", "patch", user_id="$response.body#/id"),
        "DeleteUser": common.link("/users/{user_id}", "delete", user_id="$response.body#/id")}}})
    @blp.arguments(NewUserSchema)
    @blp.response(201, CreatedUserSchema)
    @blp.alt_response(400, schema=common.ERROR, description="a bad name or a weak password")
    @blp.alt_response(409, schema=common.ERROR, description="the name is taken")
    def post(self, body):
        """Add a user (administrators); a generated password is returned only in this response."""
        generated = body.get("password") is None
        password = users.generate_password() if generated else body["password"]
        try:
            info = users.create_user(common.engine(), body["name"], password, admin=body["admin"])
        except ValueError as exc:
            _refuse(exc)
        log.info("user %r (admin: %s) added by %r", info.name, info.is_admin, caller().name)
        return {**user_json(info), **({"password": password} if generated else {})}


@blp.route("/users/<id:user_id>")
class OneUser(MethodView):
    """One user."""

    @admin_required
    @common.admin_doc(blp)
    @blp.arguments(UserChangeSchema)
    @blp.response(200, UserSchema)
    @blp.alt_response(400, schema=common.ERROR, description="a weak password")
    @blp.alt_response(404, schema=common.ERROR)
    @blp.alt_response(409, schema=common.ERROR, description="demoting yourself or the last administrator")
    def patch(self, body, user_id: int):
        """Change a user's role or password (administrators); a new password logs the user out
        everywhere, except this browser when it is theirs."""
        try:
            info = users.update_user(common.engine(), user_id, admin=body.get("admin"),
                                     password=body.get("password"), by=caller().id)
        except ValueError as exc:
            _refuse(exc)
        if info is None:
            _no_user(user_id)
        if "password" in body and current_user.is_authenticated and current_user.id == info.id:
            login_user(LoginUser(info))  # this session now carries the new password's stamp
        log.info("user %r changed by %r: %s", info.name, caller().name, ", ".join(sorted(body)))
        return user_json(info)

    @admin_required
    @common.admin_doc(blp)
    @blp.response(204)
    @blp.alt_response(404, schema=common.ERROR)
    @blp.alt_response(409, schema=common.ERROR, description="deleting yourself or the last administrator")
    def delete(self, user_id: int):
        """Delete a user (administrators): their API tokens stop at once, their sessions at the next request."""
        try:
            info = users.delete_user(common.engine(), user_id, by=caller().id)
        except users.Refused as exc:
            _refuse(exc)
        if info is None:
            _no_user(user_id)
        log.info("user %r deleted by %r", info.name, caller().name)

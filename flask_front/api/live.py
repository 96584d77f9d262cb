"""API: tokens for the live WebSocket (/live on the ingest server), which pushes readings to browsers."""
from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from flask_front.access import read_access
from flask_front.api import common
from lib import live

blp = Blueprint("live", __name__, description="Live readings pushed to browsers")
NO_STORE = {"Cache-Control": "no-store"}


class LiveTokenSchema(Schema):
    """Where and with what token a browser opens the live WebSocket."""

    url = fields.String(required=True, metadata={
        "description": "the WebSocket to open with ?token=<token> appended; each message is "
                       '{"readings": [{"device_id", "device", "ts" (epoch ms UTC), "values"}]}',
        "example": "ws://localhost:8080/live"})
    token = fields.String(required=True, metadata={"description": "signed, short-lived; "
                                                   "a refused one closes the WebSocket with code 1008 and why"})
    expires_in = fields.Integer(required=True, metadata={
        "description": "seconds the token may be used to open the WebSocket ([live] token_seconds)"})


def _secret() -> str:
    """The shared secret, read (or generated) once per app."""
    secret = current_app.extensions.get("sensors_live_secret")
    if secret is None:
        secret = current_app.extensions["sensors_live_secret"] = live.shared_secret(common.settings())
    return secret


@blp.route("/live/token")
@read_access
@blp.response(200, LiveTokenSchema, headers={"Cache-Control": {"description": "no-store",
                                                                "schema": {"type": "string"}}})
def live_token():
    """A token for the live WebSocket, valid for [live] token_seconds; get a new one to reconnect."""
    settings = common.settings()
    return ({"url": live.browser_url(settings, request.host, request.is_secure),
             "token": live.sign_token(_secret()), "expires_in": int(settings.live.token_seconds)},
            200, NO_STORE)

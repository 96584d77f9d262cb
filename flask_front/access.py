"""Who is calling and what they may do: session logins, user API tokens, the [web] public switch."""
from __future__ import annotations

import functools
import time
from typing import Callable

from flask import abort, current_app, g, request
from flask_login import UserMixin, current_user

from flask_front.extensions import csrf, db, login_manager
from lib import storage
from lib.storage import users
from lib.storage.users import UserInfo

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginUser(UserMixin):
    """A logged-in user for Flask-Login."""

    def __init__(self, info: UserInfo) -> None:
        self.info = info
        self.id = info.id

    def get_id(self) -> str:
        """The session's user: id, creation time (SQLite gives a deleted user's id to the next one)
        and password stamp (a new password ends the sessions made with the old one)."""
        return f"{self.info.id}:{self.info.created_ms}:{self.info.password_stamp}"


@login_manager.user_loader
def load_user(session_id: str) -> LoginUser | None:
    """The user of a session cookie (LoginUser.get_id); None when deleted or given a new password since."""
    user_id, _, rest = session_id.partition(":")
    try:
        info = users.get_user(db.engine, int(user_id))
    except ValueError:
        return None
    if info is None or rest != f"{info.created_ms}:{info.password_stamp}":
        return None
    return LoginUser(info)


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer` header, None without one; 401 when malformed."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, description="Authorization must be 'Bearer <token>'")
    return token.strip()


class DeviceTokens:
    """Device ids by token hash, kept `ttl` seconds per worker so most ingest requests look nothing up.

    A revoked device is refused once its entry is older than `ttl` ([ingest] revoke_check_seconds,
    as long as the WebSocket server takes to drop it). Unknown tokens are not kept: a device
    registered a moment ago must not be refused for `ttl`.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._ids: dict[str, tuple[float, int]] = {}  # single dict operations: safe across threads

    def device_id(self, token: str, lookup: Callable[[str], int | None]) -> int | None:
        """The active device holding `token`: cached, else lookup(token hash) from the database."""
        digest, now = storage.hash_token(token), time.monotonic()
        cached = self._ids.get(digest)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        device_id = lookup(digest)
        if device_id is None:
            self._ids.pop(digest, None)
        else:
            if len(self._ids) >= self.max_entries:
                self._ids.clear()  # that many devices on one worker is rare: simpler than LRU, as correct
            self._ids[digest] = (now, device_id)
        return device_id


def device_tokens() -> DeviceTokens:
    """This process's DeviceTokens of the current app."""
    tokens = current_app.extensions.get("sensors_device_tokens")
    if tokens is None:
        ttl = current_app.config["SENSORS"].ingest.revoke_check_seconds
        tokens = current_app.extensions.setdefault("sensors_device_tokens", DeviceTokens(ttl))
    return tokens


def caller() -> UserInfo | None:
    """The user behind this request: an API token, else the session; None when anonymous."""
    if "caller" not in g:
        token = bearer_token()
        if token is not None:
            info = users.authenticate_api_token(db.engine, token)
            if info is None:  # a wrong token is an error, not a quiet fall back to anonymous
                abort(401, description="unknown or revoked API token")
            g.caller = info
        else:
            g.caller = current_user.info if current_user.is_authenticated else None
    return g.caller


def check_read() -> None:
    """401 unless reading is public ([web] public) or someone is logged in."""
    if caller() is None and not current_app.config["SENSORS"].web.public:
        abort(401, description="log in or send an API token: [web] public is off")


def check_admin() -> None:
    """401 for anonymous callers, 403 for users who are not administrators."""
    who = caller()
    if who is None:
        abort(401, description="log in as an administrator or send an administrator's API token")
    if not who.is_admin:
        abort(403, description=f"user {who.name!r} is not an administrator")


def read_access(view: Callable) -> Callable:
    """Decorator: the view reads data (public unless [web] public = off)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_read()
        return view(*args, **kwargs)
    return wrapper


def admin_required(view: Callable) -> Callable:
    """Decorator: the view changes devices, metrics, alert rules or charts."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_admin()
        return view(*args, **kwargs)
    return wrapper


def protect_cookie_writes() -> None:
    """CSRF check for every write authenticated by the session cookie, API or page, a new route included.

    Token callers have no cookie to forge; anonymous writes carry no session (the login form checks its own token).
    """
    if (request.method not in SAFE_METHODS and "Authorization" not in request.headers
            and current_user.is_authenticated):
        csrf.protect()

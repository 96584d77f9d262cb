"""Web users (bcrypt password hashes) and their API tokens (SHA-256, as device tokens)."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

import bcrypt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib.models import ApiToken, User
from lib.storage import hash_token, now_ms

MIN_PASSWORD = 8
MAX_NAME = 64
GENERATED_PASSWORD_BYTES = 15  # 120 random bits, 20 characters of URL-safe base64
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; a longer password would be cut silently
# bcrypt's work factor for new hashes (2**12 rounds, about 0.25 s); a check uses the cost stored in
# the hash. The test suite lowers it to the minimum, since it hashes hundreds of passwords.
BCRYPT_ROUNDS = 12
# Checked against when the user does not exist, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt()).decode()
# A token's last use is written at most this often, so reading the API is not a write per request.
LAST_USED_EVERY_MS = 60_000


@dataclass(frozen=True)
class UserInfo:
    """A user as the web app sees it."""

    id: int
    name: str
    is_admin: bool
    created_ms: int
    password_stamp: str = field(default="", repr=False)  # changes with the password: sessions carry it


def password_stamp(password_hash: str) -> str:
    """A short digest of a password hash: a session made before a new password no longer matches."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def check_new_password(password: str) -> bytes:
    """The password as bytes for bcrypt, or ValueError saying what is wrong with it."""
    data = password.encode("utf-8")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(data) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")
    return data


class Refused(ValueError):
    """A change that would lock administrators out: demoting or deleting oneself, or the last administrator."""


def check_user_name(name: str) -> str:
    """The name without surrounding spaces, or ValueError saying what is wrong with it."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"user name must be 1 to {MAX_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # names go into logs and pages
        raise ValueError(f"user name {name!r} must not contain control characters (newline, tab, NUL…)")
    return name


def generate_password() -> str:
    """A strong random password for a new user, to be shown once."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _hash(password: str) -> str:
    """The bcrypt hash of a new password, or ValueError saying what is wrong with it."""
    return bcrypt.hashpw(check_new_password(password), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def create_user(engine: Engine, name: str, password: str, admin: bool = False) -> UserInfo:
    """Add a user; ValueError for a bad or taken name or a weak password."""
    name = check_user_name(name)
    hashed = _hash(password)
    created = now_ms()
    with engine.begin() as conn:
        # Names differing only in case are refused on SQLite too, as MariaDB's collation does.
        if conn.scalar(sa.select(User.id).where(sa.func.lower(User.name) == name.lower())) is not None:
            raise ValueError(f"user {name!r} already exists")
        result = conn.execute(sa.insert(User).values(
            name=name, password_hash=hashed, is_admin=admin, created_ms=created))
    return UserInfo(result.inserted_primary_key[0], name, admin, created, password_stamp(hashed))


def set_password(engine: Engine, name: str, password: str) -> None:
    """Replace a user's password; ValueError for an unknown user or a weak password."""
    hashed = _hash(password)
    with engine.begin() as conn:
        if conn.execute(sa.update(User).where(User.name == name)
                        .values(password_hash=hashed)).rowcount != 1:
            raise ValueError(f"no user named {name!r}")


def _check_admins_remain(conn: sa.Connection, user_id: int, by: int | None, action: str) -> None:
    """Refused unless another administrator than `user_id` remains, and `by` is not `user_id`."""
    if by == user_id:
        raise Refused(f"you cannot {action} yourself: ask another administrator")
    # Locks the administrators' rows (MariaDB), so two admins demoting each other cannot leave none.
    others = conn.execute(sa.select(User.id).where(User.is_admin, User.id != user_id)
                          .with_for_update()).first()
    if others is None:
        raise Refused(f"cannot {action} the last administrator: make another user an administrator first")


def update_user(engine: Engine, user_id: int, admin: bool | None = None, password: str | None = None,
                by: int | None = None) -> UserInfo | None:
    """Change a user's role and/or password as user `by`; None for no such user; Refused, ValueError."""
    hashed = None if password is None else _hash(password)
    with engine.begin() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(User.id == user_id).with_for_update()).first()
        if row is None:
            return None
        info = _info(row)
        values: dict = {} if hashed is None else {"password_hash": hashed}
        if admin is not None and admin != info.is_admin:
            if not admin:
                _check_admins_remain(conn, user_id, by, "remove the administrator rights of")
            values["is_admin"] = admin
        if values:
            conn.execute(sa.update(User).where(User.id == user_id).values(**values))
    return UserInfo(info.id, info.name, info.is_admin if admin is None else admin, info.created_ms,
                    info.password_stamp if hashed is None else password_stamp(hashed))


def delete_user(engine: Engine, user_id: int, by: int | None = None) -> UserInfo | None:
    """Delete a user and their API tokens as user `by`; None for no such user; Refused for oneself or the last admin."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(User.id == user_id).with_for_update()).first()
        if row is None:
            return None
        info = _info(row)
        if info.is_admin or by == user_id:
            _check_admins_remain(conn, user_id, by, "delete")
        # Explicitly, not only by the foreign key's cascade: an SQLite connection may lack foreign_keys=ON.
        conn.execute(sa.delete(ApiToken).where(ApiToken.user_id == user_id))
        conn.execute(sa.delete(User).where(User.id == user_id))
    return info


def _info(row) -> UserInfo:
    """A UserInfo from a (id, name, is_admin, created_ms, password_hash) row."""
    return UserInfo(row[0], row[1], bool(row[2]), row[3], password_stamp(row[4]))


_COLUMNS = (User.id, User.name, User.is_admin, User.created_ms, User.password_hash)


def check_login(engine: Engine, name: str, password: str) -> UserInfo | None:
    """The user when `password` is theirs, else None (the same time either way)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(User.name == name)).first()
    data = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
    stored = (row[4] if row is not None else _DUMMY_HASH).encode()
    # MariaDB compares names ignoring case (and trailing spaces): the name must match as stored.
    if not bcrypt.checkpw(data, stored) or row is None or row[1] != name:
        return None
    return _info(row)


def get_user(engine: Engine, user_id: int) -> UserInfo | None:
    """The user with this id, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(User.id == user_id)).first()
    return None if row is None else _info(row)


def list_users(engine: Engine) -> list[UserInfo]:
    """All users by name."""
    with engine.connect() as conn:
        return [_info(r) for r in conn.execute(sa.select(*_COLUMNS).order_by(User.name))]


def create_api_token(engine: Engine, user_name: str, label: str = "") -> tuple[int, str]:
    """A new token for the user: (its id, the token, shown once and stored hashed)."""
    token = "su_" + secrets.token_urlsafe(32)  # the prefix tells user tokens from device ones
    with engine.begin() as conn:
        user_id = conn.scalar(sa.select(User.id).where(User.name == user_name))
        if user_id is None:
            raise ValueError(f"no user named {user_name!r}")
        result = conn.execute(sa.insert(ApiToken).values(
            user_id=user_id, token_hash=hash_token(token), label=label[:64], created_ms=now_ms()))
    return result.inserted_primary_key[0], token


def authenticate_api_token(engine: Engine, token: str) -> UserInfo | None:
    """The user holding this API token, or None; records the token's use (at most once a minute)."""
    if not token:
        return None
    digest, now = hash_token(token), now_ms()
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS, ApiToken.id, ApiToken.last_used_ms)
                           .join(ApiToken, ApiToken.user_id == User.id)
                           .where(ApiToken.token_hash == digest)).first()
        if row is None:
            return None
        token_id, last_used = row[len(_COLUMNS):]
        if last_used is None or now - last_used >= LAST_USED_EVERY_MS:
            conn.execute(sa.update(ApiToken).where(ApiToken.id == token_id).values(last_used_ms=now))
            conn.commit()
    return _info(row)


def revoke_api_token(engine: Engine, token_id: int) -> bool:
    """Delete an API token; False when there is none with this id."""
    with engine.begin() as conn:
        return conn.execute(sa.delete(ApiToken).where(ApiToken.id == token_id)).rowcount == 1


@dataclass(frozen=True)
class ApiTokenInfo:
    """An API token as `list-api-tokens` shows it (never the token itself: only its hash is kept)."""

    id: int
    user_name: str
    label: str
    created_ms: int
    last_used_ms: int | None


def list_api_tokens(engine: Engine, user_name: str | None = None) -> list[ApiTokenInfo]:
    """The API tokens of one user (or of everyone) by id; ValueError for an unknown user."""
    query = (sa.select(ApiToken.id, User.name, ApiToken.label, ApiToken.created_ms, ApiToken.last_used_ms)
             .join(User, ApiToken.user_id == User.id).order_by(ApiToken.id))
    with engine.connect() as conn:
        if user_name is not None:
            if conn.scalar(sa.select(User.id).where(User.name == user_name)) is None:
                raise ValueError(f"no user named {user_name!r}")
            query = query.where(User.name == user_name)
        return [ApiTokenInfo(*row) for row in conn.execute(query)]

"""lib.storage.users: users with bcrypt hashes, API tokens stored hashed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from lib.config import REPO_ROOT
from lib.storage import users


def test_create_and_check_login(engine):
    info = users.create_user(engine, "  ann  ", "ann-password", admin=True)
    assert (info.name, info.is_admin) == ("ann", True)
    assert users.check_login(engine, "ann", "ann-password") == info
    assert users.check_login(engine, "ann", "wrong-password") is None
    assert users.check_login(engine, "nobody", "ann-password") is None


@pytest.mark.parametrize("name, password, error", [
    ("", "long-enough", "1 to 64"),
    ("x" * 65, "long-enough", "1 to 64"),
    ("bo", "short", "at least 8"),
    ("bo", "é" * 37, "at most 72 bytes"),
])
def test_create_user_refuses(engine, name, password, error):
    with pytest.raises(ValueError, match=error):
        users.create_user(engine, name, password)
    assert users.list_users(engine) == []


@pytest.mark.parametrize("again", ["ann", "Ann", "ANN", " ann "])
def test_duplicate_user_ignoring_case_on_both_backends(engine, again):
    users.create_user(engine, "ann", "ann-password")
    with pytest.raises(ValueError, match="already exists"):
        users.create_user(engine, again, "other-password")


@pytest.mark.parametrize("typed", ["Ann", "ANN", "ann "])
def test_login_name_must_match_as_stored(engine, typed):
    # MariaDB's collation finds "ann" for these; the login must still refuse them, as SQLite does.
    users.create_user(engine, "ann", "ann-password")
    assert users.check_login(engine, typed, "ann-password") is None


def test_list_api_tokens(engine):
    users.create_user(engine, "ann", "ann-password")
    users.create_user(engine, "bob", "bob-password")
    first, token = users.create_api_token(engine, "ann", "backup")
    second, _ = users.create_api_token(engine, "bob")
    listed = users.list_api_tokens(engine)
    assert [(t.id, t.user_name, t.label, t.last_used_ms) for t in listed] == [
        (first, "ann", "backup", None), (second, "bob", "", None)]
    assert [t.id for t in users.list_api_tokens(engine, "bob")] == [second]
    users.authenticate_api_token(engine, token)
    assert users.list_api_tokens(engine, "ann")[0].last_used_ms is not None
    assert all(token not in repr(t) for t in listed)


def test_list_api_tokens_unknown_user(engine):
    with pytest.raises(ValueError, match="no user named 'ghost'"):
        users.list_api_tokens(engine, "ghost")


def test_revoke_api_token(engine):
    users.create_user(engine, "ann", "ann-password")
    token_id, token = users.create_api_token(engine, "ann")
    assert users.revoke_api_token(engine, token_id) is True
    assert users.authenticate_api_token(engine, token) is None
    assert users.revoke_api_token(engine, token_id) is False
    assert users.list_api_tokens(engine) == []


def test_new_hashes_use_the_configured_bcrypt_cost(engine, monkeypatch):
    """Production hashes cost 2**12; the suite lowers it, and the stored hash carries the cost."""
    printed = subprocess.run([sys.executable, "-c", "from lib.storage import users; print(users.BCRYPT_ROUNDS)"],
                             cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "12"
    monkeypatch.setattr(users, "BCRYPT_ROUNDS", 5)
    users.create_user(engine, "costly", "a long password")
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE name = 'costly'").scalar()
    assert stored.startswith("$2b$05$") and users.check_login(engine, "costly", "a long password")

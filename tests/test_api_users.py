"""/api/v1/users: list, add, change and delete web users, for administrators only, on SQLite and MariaDB."""
from __future__ import annotations

from datetime import datetime

import pytest

from lib.storage import users
from tests.test_access import logged_in
from tests.test_auth import csrf_token, post_login
from tests.web_fixtures import make_app

USERS = "/api/v1/users"
# Where the backend makes no difference, SQLite alone: CI time is short. Cases loop inside a test for the same reason.
SQLITE = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


def test_administrators_list_every_user_without_secrets(web_client, admin, user):
    reply = web_client.get(USERS, headers=admin.headers)
    assert reply.status_code == 200
    got = reply.get_json()
    assert [u["name"] for u in got] == ["admin", "reader"]
    assert {u["name"]: u["is_admin"] for u in got} == {"admin": True, "reader": False}
    assert all(set(u) == {"id", "name", "is_admin", "created", "created_ms"} for u in got)
    for item in got:
        when = datetime.fromisoformat(item["created"].replace("Z", "+00:00"))
        assert round(when.timestamp() * 1000) == item["created_ms"]


WRITES = [("get", USERS, None), ("post", USERS, {"name": "eve", "password": "eve-password"}),
          ("patch", USERS + "/{id}", {"admin": True}), ("delete", USERS + "/{id}", None)]


@SQLITE
def test_others_may_not_list_or_change_users(web_client, engine, admin, user):
    for headers, status in [({}, 401), (user.headers, 403), ({"Authorization": "Bearer nope"}, 401)]:
        for method, path, body in WRITES:
            reply = getattr(web_client, method)(path.format(id=user.id), json=body, headers=headers)
            assert reply.status_code == status and set(reply.get_json()) == {"error", "detail"}, (method, headers)
    assert [(u.name, u.is_admin) for u in users.list_users(engine)] == [("admin", True), ("reader", False)]


@SQLITE
def test_add_users_with_a_given_or_a_generated_password(web_client, admin):
    reply = web_client.post(USERS, json={"name": " ann ", "password": "ann-password"}, headers=admin.headers)
    assert reply.status_code == 201, reply.get_json()
    got = reply.get_json()
    assert (got["name"], got["is_admin"]) == ("ann", False) and "password" not in got
    assert post_login(web_client, "ann", "ann-password").status_code == 302
    # Without a password: a generated one, returned once, that logs in.
    reply = web_client.post(USERS, json={"name": "bob", "admin": True}, headers=admin.headers)
    assert reply.status_code == 201, reply.get_json()
    password = reply.get_json()["password"]
    assert reply.get_json()["is_admin"] is True and len(password) >= 20
    assert "password" not in str(web_client.get(USERS, headers=admin.headers).get_json())
    assert post_login(web_client, "bob", "wrong-password").status_code == 401
    assert post_login(web_client, "bob", password).status_code == 302
    assert web_client.get(USERS).status_code == 200  # bob's session is an administrator's


BAD_NEW_USERS = [
    ({"name": "ann", "password": "short"}, 400, "at least 8"),
    ({"name": "ann", "password": "é" * 37}, 400, "at most 72 bytes"),
    ({"name": "   ", "password": "ann-password"}, 400, "1 to 64"),
    ({"name": "a\nb", "password": "ann-password"}, 400, "control characters"),
    ({"name": "x" * 65}, 422, "name"),
    ({"password": "ann-password"}, 422, "name"),
    ({"name": "ann", "admin": "maybe"}, 422, "admin"),
    ({"name": "ADMIN", "password": "ann-password"}, 409, "already exists"),  # both backends: test_storage_users
]


@SQLITE
def test_bad_new_users_are_refused_with_a_reason(web_client, engine, admin):
    for body, status, reason in BAD_NEW_USERS:
        reply = web_client.post(USERS, json=body, headers=admin.headers)
        assert (reply.status_code, reason in str(reply.get_json()["detail"])) == (status, True), body
    assert [u.name for u in users.list_users(engine)] == ["admin"]


@SQLITE
def test_change_role_and_password(web_client, engine, admin, user):
    path = f"{USERS}/{user.id}"
    reply = web_client.patch(path, json={"admin": True, "password": "new-reader-pw"}, headers=admin.headers)
    assert reply.status_code == 200 and reply.get_json()["is_admin"] is True
    assert users.check_login(engine, "reader", "new-reader-pw").is_admin
    assert users.check_login(engine, "reader", user.password) is None
    assert web_client.patch(path, json={"admin": False}, headers=admin.headers).get_json()["is_admin"] is False
    assert web_client.get(USERS, headers=user.headers).status_code == 403  # the token follows the role


BAD_CHANGES = [
    ("patch", "{id}", {}, 422, "give admin, password or both"),
    ("patch", "{id}", {"password": "short"}, 400, "at least 8"),
    ("patch", "{id}", {"admin": "maybe"}, 422, "admin"),
    ("patch", "999999", {"admin": True}, 404, "no user with id 999999"),
    ("delete", "999999", None, 404, "no user with id 999999"),
]


@SQLITE
def test_bad_changes_are_refused(web_client, engine, admin, user):
    for method, target, body, status, reason in BAD_CHANGES:
        reply = getattr(web_client, method)(f"{USERS}/" + target.format(id=user.id), json=body,
                                            headers=admin.headers)
        assert (reply.status_code, reason in str(reply.get_json()["detail"])) == (status, True), body
    assert users.check_login(engine, "reader", user.password) is not None


@SQLITE
def test_an_administrator_cannot_demote_or_delete_themselves(web_client, engine, admin):
    other = users.create_user(engine, "other-admin", "other-password", admin=True)
    other_headers = {"Authorization": f"Bearer {users.create_api_token(engine, other.name)[1]}"}
    attempts = [("patch", {"admin": False}, 200), ("delete", None, 204)]
    for method, body, _ in attempts:
        reply = getattr(web_client, method)(f"{USERS}/{admin.id}", json=body, headers=admin.headers)
        assert reply.status_code == 409 and "yourself" in reply.get_json()["detail"]
        assert users.get_user(engine, admin.id).is_admin
    for method, body, status in attempts:  # another administrator may
        reply = getattr(web_client, method)(f"{USERS}/{admin.id}", json=body, headers=other_headers)
        assert reply.status_code == status
    assert [u.name for u in users.list_users(engine)] == ["other-admin"]


def test_the_last_administrator_stays(engine, admin, user):
    """Only two administrators demoting each other at once get here through the API: the storage refuses."""
    with pytest.raises(users.Refused, match="last administrator"):
        users.update_user(engine, admin.id, admin=False)
    with pytest.raises(users.Refused, match="last administrator"):
        users.delete_user(engine, admin.id)
    assert users.get_user(engine, admin.id).is_admin
    assert users.delete_user(engine, user.id).name == "reader"  # readers go without asking


@SQLITE
def test_deleting_a_user_ends_their_tokens_and_sessions(web_settings, engine, admin, user):
    app = make_app(web_settings)
    session = logged_in(app, user)
    assert session.get(USERS).status_code == 403  # logged in, not an administrator
    reply = app.test_client().delete(f"{USERS}/{user.id}", headers=admin.headers)
    assert reply.status_code == 204 and reply.get_data() == b""
    assert users.list_api_tokens(engine, None) == users.list_api_tokens(engine, "admin")
    assert app.test_client().get("/api/v1/devices", headers=user.headers).status_code == 401
    assert session.get(USERS).status_code == 401  # the session is anonymous now
    # SQLite gives the deleted user's id to the next user (MariaDB does not): not the session, though.
    reply = app.test_client().post(USERS, json={"name": "newcomer", "admin": True}, headers=admin.headers)
    assert reply.status_code == 201
    assert session.get(USERS).status_code == 401


@SQLITE
def test_cookie_writes_need_the_csrf_header(web_settings, engine, admin):
    client = logged_in(make_app(web_settings, WTF_CSRF_ENABLED=True), admin)
    reply = client.post(USERS, json={"name": "forged", "password": "forged-password"})
    assert reply.status_code == 400 and "CSRF" in str(reply.get_json()["detail"])
    token = csrf_token(client, "/logout")
    reply = client.post(USERS, json={"name": "real", "password": "real-password"}, headers={"X-CSRFToken": token})
    assert reply.status_code == 201
    assert [u.name for u in users.list_users(engine)] == ["admin", "real"]


@SQLITE
def test_documented_in_openapi(web_client):
    spec = web_client.get("/api/v1/openapi.json").get_json()
    listing = spec["paths"]["/api/v1/users"]
    assert set(listing["get"]["responses"]) >= {"200", "401", "403"}
    assert set(listing["post"]["responses"]) >= {"201", "400", "401", "403", "409", "422"}
    one = spec["paths"]["/api/v1/users/{user_id}"]
    assert set(one["patch"]["responses"]) >= {"200", "400", "401", "403", "404", "409", "422"}
    assert set(one["delete"]["responses"]) >= {"204", "401", "403", "404", "409"}
    assert {"NewUser", "CreatedUser", "UserChange"} <= set(spec["components"]["schemas"])

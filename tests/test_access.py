"""Who may call the API: anonymous, users, admins; by API token or session; the public switch; CSRF."""
from __future__ import annotations

import pytest

from tests.test_auth import csrf_token, post_login
from tests.web_fixtures import make_app

DEVICES = "/api/v1/devices"


@pytest.fixture
def closed_app(web_settings):
    """The web app with [web] public = off."""
    return make_app(web_settings.with_overrides({"web": {"public": False}}))


@pytest.fixture
def csrf_app(web_settings):
    """The web app with CSRF checks explicitly on."""
    return make_app(web_settings, WTF_CSRF_ENABLED=True)


def logged_in(app, account):
    """A test client of `app` holding `account`'s session cookie."""
    client = app.test_client()
    assert post_login(client, account.name, account.password).status_code == 302
    return client


def test_anonymous_read_when_public(web_client):
    reply = web_client.get(DEVICES)
    assert reply.status_code == 200 and reply.get_json() == []


def test_anonymous_read_refused_when_not_public(closed_app):
    reply = closed_app.test_client().get(DEVICES)
    assert reply.status_code == 401
    assert reply.get_json()["error"] == "Unauthorized" and "public" in reply.get_json()["detail"]


@pytest.mark.parametrize("who", ["user", "admin"])
def test_api_token_reads_when_not_public(closed_app, request, who):
    account = request.getfixturevalue(who)
    assert closed_app.test_client().get(DEVICES, headers=account.headers).status_code == 200


def test_session_reads_when_not_public(closed_app, user):
    assert logged_in(closed_app, user).get(DEVICES).status_code == 200


@pytest.mark.parametrize("header", ["Bearer su_not-a-real-token", "Bearer ", "Basic dXNlcjpwdw==",
                                    "su_no-scheme", "Bearer a b"])
def test_bad_token_is_401_even_when_public(web_client, user, header):
    reply = web_client.get(DEVICES, headers={"Authorization": header})
    assert reply.status_code == 401 and reply.is_json


def test_revoked_token_is_401(web_client, engine, user):
    from lib.storage import users

    token_id, token = users.create_api_token(engine, user.name)
    assert web_client.get(DEVICES, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    users.revoke_api_token(engine, token_id)
    assert web_client.get(DEVICES, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_post_anonymous_401(web_client):
    reply = web_client.post(DEVICES, json={"name": "pi-anon"})
    assert reply.status_code == 401 and reply.is_json


def test_post_non_admin_token_403(web_client, user):
    reply = web_client.post(DEVICES, json={"name": "pi-user"}, headers=user.headers)
    assert reply.status_code == 403 and user.name in reply.get_json()["detail"]


def test_post_admin_token_201(web_client, admin):
    reply = web_client.post(DEVICES, json={"name": "pi-admin"}, headers=admin.headers)
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["name"] == "pi-admin" and reply.get_json()["token"]
    assert [d["name"] for d in web_client.get(DEVICES).get_json()] == ["pi-admin"]


def test_cookie_write_without_csrf_header_is_400(csrf_app, admin):
    client = logged_in(csrf_app, admin)
    reply = client.post(DEVICES, json={"name": "pi-forged"})
    assert reply.status_code == 400 and reply.is_json
    assert "CSRF" in str(reply.get_json()["detail"])
    assert client.get(DEVICES).get_json() == []


@pytest.mark.parametrize("source", ["page", "generate_csrf"])
def test_cookie_write_with_csrf_header_is_201(csrf_app, admin, source):
    client = logged_in(csrf_app, admin)
    if source == "page":
        token = csrf_token(client, "/logout")
    else:  # what a page of the app would embed: generate_csrf with the session's CSRF secret
        from flask import session
        from flask_wtf.csrf import generate_csrf

        with client.session_transaction() as stored:
            raw = stored["csrf_token"]
        with csrf_app.test_request_context():
            session["csrf_token"] = raw
            token = generate_csrf()
    reply = client.post(DEVICES, json={"name": "pi-session"}, headers={"X-CSRFToken": token})
    assert reply.status_code == 201, reply.get_json()


def test_cookie_write_by_non_admin_is_403(csrf_app, user):
    client = logged_in(csrf_app, user)
    token = csrf_token(client, "/logout")
    reply = client.post(DEVICES, json={"name": "pi-user"}, headers={"X-CSRFToken": token})
    assert reply.status_code == 403


def test_token_write_needs_no_csrf_header(csrf_app, admin):
    reply = csrf_app.test_client().post(DEVICES, json={"name": "pi-script"}, headers=admin.headers)
    assert reply.status_code == 201


def test_logged_out_session_cannot_write(csrf_app, admin):
    client = logged_in(csrf_app, admin)
    token = csrf_token(client, "/logout")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    reply = client.post(DEVICES, json={"name": "pi-after"}, headers={"X-CSRFToken": token})
    assert reply.status_code == 401

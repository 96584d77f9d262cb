"""Logins: the login and logout pages, CSRF, the login rate limit, cookies, the secret key, the CLI."""
from __future__ import annotations

import logging
import re
import stat
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from flask_front import create_app
from flask_front.auth.views import safe_next
from lib.storage import users
from tests.web_fixtures import make_app

TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the form at `path`, as a browser would read it."""
    page = client.get(path)
    assert page.status_code == 200
    match = TOKEN_RE.search(page.get_data(as_text=True))
    assert match, "the form has no CSRF token"
    return match.group(1)


def post_login(client, name: str, password: str, ip: str = "127.0.0.1", query: str = ""):
    """POST the login form from address `ip` with a valid CSRF token."""
    data = {"name": name, "password": password, "csrf_token": csrf_token(client)}
    return client.post(f"/login{query}", data=data, environ_base={"REMOTE_ADDR": ip})


def session_user(client) -> str | None:
    """The user id in the client's session (Flask-Login's "id:created_ms"), None when logged out."""
    with client.session_transaction() as session:
        return session["_user_id"].partition(":")[0] if "_user_id" in session else None


# ---- logging in and out ---------------------------------------------------------------

def test_login_page_has_form_with_csrf_token(web_client):
    page = web_client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="name"' in html and 'type="password"' in html and TOKEN_RE.search(html)
    # A strict CSP needs no inline scripts: each one is loaded from a file.
    assert all(" src=" in tag for tag in re.findall(r"<script[^>]*>", html))


def test_login_success_sets_session_and_redirects_home(web_client, user):
    reply = post_login(web_client, user.name, user.password)
    assert reply.status_code == 302 and reply.headers["Location"] == "/"
    assert session_user(web_client) == str(user.id)
    assert user.name in web_client.get("/login").get_data(as_text=True)  # shown in the header


@pytest.mark.parametrize("name, password", [
    ("reader", "wrong-password"),
    ("nobody", "reader-password"),
    ("READER", "reader-password"),
    ("reader", "reader-password" + "x" * 200),
])
def test_login_failure_shows_message_with_401(web_client, user, name, password):
    reply = post_login(web_client, name, password)
    assert reply.status_code == 401
    assert "wrong user name or password" in reply.get_data(as_text=True)
    assert session_user(web_client) is None


@pytest.mark.parametrize("data", [{"name": "", "password": "x"}, {"name": "reader"},
                                  {"name": "r" * 65, "password": "reader-password"}])
def test_login_invalid_form_is_400(web_client, user, data):
    reply = web_client.post("/login", data={**data, "csrf_token": csrf_token(web_client)})
    assert reply.status_code == 400
    assert session_user(web_client) is None


@pytest.mark.parametrize("target, expected", [
    ("/charts", "/charts"),
    ("/charts?window=24h", "/charts?window=24h"),
    ("//evil.example", "/"),
    ("https://evil.example", "/"),
    ("https://evil.example/charts", "/"),
    ("/\\evil.example", "/"),
    ("/\t/evil.example", "/"),
    ("javascript:x", "/"),
    ("charts", "/"),
    ("", "/"),
])
def test_login_next_only_redirects_on_site(web_client, user, target, expected):
    reply = post_login(web_client, user.name, user.password, query=f"?next={quote(target, safe='')}")
    assert reply.status_code == 302
    assert reply.headers["Location"] == expected


@pytest.mark.parametrize("target", [None, "/", "/a/b?c=d", "//x", "/\\x", "http:/x", "\x00/"])
def test_safe_next_returns_a_local_path(target):
    result = safe_next(target)
    assert result.startswith("/") and not result.startswith("//") and "\\" not in result


def test_logout_needs_post_with_csrf(web_client, user):
    post_login(web_client, user.name, user.password)
    confirm = web_client.get("/logout")
    assert confirm.status_code == 200 and session_user(web_client) == str(user.id)
    forged = web_client.post("/logout", data={})
    assert forged.status_code == 400 and session_user(web_client) == str(user.id)
    reply = web_client.post("/logout", data={"csrf_token": csrf_token(web_client, "/logout")})
    assert reply.status_code == 302 and reply.headers["Location"] == "/"
    assert session_user(web_client) is None


def shown_as(client) -> bool:
    """Whether a page shows the client logged in (its header names the user)."""
    return "Log out" in client.get("/login").get_data(as_text=True)


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(web_app, user, engine):
    """A stolen session cookie (or a forgotten browser) stops working when the password is changed."""
    browsers = [web_app.test_client() for _ in range(2)]
    for browser in browsers:
        post_login(browser, user.name, user.password)
        assert shown_as(browser)
    users.set_password(engine, user.name, "a-new-long-password")
    assert not any(shown_as(browser) for browser in browsers)
    post_login(browsers[0], user.name, "a-new-long-password")
    assert shown_as(browsers[0])


def test_changing_ones_own_password_keeps_this_session_only(web_app, admin):
    """As on most sites: the browser that changed it stays logged in, every other one is logged out."""
    here, elsewhere = web_app.test_client(), web_app.test_client()
    for browser in (here, elsewhere):
        post_login(browser, admin.name, admin.password)
    reply = here.patch(f"/api/v1/users/{admin.id}", json={"password": "a-new-long-password"},
                       headers={"X-CSRFToken": csrf_token(here, "/logout")})
    assert reply.status_code == 200, reply.get_json()
    assert shown_as(here) and not shown_as(elsewhere)


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_forged_login_form_is_rejected(web_settings, user, token):
    client = make_app(web_settings, WTF_CSRF_ENABLED=True).test_client()
    client.get("/login")  # a session exists, but the form carries no valid token
    data = {"name": user.name, "password": user.password, **({"csrf_token": token} if token else {})}
    reply = client.post("/login", data=data)
    assert reply.status_code == 400
    assert "did not come from this site" in reply.get_data(as_text=True)
    assert session_user(client) is None


def test_token_from_another_session_is_rejected(web_settings, user):
    app = make_app(web_settings, WTF_CSRF_ENABLED=True)
    token = csrf_token(app.test_client())
    victim = app.test_client()
    victim.get("/login")
    reply = victim.post("/login", data={"name": user.name, "password": user.password, "csrf_token": token})
    assert reply.status_code == 400


def next_of(reply) -> str:
    """The `next` parameter of a redirect to the login page."""
    location = urlsplit(reply.headers["Location"])
    assert reply.status_code == 302 and location.path == "/login"
    return parse_qs(location.query)["next"][0]


def test_unauthorized_page_redirects_to_login(web_app):
    from flask_login import login_required

    web_app.add_url_rule("/private", "private", login_required(lambda: "secret"))
    reply = web_app.test_client().get("/private?x=1")
    assert reply.status_code == 302
    assert next_of(reply) == "/private?x=1"


def test_unauthorized_page_abort_401_redirects_but_api_stays_json(web_app):
    from flask import abort

    web_app.add_url_rule("/closed", "closed", lambda: abort(401))
    client = web_app.test_client()
    assert next_of(client.get("/closed")) == "/closed"
    reply = client.get("/api/v1/devices", headers={"Authorization": "Bearer wrong"})
    assert reply.status_code == 401 and reply.is_json
    assert reply.get_json()["error"] == "Unauthorized"


# ---- rate limit -------------------------------------------------------------------------

@pytest.fixture
def limited_client(web_settings):
    """A client of an app allowing 3 login attempts a minute."""
    return make_app(web_settings.with_overrides({"web": {"login_limit": "3 per minute"}})).test_client()


def test_rate_limit_per_address(limited_client, user):
    for i in range(3):
        assert post_login(limited_client, f"name{i}", "wrong-password").status_code == 401
    reply = post_login(limited_client, user.name, user.password)
    assert reply.status_code == 429
    assert "Too many login attempts" in reply.get_data(as_text=True)
    assert 0 < int(reply.headers["Retry-After"]) <= 60
    assert session_user(limited_client) is None
    # another address is not blocked
    assert post_login(limited_client, user.name, user.password, ip="10.0.0.9").status_code == 302


def test_rate_limit_per_user_name(limited_client, user):
    for i in range(3):
        assert post_login(limited_client, user.name, "wrong-password", ip=f"10.0.0.{i}").status_code == 401
    assert post_login(limited_client, user.name, user.password, ip="10.0.1.1").status_code == 429
    assert post_login(limited_client, "someone-else", "x-password", ip="10.0.1.1").status_code == 401


def test_rate_limit_per_user_name_ignores_case(limited_client, user):
    for i, name in enumerate(["reader", "READER", " Reader"]):
        assert post_login(limited_client, name, "wrong-password", ip=f"10.0.0.{i}").status_code == 401
    assert post_login(limited_client, "rEaDeR", "wrong-password", ip="10.0.1.1").status_code == 429


def test_rate_limit_counts_only_posts(limited_client, user):
    for _ in range(6):
        assert limited_client.get("/login").status_code == 200
    assert post_login(limited_client, user.name, user.password).status_code == 302


def test_login_limit_does_not_limit_the_api(limited_client):
    for _ in range(5):
        assert limited_client.get("/api/v1/openapi.json").status_code == 200


# ---- cookies and the secret key ---------------------------------------------------------

def cookie_headers(reply) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {h.split("=", 1)[0]: h for h in reply.headers.getlist("Set-Cookie")}


@pytest.mark.parametrize("secure", [False, True])
def test_session_and_remember_cookies_flags(web_settings, user, secure):
    client = make_app(web_settings.with_overrides({"web": {"secure_cookies": secure}})).test_client()
    # The test client sends Secure cookies back over https only.
    base = "https://localhost" if secure else "http://localhost"
    token = TOKEN_RE.search(client.get("/login", base_url=base).get_data(as_text=True))[1]
    reply = client.post("/login", base_url=base, data={
        "name": user.name, "password": user.password, "csrf_token": token, "remember": "y"})
    assert reply.status_code == 302
    cookies = cookie_headers(reply)
    assert {"session", "remember_token"} <= set(cookies)
    for header in cookies.values():
        assert "HttpOnly" in header and "SameSite=Lax" in header, header
        assert ("Secure" in header) is secure, header


def test_secret_key_created_0600_reused_and_never_logged(web_settings, caplog):
    caplog.set_level(logging.DEBUG)
    config = {"SENSORS": web_settings, "SQLALCHEMY_DATABASE_URI": web_settings.database_url}
    path = web_settings.var_dir / "secret_key"
    assert not path.exists()
    first = create_app(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = first.config["SECRET_KEY"]
    assert len(secret) >= 32 and path.read_text().strip() == secret
    second = create_app(config)
    assert second.config["SECRET_KEY"] == secret
    second.test_client().post("/login", data={"name": "x", "password": "y"})
    assert secret not in caplog.text
    assert caplog.records  # something was logged, so the check above looked at real output


def test_configured_secret_key_writes_no_file(web_settings):
    cfg = web_settings.with_overrides({"web": {"secret_key": "configured-secret-key"}})
    app = create_app({"SENSORS": cfg, "SQLALCHEMY_DATABASE_URI": cfg.database_url})
    assert app.config["SECRET_KEY"] == "configured-secret-key"
    assert not (cfg.var_dir / "secret_key").exists()


# ---- commands ---------------------------------------------------------------------------

@pytest.fixture
def cli(web_app):
    """Run a flask command of web_app: cli(args, input) -> click Result."""
    runner = web_app.test_cli_runner()
    return lambda args, input=None: runner.invoke(args=args, input=input)


def test_create_user_asks_twice_and_user_can_log_in(cli, web_client, engine):
    result = cli(["create-user", "alice", "--admin"], input="alice-secret\nalice-secret\n")
    assert result.exit_code == 0, result.output
    assert "alice-secret" not in result.output  # hidden input
    assert "administrator 'alice' created" in result.output
    info = users.check_login(engine, "alice", "alice-secret")
    assert info is not None and info.is_admin
    assert post_login(web_client, "alice", "alice-secret").status_code == 302


def test_create_user_mismatch_asks_again(cli, engine):
    result = cli(["create-user", "bob"], input="bob-secret1\nbob-secret2\nbob-secret3\nbob-secret3\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert users.check_login(engine, "bob", "bob-secret3") is not None
    assert not users.check_login(engine, "bob", "bob-secret3").is_admin


def test_create_user_short_password_asks_again(cli, engine):
    result = cli(["create-user", "carol"], input="short\ncarol-secret\ncarol-secret\n")
    assert result.exit_code == 0, result.output
    assert "at least 8 characters" in result.output


@pytest.mark.parametrize("stdin, error", [
    ("short\n", "at least 8 characters"),
    ("\n", "no password on standard input"),
    ("", "no password on standard input"),
    ("x" * 73 + "\n", "at most 72 bytes"),
])
def test_create_user_password_stdin_errors(cli, engine, stdin, error):
    result = cli(["create-user", "dave", "--password-stdin"], input=stdin)
    assert result.exit_code == 1
    assert error in result.output
    assert users.list_users(engine) == []


def test_create_user_password_stdin(cli, engine):
    result = cli(["create-user", "erin", "--password-stdin"], input="erin secret with spaces\r\n")
    assert result.exit_code == 0, result.output
    assert users.check_login(engine, "erin", "erin secret with spaces") is not None


def test_create_user_duplicate_fails_before_asking(cli, user):
    result = cli(["create-user", user.name])
    assert result.exit_code == 1
    assert f"user '{user.name}' already exists" in result.output
    assert "Password" not in result.output


def test_create_api_token_last_line_authenticates(cli, engine, user):
    result = cli(["create-api-token", user.name, "--label", "backup"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) >= 2
    info = users.authenticate_api_token(engine, lines[-1])
    assert info is not None and info.name == user.name
    listed = cli(["list-api-tokens", user.name]).output
    assert "backup" in listed and lines[-1] not in listed


def test_create_api_token_unknown_user(cli):
    result = cli(["create-api-token", "nobody"])
    assert result.exit_code == 1 and "no user named 'nobody'" in result.output


def test_revoke_api_token(cli, engine, user):
    token_id, token = users.create_api_token(engine, user.name)
    result = cli(["revoke-api-token", str(token_id)])
    assert result.exit_code == 0, result.output
    assert users.authenticate_api_token(engine, token) is None
    again = cli(["revoke-api-token", str(token_id)])
    assert again.exit_code == 1 and f"no API token with id {token_id}" in again.output


def test_list_users(cli, admin, user):
    lines = cli(["list-users"]).output.strip().splitlines()
    assert [line.split("\t")[1:3] for line in lines] == [["admin", "admin"], ["reader", "user"]]


def test_set_password(cli, engine, user):
    result = cli(["set-password", user.name, "--password-stdin"], input="new-password\n")
    assert result.exit_code == 0, result.output
    assert users.check_login(engine, user.name, "new-password") is not None
    assert users.check_login(engine, user.name, user.password) is None
    assert cli(["set-password", "nobody", "--password-stdin"], input="new-password\n").exit_code == 1

"""The web app's security headers and checks, over every route of its url_map (so a new route is covered).

CSRF on every cookie-authenticated write, 403 for a user's session on every admin action,
X-Content-Type-Options on every response, the strict CSP on every HTML page, no CORS headers
unless configured. Cookie flags, the login rate limit and the `next` check: tests/test_auth.py.
"""
from __future__ import annotations

import pytest
from flask import Flask

from flask_front.csp import HEADER as CSP, POLICY
from lib import storage
from lib.celery_config import prepare_folders
from lib.storage import users
from tests.conftest import reset_database, sqlite_settings
from tests.test_auth import csrf_token, post_login
from tests.web_fixtures import make_account, make_app

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# Writes that are not admin actions: the login forms, and HTTP ingest (a device token, never a session).
NOT_ADMIN = {"auth.login", "auth.logout", "ingest.post_readings"}
# Pages and API reads for administrators only.
ADMIN_READS = {"/admin", "/admin/", "/admin/devices", "/admin/metrics", "/admin/users", "/api/v1/users"}
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An app with CSRF checks on (SQLite), an admin, a user, a device and a chart file."""
    folder = tmp_path_factory.mktemp("websec")
    cfg = sqlite_settings(folder / "sensors.db")
    reset_database(cfg)
    cfg = cfg.with_overrides({"other": {"var_dir": str(folder / "var"), "flask_path": str(folder / "charts")},
                              "celery": {"embedded_dir": str(folder / "celery")}})
    prepare_folders(cfg)  # the embedded broker's folders, as a worker makes them
    engine = storage.make_engine(cfg.database_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "BCRYPT_ROUNDS", 4)  # the lowest cost: logins check at the stored cost
        admin, user = make_account(engine, "admin", True), make_account(engine, "reader", False)
    device, _ = storage.add_device(engine, "pi-websec")
    (folder / "charts" / "r1").mkdir(parents=True)
    (folder / "charts" / "r1" / "co2_24h.html").write_text("<html><body>chart</body></html>")
    engine.dispose()
    return cfg, admin, user, device.id


def app_of(site, **config) -> Flask:
    return make_app(site[0], WTF_CSRF_ENABLED=True, **config)


def session_of(app: Flask, account):
    """A test client holding `account`'s session cookie (logged in through the form)."""
    client = app.test_client()
    assert post_login(client, account.name, account.password).status_code == 302
    return client


FILES = {"static": "js/common.js", "chart_files.echarts_file": "echarts.min.js",
         "swagger_ui_file": "swagger-ui.css", "chart_files.chart_file": "r1/co2_24h.html"}


def sample(name: str, endpoint: str, device_id: int) -> object:
    """A value for a route argument: the device, a file that exists, 1 for other ids, else text."""
    if name == "device_id":
        return device_id
    if name == "filename":
        return FILES.get(endpoint, "x")
    return 1 if name.endswith("_id") and name != "task_id" else "x"


def urls(app: Flask, methods: set[str], device_id: int) -> list[tuple[str, str, str]]:
    """(method, url, endpoint) of every rule of the app serving one of `methods`, with sample arguments."""
    found = []
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        for rule in app.url_map.iter_rules():
            values = {name: sample(name, rule.endpoint, device_id) for name in rule.arguments}
            for method in sorted(rule.methods & methods):
                found.append((method, adapter.build(rule.endpoint, values, method=method), rule.endpoint))
    return found


def unprotected_writes(app: Flask, account, device_id: int) -> dict[str, int]:
    """Writes a logged-in session could make without a CSRF token: {"METHOD url": status}."""
    client = session_of(app, account)
    leaks = {}
    for method, url, _ in urls(app, WRITES, device_id):
        reply = client.open(url, method=method, json={"name": "forged"})
        if reply.status_code != 400 or "CSRF" not in reply.get_data(as_text=True):
            leaks[f"{method} {url}"] = reply.status_code
    return leaks


def test_every_cookie_authenticated_write_needs_a_csrf_token(site):
    """Every POST/PUT/PATCH/DELETE route refuses a forged request from an administrator's browser."""
    cfg, admin, _, device_id = site
    app = app_of(site)
    assert len(urls(app, WRITES, device_id)) >= 9
    assert unprotected_writes(app, admin, device_id) == {}


def test_a_new_write_route_is_covered_too(site):
    """A route added without any CSRF handling of its own, page or API, is protected all the same."""
    app = app_of(site)
    app.add_url_rule("/api/v1/new-thing", "new_api", lambda: "done", methods=["POST"])
    app.add_url_rule("/admin/new-action", "new_page", lambda: "done", methods=["POST", "DELETE"])
    assert unprotected_writes(app, site[1], site[3]) == {}


def test_every_admin_action_refuses_a_users_session_with_403(site):
    """A logged-in user who is not an administrator, with a valid CSRF token, gets 403 for every admin write and page."""
    _, _, user, device_id = site
    app = app_of(site)
    client = session_of(app, user)
    token = csrf_token(client, "/logout")
    allowed = {}
    for method, url, endpoint in urls(app, WRITES, device_id):
        if endpoint in NOT_ADMIN:
            continue
        reply = client.open(url, method=method, json={"name": "by-user"}, headers={"X-CSRFToken": token})
        if reply.status_code != 403:
            allowed[f"{method} {url}"] = reply.status_code
    for url in ADMIN_READS:
        reply = client.get(url)
        if reply.status_code != 403 and not (url == "/admin" and reply.status_code == 308):
            allowed[f"GET {url}"] = reply.status_code
    assert allowed == {}


def every_response(site, headers=None) -> list[tuple[str, object]]:
    """One response of each kind the app gives: each GET route (as admin), writes, errors, redirects."""
    _, admin, _, device_id = site
    app = app_of(site)
    admin_client, anonymous = session_of(app, admin), app.test_client()
    token = csrf_token(admin_client, "/logout")
    replies = [(f"GET {url}", admin_client.get(url, headers=headers))
               for _, url, _ in urls(app, {"GET"}, device_id)]
    replies += [(f"GET {url}", anonymous.get(url, headers=headers))
                for url in ("/static/css/style.css", "/static/favicon.svg", "/static/js/none.js")]
    replies += [
        ("GET anonymous /admin/devices (redirect)", anonymous.get("/admin/devices", headers=headers)),
        ("GET /nowhere (404)", anonymous.get("/nowhere", headers=headers)),
        ("GET /api/v1/nowhere (404 JSON)", anonymous.get("/api/v1/nowhere", headers=headers)),
        ("PUT /api/v1/devices (405)", anonymous.put("/api/v1/devices", headers=headers)),
        ("POST /api/v1/devices anonymous (401)", anonymous.post("/api/v1/devices", json={}, headers=headers)),
        ("POST /api/v1/devices forged (400)", admin_client.post("/api/v1/devices", json={"name": "x"},
                                                               headers=headers)),
        ("POST /api/v1/devices (201)", admin_client.post(
            "/api/v1/devices", json={"name": "pi-new"}, headers={"X-CSRFToken": token, **(headers or {})})),
        ("POST /api/v1/readings bad token (401)", anonymous.post(
            "/api/v1/readings", data="{}", headers={"Authorization": "Bearer nope", **(headers or {})})),
        ("POST /api/v1/readings too big (413)", anonymous.post(
            "/api/v1/readings", data=b"x" * (2 << 20), headers=headers)),
        ("GET readings.csv", admin_client.get(f"/api/v1/devices/{device_id}/readings.csv?download=1",
                                              headers=headers)),
        ("HEAD /", admin_client.head("/", headers=headers)),
        ("OPTIONS /api/v1/devices", anonymous.options("/api/v1/devices", headers=headers)),
    ]
    return replies


def test_every_response_has_nosniff_and_every_page_the_strict_csp(site):
    """X-Content-Type-Options: nosniff whatever the type (JSON, CSV, JS, CSS, SVG, errors, redirects)."""
    replies = every_response(site)
    kinds = {reply.mimetype for _, reply in replies}
    assert {"text/html", "application/json", "text/csv", "text/javascript", "text/css", "image/svg+xml"} <= kinds
    missing = [name for name, reply in replies if reply.headers.get("X-Content-Type-Options") != "nosniff"]
    assert missing == []
    for name, reply in replies:
        if reply.mimetype == "text/html" and reply.status_code == 200:
            policy = reply.headers.get(CSP, "")
            if "/charts/r1/" in name:  # rendered chart pages: their own sandboxed policy
                assert "sandbox allow-scripts" in policy, name
            else:
                assert policy.startswith(POLICY.split("{")[0]) and "unsafe-inline" not in policy, name


def test_no_cors_headers_on_any_response_unless_configured(site):
    """A page of another site gets no Access-Control-* header from any route (tests/test_app.py: configured)."""
    replies = every_response(site, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    granted = {name: [h for h in reply.headers.keys() if h.lower().startswith("access-control-")]
               for name, reply in replies}
    assert {name: headers for name, headers in granted.items() if headers} == {}

"""App-wide behaviour: JSON errors under /api, CORS only for configured origins, 503 when the database is down."""
from __future__ import annotations

import pytest

from tests.web_fixtures import make_app


@pytest.mark.parametrize("method,path,status", [
    ("get", "/api/v1/nowhere", 404),
    ("put", "/api/v1/devices", 405),
    ("get", "/api/v1/devices/abc", 404),
    ("get", "/api/v1/devices/-1", 404),
    ("post", "/api/v1/alerts/rules/1", 405),
])
def test_api_errors_are_json(web_client, method, path, status):
    response = getattr(web_client, method)(path)
    assert response.status_code == status
    assert response.is_json and set(response.json) == {"error", "detail"}


def test_pages_keep_html_errors(web_client):
    response = web_client.get("/no-such-page")
    assert response.status_code == 404 and not response.is_json


def test_a_body_over_the_limit_is_413_json(web_settings, admin):
    client = make_app(web_settings.with_overrides({"web": {"max_body_bytes": "2048"}})).test_client()
    response = client.post("/api/v1/devices", data="x" * 5000, content_type="application/json",
                           headers=admin.headers)
    assert response.status_code == 413 and set(response.json) == {"error", "detail"}


def test_no_cors_by_default(web_client):
    response = web_client.get("/api/v1/metrics", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_for_configured_origins_only(web_settings):
    cfg = web_settings.with_overrides({"web": {"cors_origins": "https://dash.example, http://lab:8000"}})
    client = make_app(cfg).test_client()
    allowed = client.get("/api/v1/metrics", headers={"Origin": "http://lab:8000"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://lab:8000"
    other = client.get("/api/v1/metrics", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/api/v1/devices", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "Access-Control-Allow-Credentials" not in preflight.headers


def test_the_database_down_gives_503_json_not_500(web_settings):
    """An API read while the database is unreachable: 503 with Retry-After, never a 500."""
    cfg = web_settings.with_overrides({"mysql": {"host": "127.0.0.1", "port": "1", "user": "root",
                                                 "database": "sensors_down"}})
    client = make_app(cfg).test_client()
    for path in ("/api/v1/devices", "/api/v1/metrics", "/api/v1/devices/1/readings", "/realTime"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.data)
        assert response.headers["Retry-After"] == "5"
        if path.startswith("/api/"):
            assert response.json["detail"].startswith("the database is unavailable")

"""GET /api/v1/healthz (and /healthz): database and broker reachability, 200 or 503."""
from __future__ import annotations


import pytest

from tests.conftest import RABBITMQ, closed_port, require_rabbitmq
from tests.web_fixtures import make_app

URLS = ["/api/v1/healthz", "/healthz"]


def broker_settings(web_settings, tmp_path, broker: str):
    """web_settings on the local RabbitMQ, on RabbitMQ at a closed port, or on an embedded broker."""
    overrides = {"celery": {"embedded_dir": str(tmp_path / "celery")}}
    if broker == "rabbitmq":
        require_rabbitmq()
        overrides["rabbitmq"] = {"host": RABBITMQ["host"], "port": str(RABBITMQ["port"]),
                                 "user": "guest", "password": "guest"}
    elif broker == "closed":
        overrides["rabbitmq"] = {"host": "127.0.0.1", "port": str(closed_port()),
                                 "user": "guest", "password": "s3cret-pw"}
    else:
        overrides["rabbitmq"] = {"host": ""}
        (tmp_path / "celery" / "broker").mkdir(parents=True)
    return web_settings.with_overrides(overrides)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("broker", ["embedded", "rabbitmq"])
def test_healthy_stack_answers_200(web_settings, tmp_path, broker, url):
    """Both parts up, on SQLite and MariaDB, with either broker: 200 and every part ok."""
    client = make_app(broker_settings(web_settings, tmp_path, broker)).test_client()
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.is_json
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("url", URLS)
def test_broker_down_answers_503_naming_it(web_settings, tmp_path, url):
    """RabbitMQ on a closed port: 503, the database ok, the broker unreachable with a reason."""
    client = make_app(broker_settings(web_settings, tmp_path, "closed")).test_client()
    response = client.get(url)
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["broker"].startswith("unreachable: ") and "refused" in body["broker"].lower()
    assert "s3cret-pw" not in response.get_data(as_text=True)


def test_missing_embedded_broker_answers_503(web_settings, tmp_path):
    """The embedded broker's folder is missing (no worker ever ran): 503 saying so."""
    cfg = web_settings.with_overrides({"rabbitmq": {"host": ""},
                                       "celery": {"embedded_dir": str(tmp_path / "nowhere")}})
    response = make_app(cfg).test_client().get("/api/v1/healthz")
    assert response.status_code == 503
    assert "does not exist" in response.get_json()["broker"]


def test_database_down_answers_503_naming_it(web_settings, tmp_path):
    """The app's database on a closed port: 503, the database unavailable, the broker ok."""
    cfg = broker_settings(web_settings, tmp_path, "embedded")
    app = make_app(cfg, SQLALCHEMY_DATABASE_URI=f"mysql+pymysql://root:s3cret-pw@127.0.0.1:{closed_port()}/x")
    response = app.test_client().get("/api/v1/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["broker"] == "ok"
    assert body["database"].startswith("unavailable: ") and "s3cret-pw" not in body["database"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
def test_no_login_needed_even_when_reading_is_private(web_settings, tmp_path, headers):
    """With [web] public = off, anyone (even with a wrong token) may ask whether the app is healthy."""
    cfg = broker_settings(web_settings, tmp_path, "embedded").with_overrides({"web": {"public": "off"}})
    response = make_app(cfg).test_client().get("/api/v1/healthz", headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_only_get(web_settings, tmp_path):
    """Health is read, never written."""
    client = make_app(broker_settings(web_settings, tmp_path, "embedded")).test_client()
    assert client.post("/api/v1/healthz").status_code == 405


def test_documented_in_openapi(web_settings, tmp_path):
    """The OpenAPI document describes both answers with the health schema."""
    client = make_app(broker_settings(web_settings, tmp_path, "embedded")).test_client()
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/healthz"]["get"]
    assert {"200", "503"} <= set(operation["responses"])
    assert "security" not in operation or operation["security"] in ([], [{}])
    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Health"]
    assert set(schema["required"]) == {"status", "database", "broker"}

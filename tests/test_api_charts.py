"""GET /api/v1/charts and POST /api/v1/charts/refresh, on SQLite and MariaDB, with a real worker."""
from __future__ import annotations

import time

import pytest

from lib import storage
from lib.charts import ChartFile, chart_file_name
from lib.storage import charts as chart_store
from tests.web_fixtures import make_app

T1, T2 = 1_800_000_000_000, 1_800_003_600_000  # 2027-01-15T08:00:00Z and an hour later


def record(engine, render: str, rendered_ms: int, charts: list[tuple[int, str, str]]) -> None:
    """Rows of one render in `path` (the files themselves are not needed to list them)."""
    files = [ChartFile(d, m, s, f"{render}/{chart_file_name(d, m, s)}") for d, m, s in charts]
    chart_store.record_render(engine, render, rendered_ms, files)


@pytest.fixture
def two_devices(engine):
    """Two devices, each with an old and a new render of some charts."""
    a = storage.add_device(engine, "greenhouse")[0].id
    b = storage.add_device(engine, "cellar")[0].id
    record(engine, "old", T1, [(a, "co2", "24h"), (a, "co2", "7d"), (b, "humidity", "24h")])
    record(engine, "new", T2, [(a, "co2", "24h"), (b, "humidity", "24h")])
    return a, b


def test_no_renders_is_an_empty_list(web_client):
    response = web_client.get("/api/v1/charts")
    assert response.status_code == 200 and response.json == []


def test_latest_render_per_device_metric_and_window(web_client, two_devices):
    a, b = two_devices
    charts = web_client.get("/api/v1/charts").json
    got = {(c["device_id"], c["metric"], c["span"]): c for c in charts}
    assert set(got) == {(a, "co2", "24h"), (a, "co2", "7d"), (b, "humidity", "24h")}
    assert got[(a, "co2", "24h")] == {
        "device_id": a, "device": "greenhouse", "metric": "co2", "span": "24h", "render": "new",
        "url": f"/charts/new/{chart_file_name(a, 'co2', '24h')}",
        "rendered": "2027-01-15T09:00:00.000Z", "rendered_ms": T2}
    assert got[(a, "co2", "7d")]["render"] == "old" and got[(a, "co2", "7d")]["rendered_ms"] == T1
    assert got[(b, "humidity", "24h")]["device"] == "cellar"


def test_device_filter(web_client, two_devices):
    a, b = two_devices
    charts = web_client.get(f"/api/v1/charts?device={b}").json
    assert [(c["device_id"], c["metric"], c["span"]) for c in charts] == [(b, "humidity", "24h")]


def test_unknown_device_is_404(web_client, two_devices):
    response = web_client.get("/api/v1/charts?device=999")
    assert response.status_code == 404 and "999" in response.json["detail"]


@pytest.mark.parametrize("query", ["device=abc", "device=0", "device=-1", "device=1.5", "device=99999999999999999999"])
def test_bad_device_parameter_is_refused(web_client, query):
    response = web_client.get(f"/api/v1/charts?{query}")
    assert response.status_code in (400, 422) and "device" in str(response.json["detail"])


def test_listing_follows_the_public_switch(web_settings, user):
    app = make_app(web_settings.with_overrides({"web": {"public": "off"}}))
    client = app.test_client()
    assert client.get("/api/v1/charts").status_code == 401
    assert client.get("/api/v1/charts", headers=user.headers).status_code == 200


@pytest.mark.parametrize("who, status", [("anonymous", 401), ("user", 403)])
def test_refresh_is_for_administrators(web_client, admin, user, who, status):
    headers = {"anonymous": {}, "user": user.headers}[who]
    response = web_client.post("/api/v1/charts/refresh", headers=headers, json={})
    assert response.status_code == status


@pytest.mark.parametrize("body, status", [({"device": "x"}, 422), ({"device": 0}, 422),
                                          ({"device": 12345}, 404), ({"other": 1}, 422), ([1], 422)])
def test_refresh_refuses_bad_bodies(web_client, admin, body, status):
    response = web_client.post("/api/v1/charts/refresh", headers=admin.headers, json=body)
    assert response.status_code == status and response.json["error"]


def test_refresh_with_the_broker_down_is_503(web_settings, admin):
    """RabbitMQ not answering gives 503 JSON quickly, never 500."""
    app = make_app(web_settings.with_overrides({"rabbitmq": {"host": "127.0.0.1", "port": "1"}}))
    started = time.monotonic()
    response = app.test_client().post("/api/v1/charts/refresh", headers=admin.headers)
    assert response.status_code == 503 and "unavailable" in response.json["detail"]
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("broker", ["rabbitmq", "embedded"])
def test_refresh_draws_and_the_charts_are_listed(broker, settings, engine, device, admin, celery_worker,
                                                 tmp_path):
    """An admin's refresh is drawn by the worker; its task finishes and GET /charts lists the files."""
    now = storage.now_ms()
    storage.write_readings(engine, ["co2"], [(device.id, now - i * 60_000, 600.0 + i) for i in range(5)])
    worker = celery_worker(settings, broker)
    app = make_app(worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}}))
    client = app.test_client()
    response = client.post("/api/v1/charts/refresh", headers=admin.headers, json={"device": device.id})
    assert response.status_code == 202, response.text
    task_id = response.json["task_id"]
    deadline = time.monotonic() + 60
    while not (status := client.get(f"/api/v1/tasks/{task_id}").json)["ready"]:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.2)
    assert status["state"] == "SUCCESS" and status["result"]["files"] == 3, worker.log()
    charts = client.get("/api/v1/charts").json
    assert {(c["device_id"], c["metric"], c["span"]) for c in charts} == {
        (device.id, "co2", span) for span in ("24h", "7d", "30d")}
    assert all(c["render"] == status["result"]["render"] for c in charts)
    page = client.get(charts[0]["url"])
    assert page.status_code == 200 and "Carbon Dioxide Monitoring" in page.text


def test_refresh_without_a_body_queues_every_device(web_settings, admin, tmp_path):
    """No body means every active device; the task id is a UUID the task endpoint accepts."""
    app = make_app(web_settings.with_overrides({"rabbitmq": {"host": ""},
                                                "celery": {"embedded_dir": str(tmp_path / "celery")}}))
    client = app.test_client()
    response = client.post("/api/v1/charts/refresh", headers=admin.headers)
    assert response.status_code == 202, response.text
    assert client.get(f"/api/v1/tasks/{response.json['task_id']}").json["state"] == "PENDING"
    queued = list((tmp_path / "celery" / "broker").glob("*.msg"))
    assert len(queued) == 1 and b"celery_tasks.draw_charts" in queued[0].read_bytes()


def test_documented_in_openapi(web_client):
    spec = web_client.get("/api/v1/openapi.json").json
    assert {"200", "404"} <= set(spec["paths"]["/api/v1/charts"]["get"]["responses"])
    assert {"202", "404", "503"} <= set(spec["paths"]["/api/v1/charts/refresh"]["post"]["responses"])
    assert {"url", "device", "rendered", "rendered_ms"} <= set(spec["components"]["schemas"]["Chart"]["properties"])

"""The Flask app serves rendered charts and the ECharts they load, from its own origin."""
from __future__ import annotations

import re

import pytest

from celery_tasks.draw_picture.draw import draw_all
from flask_front import charts as chart_routes, create_app
from lib import storage
from tests.conftest import reset_database, sqlite_settings

NOW = 1_800_000_000_000


@pytest.fixture
def cfg(tmp_path):
    cfg = sqlite_settings(tmp_path / "sensors.db").with_overrides(
        {"other": {"flask_path": str(tmp_path / "charts")}})
    reset_database(cfg)
    return cfg


@pytest.fixture
def app(cfg):
    app = create_app({"SENSORS": cfg, "SQLALCHEMY_DATABASE_URI": cfg.database_url, "TESTING": True})
    chart_routes.register(app)  # a second call (create_app may have made one) changes nothing
    return app


@pytest.fixture
def chart(cfg):
    """The path (relative to the chart folder) of a freshly drawn chart page."""
    engine = storage.make_engine(cfg.database_url)
    device = storage.add_device(engine, "lab")[0]
    storage.write_readings(engine, ["co2"], [(device.id, NOW - 1000, 415)])
    render = draw_all(engine, cfg, NOW)
    engine.dispose()
    return render.files[0].file


def test_chart_page_and_its_echarts_are_served(app, chart):
    client = app.test_client()
    page = client.get(f"/charts/{chart}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    scripts = re.findall(r'<script type="text/javascript" src="([^"]+)"', page.text)
    assert scripts == ["/static/vendor/echarts/echarts.min.js"]
    script = client.get(scripts[0])
    assert script.status_code == 200, script.text[:300]
    assert script.mimetype in ("text/javascript", "application/javascript")
    assert len(script.data) > 500_000 and b"echarts" in script.data[:5000]


@pytest.mark.parametrize("url", [
    "/charts/nope.html",
    "/charts/20270115T080000Z-abcdef/device-1_co2_24h.html",
    "/charts/../db_config.ini",
    "/charts/%2e%2e/db_config.ini",
    "/charts/..%2fdb_config.ini",
    "/charts//etc/passwd",
    "/static/vendor/echarts/nope.js",
    "/static/vendor/echarts/../package.json",
    "/static/vendor/echarts/%2e%2e/package.json",
    "/static/vendor/echarts/..%2f..%2fpackage.json",
])
def test_unknown_files_and_traversal_are_404(app, chart, url):
    assert app.test_client().get(url, follow_redirects=True).status_code == 404


def test_missing_echarts_says_how_to_install_it(app, tmp_path):
    app.config["ECHARTS_DIR"] = str(tmp_path / "absent")
    response = app.test_client().get("/static/vendor/echarts/echarts.min.js")
    assert response.status_code == 404
    assert "ECharts is not installed" in response.text and "npm" in response.text


def test_register_is_idempotent(app):
    before = sorted(str(rule) for rule in app.url_map.iter_rules())
    chart_routes.register(app)
    assert sorted(str(rule) for rule in app.url_map.iter_rules()) == before
    assert "/charts/<path:filename>" in before and "/static/vendor/echarts/<path:filename>" in before

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


# ---- the original's /co2, /temperature and /humidity ------------------------------------

def write_render(cfg, engine, name: str, rendered_ms: int, charts: list[tuple[int, str, str]]) -> None:
    """A recorded render whose pages say which device, metric, window and render they are."""
    from lib.charts import ChartFile, chart_file_name
    from lib.storage import charts as chart_store

    folder = cfg.other.flask_path / name
    folder.mkdir(parents=True)
    files = []
    for device_id, metric, span in charts:
        file = f"{name}/{chart_file_name(device_id, metric, span)}"
        (cfg.other.flask_path / file).write_text(f"<html>{name} {device_id} {metric} {span}</html>")
        files.append(ChartFile(device_id, metric, span, file))
    chart_store.record_render(engine, name, rendered_ms, files)


@pytest.fixture
def engine(cfg):
    engine = storage.make_engine(cfg.database_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("route, metric", [("/co2", "co2"), ("/temperature", "temperature"),
                                           ("/humidity", "humidity")])
def test_original_routes_serve_the_first_devices_latest_day_chart(app, cfg, engine, route, metric):
    """The lowest device id with a render, its newest 24-hour chart of the metric, as HTML."""
    first, second = (storage.add_device(engine, name)[0].id for name in ("first", "second"))
    both = [(d, m, s) for d in (first, second) for m in ("co2", "temperature", "humidity") for s in ("24h", "7d")]
    write_render(cfg, engine, "20270115T080000Z-aaaaaa", NOW, both)
    write_render(cfg, engine, "20270115T090000Z-bbbbbb", NOW + 3_600_000, both)
    page = app.test_client().get(route)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.text == f"<html>20270115T090000Z-bbbbbb {first} {metric} 24h</html>"


def test_original_route_skips_devices_without_a_render(app, cfg, engine):
    """A device without charts (say, silent for 30 days) does not hide the next one's."""
    storage.add_device(engine, "silent")
    drawn = storage.add_device(engine, "drawn")[0].id
    write_render(cfg, engine, "20270115T080000Z-aaaaaa", NOW, [(drawn, "co2", "24h")])
    assert app.test_client().get("/co2").text == f"<html>20270115T080000Z-aaaaaa {drawn} co2 24h</html>"
    assert app.test_client().get("/humidity").status_code == 404


@pytest.mark.parametrize("route", ["/co2", "/temperature", "/humidity"])
def test_original_routes_without_a_render_are_a_clear_404(app, route):
    page = app.test_client().get(route)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "has been drawn yet" in page.text


def test_co2_serves_a_real_drawn_chart(app, chart):
    """After a real draw, /co2 is the 24-hour CO₂ page of that render."""
    page = app.test_client().get("/co2")
    assert page.status_code == 200 and "Carbon Dioxide Monitoring" in page.text and "last 24 hours" in page.text

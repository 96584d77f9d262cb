"""Drawing charts on SQLite and MariaDB: the HTML, the files, the `path` records, pruning, the task."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from celery_tasks.draw_picture import renders
from celery_tasks.draw_picture.draw import draw_all
from celery_tasks.draw_picture.renders import atomic_write, prune_renders
from lib import storage
from lib.catalogue import Metric
from lib.charts import DAY_MS, HOUR_MS, MINUTE_MS, is_render_name, render_name
from lib.storage import charts as cs
from tests.conftest import reset_database, sqlite_settings

NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z
METRICS = ["co2", "temperature", "humidity"]
ECHARTS_SRC = '<script type="text/javascript" src="/static/vendor/echarts/echarts.min.js"></script>'


@pytest.fixture
def cfg(settings, tmp_path):
    """The test database's settings with a temporary chart folder and small max_points."""
    return settings.with_overrides({"other": {"flask_path": str(tmp_path / "charts")},
                                    "charts": {"max_points": "50"}})


def chart_dir(cfg) -> Path:
    return cfg.other.flask_path


def insert_rollup(engine, table, device_id, bucket, **metrics):
    """One rollup row, metric=(n, sum, min, max) (the rollup task's job; chart tests fill tables directly)."""
    quote = engine.dialect.identifier_preparer.quote
    values = {"device_id": device_id, "bucket": bucket}
    for metric, aggregates in metrics.items():
        values.update(zip((f"{metric}_{s}" for s in ("n", "sum", "min", "max")), aggregates))
    names = ", ".join(quote(k) for k in values)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + k for k in values)})"),
                     values)


def fill(engine, device_id):
    """Data that makes each window pick another source with max_points = 50.

    24 h: 30 raw readings (raw). 7 d: 60 raw readings, 40 minute buckets (1-minute rollups).
    30 d: 60 raw, 60 minute buckets (hourly rollups). Humidity is never reported.
    """
    rows = [(device_id, NOW - i * 40 * MINUTE_MS, 400 + i, 20 + i / 8, None) for i in range(30)]
    rows += [(device_id, NOW - 2 * DAY_MS - i * MINUTE_MS, 500, 25, None) for i in range(30)]
    storage.write_readings(engine, METRICS, rows)
    for i in range(40):
        insert_rollup(engine, "rollup_1m", device_id, NOW - 3 * DAY_MS - i * MINUTE_MS,
                      co2=(2, 900, 400, 500))
    for i in range(20):
        insert_rollup(engine, "rollup_1m", device_id, NOW - 10 * DAY_MS - i * MINUTE_MS, co2=(1, 1, 1, 1))
    for i in range(30):
        insert_rollup(engine, "rollup_1h", device_id, NOW - 20 * DAY_MS - i * HOUR_MS,
                      co2=(4, 2000, 480, 530.25), temperature=(1, 21.5, 21.5, 21.5))


def read(cfg, render, name) -> str:
    return (chart_dir(cfg) / render.name / name).read_text(encoding="utf-8")


def pair(*values) -> str:
    """A data point as the chart JSON writes it."""
    return json.dumps(list(values), separators=(",", ":"))


def test_draw_all_writes_each_window_from_its_source(cfg, engine, device):
    fill(engine, device.id)
    render = draw_all(engine, cfg, NOW)
    assert render.name.startswith("20270115T080000Z-") and render.rendered_ms == NOW
    names = sorted(p.name for p in (chart_dir(cfg) / render.name).iterdir())
    assert names == sorted(f"device-{device.id}_{m}_{s}.html"
                           for m in ("co2", "temperature") for s in ("24h", "7d", "30d"))  # no humidity

    day = read(cfg, render, f"device-{device.id}_co2_24h.html")
    assert "raw readings" in day and "Carbon Dioxide Monitoring" in day and device.name in day
    assert pair(NOW, 400.0) in day and pair(NOW - 29 * 40 * MINUTE_MS, 429.0) in day
    week = read(cfg, render, f"device-{device.id}_co2_7d.html")
    bucket = NOW - 3 * DAY_MS
    assert "1-minute means with min–max band" in week
    assert pair(bucket, 450.0) in week and pair(bucket, 400.0) in week and pair(bucket, 100.0, 500.0) in week
    month = read(cfg, render, f"device-{device.id}_co2_30d.html")
    assert "hourly means with min–max band" in month
    # ppm are shown without decimals; the band's range is max − min of the shown values
    assert pair(NOW - 20 * DAY_MS, 500.0) in month and pair(NOW - 20 * DAY_MS, 50.0, 530.0) in month
    assert pair(NOW - 20 * DAY_MS, 21.5) in read(cfg, render, f"device-{device.id}_temperature_30d.html")
    temperature = read(cfg, render, f"device-{device.id}_temperature_24h.html")
    assert "Temperature Monitoring" in temperature and "#e28744" in temperature and "#cede9f" in temperature
    assert pair(NOW - 40 * MINUTE_MS, 20.12) in temperature  # 20.125 shown with two decimals


def test_html_loads_echarts_from_the_local_url_only(cfg, engine, device):
    fill(engine, device.id)
    render = draw_all(engine, cfg, NOW)
    for chart in render.files:
        html = (chart_dir(cfg) / chart.file).read_text(encoding="utf-8")
        assert ECHARTS_SRC in html
        assert not re.search(r"https?://", html), "chart pages must not load anything from a CDN"
        assert 'type":"time"' in html and '"position":"right"' in html
        assert "new echarts.graphic.LinearGradient(0, 0, 0, 1, [{offset: 0, color: '" in html


def test_echarts_url_comes_from_the_settings(cfg, engine, device):
    fill(engine, device.id)
    render = draw_all(engine, cfg.with_overrides({"charts": {"echarts_url": "/assets/echarts"}}), NOW)
    assert 'src="/assets/echarts/echarts.min.js"' in (chart_dir(cfg) / render.files[0].file).read_text()


def test_the_record_lists_exactly_the_files(cfg, engine, device):
    fill(engine, device.id)
    render = draw_all(engine, cfg, NOW)
    rows = cs.list_paths(engine)
    assert sorted((r.device_id, r.metric, r.span, r.file) for r in rows) == \
        sorted((f.device_id, f.metric, f.span, f.file) for f in render.files)
    assert {r.render for r in rows} == {render.name} and {r.rendered_ms for r in rows} == {NOW}
    assert all((chart_dir(cfg) / r.file).is_file() for r in rows)


def test_other_metrics_devices_filter_and_hostile_names(cfg, engine, device):
    storage.add_metric(engine, Metric("pm2_5", "µg/m³", 0, 1000, "Fine dust"))
    hostile = storage.add_device(engine, "</script><script>alert(1)</script>")[0]
    storage.write_readings(engine, ["pm2_5"], [(hostile.id, NOW - 1000, 12.34)])
    storage.write_readings(engine, ["co2"], [(device.id, NOW - 1000, 400)])
    render = draw_all(engine, cfg, NOW, device_ids=[hostile.id])
    assert sorted(f.file.split("/")[1] for f in render.files) == \
        [f"device-{hostile.id}_pm2_5_{s}.html" for s in ("24h", "30d", "7d")]
    html = (chart_dir(cfg) / render.files[0].file).read_text()
    assert "Fine dust Monitoring" in html and pair(NOW - 1000, 12.3) in html
    assert html.count("</script>") == 2  # the name cannot end the chart's script element
    assert "<\\/script><script>alert(1)<\\/script>" in html


@pytest.mark.parametrize("reading", [(NOW - 31 * DAY_MS, 400, 20, 50),  # too old: not active
                                     (NOW - 1000, None, None, None)])    # active, but nothing to draw
def test_nothing_is_drawn_without_data(cfg, engine, device, reading):
    storage.write_readings(engine, METRICS, [(device.id, *reading)])
    assert draw_all(engine, cfg, NOW) is None
    assert not chart_dir(cfg).exists() or not any(chart_dir(cfg).iterdir())
    assert cs.list_paths(engine) == []


def failing_writer(fail_at: int):
    """A writer that writes files until the fail_at-th, which raises like a full disk."""
    calls = []

    def write(path: Path, text: str) -> None:
        calls.append(path)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        atomic_write(path, text)
    return write


def test_a_failed_write_leaves_no_record_and_no_folder(cfg, engine, device):
    fill(engine, device.id)
    with pytest.raises(OSError, match="No space left"):
        draw_all(engine, cfg, NOW, writer=failing_writer(4))
    assert cs.list_paths(engine) == []
    assert list(chart_dir(cfg).iterdir()) == []


def test_a_missing_file_is_caught_before_recording(cfg, engine, device):
    fill(engine, device.id)

    def lost_writer(path: Path, text: str) -> None:
        if "_7d" not in path.name:  # "succeeds" without writing the 7-day charts
            atomic_write(path, text)
    with pytest.raises(FileNotFoundError, match="lacks 2 files"):
        draw_all(engine, cfg, NOW, writer=lost_writer)
    assert cs.list_paths(engine) == [] and list(chart_dir(cfg).iterdir()) == []


def test_a_failed_record_removes_the_folder(cfg, engine, device):
    fill(engine, device.id)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE path")
    with pytest.raises(sa.exc.DatabaseError):
        draw_all(engine, cfg, NOW)
    assert list(chart_dir(cfg).iterdir()) == []


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "chart.html"
    atomic_write(target, "old")
    atomic_write(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "half \ud800 written")  # fails in the middle of writing
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.html"]


def age(folder: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(folder, (stamp, stamp))


def test_prune_renders_removes_old_renders_and_stale_orphans(cfg, engine, device):
    fill(engine, device.id)
    storage.write_readings(engine, METRICS, [(device.id, NOW - 10 * DAY_MS - 1000, 400, 20, 50)])
    old = draw_all(engine, cfg, NOW - 10 * DAY_MS)
    new = draw_all(engine, cfg, NOW)
    charts = chart_dir(cfg)
    stale, fresh = charts / render_name(NOW - DAY_MS), charts / render_name(NOW - DAY_MS)
    for orphan in (stale, fresh):
        orphan.mkdir()
        (orphan / "device-1_co2_24h.html").write_text("partial")
    age(stale, 2 * 3600)
    foreign = charts / "keep-me"  # not a render folder: never touched
    foreign.mkdir()
    age(foreign, 10 * 86400)

    assert prune_renders(engine, charts, NOW - 5 * DAY_MS) == 2
    assert sorted(p.name for p in charts.iterdir()) == sorted([new.name, fresh.name, "keep-me"])
    assert cs.render_names(engine) == {new.name}
    assert prune_renders(engine, charts, NOW - 5 * DAY_MS) == 0
    assert old.name not in cs.render_names(engine)


def test_prune_renders_on_a_missing_folder(cfg, engine):
    assert prune_renders(engine, chart_dir(cfg) / "absent", NOW) == 0


def test_prune_tolerates_a_render_folder_already_gone(cfg, engine, device):
    fill(engine, device.id)
    render = draw_all(engine, cfg, NOW)
    for chart in render.files:
        (chart_dir(cfg) / chart.file).unlink()
    (chart_dir(cfg) / render.name).rmdir()
    assert prune_renders(engine, chart_dir(cfg), NOW + 1) == 1
    assert cs.list_paths(engine) == []


def test_remove_refuses_other_folders(tmp_path):
    with pytest.raises(ValueError):
        renders._remove(tmp_path)
    assert is_render_name(render_name(NOW))


def test_draw_charts_task_on_a_worker(celery_worker, tmp_path):
    cfg = sqlite_settings(tmp_path / "worker.db")
    reset_database(cfg)
    engine = storage.make_engine(cfg.database_url)
    device = storage.add_device(engine, "worker-pi")[0]
    storage.write_readings(engine, METRICS,
                           [(device.id, NOW - i * MINUTE_MS, 400 + i, 20, 50) for i in range(10)])
    worker = celery_worker(cfg, broker="rabbitmq")
    result = worker.call("celery_tasks.draw_charts", [device.id], NOW, timeout=60)
    assert result["files"] == 9 and result["render"].startswith("20270115T080000Z-")
    folder = worker.settings.other.flask_path / result["render"]
    assert len(list(folder.glob("*.html"))) == 9
    assert {p.render for p in cs.latest_paths(engine)} == {result["render"]}
    assert worker.call("celery_tasks.draw_charts", [], NOW) == {"render": None, "files": 0}
    engine.dispose()


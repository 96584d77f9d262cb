"""Rollup, rebuild and retention tasks through a real Celery worker, on RabbitMQ and embedded."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from lib import storage
from lib.rollup import DAY_MS, HOUR_MS, hour_of
from lib.storage import rollups
from tests.conftest import mysql_settings, reset_database, sqlite_settings

METRICS = ["co2", "temperature", "humidity"]


@pytest.fixture(params=[("rabbitmq", "mysql"), ("embedded", "sqlite")], ids=lambda p: f"{p[0]}-{p[1]}")
def setup(request, tmp_path, celery_worker):
    """A fresh database with a device, and a worker on the broker, as (worker, engine, device_id)."""
    broker, backend = request.param
    if backend == "mysql":
        cfg = mysql_settings(request.getfixturevalue("mysql_database"))
    else:
        cfg = sqlite_settings(tmp_path / "sensors.db")
    cfg = cfg.with_overrides({"retention": {"raw_days": "30", "minute_days": "365", "batch_rows": "50"},
                              "charts": {"keep_days": "2"}})
    reset_database(cfg)
    engine = storage.make_engine(cfg.database_url)
    device = storage.add_device(engine, "pi-worker")[0]
    yield celery_worker(cfg, broker=broker), engine, device.id
    engine.dispose()


def rows(device_id: int, start: int, count: int, step_ms: int = 30_000) -> list[tuple]:
    return [(device_id, start + i * step_ms, 400.0 + i, 21.0, None) for i in range(count)]


def count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text(sql))


def write_renders(chart_dir, engine, device_id: int, times: list[int]) -> list:
    """One recorded render per time, each with one chart; returns their folders."""
    from celery_tasks.draw_picture.renders import RenderFolder
    folders = []
    for rendered_ms in times:
        with RenderFolder(chart_dir, rendered_ms) as render:
            render.add(device_id, "co2", "24h", "<html></html>")
            render.commit(engine)
        folders.append(render.folder)
    return folders


def test_tasks_through_a_worker(setup):
    worker, engine, device = setup
    now = storage.now_ms()
    recent = hour_of(now) - 3 * HOUR_MS
    storage.write_readings(engine, METRICS, rows(device, recent, 240))  # 2 hours
    result = worker.call("celery_tasks.rollup")
    assert (result["marks"], result["minute_rows"], result["hour_rows"]) == (2, 120, 2), worker.log()
    assert rollups.read_rollups(engine, "rollup_1h", device, "co2", recent, recent + HOUR_MS) == [
        (recent, 120, 459.5, 400.0, 519.0)]
    assert worker.call("celery_tasks.rollup")["marks"] == 0

    # Readings older than the raw retention, written without marks as before rollups existed.
    old = hour_of(now - 40 * DAY_MS)
    with engine.begin() as conn:
        conn.exec_driver_sql(storage.insert_readings_sql(engine.dialect.name, METRICS,
                                                         rows(device, old, 120)))
    rebuilt = worker.call("celery_tasks.rebuild_rollups", device_id=device, start_ms=old,
                          end_ms=old + HOUR_MS)
    assert (rebuilt["marks"], rebuilt["hour_rows"]) == (1, 1)

    renders = write_renders(worker.settings.other.flask_path, engine, device,
                            [now - 3 * DAY_MS, now - DAY_MS])  # [charts] keep_days is 2
    result = worker.call("celery_tasks.retention")
    # Raw rows go an hour per transaction (here one hour of 120 readings), whatever batch_rows says.
    assert (result["raw_rows"], result["raw_batches"], result["minute_rows"]) == (120, 1, 0), result
    assert result["renders"] == 1
    assert [p.exists() for p in renders] == [False, True]
    assert count(engine, "SELECT COUNT(*) FROM path") == 1
    assert count(engine, "SELECT MIN(ts) FROM reading") == recent
    assert count(engine, "SELECT COUNT(*) FROM rollup_1h") == 3  # the old hour kept
    assert count(engine, "SELECT COUNT(*) FROM rollup_1m") == 120 + 60


def test_a_backlog_older_than_the_raw_retention_reaches_the_hourly_rollups(setup):
    """A Pi back after a long outage: its readings 40 and 400 days old are kept as rollups."""
    worker, engine, device = setup
    now = storage.now_ms()
    storage.write_readings(engine, METRICS, rows(device, hour_of(now) - HOUR_MS, 10))
    worker.call("celery_tasks.retention")  # ran daily while the Pi was away
    month, year = hour_of(now - 40 * DAY_MS), hour_of(now - 400 * DAY_MS)
    storage.write_readings(engine, METRICS, rows(device, month, 120) + rows(device, year, 120))
    result = worker.call("celery_tasks.rollup")
    assert (result["late_hours"], result["late_readings"], result["merged_hours"]) == (2, 240, 2), result
    for hour in (month, year):
        assert rollups.read_rollups(engine, "rollup_1h", device, "co2", hour, hour + HOUR_MS) == [
            (hour, 120, 459.5, 400.0, 519.0)]
    assert count(engine, f"SELECT COUNT(*) FROM rollup_1m WHERE bucket >= {month} "
                         f"AND bucket < {month + HOUR_MS}") == 60
    assert count(engine, f"SELECT COUNT(*) FROM rollup_1m WHERE bucket < {month}") == 0  # past minute_days
    assert count(engine, f"SELECT COUNT(*) FROM reading WHERE ts < {hour_of(now) - HOUR_MS}") == 0
    result = worker.call("celery_tasks.retention")
    assert (result["raw_rows"], result["rollup"]["marks"], result["devices"]) == (0, 0, 1), result
    assert count(engine, "SELECT SUM(co2_n) FROM rollup_1h") == 250

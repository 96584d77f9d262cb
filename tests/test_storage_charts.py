"""Chart queries on SQLite and MariaDB: active devices, counts, series and the `path` table."""
from __future__ import annotations

import sqlalchemy as sa
import pytest

from lib import storage
from lib.catalogue import Metric
from lib.charts import DAY_MS, HOUR, MINUTE, RAW, ChartFile
from lib.models import rollup_1h, rollup_1m
from lib.storage import charts as cs, rollups

NOW = 1_800_000_000_000
METRICS = ["co2", "temperature", "humidity"]


def insert_rollups(engine, table, rows):
    """rows: (device_id, bucket, metric, n, sum, min, max)."""
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        for device_id, bucket, metric, n, total, low, high in rows:
            names = ", ".join(quote(f"{metric}_{s}") for s in ("n", "sum", "min", "max"))
            conn.execute(sa.text(f"INSERT INTO {table.name} (device_id, bucket, {names}) "
                                 "VALUES (:d, :b, :n, :s, :lo, :hi)"),
                         {"d": device_id, "b": bucket, "n": n, "s": total, "lo": low, "hi": high})


def test_active_devices_have_readings_or_hourly_rollups_in_the_period(engine):
    ids = {name: storage.add_device(engine, name)[0].id for name in ("recent", "rolled", "old", "never")}
    storage.write_readings(engine, METRICS, [(ids["recent"], NOW - 1000, 400, 20, 50),
                                             (ids["old"], NOW - 31 * DAY_MS, 400, 20, 50)])
    insert_rollups(engine, rollup_1h, [(ids["rolled"], NOW - 29 * DAY_MS, "co2", 1, 400, 400, 400),
                                       (ids["old"], NOW - 40 * DAY_MS, "co2", 1, 400, 400, 400)])
    with engine.connect() as conn:
        found = cs.active_devices(conn, NOW - 30 * DAY_MS)
        assert [(d.id, d.name) for d in found] == [(ids["recent"], "recent"), (ids["rolled"], "rolled")]
        assert [d.name for d in cs.active_devices(conn, NOW - 30 * DAY_MS, [ids["rolled"], ids["old"]])] \
            == ["rolled"]
        assert cs.active_devices(conn, NOW - 30 * DAY_MS, []) == []


@pytest.mark.parametrize("cap,expected", [(100, 10), (10, 10), (9, 10), (3, 4)])
def test_count_points_stops_after_the_cap(engine, device, cap, expected):
    storage.write_readings(engine, METRICS, [(device.id, NOW - i, 1, 2, 3) for i in range(10)]
                           + [(device.id, NOW + 1, 1, 2, 3), (device.id, NOW - 50, 1, 2, 3)])
    with engine.connect() as conn:
        assert cs.count_points(conn, RAW, device.id, NOW - 9, NOW, cap) == expected
        assert cs.count_points(conn, MINUTE, device.id, NOW - 9, NOW, cap) == 0


def test_count_points_of_rollups(engine, device):
    insert_rollups(engine, rollup_1m, [(device.id, NOW - i * 60_000, "co2", 1, 1, 1, 1) for i in range(5)])
    with engine.connect() as conn:
        assert cs.count_points(conn, MINUTE, device.id, NOW - 120_000, NOW, 100) == 3
        assert cs.count_points(conn, HOUR, device.id, NOW - 120_000, NOW, 100) == 0


def test_raw_series_skips_nulls_and_other_devices(engine, device):
    other = storage.add_device(engine, "other")[0].id
    storage.write_readings(engine, METRICS, [
        (device.id, NOW - 3000, 400.5, None, 50), (device.id, NOW - 2000, None, 21.25, 51),
        (device.id, NOW - 1000, 402, 22, None), (device.id, NOW - 99_999, 1, 1, 1),
        (other, NOW - 1000, 9, 9, 9)])
    with engine.connect() as conn:
        series = cs.raw_series(conn, device.id, METRICS, NOW - 3000, NOW)
    assert series == {"co2": [(NOW - 3000, 400.5), (NOW - 1000, 402)],
                      "temperature": [(NOW - 2000, 21.25), (NOW - 1000, 22)],
                      "humidity": [(NOW - 3000, 50), (NOW - 2000, 51)]}


def test_rollup_series_gives_mean_min_max_where_n_is_positive(engine, device):
    insert_rollups(engine, rollup_1h, [
        (device.id, NOW - 2 * 3_600_000, "co2", 4, 1000, 200, 300),
        (device.id, NOW - 3_600_000, "co2", 0, None, None, None),
        (device.id, NOW, "temperature", 2, 41, 20, 21)])
    with engine.connect() as conn:
        series = cs.rollup_series(conn, HOUR, device.id, METRICS, NOW - DAY_MS, NOW)
    assert series == {"co2": [(NOW - 2 * 3_600_000, 250.0, 200, 300)],
                      "temperature": [(NOW, 20.5, 20, 21)], "humidity": []}


def test_series_of_added_metrics_with_keyword_names(engine, device):
    storage.add_metric(engine, Metric("signal", "dBm", -120, 0))  # a reserved word in MySQL
    storage.write_readings(engine, ["signal"], [(device.id, NOW, -70)])
    insert_rollups(engine, rollup_1m, [(device.id, NOW, "signal", 2, -140, -71, -69)])
    with engine.connect() as conn:
        assert cs.raw_series(conn, device.id, ["signal", "co2"], NOW - 1, NOW) == \
            {"signal": [(NOW, -70)], "co2": []}
        assert cs.rollup_series(conn, MINUTE, device.id, ["signal"], NOW, NOW) == \
            {"signal": [(NOW, -70.0, -71, -69)]}
        with pytest.raises(ValueError):
            cs.raw_series(conn, device.id, ["co2; DROP TABLE reading"], NOW - 1, NOW)


def files(device_id, render, metrics=("co2",), spans=("24h", "7d")):
    return [ChartFile(device_id, m, s, f"{render}/device-{device_id}_{m}_{s}.html")
            for m in metrics for s in spans]


def test_path_records_latest_and_pruning(engine, device):
    other = storage.add_device(engine, "other")[0].id
    cs.record_render(engine, "r1", NOW - 2 * DAY_MS, files(device.id, "r1") + files(other, "r1"))
    cs.record_render(engine, "r2", NOW - DAY_MS, files(device.id, "r2", spans=("24h",)))
    cs.record_render(engine, "r3", NOW, [])  # nothing to record: no rows
    latest = {(p.device_id, p.metric, p.span): p.render for p in cs.latest_paths(engine)}
    assert latest == {(device.id, "co2", "24h"): "r2", (device.id, "co2", "7d"): "r1",
                      (other, "co2", "24h"): "r1", (other, "co2", "7d"): "r1"}
    assert [p.file for p in cs.latest_paths(engine, device.id)] == \
        [f"r2/device-{device.id}_co2_24h.html", f"r1/device-{device.id}_co2_7d.html"]
    assert cs.render_names(engine) == {"r1", "r2"}
    assert [p.render for p in cs.list_paths(engine, "r2")] == ["r2"]
    assert cs.renders_before(engine, NOW - DAY_MS) == ["r1"]
    assert cs.renders_before(engine, NOW) == ["r1", "r2"]
    assert cs.delete_renders(engine, ["r1"]) == 4
    assert cs.delete_renders(engine, []) == 0
    assert cs.render_names(engine) == {"r2"}


def test_latest_path_ties_go_to_the_last_recorded(engine, device):
    cs.record_render(engine, "a", NOW, files(device.id, "a", spans=("24h",)))
    cs.record_render(engine, "b", NOW, files(device.id, "b", spans=("24h",)))
    assert [p.render for p in cs.latest_paths(engine)] == ["b"]


@pytest.mark.parametrize("readings, max_points, raw_kept_days, want", [
    (10, 2000, None, "raw"),      # fits raw
    (3000, 2000, None, "1m"),     # too many raw points: minute buckets
    (10, 2000, 1, "1m"),          # raw retention shorter than the span: rollups show it whole
])
def test_pick_source_counts_only_what_it_needs(engine, device, readings, max_points, raw_kept_days, want):
    now = storage.now_ms()
    start = now - 2 * DAY_MS
    storage.write_readings(engine, ["co2"], [(device.id, start + 120_000 + i * 50, 400.0) for i in range(readings)])
    rollups.run_rollup(engine)
    kept = None if raw_kept_days is None else raw_kept_days * DAY_MS
    with engine.connect() as conn:
        assert cs.pick_source(conn, device.id, start, now, max_points, kept) == want
        points = cs.series(conn, want, device.id, ["co2"], start, now)["co2"]
    assert points and len(points) <= max_points

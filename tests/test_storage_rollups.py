"""Rollup SQL on SQLite and MariaDB, checked against GROUP BY over `reading`; late readings."""
from __future__ import annotations

import math

import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from lib import storage
from lib.catalogue import Metric
from lib.rollup import (DAY_MS, HOUR_MS, MINUTE_MS, Cutoffs, Mark, Retained, RetentionPolicy,
                        aggregate_rows, hour_of, plan)
from lib.storage import retention, rollups
from tests.conftest import mysql_settings, reset_database

METRICS = ["co2", "temperature", "humidity"]
NOW = storage.now_ms()
BASE = hour_of(NOW) - 6 * HOUR_MS  # well inside the raw retention


def clear(engine) -> None:
    """Empty the readings, rollups and marks (devices stay)."""
    with engine.begin() as conn:
        for table in ("reading", "rollup_1m", "rollup_1h", "rollup_pending"):
            conn.exec_driver_sql(f"DELETE FROM {table}")


def expected(engine, size_ms: int, metrics=METRICS) -> list[tuple]:
    """Aggregates straight from `reading`, grouped by device and bucket of `size_ms`."""
    div = "DIV" if engine.dialect.name == "mysql" else "/"
    quote = engine.dialect.identifier_preparer.quote
    aggs = ", ".join(f"COUNT({c}), SUM({c}), MIN({c}), MAX({c})" for c in map(quote, metrics))
    bucket = f"ts {div} {size_ms} * {size_ms}"
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT device_id, {bucket}, {aggs} FROM reading GROUP BY device_id, {bucket} "
            f"ORDER BY device_id, {bucket}"))]


def stored(engine, table: str, metrics=METRICS) -> list[tuple]:
    """All rows of a rollup table, as (device_id, bucket, n, sum, min, max, ...) per metric."""
    quote = engine.dialect.identifier_preparer.quote
    cols = ", ".join(quote(f"{m}_{s}") for m in metrics for s in ("n", "sum", "min", "max"))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT device_id, bucket, {cols} FROM {table} ORDER BY device_id, bucket"))]


def assert_same(got: list[tuple], want: list[tuple]) -> None:
    """Rows equal, sums within floating-point tolerance (summation order differs)."""
    assert [r[:2] for r in got] == [r[:2] for r in want]
    for g, w in zip(got, want):
        for i in range(2, len(w), 4):
            n, total, low, high = g[i:i + 4]
            assert (int(n), low, high) == (int(w[i]), w[i + 2], w[i + 3]), (g, w)
            if w[i]:
                assert math.isclose(total, w[i + 1], rel_tol=1e-9, abs_tol=1e-6), (g, w)
            else:
                assert total is None, (g, w)


def assert_rollups_match(engine, metrics=METRICS) -> None:
    """Both rollup tables equal GROUP BY over the readings."""
    assert_same(stored(engine, "rollup_1m", metrics), expected(engine, MINUTE_MS, metrics))
    assert_same(stored(engine, "rollup_1h", metrics), expected(engine, HOUR_MS, metrics))


def pending(engine, ranges: bool = False) -> list[tuple]:
    """(device_id, hour, gen) marks, with their written and taken ranges when `ranges`."""
    extra = ", lo_ms, hi_ms, taken_lo_ms, taken_hi_ms" if ranges else ""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT device_id, hour, gen{extra} FROM rollup_pending ORDER BY device_id, hour"))]


def whole_hours(*keys: tuple[int, int]) -> dict:
    """Marks of whole (device, hour)s, for mark_pending."""
    return {(d, hour): (hour, hour + HOUR_MS - 1) for d, hour in keys}


# ---- property: rollups equal SQL aggregates, with late and duplicate data ----------------

value = st.one_of(st.none(), st.floats(-1000, 5000, allow_nan=False), st.sampled_from([0.1, 0.2, 400.0]))
# Few distinct minutes (first, second, middle and last of an hour) so buckets collect several readings.
offset = st.builds(lambda h, m, ms: h * HOUR_MS + m * MINUTE_MS + ms, st.integers(-1, 2),
                   st.sampled_from([0, 1, 30, 59]),
                   st.integers(0, MINUTE_MS - 1) | st.sampled_from([0, MINUTE_MS - 1]))
reading = st.tuples(st.integers(0, 2), offset, value, value, value)
batch = st.lists(reading, min_size=1, max_size=25)


def rows_of(devices: list[int], readings) -> list[tuple]:
    return [(devices[d], BASE + off, *values) for d, off, *values in readings]


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=batch, late=batch, resent=st.lists(st.integers(0, 10**6), max_size=8), data=st.data())
def test_rollups_equal_sql_aggregates(engine, devices, first, late, resent, data):
    clear(engine)
    storage.write_readings(engine, METRICS, rows_of(devices, first))
    rollups.run_rollup(engine)
    assert_rollups_match(engine)
    # Late data: older timestamps into hours rolled up already, plus re-sent (device, ts).
    late_rows = rows_of(devices, late) + [(r[0], r[1], 1.5, None, 2.5) for r in rows_of(devices, first)[:3]]
    storage.write_readings(engine, METRICS, late_rows)
    rollups.run_rollup(engine)
    assert_rollups_match(engine)
    assert pending(engine) == []
    # Duplicates with other values: stored once, so the rollups do not change.
    before = stored(engine, "rollup_1m"), stored(engine, "rollup_1h")
    with engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT device_id, ts FROM reading ORDER BY device_id, ts")).all()
    dupes = [(*keys[i % len(keys)], data.draw(value), 7.0, None) for i in resent]
    if dupes:
        count = storage.count_readings(engine)
        failed = storage.write_readings(engine, METRICS, dupes)
        assert set(failed.values()) <= {storage.DUPLICATE_TS}  # refused, never acked
        assert storage.count_readings(engine) == count
        rollups.run_rollup(engine)  # only replays (same values) were marked
    assert (stored(engine, "rollup_1m"), stored(engine, "rollup_1h")) == before


# ---- idempotence, empty minutes, concurrency --------------------------------------------

def sample_rows(device: int, hours: int = 2, step_ms: int = 7_000, start: int = BASE) -> list[tuple]:
    return [(device, start + i * step_ms, 400.0 + i % 13, 20.0 + (i % 7) / 10, None if i % 3 else 41.5)
            for i in range(hours * HOUR_MS // step_ms)]


def test_rollup_twice_gives_identical_rows(engine, devices):
    storage.write_readings(engine, METRICS, sample_rows(devices[0]) + sample_rows(devices[1]))
    first = rollups.run_rollup(engine)
    assert (first.marks, first.hour_rows, first.minute_rows) == (4, 4, 4 * 60)
    before = stored(engine, "rollup_1m"), stored(engine, "rollup_1h")
    with engine.begin() as conn:  # mark everything again: a run recomputes the same rows
        storage.mark_pending(conn, whole_hours((devices[0], BASE), (devices[0], BASE + HOUR_MS),
                                               (devices[1], BASE)))
    assert rollups.run_rollup(engine).marks == 3
    assert rollups.run_rollup(engine).marks == 0
    assert (stored(engine, "rollup_1m"), stored(engine, "rollup_1h")) == before
    assert_rollups_match(engine)


def test_minutes_without_a_metric_have_n_zero_and_null(engine, device):
    storage.write_readings(engine, ["co2"], [(device.id, BASE + 1000, 500.0),
                                             (device.id, BASE + 2000, 700.0)])
    rollups.run_rollup(engine)
    for table in ("rollup_1m", "rollup_1h"):
        assert stored(engine, table) == [(device.id, BASE, 2, 1200.0, 500.0, 700.0, 0, None, None, None,
                                          0, None, None, None)]


def test_a_write_during_a_run_survives_and_is_redone_alone(engine, device):
    storage.write_readings(engine, METRICS, [(device.id, BASE + 1000, 500.0, 20.0, 40.0)])
    marks = rollups.take(engine, rollups.read_pending(engine))
    assert marks == [Mark(BASE, device.id, 0, BASE + 1000, BASE + 1000)]
    # A late reading arrives while the run works on the hour: its write bumps the mark's gen
    # and starts a new range, so the next run redoes its minute only.
    late = BASE + 30 * MINUTE_MS
    storage.write_readings(engine, METRICS, [(device.id, late, 900.0, 22.0, 42.0)])
    assert pending(engine, ranges=True) == [(device.id, BASE, 1, late, late, BASE + 1000, BASE + 1000)]
    sql = rollups.rollup_sql(engine, METRICS)
    rollups.roll_up_unit(engine, sql, plan(marks).units[0])
    assert pending(engine, ranges=True) == [(device.id, BASE, 1, late, late, None, None)]
    stats = rollups.run_rollup(engine)
    assert (stats.marks, stats.minute_rows) == (1, 1) and pending(engine) == []
    assert rollups.read_rollups(engine, "rollup_1h", device.id, "co2", BASE, BASE + HOUR_MS) == [
        (BASE, 2, 700.0, 500.0, 900.0)]


# ---- recomputing only the minutes that changed --------------------------------------------

SPOILED = 1000  # added to every stored minute's co2_n, to see which minutes a run recomputes


def roll_up_and_spoil(engine, device_ids) -> None:
    """Readings every 10 s in the hour BASE for each device, rolled up; then every minute row spoilt."""
    for d in device_ids:
        storage.write_readings(engine, METRICS, sample_rows(d, hours=1, step_ms=10_000))
    rollups.run_rollup(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE rollup_1m SET co2_n = co2_n + {SPOILED}")


def assert_redone(engine, redone: set[tuple[int, int]]) -> None:
    """Exactly the (device, minute of the hour) in `redone` match the readings; the rest stay spoilt."""
    got, want = stored(engine, "rollup_1m"), expected(engine, MINUTE_MS)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want):
        if (g[0], (g[1] - BASE) // MINUTE_MS) in redone:
            assert_same([g], [w])
        else:
            assert g[2:] == (w[2] + SPOILED, *w[3:]), (g, w)
    # The hour rows are made from the minute rows as they are, spoilt ones included.
    assert [(h[0], h[2]) for h in stored(engine, "rollup_1h")] == [
        (d, sum(g[2] for g in got if g[0] == d)) for d in sorted({g[0] for g in got})]


@pytest.mark.parametrize("offsets, minutes", [
    ([20 * MINUTE_MS + 1], {20}),
    ([22 * MINUTE_MS + 5, 20 * MINUTE_MS + 1], {20, 21, 22}),
    ([1], {0}),
    ([HOUR_MS - 1], {59}),
    ([59 * MINUTE_MS + 1, 1], set(range(60))),
])
def test_a_write_recomputes_only_the_minutes_it_spans(engine, device, offsets, minutes):
    roll_up_and_spoil(engine, [device.id])
    storage.write_readings(engine, METRICS, [(device.id, BASE + off, 1.0, 2.0, 3.0) for off in offsets])
    stats = rollups.run_rollup(engine)
    assert (stats.marks, stats.minute_rows, stats.hour_rows) == (1, len(minutes), 1)
    assert_redone(engine, {(device.id, m) for m in minutes})
    assert pending(engine) == []


def test_each_device_of_a_unit_recomputes_its_own_minutes(engine, devices):
    roll_up_and_spoil(engine, devices[:2])
    storage.write_readings(engine, METRICS, [(devices[0], BASE + 3 * MINUTE_MS + 1, 1.0, 2.0, 3.0),
                                             (devices[1], BASE + 40 * MINUTE_MS + 1, 1.0, 2.0, 3.0)])
    stats = rollups.run_rollup(engine)
    assert (stats.units, stats.marks, stats.minute_rows) == (2, 2, 2)  # a unit per span
    assert_redone(engine, {(devices[0], 3), (devices[1], 40)})


def test_a_failed_run_leaves_its_taken_ranges_to_the_next(engine, device):
    roll_up_and_spoil(engine, [device.id])
    storage.write_readings(engine, METRICS, [(device.id, BASE + 3 * MINUTE_MS + 1, 1.0, 2.0, 3.0)])
    rollups.take(engine, rollups.read_pending(engine))  # the run dies here
    storage.write_readings(engine, METRICS, [(device.id, BASE + 7 * MINUTE_MS + 1, 1.0, 2.0, 3.0)])
    assert rollups.run_rollup(engine).minute_rows == 5
    assert_redone(engine, {(device.id, m) for m in range(3, 8)})
    assert pending(engine) == []


def test_a_mark_without_a_range_redoes_its_whole_hour(engine, device):
    """A mark inserted by an ingest that predates lo_ms and hi_ms has their default 0."""
    roll_up_and_spoil(engine, [device.id])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO rollup_pending (device_id, hour) VALUES ({device.id}, {BASE})")
    assert rollups.run_rollup(engine).minute_rows == 60
    assert_rollups_match(engine)


def test_small_batches_and_units_cover_every_mark(engine, devices):
    for d in devices:
        storage.write_readings(engine, METRICS, sample_rows(d, hours=3, step_ms=600_000))
    stats = rollups.run_rollup(engine, batch=2, max_devices=1)
    assert (stats.marks, stats.units, stats.more) == (9, 9, False)
    assert pending(engine) == []
    assert_rollups_match(engine)


def test_time_budget_leaves_the_rest_for_the_next_run(engine, device):
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=2))
    stats = rollups.run_rollup(engine, budget_s=0)
    assert (stats.more, stats.units) == (True, 0)
    assert len(pending(engine)) == 2
    assert rollups.run_rollup(engine, budget_s=60).marks == 2
    assert_rollups_match(engine)


# ---- readings older than the raw cutoff: a Pi back after a long outage ----------------------

CUT = RetentionPolicy().cutoffs(NOW)  # raw 30 days, minutes 365 days


def reference(rows, size_ms: int) -> list[tuple]:
    """Rollup rows of `rows` computed in Python, in the layout of `stored`."""
    groups = aggregate_rows(rows, METRICS, size_ms)
    return [(d, b, *(x for m in METRICS for x in (groups[d, b][m].n, groups[d, b][m].sum,
                                                     groups[d, b][m].min, groups[d, b][m].max)))
            for d, b in sorted(groups)]


def assert_rollups_of(engine, rows) -> None:
    """Hour rows of every reading in `rows`, minute rows of those within the minute retention."""
    assert_same(stored(engine, "rollup_1h"), reference(rows, HOUR_MS))
    assert_same(stored(engine, "rollup_1m"), reference([r for r in rows if r[1] >= CUT.minute_ms], MINUTE_MS))


def raw_before_cutoff(engine) -> int:
    """Raw readings older than the raw cutoff."""
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT COUNT(*) FROM reading WHERE ts < :c"), {"c": CUT.raw_ms})


def curb_runs(engine) -> tuple[rollups.RollupStats, rollups.RollupStats, retention.RetentionStats]:
    """The rollup task's run, then the retention task's rollup and deletes, as celery_tasks.rollup_tasks does."""
    rolled = rollups.run_rollup(engine, stale_before=CUT.raw_ms)
    return (rolled, *retention.roll_up_and_retain(engine, CUT, 100))


@pytest.mark.parametrize("retained", [False, True], ids=["first-retention", "retained-before"])
def test_a_backlog_past_the_raw_cutoff_reaches_the_rollups(engine, device, retained):
    recent = sample_rows(device.id, hours=1, step_ms=60_000)
    storage.write_readings(engine, METRICS, recent)
    if retained:  # retention ran while the Pi was away: the old hours are past its cutoff
        retention.roll_up_and_retain(engine, CUT, 100)
    backlog = (sample_rows(device.id, hours=1, step_ms=10_000, start=hour_of(NOW - 40 * DAY_MS))
               + sample_rows(device.id, hours=1, step_ms=10_000, start=hour_of(NOW - 400 * DAY_MS)))
    storage.write_readings(engine, METRICS, backlog)
    rolled, _, deleted = curb_runs(engine)
    assert_rollups_of(engine, recent + backlog)
    assert raw_before_cutoff(engine) == 0 and storage.count_readings(engine) == len(recent)
    assert pending(engine) == []
    assert (rolled.late_hours, rolled.late_readings) == (2, 720)
    assert rolled.merged_hours == (2 if retained else 0)
    assert deleted.raw_rows == (0 if retained else 720)  # merged hours lose their raw rows at once
    before = stored(engine, "rollup_1m"), stored(engine, "rollup_1h")
    curb_runs(engine)
    assert (stored(engine, "rollup_1m"), stored(engine, "rollup_1h")) == before


@pytest.mark.parametrize("age_days", [40, 400])
def test_late_readings_merge_into_the_rollups_of_a_retained_hour(engine, device, age_days):
    old = hour_of(NOW - age_days * DAY_MS)
    recent = sample_rows(device.id, hours=1, step_ms=60_000)
    first = sample_rows(device.id, hours=1, step_ms=60_000, start=old)
    storage.write_readings(engine, METRICS, recent + first)
    rollups.run_rollup(engine)  # no cutoff: rolled up while the raw data is whole
    retention.roll_up_and_retain(engine, CUT, 100)  # deletes the raw rows, keeps their rollups
    assert raw_before_cutoff(engine) == 0
    # Late readings into the same minutes, with new extremes and missing values.
    late = [(device.id, old + i * 60_000 + 500, 9999.0 if i % 2 else -5.0, None, 1.0 + i)
            for i in range(0, 60, 3)]
    storage.write_readings(engine, METRICS, late)
    rolled, _, _ = curb_runs(engine)
    assert_rollups_of(engine, recent + first + late)
    assert raw_before_cutoff(engine) == 0 and pending(engine) == []
    assert (rolled.merged_hours, rolled.merged_readings, rolled.late_readings) == (1, len(late), len(late))
    before = stored(engine, "rollup_1m"), stored(engine, "rollup_1h")
    curb_runs(engine)
    assert (stored(engine, "rollup_1m"), stored(engine, "rollup_1h")) == before


def test_late_readings_are_logged_with_what_was_done(engine, device, caplog):
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=1, step_ms=60_000))
    retention.roll_up_and_retain(engine, CUT, 100)
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=2, step_ms=20_000,
                                                        start=hour_of(NOW - 40 * DAY_MS)))
    with caplog.at_level("INFO", logger="lib.storage.rollups"):
        rollups.run_rollup(engine, stale_before=CUT.raw_ms)
    assert ("rolled up 360 late readings in 2 hours before the raw cutoff into hourly rollups "
            "(2 hours already past retention: 360 readings merged and their raw rows deleted)") in caplog.text


def test_retention_records_its_raw_cutoff_per_device_and_never_moves_it_back(engine, devices):
    later = Cutoffs(raw_ms=CUT.raw_ms, minute_ms=CUT.minute_ms, chart_ms=0)
    earlier = Cutoffs(raw_ms=CUT.raw_ms - DAY_MS, minute_ms=CUT.minute_ms - DAY_MS, chart_ms=0)
    assert rollups.retained(engine) == {}
    retention.apply_retention(engine, later, 100)
    retention.apply_retention(engine, earlier, 100)
    assert rollups.retained(engine) == {d: Retained(CUT.raw_ms, CUT.minute_ms) for d in devices}


@pytest.mark.parametrize("isolation, lost", [(rollups.MERGE_ISOLATION, 0), ("READ COMMITTED", 1)])
def test_a_reading_written_during_a_merge_is_never_deleted_uncounted_on_mariadb(request, isolation, lost):
    """READ COMMITTED shows the test can fail: its DELETE sees a reading the INSERT ... SELECT did not."""
    cfg = mysql_settings(request.getfixturevalue("mysql_database"))
    reset_database(cfg)
    engine = storage.make_engine(cfg.database_url)
    device = storage.add_device(engine, "pi-merge")[0]
    old = hour_of(NOW - 40 * DAY_MS)
    storage.write_readings(engine, METRICS, [(device.id, old + 1000, 1.0, 2.0, 3.0)])
    unit = plan([Mark(old, device.id, 0)], {device.id: Retained(CUT.raw_ms, CUT.minute_ms)}).merges[0]
    sql, params = rollups.rollup_sql(engine, METRICS), rollups.unit_params(unit)
    writer = sa.create_engine(cfg.database_url,
                              connect_args={"init_command": "SET innodb_lock_wait_timeout=1"})
    try:
        with engine.connect().execution_options(isolation_level=isolation) as conn, conn.begin():
            conn.execute(sql.merge_hours, params)
            try:  # a late reading of the same hour, written while the merge runs
                storage.write_readings(writer, METRICS, [(device.id, old + 2000, 4.0, 5.0, 6.0)])
            except sa.exc.OperationalError as exc:
                assert isinstance(exc.orig, pymysql.err.OperationalError) and exc.orig.args[0] == 1205
            deleted = conn.execute(sql.delete_hour, params).rowcount
        counted = stored(engine, "rollup_1h")[0][2]
    finally:
        writer.dispose()
        engine.dispose()
    assert deleted - counted == lost


def test_rebuild_merges_into_a_retained_hour(engine, device):
    old = hour_of(NOW - 40 * DAY_MS)
    first = sample_rows(device.id, hours=1, step_ms=60_000, start=old)
    storage.write_readings(engine, METRICS, first)
    rollups.run_rollup(engine)
    retention.roll_up_and_retain(engine, CUT, 100)
    late = [(device.id, old + 1, 1.0, 2.0, 3.0)]
    insert_unmarked(engine, late)  # loaded by hand, after retention had run
    rollups.rebuild(engine)
    assert_rollups_of(engine, first + late)
    assert storage.count_readings(engine) == 0


def test_recomputing_keeps_buckets_whose_readings_are_gone(engine, device):
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=1, step_ms=60_000))
    rollups.run_rollup(engine)
    before = stored(engine, "rollup_1m"), stored(engine, "rollup_1h")
    with engine.begin() as conn:  # retention got half way through the hour
        conn.execute(sa.text("DELETE FROM reading WHERE ts < :t"), {"t": BASE + 30 * MINUTE_MS})
    rollups.rebuild(engine)
    assert (stored(engine, "rollup_1m"), stored(engine, "rollup_1h")) == before


def test_a_second_run_skips_while_the_lock_is_held(engine, device):
    storage.write_readings(engine, METRICS, [(device.id, BASE, 1.0, 2.0, 3.0)])
    with rollups.rollup_lock(engine) as held:
        assert held
        stats = rollups.run_rollup(engine)
    # MariaDB runs take a named lock; SQLite serialises writers itself and needs none.
    assert stats.skipped == (engine.dialect.name == "mysql")
    assert rollups.run_rollup(engine).skipped is False


@pytest.mark.parametrize("isolation, blocks", [("READ COMMITTED", False), ("REPEATABLE READ", True)])
def test_rollup_does_not_block_the_ingest_on_mariadb(request, isolation, blocks):
    """Row locks are a MariaDB matter (SQLite has one writer): REPEATABLE READ shows the test can fail."""
    cfg = mysql_settings(request.getfixturevalue("mysql_database"))
    reset_database(cfg)
    engine = storage.make_engine(cfg.database_url)
    device = storage.add_device(engine, "pi-locks")[0]
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=1, step_ms=60_000))
    sql = rollups.rollup_sql(engine, METRICS)
    unit = plan([Mark(BASE, device.id, 0)]).units[0]  # the whole hour
    writer = sa.create_engine(cfg.database_url,
                              connect_args={"init_command": "SET innodb_lock_wait_timeout=1"})
    try:
        with engine.connect().execution_options(isolation_level=isolation) as conn, conn.begin():
            conn.execute(sql.minutes, rollups.unit_params(unit))  # the rollup's transaction, still open
            try:  # a late reading between two rows the rollup read
                storage.write_readings(writer, METRICS, [(device.id, BASE + 90_000, 1.0, 2.0, 3.0)])
                blocked = False
            except sa.exc.OperationalError as exc:
                assert isinstance(exc.orig, pymysql.err.OperationalError) and exc.orig.args[0] == 1205
                blocked = True
    finally:
        writer.dispose()
        engine.dispose()
    assert blocked == blocks


# ---- metrics added later, reading helper -------------------------------------------------

def test_added_metric_is_rolled_up(engine, device):
    storage.add_metric(engine, Metric("order", "x", 0, 100))  # a keyword: quoted everywhere
    storage.write_readings(engine, ["co2", "order"], [(device.id, BASE + i * 10_000, 500.0, float(i))
                                                      for i in range(12)])
    rollups.run_rollup(engine)
    assert_rollups_match(engine, METRICS + ["order"])
    assert rollups.read_rollups(engine, "rollup_1m", device.id, "order", BASE, BASE + HOUR_MS) == [
        (BASE, 6, 2.5, 0.0, 5.0), (BASE + MINUTE_MS, 6, 8.5, 6.0, 11.0)]
    assert rollups.read_rollups(engine, "rollup_1m", device.id, "temperature", BASE, BASE + HOUR_MS) == []


@pytest.mark.parametrize("table, metric", [
    ("reading", "co2"), ("rollup_1m", "no such"), ("rollup_1m", "a;b")])
def test_read_rollups_refuses_unknown_names(engine, table, metric):
    with pytest.raises(ValueError):
        rollups.read_rollups(engine, table, 1, metric, 0, 1)


def test_read_rollups_window_is_half_open(engine, device):
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=3, step_ms=HOUR_MS))
    rollups.run_rollup(engine)
    got = rollups.read_rollups(engine, "rollup_1h", device.id, "co2", BASE + HOUR_MS, BASE + 2 * HOUR_MS)
    assert [p.bucket for p in got] == [BASE + HOUR_MS]


# ---- rebuilding rollups of data written without marks --------------------------------------

def insert_unmarked(engine, rows) -> None:
    """Readings as written before rollups existed: no pending marks."""
    with engine.begin() as conn:
        conn.exec_driver_sql(storage.insert_readings_sql(engine.dialect.name, METRICS, rows))


def test_rebuild_rolls_up_existing_data(engine, devices):
    old = BASE - 90 * DAY_MS  # beyond the raw cutoff: still there, so rolled up too
    insert_unmarked(engine, sample_rows(devices[0], start=old, step_ms=60_000)
                    + sample_rows(devices[1], step_ms=60_000))
    assert pending(engine) == [] and rollups.run_rollup(engine).marks == 0
    stats = rollups.rebuild(engine)
    assert (stats.marks, stats.hour_rows) == (4, 4)
    assert_rollups_match(engine)


def test_rebuild_of_one_device_and_window(engine, devices):
    insert_unmarked(engine, sample_rows(devices[0], hours=3, step_ms=60_000)
                    + sample_rows(devices[1], hours=3, step_ms=60_000))
    stats = rollups.rebuild(engine, devices[1], BASE + HOUR_MS, BASE + HOUR_MS + 1)
    assert stats.hour_rows == 1
    assert [r[:2] for r in stored(engine, "rollup_1h")] == [(devices[1], BASE + HOUR_MS)]

"""Retention over real databases: bounded deletes, what the policy keeps, nothing acked lost."""
from __future__ import annotations

import math
import threading

import pytest
import sqlalchemy as sa

from lib import storage
from lib.rollup import DAY_MS, HOUR_MS, Cutoffs, RetentionPolicy, hour_of
from lib.storage import retention, rollups
from tests.test_server_isolation import wait_until
from tests.test_storage_rollups import BASE, METRICS, NOW, pending, sample_rows, stored, whole_hours


@pytest.mark.parametrize("count, batch, expected_batches", [
    (23, 5, [5, 5, 5, 5, 3]), (10, 5, [5, 5]), (1, 5, [1]), (0, 5, []), (4, 1, [1, 1, 1, 1])])
def test_raw_deletes_are_bounded_batches(engine, devices, count, batch, expected_batches):
    cut = BASE
    rows = [(devices[0], cut - 1 - i * 1000, 1.0, 2.0, 3.0) for i in range(count)]
    keep = [(devices[0], cut, 1.0, 2.0, 3.0), (devices[0], cut + 1, 1.0, 2.0, 3.0),
            (devices[1], cut - 5000, 1.0, 2.0, 3.0)]
    storage.write_readings(engine, METRICS, rows + keep)
    assert retention.delete_before(engine, "reading", devices[0], cut, batch) == expected_batches
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT device_id, ts FROM reading ORDER BY device_id, ts")).all()
    assert [tuple(r) for r in left] == sorted(r[:2] for r in keep)


def test_retention_keeps_what_the_policy_says(engine, devices):
    policy = RetentionPolicy(raw_days=30, minute_days=365, batch_rows=7)
    cut = policy.cutoffs(NOW)
    ages = {"raw_old": NOW - 31 * DAY_MS, "raw_new": NOW - 29 * DAY_MS,
            "minute_old": NOW - 400 * DAY_MS, "minute_new": NOW - 300 * DAY_MS}
    for d in devices[:2]:
        for at in ages.values():
            storage.write_readings(engine, METRICS,
                                   sample_rows(d, hours=1, step_ms=300_000, start=hour_of(at)))
    rollups.run_rollup(engine)  # every hour rolled up (no cutoff)
    hours_before = stored(engine, "rollup_1h")
    with engine.begin() as conn:  # marks: one too old to matter, one still useful
        storage.mark_pending(conn, whole_hours((devices[0], hour_of(ages["raw_old"])),
                                               (devices[0], hour_of(ages["raw_new"]))))
    stats = retention.apply_retention(engine, cut, policy.batch_rows)
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT MIN(ts), COUNT(*) FROM reading")).one()
        minutes = conn.execute(sa.text("SELECT MIN(bucket), COUNT(*) FROM rollup_1m")).one()
    # The pending mark of raw_old says it was written since the rollup: device 0 keeps its raw
    # rows from that hour on until a rollup has counted them; device 1 loses all it should.
    assert raw == (hour_of(ages["raw_old"]), 12 + 12 + 12)
    assert minutes[0] == hour_of(ages["minute_new"]) and minutes[1] == 2 * 3 * 12
    assert stored(engine, "rollup_1h") == hours_before  # hourly kept forever
    assert (stats.raw_rows, stats.minute_rows, stats.devices, stats.deferred) == (2 * 12 + 3 * 12, 2 * 12, 3, 1)
    # Whole hours per transaction: each hour of 12 rows is one batch, although batch_rows is 7.
    assert stats.raw_batches == 2 + 3 and stats.minute_batches == 2 * math.ceil(12 / 7)
    again = retention.apply_retention(engine, cut, policy.batch_rows)
    assert (again.raw_rows, again.minute_rows, again.deferred) == (0, 0, 1)
    assert pending(engine) == [(devices[0], hour_of(ages["raw_old"]), 0),
                               (devices[0], hour_of(ages["raw_new"]), 0)]
    # The hour was never deleted, so it is recomputed (not merged), and then retention goes on.
    assert rollups.run_rollup(engine, stale_before=cut.raw_ms).merged_hours == 0
    assert pending(engine) == []
    last = retention.apply_retention(engine, cut, policy.batch_rows)
    assert (last.raw_rows, last.deferred) == (12, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT MIN(ts), COUNT(*) FROM reading")).one() == (
            hour_of(ages["raw_new"]), 2 * 12)
    assert stored(engine, "rollup_1h") == hours_before


def test_a_reading_written_into_an_old_hour_during_retention_is_never_lost(engine, devices):
    """The write lands after the rollup that retention runs first: it is kept, then counted."""
    policy = RetentionPolicy(raw_days=30, minute_days=365, batch_rows=5000)
    cut = policy.cutoffs(NOW)
    old_hour = hour_of(NOW - 40 * DAY_MS)
    storage.write_readings(engine, METRICS, sample_rows(devices[0], hours=1, step_ms=60_000, start=old_hour))
    rollups.run_rollup(engine)
    # Between roll_up_and_retain's rollup and its deletes, the Pi uploads one more old reading.
    storage.write_readings(engine, METRICS, [(devices[0], old_hour + 30_500, 999.0, 25.0, None)])
    retention.apply_retention(engine, cut, policy.batch_rows)
    assert storage.count_readings(engine, devices[0]) == 61  # nothing deleted unrolled
    rollups.run_rollup(engine, stale_before=cut.raw_ms)
    retention.apply_retention(engine, cut, policy.batch_rows)
    assert storage.count_readings(engine, devices[0]) == 0
    with engine.connect() as conn:
        n, top = conn.execute(sa.text("SELECT co2_n, co2_max FROM rollup_1h WHERE device_id = :d AND "
                                      "bucket = :h"), {"d": devices[0], "h": old_hour}).one()
    assert (n, top) == (61, 999.0)


def test_retention_cutoffs_in_the_past_delete_nothing(engine, device):
    storage.write_readings(engine, METRICS, sample_rows(device.id, hours=1))
    rollups.run_rollup(engine)
    stats = retention.apply_retention(engine, Cutoffs(raw_ms=0, minute_ms=0, chart_ms=0), 100)
    assert (stats.raw_rows, stats.minute_rows) == (0, 0)
    assert storage.count_readings(engine) == len(sample_rows(device.id, hours=1))


def test_roll_up_and_retain_rolls_up_pending_hours_first(engine, device):
    cut = RetentionPolicy().cutoffs(NOW)
    kept, gone = cut.raw_ms, cut.raw_ms - HOUR_MS
    storage.write_readings(engine, METRICS, [(device.id, gone + 5, 1.0, 2.0, 3.0),
                                             (device.id, kept + 5, 4.0, 5.0, 6.0)])
    rolled, deleted = retention.roll_up_and_retain(engine, cut, 100)
    hours = rollups.read_rollups(engine, "rollup_1h", device.id, "co2", 0, NOW)
    assert [p.bucket for p in hours] == [gone, kept]
    assert (rolled.marks, rolled.late_hours, rolled.merged_hours, deleted.raw_rows) == (2, 1, 0, 1)
    assert pending(engine) == []


def test_roll_up_and_retain_waits_for_the_lock(engine, device):
    storage.write_readings(engine, METRICS, [(device.id, 5, 1.0, 2.0, 3.0)])  # 1970: far too old
    with rollups.rollup_lock(engine):
        done = retention.roll_up_and_retain(engine, RetentionPolicy().cutoffs(NOW), 100, wait_s=0)
    if engine.dialect.name == "mysql":
        assert done is None and storage.count_readings(engine) == 1
    else:  # SQLite has no lock to wait for
        assert done is not None and storage.count_readings(engine) == 0


@pytest.mark.parametrize("settings", ["mysql"], indirect=True)  # SQLite has no lock to share
def test_a_rollup_runs_between_the_devices_of_a_retention_run(engine):
    """Retention takes the rollup lock device by device, so rollups are not held up for its whole run."""
    ids = [storage.add_device(engine, f"pi-ret-{i}")[0].id for i in range(40)]
    old = NOW - 40 * DAY_MS
    for d in ids:  # three old hours each, to delete hour by hour
        storage.write_readings(engine, METRICS, sample_rows(d, hours=3, step_ms=10_000, start=hour_of(old)))
    rollups.run_rollup(engine)
    progress: list[int] = []
    worker = threading.Thread(target=lambda: progress.append(
        retention.roll_up_and_retain(engine, RetentionPolicy().cutoffs(NOW), 500)[1].devices))
    worker.start()
    try:
        assert wait_until(lambda: recorded(engine) > 0, 30), "retention did not start"
        rolled = rollups.run_rollup(engine, wait_s=60)
        done_at_rollup = recorded(engine)
    finally:
        worker.join(120)
    assert not rolled.skipped
    assert progress == [len(ids)] and done_at_rollup < len(ids)  # it ran before retention ended


def recorded(engine) -> int:
    """Devices whose retention cutoffs are recorded."""
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT COUNT(*) FROM retention_state"))

"""SQL of retention: deleting old raw readings and 1-minute rollups in short transactions.

Raw readings go an hour per transaction, each recording the cutoff it reached, and never
before a rollup has counted them (see delete_raw_before); roll_up_and_retain runs a rollup
first, and takes the rollup lock for each device's deletes.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib.rollup import HOUR_MS, Cutoffs, Retained, hour_of
from lib.storage import dialect as dialects
from lib.storage.rollups import MERGE_ISOLATION, RollupStats, isolated, retained, roll_up_held, rollup_lock

log = logging.getLogger(__name__)


@dataclass
class RetentionStats:
    """Rows deleted by a retention run, the batches they took, and the devices it recorded cutoffs of."""

    raw_rows: int = 0
    raw_batches: int = 0
    minute_rows: int = 0
    minute_batches: int = 0
    devices: int = 0
    deferred: int = 0  # devices whose raw deletion stopped at an hour written since the rollup
    stopped: bool = False  # a rollup held the lock too long: later devices wait for the next run

    def as_dict(self) -> dict:
        """JSON-friendly counts (a Celery task result)."""
        return asdict(self)


_TIME_COLUMN = {"reading": "ts", "rollup_1m": "bucket"}


def delete_before(engine: Engine, table: str, device_id: int, cutoff_ms: int, batch: int) -> list[int]:
    """Delete a device's rows of `table` older than `cutoff_ms`, `batch` rows per transaction.

    Returns the rows deleted by each batch. Each batch finds its last row through the
    primary key and deletes up to it, so it stays short and never scans the table.
    """
    col = _TIME_COLUMN[table]
    where = f"device_id = :d AND {col} < :cut"
    find = sa.text(f"SELECT {col} FROM {table} WHERE {where} ORDER BY {col} LIMIT 1 OFFSET :offset")
    upto = sa.text(f"DELETE FROM {table} WHERE device_id = :d AND {col} <= :upto")
    rest = sa.text(f"DELETE FROM {table} WHERE {where}")
    params = {"d": device_id, "cut": cutoff_ms, "offset": batch - 1}
    counts = []
    while True:
        with isolated(engine) as conn, conn.begin():
            boundary = conn.scalar(find, params)
            if boundary is None:
                deleted = conn.execute(rest, params).rowcount
            else:
                deleted = conn.execute(upto, {**params, "upto": boundary}).rowcount
        if deleted:
            counts.append(deleted)
        if boundary is None:
            return counts


def apply_retention(engine: Engine, cutoffs: Cutoffs, batch: int,
                    lock_wait_s: float | None = None) -> RetentionStats:
    """Delete raw readings and 1-minute rollups past their cutoffs; record the cutoffs per device.

    Pending marks are kept: a reading written after the deletes is still raw, and its mark
    has the next rollup merge it (a mark whose readings were deleted merges nothing).
    With `lock_wait_s`, each device is done under the rollup lock, waiting that long for it,
    so rollups run between devices rather than after the whole run; the run stops at a
    device whose lock it did not get (`stopped`). Without, the caller holds the lock.
    """
    stats = RetentionStats()
    with engine.connect() as conn:
        devices = list(conn.scalars(sa.text("SELECT id FROM device ORDER BY id")))
    before = retained(engine)
    for device_id in devices:
        if lock_wait_s is None:
            _retain_device(engine, device_id, before.get(device_id), cutoffs, batch, stats)
            continue
        with rollup_lock(engine, lock_wait_s) as locked:
            if not locked:
                stats.stopped = True
                log.warning("retention stopped before device %d: a rollup held the lock over %g s",
                            device_id, lock_wait_s)
                break
            _retain_device(engine, device_id, before.get(device_id), cutoffs, batch, stats)
    log.info("retention: %s", stats.as_dict())
    return stats


def _retain_device(engine: Engine, device_id: int, done: Retained | None, cutoffs: Cutoffs,
                   batch: int, stats: RetentionStats) -> None:
    """apply_retention's deletes of one device, its cutoffs recorded; counted into `stats`."""
    record = _record_sql(engine)
    raw, deferred = delete_raw_before(engine, device_id, done.raw_ms if done else 0,
                                      cutoffs.raw_ms, batch)
    minute = delete_before(engine, "rollup_1m", device_id, cutoffs.minute_ms, batch)
    stats.raw_rows += sum(raw)
    stats.raw_batches += len(raw)
    stats.minute_rows += sum(minute)
    stats.minute_batches += len(minute)
    if deferred is not None:
        stats.deferred += 1
        log.info("retention: device %d keeps its raw readings from %d on: written since the "
                 "rollup, they are rolled up first (next run)", device_id, deferred)
    with engine.begin() as conn:  # raw cutoffs are recorded batch by batch, with the deletes
        conn.execute(record, {"d": device_id, "raw": 0, "minute": cutoffs.minute_ms})
    stats.devices += 1


class _Deferred(Exception):
    """A batch met an hour with a pending mark: roll it back."""


def delete_raw_before(engine: Engine, device_id: int, low_ms: int, cutoff_ms: int,
                      batch: int) -> tuple[list[int], int | None]:
    """Delete a device's raw readings in [low_ms, cutoff_ms), whole hours per transaction.

    Each transaction records the raw cutoff it reaches and deletes only if no hour it covers
    has a pending mark (readings written since the rollup that ran first), so a reading is
    never deleted before it is rolled up: on MariaDB, at REPEATABLE READ, the locking reads
    make a concurrent write of those hours wait for the commit, after which it lands in an
    hour past the recorded cutoff and is merged. Rows before low_ms (the cutoff recorded
    before) are late readings waiting for that merge, and are left alone. Returns the rows
    deleted per batch, and the hour it stopped at (None once it reached cutoff_ms).
    """
    lock = dialects.for_update(engine.dialect.name)
    span = "device_id = :d AND ts >= :low AND ts < :upto"
    first = sa.text(f"SELECT MIN(ts) FROM reading WHERE {span}")
    nth = sa.text(f"SELECT ts FROM reading WHERE {span} ORDER BY ts LIMIT 1 OFFSET :offset")
    hold = sa.text(f"SELECT COUNT(*) FROM reading WHERE {span}{lock}")
    marked = sa.text("SELECT MIN(hour) FROM rollup_pending WHERE device_id = :d AND hour >= :low "
                     f"AND hour < :upto{lock}")
    delete = sa.text(f"DELETE FROM reading WHERE {span}")
    record = _record_sql(engine)
    counts, low = [], hour_of(low_ms)
    while low < cutoff_ms:
        params = {"d": device_id, "low": low, "upto": cutoff_ms, "offset": batch - 1}
        with engine.connect() as conn:
            start, boundary = conn.scalar(first, params), conn.scalar(nth, params)
        upto = cutoff_ms if boundary is None else min(
            cutoff_ms, max(hour_of(boundary), hour_of(start) + HOUR_MS))
        params["upto"] = upto
        try:
            with isolated(engine, MERGE_ISOLATION) as conn, conn.begin():
                conn.execute(record, {"d": device_id, "raw": upto, "minute": 0})  # SQLite: the write lock
                conn.scalar(hold, params)
                hour = conn.scalar(marked, params)
                if hour is not None:
                    raise _Deferred(hour)
                deleted = conn.execute(delete, params).rowcount
        except _Deferred as stop:
            return counts, int(stop.args[0])
        if deleted:
            counts.append(deleted)
        low = upto
    return counts, None


def _record_sql(engine: Engine) -> sa.TextClause:
    """Upsert of a device's retention cutoffs that never moves them back (raw_days may grow)."""
    cols, dialect = ("raw_before_ms", "minute_before_ms"), engine.dialect.name
    greatest = dialects.greatest(dialect)
    tail = dialects.upsert_tail(dialect, ("device_id",), [
        f"{c} = {greatest}({c}, {dialects.excluded(dialect, c)})" for c in cols])
    return sa.text("INSERT INTO retention_state (device_id, raw_before_ms, minute_before_ms) "
                   f"VALUES (:d, :raw, :minute) {tail}")


def roll_up_and_retain(engine: Engine, cutoffs: Cutoffs, batch: int,
                       wait_s: float = 300) -> tuple[RollupStats, RetentionStats] | None:
    """Roll up every pending hour under the rollup lock, then apply retention device by device under it.

    Rolling up first means late readings of any age are counted before anything is deleted
    (one written since has a pending mark, and its hour is kept); taking the lock per device
    means no run recomputes an hour while its readings are deleted, nor reads the retention
    cutoffs while they are being recorded, yet rollups run between devices.
    Returns None when another run held the lock for longer than `wait_s`.
    """
    with rollup_lock(engine, wait_s) as locked:
        if not locked:
            return None
        rolled = roll_up_held(engine, cutoffs.raw_ms)
    return rolled, apply_retention(engine, cutoffs, batch, lock_wait_s=wait_s)

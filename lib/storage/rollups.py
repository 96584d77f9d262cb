"""SQL of rollups: recomputing pending hours, merging late readings into retained ones.

Retention, which deletes old rows, is in lib/storage/retention.py.

A rollup run reads pending (device, hour) marks oldest first and takes them: a mark's range of
written ts moves to its taken range, and writes from then on start a new range. For the devices
of an hour whose taken ranges span the same minutes, one set-based INSERT ... SELECT (an upsert)
recomputes those 1-minute rows, then the hour rows from the hour's minute rows; the same
transaction deletes the marks not written since the take (same gen) and empties the others'
taken range, so the next run redoes only their new range. A failed run leaves its taken ranges.

Readings are acked at any age, so a Pi back after a long outage delivers hours older than the
raw retention. An hour that retention has not deleted yet is recomputed as above, whatever its
age. An hour that retention already deleted for the device (before the raw cutoff it last
applied, kept in retention_state) holds only readings that arrived after the deletion: a merge
adds them into the kept rollup rows (counts and sums added, min of mins, max of maxes; minute
rows only while minute retention keeps them) and deletes them in the same transaction, so each
is counted once. A replay of a reading whose raw row is gone is counted again by a merge: that
needs an ack lost exactly across a retention run, for a reading a month old.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import asdict, dataclass
from typing import Iterator, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lib.catalogue import check_name
from lib.models import RetentionState, RollupPending, rollup_column_names
from lib.rollup import HOUR_MS, MAX_DEVICES_PER_UNIT, MINUTE_MS, Mark, Retained, WorkUnit, by_hour, plan
from lib.storage import dialect as dialects, load_catalogue, locks

log = logging.getLogger(__name__)

PENDING_BATCH = 5000  # marks read per query
ROLLUP_TABLES = ("rollup_1m", "rollup_1h")
FAR_FUTURE_MS = 2 ** 62
LOCK_NAME = "rollup"  # a named lock of this database on MariaDB
MERGE_ISOLATION = "REPEATABLE READ"  # of a merge on MariaDB: see merge_unit


# ---- results --------------------------------------------------------------------

@dataclass
class RollupStats:
    """What a rollup run did; `more` means it stopped at its time budget with marks left.

    marks and units count recomputed and merged ones; late_hours are the marks of hours before
    the raw cutoff, late_readings the readings rolled up in them; merged_hours and
    merged_readings the part of those merged into rollups of hours retention already deleted.
    minute_rows and hour_rows are the rows recomputed.
    """

    marks: int = 0
    units: int = 0
    late_hours: int = 0
    late_readings: int = 0
    merged_hours: int = 0
    merged_readings: int = 0
    minute_rows: int = 0
    hour_rows: int = 0
    seconds: float = 0.0
    skipped: bool = False
    more: bool = False

    def as_dict(self) -> dict:
        """JSON-friendly counts (a Celery task result)."""
        return {**asdict(self), "seconds": round(self.seconds, 3)}

    def add(self, unit: WorkUnit, rows: tuple[int, int, int], late: bool = False) -> None:
        """Count a recomputed unit and its (minute rows, hour rows, readings counted when late)."""
        self.units, self.marks = self.units + 1, self.marks + len(unit.marks)
        self.minute_rows, self.hour_rows = self.minute_rows + rows[0], self.hour_rows + rows[1]
        if late:
            self.late_hours += len(unit.marks)
            self.late_readings += rows[2]

    def add_merge(self, unit: WorkUnit, readings: int) -> None:
        """Count a merged unit and the readings it merged."""
        self.units, self.marks = self.units + 1, self.marks + len(unit.marks)
        self.merged_hours += len(unit.marks)
        self.merged_readings += readings
        self.late_hours += len(unit.marks)
        self.late_readings += readings

    def log_late(self) -> None:
        """Say what was done with readings older than the raw cutoff, if any."""
        if not self.late_hours:
            return
        merged = (f" ({self.merged_hours} hours already past retention: {self.merged_readings} readings "
                  "merged and their raw rows deleted)" if self.merged_hours else "")
        log.info("rolled up %d late readings in %d hours before the raw cutoff into hourly rollups%s",
                 self.late_readings, self.late_hours, merged)


class RollupPoint(NamedTuple):
    """One bucket of one metric."""

    bucket: int
    n: int
    mean: float
    min: float
    max: float


# ---- statements -------------------------------------------------------------------

@dataclass(frozen=True)
class RollupSql:
    """The statements of one rollup run, built once for the catalogue's metrics."""

    minutes: sa.TextClause
    hours: sa.TextClause
    count: sa.TextClause
    readings: sa.TextClause  # readings in a unit's span
    merge_minutes: sa.TextClause
    merge_hours: sa.TextClause
    delete_hour: sa.TextClause


DEVICES = sa.bindparam("devices", expanding=True)
# A written range after a take: LEAST and GREATEST with the next write give that write's range.
EMPTY_LO, EMPTY_HI = FAR_FUTURE_MS, -FAR_FUTURE_MS
IN_UNIT = "hour = :hour AND device_id IN :devices"
BUCKET_KEY = ("device_id", "bucket")  # the rollup tables' primary key, which their upserts meet
TAKEN = sa.text("SELECT hour, device_id, gen, taken_lo_ms, taken_hi_ms FROM rollup_pending "
                f"WHERE {IN_UNIT} ORDER BY device_id").bindparams(DEVICES)
RELEASE = sa.text("UPDATE rollup_pending SET taken_lo_ms = NULL, taken_hi_ms = NULL "
                  f"WHERE {IN_UNIT}").bindparams(DEVICES)


def rollup_sql(engine: Engine, metrics: Sequence[str]) -> RollupSql:
    """Upserts recomputing some devices' 1-minute rows in [start, end) from `reading`, and their hour rows."""
    quote = engine.dialect.identifier_preparer.quote
    dialect = engine.dialect.name
    columns = [quote(c) for m in metrics for c in rollup_column_names(check_name(m))]
    raw = ", ".join(f"COUNT({c}), SUM({c}), MIN({c}), MAX({c})" for c in map(quote, metrics))
    merged = ", ".join(f"SUM({n}), SUM({s}), MIN({lo}), MAX({hi})"
                       for n, s, lo, hi in zip(*[iter(columns)] * 4))
    bucket = f"ts {dialects.int_div(dialect)} {MINUTE_MS} * {MINUTE_MS}"
    update = dialects.upsert_tail(dialect, BUCKET_KEY,
                                  [f"{c} = {dialects.excluded(dialect, c)}" for c in columns])
    add = _merge_update(columns, dialect)
    in_span = "device_id IN :devices AND {col} >= :start AND {col} < :end"
    in_hour = "device_id IN :devices AND {col} >= :hour AND {col} < :hour_end"
    into = f"INTO {{table}} (device_id, bucket, {', '.join(columns)})"
    minutes_of_raw = (f"INSERT {into.format(table='rollup_1m')} SELECT device_id, {bucket}, {raw} "
                      f"FROM reading WHERE {in_span.format(col='ts')} GROUP BY device_id, {bucket} ")
    return RollupSql(
        minutes=_with_devices(minutes_of_raw + update),
        hours=_with_devices(f"INSERT {into.format(table='rollup_1h')} SELECT device_id, :hour, {merged} "
                            f"FROM rollup_1m WHERE {in_hour.format(col='bucket')} "
                            f"GROUP BY device_id {update}"),
        count=_with_devices(f"SELECT (SELECT COUNT(*) FROM rollup_1m WHERE {in_span.format(col='bucket')}), "
                            f"(SELECT COUNT(*) FROM rollup_1h WHERE {in_hour.format(col='bucket')})"),
        readings=_with_devices(f"SELECT COUNT(*) FROM reading WHERE {in_span.format(col='ts')}"),
        merge_minutes=_with_devices(minutes_of_raw + add),
        # Hour rows straight from the raw readings: an hour's minute rows may be gone already.
        merge_hours=_with_devices(f"INSERT {into.format(table='rollup_1h')} SELECT device_id, :hour, {raw} "
                                  f"FROM reading WHERE {in_hour.format(col='ts')} GROUP BY device_id {add}"),
        delete_hour=_with_devices(f"DELETE FROM reading WHERE {in_hour.format(col='ts')}"))


def _merge_update(columns: Sequence[str], dialect: str) -> str:
    """Upsert clause adding new aggregates into a stored row: sums added, min of mins, max of maxes.

    COALESCE keeps the side that is not NULL (a metric with no values on one side). Each
    assignment reads only its own column, as MariaDB applies them left to right.
    """
    new = functools.partial(dialects.excluded, dialect)
    least, greatest = dialects.least(dialect), dialects.greatest(dialect)
    sets = []
    for n, total, low, high in zip(*[iter(columns)] * 4):
        sets.append(f"{n} = {n} + {new(n)}")
        sets.append(f"{total} = COALESCE({total} + {new(total)}, {total}, {new(total)})")
        for col, pick in ((low, least), (high, greatest)):
            sets.append(f"{col} = COALESCE({pick}({col}, {new(col)}), {col}, {new(col)})")
    return dialects.upsert_tail(dialect, BUCKET_KEY, sets)


def _with_devices(sql: str) -> sa.TextClause:
    """A statement whose :devices parameter is a list, expanded into IN (...)."""
    return sa.text(sql).bindparams(DEVICES)


def unit_params(unit: WorkUnit) -> dict:
    """Parameters of a unit's statements: its devices, minutes to redo and hour."""
    return {"devices": unit.device_ids, "start": unit.start, "end": unit.end,
            "hour": unit.hour, "hour_end": unit.hour + HOUR_MS}


@contextlib.contextmanager
def isolated(engine: Engine, isolation: str = "READ COMMITTED") -> Iterator[Connection]:
    """A connection that reads at READ COMMITTED (or `isolation`) on MariaDB.

    There INSERT ... SELECT and the retention deletes then take no shared or gap locks on
    `reading`, so they never hold up the ingest; SQLite has a single writer anyway.
    """
    with engine.connect() as conn:
        if dialects.sets_isolation(engine.dialect.name):
            conn = conn.execution_options(isolation_level=isolation)
        yield conn


@contextlib.contextmanager
def rollup_lock(engine: Engine, wait_s: float = 0) -> Iterator[bool]:
    """Hold the database's rollup lock while the block runs; yields False when another run has it.

    On MariaDB two runs writing the same buckets would collide on their keys, so runs take a
    named lock; SQLite serialises writers by itself.
    """
    if not dialects.has_named_locks(engine.dialect.name):
        yield True
        return
    with locks.named_lock(engine, LOCK_NAME, wait_s) as got:
        yield got


# ---- rollup -----------------------------------------------------------------------

def read_pending(engine: Engine, limit: int = PENDING_BATCH,
                 after: tuple[int, int] | None = None) -> list[Mark]:
    """Up to `limit` pending marks, without ranges (see take), oldest hour first, after (hour, device_id)."""
    query = "SELECT hour, device_id, gen FROM rollup_pending"
    params = {"limit": limit}
    if after is not None:
        query += " WHERE hour > :hour OR (hour = :hour AND device_id > :device_id)"
        params.update(hour=after[0], device_id=after[1])
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query + " ORDER BY hour, device_id LIMIT :limit"), params)
        return [Mark(*row) for row in rows]


def take(engine: Engine, marks: Sequence[Mark], chunk: int = MAX_DEVICES_PER_UNIT) -> list[Mark]:
    """Move the marks' written ranges into their taken ranges; return the marks as taken.

    Each chunk is a short transaction, so a write waits for it at most briefly; the taken
    range stays in the row until the run that recomputes it commits.
    """
    least, greatest = dialects.least(engine.dialect.name), dialects.greatest(engine.dialect.name)
    move = sa.text(f"UPDATE rollup_pending SET taken_lo_ms = COALESCE({least}(taken_lo_ms, lo_ms), lo_ms), "
                   f"taken_hi_ms = COALESCE({greatest}(taken_hi_ms, hi_ms), hi_ms), "
                   f"lo_ms = {EMPTY_LO}, hi_ms = {EMPTY_HI} WHERE {IN_UNIT}").bindparams(DEVICES)
    taken = []
    with isolated(engine) as conn:
        for hour, group in by_hour(marks).items():
            devices = [m.device_id for m in group]
            for i in range(0, len(devices), chunk):
                with conn.begin():
                    params = {"hour": hour, "devices": devices[i:i + chunk]}
                    conn.execute(move, params)
                    taken += [Mark(*row) for row in conn.execute(TAKEN, params)]
    return taken


def roll_up_unit(engine: Engine, sql: RollupSql, unit: WorkUnit, clear: bool = True,
                 late: bool = False) -> tuple[int, int, int]:
    """Recompute a unit's minutes in its span and its hour rows, clear its marks.

    Returns the minute and hour rows written, and when `late` the readings in the span (else 0).
    Buckets are upserted, never deleted: a bucket whose readings retention removed keeps its rows.
    """
    params = unit_params(unit)
    with isolated(engine) as conn, conn.begin():
        conn.execute(sql.minutes, params)
        conn.execute(sql.hours, params)
        # Counted, as MariaDB's rowcount of an upsert counts an updated row twice.
        minutes, hours = conn.execute(sql.count, params).one()
        readings = conn.scalar(sql.readings, params) if late else 0
        if clear:
            _clear(conn, unit.marks)
    return int(minutes), int(hours), int(readings)


def merge_unit(engine: Engine, sql: RollupSql, unit: WorkUnit, clear: bool = True) -> int:
    """Add a merge unit's raw readings into its kept rollups, delete them and clear its marks; count them.

    On MariaDB the transaction runs at REPEATABLE READ: there INSERT ... SELECT locks the rows
    and gaps of the hour it reads, so a reading written meanwhile waits for the commit rather
    than being deleted without being counted (READ COMMITTED would let the DELETE see it).
    """
    params = unit_params(unit)
    with isolated(engine, MERGE_ISOLATION) as conn, conn.begin():
        conn.execute(sql.merge_hours, params)
        if unit.start < unit.end:
            conn.execute(sql.merge_minutes, params)
        readings = conn.execute(sql.delete_hour, params).rowcount
        if clear:
            _clear(conn, unit.marks)
    return readings


def _clear(conn: Connection, marks: Sequence[Mark]) -> None:
    """Delete the marks as read or taken; one written since (a new gen) stays, with no taken range."""
    for hour, group in by_hour(marks).items():
        devices = [m.device_id for m in group]
        # The IN list finds the rows by primary key; the pairs then keep those of the same gen.
        conn.execute(sa.delete(RollupPending).where(
            RollupPending.hour == hour, RollupPending.device_id.in_(devices),
            sa.tuple_(RollupPending.device_id, RollupPending.gen).in_([(m.device_id, m.gen) for m in group])))
        conn.execute(RELEASE, {"hour": hour, "devices": devices})


def retained(engine: Engine) -> dict[int, Retained]:
    """The cutoffs retention last applied, by device; a device it never ran for is absent."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(RetentionState.device_id, RetentionState.raw_before_ms,
                                      RetentionState.minute_before_ms))
        return {d: Retained(int(raw), int(minute)) for d, raw, minute in rows}


def run_rollup(engine: Engine, stale_before: int | None = None, budget_s: float | None = None,
               wait_s: float = 0, batch: int = PENDING_BATCH,
               max_devices: int = MAX_DEVICES_PER_UNIT) -> RollupStats:
    """Roll up the hours marked pending, each mark at most once per run.

    Hours that retention already deleted are merged into, the others recomputed; those
    before `stale_before` (the raw cutoff) are counted and logged as late. The run stops after
    `budget_s` seconds, and skips when another run holds the lock for longer than `wait_s`.
    """
    with rollup_lock(engine, wait_s) as locked:
        if not locked:
            log.info("rollup skipped: another run holds the lock")
            return RollupStats(skipped=True)
        return roll_up_held(engine, stale_before, budget_s, batch, max_devices)


def roll_up_held(engine: Engine, stale_before: int | None, budget_s: float | None = None,
             batch: int = PENDING_BATCH, max_devices: int = MAX_DEVICES_PER_UNIT) -> RollupStats:
    """run_rollup's work, with the lock held."""
    started = time.perf_counter()
    stats = RollupStats()
    sql = rollup_sql(engine, load_catalogue(engine).names)
    kept = retained(engine)  # written by retention only, which holds the lock this run holds
    deadline = None if budget_s is None else started + budget_s
    after = None
    while not stats.more:
        marks = read_pending(engine, batch, after)
        if not marks:
            break
        after = (marks[-1].hour, marks[-1].device_id)
        _run_batch(engine, sql, plan(marks, kept, max_devices), stale_before, stats, deadline, max_devices)
        if len(marks) < batch:
            break
    stats.seconds = time.perf_counter() - started
    if stats.marks:
        log.info("rollup: %s", stats.as_dict())
        stats.log_late()
    return stats


def _run_batch(engine: Engine, sql: RollupSql, work, stale_before: int | None, stats: RollupStats,
               deadline: float | None, max_devices: int) -> None:
    """Merge a batch's retained hours, take the other marks and recompute them, until the deadline."""
    for unit in work.merges:  # marks as read: a merge redoes its whole hour, whatever the range
        if deadline is not None and time.perf_counter() > deadline:
            stats.more = True
            return
        stats.add_merge(unit, merge_unit(engine, sql, unit))
    taken = take(engine, [m for u in work.units for m in u.marks], max_devices)
    for unit in plan(taken, max_devices=max_devices).units:
        if deadline is not None and time.perf_counter() > deadline:
            stats.more = True
            return
        late = stale_before is not None and unit.hour < stale_before
        stats.add(unit, roll_up_unit(engine, sql, unit, late=late), late)


def data_hours(engine: Engine, device_id: int | None = None, start_ms: int | None = None,
               end_ms: int | None = None) -> list[Mark]:
    """(device, hour) of the raw readings in [start_ms, end_ms), as gen-0 marks."""
    div = dialects.int_div(engine.dialect.name)
    query = sa.text(f"SELECT DISTINCT ts {div} {HOUR_MS} * {HOUR_MS} FROM reading "
                    "WHERE device_id = :d AND ts >= :start AND ts < :end")
    bounds = {"start": 0 if start_ms is None else start_ms,
              "end": FAR_FUTURE_MS if end_ms is None else end_ms}
    with engine.connect() as conn:
        devices = ([device_id] if device_id is not None
                   else list(conn.scalars(sa.text("SELECT id FROM device ORDER BY id"))))
        # One query per device keeps each on a primary-key range.
        return [Mark(int(hour), d, 0) for d in devices for hour in conn.scalars(query, {"d": d, **bounds})]


def rebuild(engine: Engine, device_id: int | None = None, start_ms: int | None = None,
            end_ms: int | None = None, wait_s: float = 600) -> RollupStats:
    """Recompute the rollups of every hour holding raw readings (data loaded before rollups existed).

    Every such hour is recomputed, also beyond the raw cutoff, unless retention already deleted
    it: then its readings arrived later and are merged (and deleted) instead. Pending marks are
    left alone: the regular run redoes their hours, or merges nothing in a merged one.
    """
    started = time.perf_counter()
    stats = RollupStats()
    with rollup_lock(engine, wait_s) as locked:
        if not locked:
            return RollupStats(skipped=True)
        sql = rollup_sql(engine, load_catalogue(engine).names)
        work = plan(data_hours(engine, device_id, start_ms, end_ms), retained(engine))
        for unit in work.merges:
            stats.add_merge(unit, merge_unit(engine, sql, unit, clear=False))
        for unit in work.units:
            stats.add(unit, roll_up_unit(engine, sql, unit, clear=False))
    stats.seconds = time.perf_counter() - started
    log.info("rollup rebuild: %s", stats.as_dict())
    return stats


# ---- reading ------------------------------------------------------------------------

def read_rollups(engine: Engine, table: str, device_id: int, metric: str,
                 start_ms: int, end_ms: int) -> list[RollupPoint]:
    """Buckets in [start_ms, end_ms) of `table` ("rollup_1m" or "rollup_1h") holding values of `metric`."""
    if table not in ROLLUP_TABLES:
        raise ValueError(f"unknown rollup table {table!r}")
    quote = engine.dialect.identifier_preparer.quote
    n, total, low, high = map(quote, rollup_column_names(check_name(metric)))
    query = sa.text(f"SELECT bucket, {n}, {total}, {low}, {high} FROM {table} "
                    f"WHERE device_id = :d AND bucket >= :start AND bucket < :end AND {n} > 0 "
                    "ORDER BY bucket")
    with engine.connect() as conn:
        rows = conn.execute(query, {"d": device_id, "start": start_ms, "end": end_ms})
        return [RollupPoint(int(b), int(c), s / c, lo, hi) for b, c, s, lo, hi in rows]

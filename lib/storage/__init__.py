"""All database access: engines, schema, devices, the metric catalogue and readings.

Rollups, charts and alerts have their own modules in this package."""
from __future__ import annotations

import errno
import hashlib
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib.catalogue import BUILTIN_METRICS, Catalogue, Metric, check_name
from lib.models import (ROLLUP_TABLES, Device, MetricRow, Reading, rollup_column_names,
                        rollup_columns)
from lib.storage import dialect as dialects
from lib.storage.dialect import CHUNK_ROWS  # noqa: F401  (public here: bench and tests use it)

log = logging.getLogger(__name__)

# WAL and a durable commit: an ack means the reading survives a power cut.
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000")


@sa.event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Apply SQLITE_PRAGMAS to every connection of the embedded database."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute("PRAGMA " + pragma)
        cursor.close()


def engine_options(url: str, pre_ping: bool = True) -> dict:
    """Engine options shared by every process (Flask passes them to Flask-SQLAlchemy)."""
    if url.startswith("sqlite"):
        # Hot-path statements are one-off texts: caching them only grows memory.
        return {"connect_args": {"cached_statements": 0}}
    if not pre_ping:
        # The ingest server reports a failed commit to the client, which re-sends; a
        # disconnect invalidates the pool, so it recovers without a ping per commit.
        return {"pool_recycle": 3600, "pool_reset_on_return": None}
    # pre_ping lets a process recover by itself after the database restarts.
    return {"pool_pre_ping": True, "pool_recycle": 3600}


def make_engine(url: str, pre_ping: bool = True) -> Engine:
    """Create an engine for `url`, creating the SQLite file's folder when needed."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, **engine_options(url, pre_ping))


# ---- schema -----------------------------------------------------------------

def init_db(engine: Engine) -> None:
    """Create or upgrade the schema (lib/migrations), seed the built-in metrics, add missing metric columns."""
    from lib.storage.schema import migrate  # Alembic is only needed here, not by every importer

    migrate(engine)
    with engine.begin() as conn:
        known = set(conn.scalars(sa.select(MetricRow.name)))
        for metric in BUILTIN_METRICS:
            if metric.name not in known:
                conn.execute(sa.insert(MetricRow).values(**_metric_row(metric)))
    _add_missing_columns(engine)


def _metric_row(metric: Metric) -> dict:
    """Column values of a catalogue row."""
    return {"name": metric.name, "unit": metric.unit, "min_value": metric.min_value,
            "max_value": metric.max_value, "label": metric.label}


def _add_missing_columns(engine: Engine) -> None:
    """Give `reading` and the rollup tables columns for every catalogue metric that lacks them."""
    with engine.connect() as conn:
        names = list(conn.scalars(sa.select(MetricRow.name).order_by(MetricRow.name)))
    for name in names:
        try:
            check_name(name)
        except ValueError as exc:  # a hand-made row: load_catalogue skips it too
            log.warning("metric row %r skipped: %s", name, exc)
            continue
        _add_columns_for(engine, name)


# On MariaDB an ALTER waits for a metadata lock behind long readers, and every insert queues
# behind the ALTER meanwhile: bound that wait so ingest stalls at most this long.
DDL_LOCK_WAIT_S = 2


def _add_columns_for(engine: Engine, name: str) -> None:
    """Add a metric's missing columns to `reading` and the rollup tables (idempotent)."""
    present = _metric_columns(engine)
    wanted = [(Reading.__tablename__, check_name(name), "DOUBLE NULL")]
    for table in ROLLUP_TABLES:
        for column in rollup_columns(name):
            kind = "INTEGER NOT NULL DEFAULT 0" if column.name.endswith("_n") else "DOUBLE NULL"
            wanted.append((table.name, column.name, kind))
    for table, column, kind in wanted:
        if column in present[table]:
            continue
        with engine.connect() as conn:
            mysql = dialects.has_lock_wait_timeout(engine.dialect.name)
            if mysql:
                conn.exec_driver_sql(dialects.lock_wait_sql(DDL_LOCK_WAIT_S))
            try:
                conn.exec_driver_sql(_add_column_ddl(engine, table, column, kind))
                conn.commit()
            except sa.exc.OperationalError as exc:
                if _error_code(exc) != 1205:
                    raise
                raise ValueError(f"table {table} is busy (a long query holds it); nothing was "
                                 f"changed for {name}: run the command again in a moment") from None
            finally:
                if mysql and not conn.invalidated:  # pooled: later users get the server's default
                    conn.exec_driver_sql(dialects.lock_wait_sql(None))
        log.info("added column %s.%s", table, column)


def _add_column_ddl(engine: Engine, table: str, column: str, kind: str) -> str:
    """DDL adding a column; names come from check_name-checked metrics and are quoted as well."""
    quote = engine.dialect.identifier_preparer.quote
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column)} {kind}"


# ---- metric catalogue ---------------------------------------------------------

def load_catalogue(engine: Engine) -> Catalogue:
    """Read the usable catalogue: built-in metrics first, bad rows logged and skipped.

    A row is usable when it is a valid Metric and its columns exist, so one bad row (or an
    add-metric interrupted half-way) never stops the other metrics.
    """
    with engine.connect() as conn:
        rows = conn.execute(sa.select(MetricRow)).all()
    columns = _metric_columns(engine)
    builtin = [m.name for m in BUILTIN_METRICS]
    order = {name: i for i, name in enumerate(builtin)}
    rows.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    metrics = []
    for r in rows:
        try:
            metric = Metric(r.name, r.unit, r.min_value, r.max_value, r.label or "")
        except (ValueError, TypeError) as exc:
            _warn_once(r.name, "metric row %r skipped: %s", r.name, exc)
            continue
        if not _has_columns(columns, metric.name):
            _warn_once(r.name, "metric %r skipped: its columns are missing (run add-metric %s again)",
                       r.name, r.name)
            continue
        metrics.append(metric)
    return Catalogue(metrics)


_WARNED: set[str] = set()


def _warn_once(key: str, message: str, *args) -> None:
    """Log a catalogue problem once per process, not on every reload."""
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message, *args)


def _metric_columns(engine: Engine) -> dict[str, set[str]]:
    """Column names of `reading` and the rollup tables."""
    inspector = sa.inspect(engine)
    return {table: {c["name"] for c in inspector.get_columns(table)}
            for table in (Reading.__tablename__, *(t.name for t in ROLLUP_TABLES))}


def _has_columns(columns: Mapping[str, set[str]], name: str) -> bool:
    """Whether every column a metric needs exists."""
    return name in columns[Reading.__tablename__] and all(
        set(rollup_column_names(name)) <= columns[t.name] for t in ROLLUP_TABLES)


def add_metric(engine: Engine, metric: Metric) -> None:
    """Add a metric's columns, then its catalogue row; safe to interrupt and to run again.

    Columns come first, so a row never names a missing column; a run interrupted after the
    columns leaves nothing that ingest would use, and repeating it finishes the job.
    """
    with engine.connect() as conn:
        exists = conn.scalar(sa.select(MetricRow.name).where(MetricRow.name == metric.name))
    if exists and _has_columns(_metric_columns(engine), metric.name):
        raise ValueError(f"metric {metric.name!r} already exists")
    _add_columns_for(engine, metric.name)
    if not exists:
        with engine.begin() as conn:
            conn.execute(sa.insert(MetricRow).values(**_metric_row(metric)))
    _WARNED.discard(metric.name)


# ---- devices ------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    """A device as shown to administrators; revoked_ms is set once its token stops working."""

    id: int
    name: str
    created_ms: int
    revoked_ms: int | None = None


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_device(engine: Engine, name: str) -> tuple[DeviceInfo, str]:
    """Register a device and return it with its new token (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("device name must be 1 to 64 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # names go into logs, pages and file names
        raise ValueError(f"device name {name!r} must not contain control characters (newline, tab, NUL…)")
    # The prefix makes tokens recognisable and keeps them from starting with "-" (an option).
    token = "sd_" + secrets.token_urlsafe(32)
    created = now_ms()
    with engine.begin() as conn:
        revoked = conn.execute(sa.select(Device.revoked_ms).where(Device.name == name)).first()
        if revoked is not None:
            hint = (" (revoked: revoke-device NAME --delete-readings frees the name)"
                    if revoked[0] is not None else "")
            raise ValueError(f"device {name!r} already exists{hint}")
        result = conn.execute(sa.insert(Device).values(
            name=name, token_hash=hash_token(token), created_ms=created))
        device_id = result.inserted_primary_key[0]
    return DeviceInfo(device_id, name, created), token


def authenticate(engine: Engine, token: str) -> int | None:
    """Return the id of the device holding `token`, or None (unknown or revoked)."""
    if not token:
        return None
    with engine.connect() as conn:
        return device_of_token_hash(conn, hash_token(token))


def device_of_token_hash(conn: sa.Connection, token_hash: str) -> int | None:
    """The id of the active device whose token has this hash (hash_token), or None."""
    return conn.scalar(sa.select(Device.id).where(Device.token_hash == token_hash,
                                                  Device.revoked_ms.is_(None)))


def list_devices(engine: Engine) -> list[DeviceInfo]:
    """All devices by name, revoked ones included."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Device.id, Device.name, Device.created_ms, Device.revoked_ms)
                            .order_by(Device.name)).all()
    return [DeviceInfo(*row) for row in rows]


def active_device_ids(engine: Engine, device_ids: Iterable[int]) -> set[int]:
    """The ids among `device_ids` that still exist and are not revoked."""
    ids = sorted(set(device_ids))
    if not ids:
        return set()
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(Device.id).where(Device.id.in_(ids),
                                                           Device.revoked_ms.is_(None))))


def revoke_device(engine: Engine, name: str, delete_readings: bool = False,
                  batch: int = 5000) -> DeviceInfo:
    """Stop a device's token at once; with delete_readings, also delete it with all its data.

    Open connections of the device are closed by the ingest servers, which check every
    [ingest] revoke_check_seconds. Readings are deleted in batches so ingest is not held up.
    """
    with engine.begin() as conn:
        row = conn.execute(sa.select(Device.id, Device.name, Device.created_ms, Device.revoked_ms)
                           .where(Device.name == name)).first()
        if row is None:
            raise ValueError(f"no device named {name!r} (see list-devices)")
        revoked = row.revoked_ms if row.revoked_ms is not None else now_ms()
        conn.execute(sa.update(Device).where(Device.id == row.id).values(revoked_ms=revoked))
    if delete_readings:
        from lib.storage.retention import delete_before  # imports this module, so not at the top
        delete_before(engine, Reading.__tablename__, row.id, 2 ** 62, batch)
        with engine.begin() as conn:  # rollups, marks, charts and alert rows go by cascade
            conn.execute(sa.delete(Device).where(Device.id == row.id))
    return DeviceInfo(row.id, row.name, row.created_ms, revoked)


# ---- readings -----------------------------------------------------------------

Row = Sequence  # (device_id: int, ts_ms: int, *values: float | None)


# What JSON-encoded rows of numbers may contain: digits, signs, exponents, dots, commas,
# brackets and null. A string needs a quote, a boolean a "t" or "f": both are refused.
_NUMERIC_JSON = re.compile(rb"[0-9eE.+\-,\[\]nul]*")


def insert_readings_sql(dialect: str, metric_names: Sequence[str], rows: Sequence[Row]) -> str:
    """One multi-row INSERT that ignores duplicates of (device_id, ts).

    Formatting is done here instead of by the driver because escaping every
    parameter costs more than the database's own work. orjson renders the rows
    at C speed; the result is then checked to hold numbers and null only, and
    metric names must pass check_name, so nothing else can reach the SQL text.
    """
    if not rows:
        raise ValueError("no rows to insert")
    verb, quote = dialects.reading_insert_head(dialect)  # names may be keywords such as `signal`
    names = ",".join(quote + check_name(n) + quote for n in metric_names)
    try:
        encoded = orjson.dumps(rows)
    except TypeError as exc:
        raise TypeError(f"refusing a non-numeric value in SQL: {exc}") from None
    if not _NUMERIC_JSON.fullmatch(encoded) or encoded.count(b"[") != len(rows) + 1:
        raise TypeError("refusing a row with a value that is not a number or None")
    # orjson writes NaN and infinity as null: every null must stand for a None.
    if encoded.count(b"null") != sum(row.count(None) for row in rows):
        raise ValueError("refusing a non-finite number in SQL")
    values = encoded[1:-1].replace(b"[", b"(").replace(b"]", b")").decode()
    return f"{verb} reading (device_id,ts,{names}) VALUES {values}"


DUPLICATE_TS = "another reading of this device is stored at this millisecond"
NOT_STORED = "not stored: the device is no longer registered"


def write_readings(engine: Engine, metric_names: Sequence[str], rows: Sequence[Row]) -> dict[int, str]:
    """Store readings in one transaction; return {row index: reason} of the rows not stored.

    A row whose (device, ts) is already stored with the same values is a replay and counts
    as stored. Only when the inserts report fewer rows than given are rows read back, so the
    check costs nothing on the fast path.
    """
    if not rows:
        return {}
    with engine.begin() as conn:
        return insert_readings(conn, metric_names, rows)


def insert_readings(conn: sa.Connection, metric_names: Sequence[str],
                    rows: Sequence[Row]) -> dict[int, str]:
    """write_readings' statements in the transaction of `conn`, which the caller commits."""
    if not rows:
        return {}
    dialect = conn.dialect.name
    step = CHUNK_ROWS.get(dialect, 500)
    inserted = 0
    for start in range(0, len(rows), step):
        inserted += conn.exec_driver_sql(
            insert_readings_sql(dialect, metric_names, rows[start:start + step])).rowcount
    failed = {} if inserted == len(rows) else _unstored(conn, metric_names, rows)
    if failed:
        rows = [row for i, row in enumerate(rows) if i not in failed]
    if rows:
        mark_pending(conn, hour_spans(rows))
    return failed


def _unstored(conn: sa.Connection, metric_names: Sequence[str], rows: Sequence[Row]) -> dict[int, str]:
    """Compare rows with what is stored at their (device, ts): {index: reason} of those that differ."""
    columns = [Reading.__table__.c.ts] + [sa.column(check_name(n)) for n in metric_names]
    stored: dict[tuple[int, int], tuple] = {}
    by_device: dict[int, list[int]] = {}
    for row in rows:
        by_device.setdefault(row[0], []).append(row[1])
    for device_id, stamps in by_device.items():
        for start in range(0, len(stamps), 1000):
            query = (sa.select(*columns).select_from(Reading.__table__)
                     .where(Reading.__table__.c.device_id == device_id,
                            Reading.__table__.c.ts.in_(stamps[start:start + 1000])))
            for found in conn.execute(query):
                stored[(device_id, found[0])] = tuple(found[1:])
    failed = {}
    for i, row in enumerate(rows):
        have = stored.get((row[0], row[1]))
        if have is None:
            failed[i] = NOT_STORED  # MariaDB's INSERT IGNORE drops rows failing a foreign key
        elif not _same_values(have, row[2:]):
            failed[i] = DUPLICATE_TS
    return failed


def _same_values(stored: Sequence, given: Sequence) -> bool:
    """Whether a stored row holds the given values; MariaDB may round subnormal doubles in the last digit."""
    return all(a == b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))
               for a, b in zip(stored, given, strict=True))


# DBAPI error codes meaning the database cannot be reached or is overloaded, not that these
# rows are wrong: MySQL client errors 2003/2006/2013/2055, lock wait timeout 1205, deadlock 1213.
_UNAVAILABLE_CODES = frozenset({2003, 2006, 2013, 2055, 1205, 1213})


def _error_code(exc: sa.exc.DBAPIError) -> int | None:
    """The driver's numeric error code, when it has one."""
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error says the database is down or busy (retrying elsewhere won't help)."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return isinstance(exc, (sa.exc.SQLAlchemyError, OSError))
    if exc.connection_invalidated or _error_code(exc) in _UNAVAILABLE_CODES or is_disk_full(exc):
        return True
    text = str(exc.orig).lower()
    return "locked" in text or "unable to open" in text or "disk" in text


# MySQL/MariaDB: disk full 1021, table full 1114 (also when its file cannot grow).
_DISK_FULL_CODES = frozenset({1021, 1114})


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error says the database's disk (or table file) is full, not that it is down."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    if isinstance(exc, sa.exc.DBAPIError) and _error_code(exc) in _DISK_FULL_CODES:
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "disk is full" in text or "no space left" in text or "disk full" in text


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """A database error in one short line, without the SQL statement it carried."""
    orig = getattr(exc, "orig", None) or exc
    text = f"{type(orig).__name__}: {orig}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


HOUR_MS = 3_600_000


def hour_spans(rows: Iterable[Row]) -> dict[tuple[int, int], list[int]]:
    """{(device_id, hour): [smallest ts, largest ts]} of the rows, in one pass (the ingest hot path)."""
    spans: dict[tuple[int, int], list[int]] = {}
    for row in rows:
        ts = row[1]
        key = (row[0], ts - ts % HOUR_MS)
        span = spans.get(key)
        if span is None:
            spans[key] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
    return spans


def mark_pending(conn: sa.Connection, spans: Mapping[tuple[int, int], Sequence[int]]) -> None:
    """Mark {(device_id, hour): (lo_ms, hi_ms)} for rollup; a marked hour gets gen + 1 and a wider range.

    This runs in every ingest commit, so the statement is formatted directly, from
    values forced through int(); sorted, so concurrent writers lock rows in the
    same order and cannot deadlock.
    """
    values = ",".join(f"({int(d)},{int(h)},0,{int(lo)},{int(hi)})"
                      for (d, h), (lo, hi) in sorted(spans.items()))
    if not values:
        return
    tail = dialects.pending_upsert_tail(conn.dialect.name)
    conn.exec_driver_sql("INSERT INTO rollup_pending (device_id, hour, gen, lo_ms, hi_ms) VALUES "
                         + values + tail)


def count_readings(engine: Engine, device_id: int | None = None) -> int:
    """Number of stored readings, for one device or all."""
    query = sa.select(sa.func.count()).select_from(Reading)
    if device_id is not None:
        query = query.where(Reading.device_id == device_id)
    with engine.connect() as conn:
        return conn.scalar(query)


def now_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000

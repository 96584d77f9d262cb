"""All database access: engines, schema, devices, the metric catalogue and readings.

Rollups, charts and alerts have their own modules in this package."""
from __future__ import annotations

import hashlib
import logging
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
from lib.models import ROLLUP_TABLES, Base, Device, MetricRow, Reading, rollup_columns

log = logging.getLogger(__name__)

# Rows per INSERT statement: large enough to amortise parsing, small enough for
# MySQL's max_allowed_packet; SQLite parses long statements slower, so it gets fewer.
CHUNK_ROWS = {"mysql": 3000, "sqlite": 500}
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
    """Create missing tables, seed the built-in metrics, add missing metric columns."""
    Base.metadata.create_all(engine)
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
    inspector = sa.inspect(engine)
    present = {table: {c["name"] for c in inspector.get_columns(table)}
               for table in (Reading.__tablename__, *(t.name for t in ROLLUP_TABLES))}
    with engine.begin() as conn:
        for name in conn.scalars(sa.select(MetricRow.name).order_by(MetricRow.name)):
            check_name(name)
            if name not in present[Reading.__tablename__]:
                conn.exec_driver_sql(_add_column_ddl(engine, Reading.__tablename__, name, "DOUBLE NULL"))
                log.info("added column reading.%s", name)
            for table in ROLLUP_TABLES:
                for column in rollup_columns(name):
                    if column.name not in present[table.name]:
                        kind = "INTEGER NOT NULL DEFAULT 0" if column.name.endswith("_n") else "DOUBLE NULL"
                        conn.exec_driver_sql(_add_column_ddl(engine, table.name, column.name, kind))


def _add_column_ddl(engine: Engine, table: str, column: str, kind: str) -> str:
    """DDL adding a column; names come from check_name-checked metrics and are quoted as well."""
    quote = engine.dialect.identifier_preparer.quote
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column)} {kind}"


# ---- metric catalogue ---------------------------------------------------------

def load_catalogue(engine: Engine) -> Catalogue:
    """Read the catalogue from the database, built-in metrics first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(MetricRow)).all()
    builtin = [m.name for m in BUILTIN_METRICS]
    order = {name: i for i, name in enumerate(builtin)}
    rows.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    return Catalogue(Metric(r.name, r.unit, r.min_value, r.max_value, r.label) for r in rows)


def add_metric(engine: Engine, metric: Metric) -> None:
    """Add a metric to the catalogue and its column to `reading`."""
    with engine.begin() as conn:
        exists = conn.scalar(sa.select(MetricRow.name).where(MetricRow.name == metric.name))
        if exists:
            raise ValueError(f"metric {metric.name!r} already exists")
        conn.execute(sa.insert(MetricRow).values(**_metric_row(metric)))
    _add_missing_columns(engine)


# ---- devices ------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    """A device as shown to administrators."""

    id: int
    name: str
    created_ms: int


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_device(engine: Engine, name: str) -> tuple[DeviceInfo, str]:
    """Register a device and return it with its new token (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("device name must be 1 to 64 characters")
    # The prefix makes tokens recognisable and keeps them from starting with "-" (an option).
    token = "sd_" + secrets.token_urlsafe(32)
    created = now_ms()
    with engine.begin() as conn:
        if conn.scalar(sa.select(Device.id).where(Device.name == name)) is not None:
            raise ValueError(f"device {name!r} already exists")
        result = conn.execute(sa.insert(Device).values(
            name=name, token_hash=hash_token(token), created_ms=created))
        device_id = result.inserted_primary_key[0]
    return DeviceInfo(device_id, name, created), token


def authenticate(engine: Engine, token: str) -> int | None:
    """Return the id of the device holding `token`, or None."""
    if not token:
        return None
    with engine.connect() as conn:
        return conn.scalar(sa.select(Device.id).where(Device.token_hash == hash_token(token)))


def list_devices(engine: Engine) -> list[DeviceInfo]:
    """All devices by name."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Device.id, Device.name, Device.created_ms)
                            .order_by(Device.name)).all()
    return [DeviceInfo(*row) for row in rows]


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
    verb = "INSERT IGNORE INTO" if dialect == "mysql" else "INSERT OR IGNORE INTO"
    quote = "`" if dialect == "mysql" else '"'  # names may be keywords such as `signal`
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


def write_readings(engine: Engine, metric_names: Sequence[str], rows: Sequence[Row]) -> None:
    """Store readings in one transaction; rows already stored are kept as they were."""
    if not rows:
        return
    dialect = engine.dialect.name
    step = CHUNK_ROWS.get(dialect, 500)
    with engine.begin() as conn:
        for start in range(0, len(rows), step):
            conn.exec_driver_sql(insert_readings_sql(dialect, metric_names, rows[start:start + step]))
        mark_pending(conn, hour_spans(rows))


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
    if conn.dialect.name == "mysql":
        tail = (" ON DUPLICATE KEY UPDATE gen = gen + 1, lo_ms = LEAST(lo_ms, VALUES(lo_ms)),"
                " hi_ms = GREATEST(hi_ms, VALUES(hi_ms))")
    else:
        tail = (" ON CONFLICT (device_id, hour) DO UPDATE SET gen = gen + 1,"
                " lo_ms = MIN(lo_ms, excluded.lo_ms), hi_ms = MAX(hi_ms, excluded.hi_ms)")
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

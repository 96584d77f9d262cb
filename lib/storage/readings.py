"""Reading queries of the web API: latest readings, raw or bucketed series, and pages for CSV export."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lib.catalogue import check_name
from lib.charts import DAY_MS, HOUR, HOUR_MS, MINUTE, MINUTE_MS, RAW
from lib.models import Device
from lib.resolution import Plan
from lib.storage import dialect
from lib.storage.charts import TABLES

# Rows fetched per query of an export: a page is built, sent and dropped before the next.
PAGE_ROWS = 10_000
# Width of a bucket of each rollup table, and how far back buckets newer than a table's newest
# row are aggregated from raw readings (the rollups lag by a run; far more means they are stuck).
SOURCE_MS = {MINUTE: MINUTE_MS, HOUR: HOUR_MS}
RAW_TAIL_MAX_MS = DAY_MS
_DONE = object()  # the end of a prefetched export


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device with its newest reading (ts None when it has none)."""

    id: int
    name: str
    created_ms: int
    revoked_ms: int | None
    last_ms: int | None
    values: dict[str, float | None]


def _quote(conn: Connection, name: str) -> str:
    """A checked metric (or metric column) name, quoted for the connection's dialect."""
    return conn.dialect.identifier_preparer.quote(name)


def devices_with_latest(conn: Connection, metrics: Sequence[str],
                        device_id: int | None = None, active_only: bool = False) -> list[DeviceRow]:
    """Every device (or one) with its newest reading, in one query: an index seek per device.

    ORDER BY ts DESC LIMIT 1, not MAX(ts): MariaDB reads a device's whole index range for
    MAX in a correlated subquery (19 s for 200 devices in 21 M readings, 10 ms this way).
    """
    columns = "".join(f", r.{_quote(conn, check_name(m))}" for m in metrics)
    where = []
    if device_id is not None:
        where.append("d.id = :id")
    if active_only:
        where.append("d.revoked_ms IS NULL")
    sql = (f"SELECT d.id, d.name, d.created_ms, d.revoked_ms, r.ts{columns} FROM device d "
           "LEFT JOIN reading r ON r.device_id = d.id AND r.ts = "
           "(SELECT m.ts FROM reading m WHERE m.device_id = d.id ORDER BY m.ts DESC LIMIT 1)"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.name")
    rows = conn.execute(sa.text(sql), {"id": device_id})
    return [DeviceRow(r[0], r[1], r[2], r[3], r[4], dict(zip(metrics, r[5:]))) for r in rows]


def device_name(conn: Connection, device_id: int) -> str | None:
    """The name of the device with this id (revoked ones included), None when there is none."""
    return conn.scalar(sa.select(Device.name).where(Device.id == device_id))


def _raw_sql(conn: Connection, metrics: Sequence[str], limit: bool) -> str:
    """Raw readings of one device in [a, b], oldest first; with `limit`, a page of ts in (after, b].

    A page's only lower bound is :after (>= a - 1): given BETWEEN too, SQLite seeks from :a
    and skips every earlier page's rows, which made the export quadratic.
    """
    columns = ", ".join(_quote(conn, check_name(m)) for m in metrics)
    not_all_null = " OR ".join(f"{_quote(conn, m)} IS NOT NULL" for m in metrics)
    span = "ts > :after AND ts <= :b ORDER BY ts LIMIT :n" if limit else "ts BETWEEN :a AND :b ORDER BY ts"
    return f"SELECT ts, {columns} FROM reading WHERE device_id = :d AND ({not_all_null}) AND {span}"


def _aggregates(conn: Connection, source: str, metric: str, aggs: Sequence[str]) -> list[str]:
    """SQL of the aggregates of one metric over a bucket, from raw readings or a rollup table."""
    if source == RAW:
        col = _quote(conn, check_name(metric))
        exprs = {"avg": f"AVG({col})", "min": f"MIN({col})", "max": f"MAX({col})"}
    else:
        n, total, low, high = (_quote(conn, f"{check_name(metric)}_{s}") for s in ("n", "sum", "min", "max"))
        exprs = {"avg": f"CASE WHEN SUM({n}) > 0 THEN SUM({total}) / SUM({n}) END",
                 "min": f"MIN(CASE WHEN {n} > 0 THEN {low} END)",
                 "max": f"MAX(CASE WHEN {n} > 0 THEN {high} END)"}
    return [exprs[a] for a in aggs]


def _bucket_sql(conn: Connection, plan: Plan, metrics: Sequence[str], aggs: Sequence[str]) -> sa.TextClause:
    """Aggregates per bucket of plan.bucket_ms of one device in [a, b], oldest first."""
    table = TABLES[plan.source]
    time_col = "ts" if plan.source == RAW else "bucket"
    selects = ", ".join(e for m in metrics for e in _aggregates(conn, plan.source, m, aggs))
    return sa.text(f"SELECT {time_col} - ({time_col} % :w) AS t, {selects} FROM {table.name} "
                   f"WHERE device_id = :d AND {time_col} BETWEEN :a AND :b GROUP BY t ORDER BY t")


def series(conn: Connection, plan: Plan, device_id: int, metrics: Sequence[str], aggs: Sequence[str],
           start_ms: int, end_ms: int) -> dict[str, list[list]]:
    """{metric: points} of a device: [ts, value] raw, or [bucket start, *aggs] per bucket with data."""
    params = {"d": device_id, "a": start_ms, "b": end_ms, "w": plan.bucket_ms}
    out: dict[str, list[list]] = {m: [] for m in metrics}
    lists = [out[m] for m in metrics]
    if plan.bucket_ms == 0:
        for ts, *values in conn.execute(sa.text(_raw_sql(conn, metrics, False)), params):
            for points, value in zip(lists, values):
                if value is not None:
                    points.append([ts, value])
        return out
    width = len(aggs)
    parts = [(plan, params)]
    tail = _raw_tail_start(conn, plan, device_id, start_ms, end_ms)
    if tail is not None:  # rolled-up buckets before `tail`, buckets of raw readings from it on
        parts = [(plan, {**params, "b": tail - 1}), (Plan(RAW, plan.bucket_ms), {**params, "a": tail})]
    for part, part_params in parts:
        for t, *values in conn.execute(_bucket_sql(conn, part, metrics, aggs), part_params):
            for i, points in enumerate(lists):
                chunk = values[i * width:(i + 1) * width]
                if any(v is not None for v in chunk):
                    points.append([int(t), *(None if v is None else float(v) for v in chunk)])
    return out


def _raw_tail_start(conn: Connection, plan: Plan, device_id: int, start_ms: int, end_ms: int) -> int | None:
    """Where buckets come from raw readings instead of plan.source's rollup table, or None.

    A rollup bucket is written once complete, at the next rollup run, so the newest buckets of
    a range that ends now are missing from it: they are aggregated from raw readings, starting
    at a bucket boundary after the newest rolled-up row, at most RAW_TAIL_MAX_MS back.
    """
    if plan.source == RAW:
        return None
    table = TABLES[plan.source].name
    newest = conn.execute(sa.text(
        f"SELECT bucket FROM {table} WHERE device_id = :d AND bucket BETWEEN :a AND :b "
        "ORDER BY bucket DESC LIMIT 1"), {"d": device_id, "a": start_ms, "b": end_ms}).scalar()
    after = start_ms if newest is None else newest + SOURCE_MS[plan.source]
    after = max(after, end_ms - RAW_TAIL_MAX_MS)
    after -= after % plan.bucket_ms  # whole buckets on each side: none is split between the two
    return None if after > end_ms else max(after, start_ms)


def export_pages(engine: Engine, plan: Plan, device_id: int, metrics: Sequence[str],
                 aggs: Sequence[str], start_ms: int, end_ms: int,
                 page_rows: int | None = None) -> Iterator[list[tuple]]:
    """Pages of (ts, *values) rows in time order; each page on its own short-lived connection.

    A slow client then holds no connection while it reads, and memory holds three pages at most
    (see _prefetched). Values are numbers or None, or on MySQL for raw readings their decimal
    texts ('' for NULL).
    """
    page_rows = page_rows or PAGE_ROWS  # read at call time: tests shrink PAGE_ROWS
    return _prefetched(_pages(engine, plan, device_id, metrics, aggs, start_ms, end_ms, page_rows))


def _prefetched(pages: Iterator[list[tuple]]) -> Iterator[list[tuple]]:
    """The pages, each next one fetched by a thread while the caller formats and sends this one.

    The database's work then overlaps the formatting (the thread waits on the socket without
    the GIL). One page waits in the queue at most; closing the iterator stops the thread.
    """
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item) -> bool:
        """Put an item for the caller, unless it has gone; whether it was put."""
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for page in pages:
                if not offer(page):
                    pages.close()
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the caller, which raises it
            offer(exc)

    threading.Thread(target=fetch, name="export-prefetch", daemon=True).start()
    try:
        while (item := slot.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _pages(engine: Engine, plan: Plan, device_id: int, metrics: Sequence[str], aggs: Sequence[str],
           start_ms: int, end_ms: int, page_rows: int) -> Iterator[list[tuple]]:
    """The pages of export_pages, fetched in the calling thread."""
    if plan.bucket_ms == 0:
        yield from _raw_pages(engine, device_id, metrics, start_ms, end_ms, page_rows)
        return
    with engine.connect() as conn:
        tail = _raw_tail_start(conn, plan, device_id, start_ms, end_ms)
    if tail is None:
        yield from _bucket_pages(engine, plan, device_id, metrics, aggs, start_ms, end_ms, page_rows)
        return
    yield from _bucket_pages(engine, plan, device_id, metrics, aggs, start_ms, tail - 1, page_rows)
    yield from _bucket_pages(engine, Plan(RAW, plan.bucket_ms), device_id, metrics, aggs, tail, end_ms,
                             page_rows)


def _bucket_pages(engine: Engine, plan: Plan, device_id: int, metrics: Sequence[str], aggs: Sequence[str],
                  start_ms: int, end_ms: int, page_rows: int) -> Iterator[list[tuple]]:
    """Pages of buckets from plan.source, each of page_rows buckets' time at most."""
    span = page_rows * plan.bucket_ms
    lo = start_ms - start_ms % plan.bucket_ms
    while lo <= end_ms:
        hi = min(end_ms, lo + span - 1)
        with engine.connect() as conn:
            rows = conn.execute(_bucket_sql(conn, plan, metrics, aggs), {
                "d": device_id, "a": max(lo, start_ms), "b": hi, "w": plan.bucket_ms}).all()
            # Skip stretches without data in one step, not a query per empty window.
            following = None if rows else _next_time(conn, plan.source, device_id, hi + 1, end_ms)
        if rows:
            yield rows
            lo += span
        elif following is None:
            return
        else:
            lo = following - following % plan.bucket_ms


def _raw_pages(engine: Engine, device_id: int, metrics: Sequence[str], start_ms: int, end_ms: int,
               page_rows: int) -> Iterator[list[tuple]]:
    """Pages of raw readings, each of the rows after the previous page's last ts."""
    params = {"d": device_id, "b": end_ms, "after": start_ms - 1, "n": page_rows}
    while True:
        with engine.connect() as conn:
            if dialect.is_mysql(conn.dialect.name):
                rows = _packed_page(conn, metrics, params)
            else:
                rows = _tuple_page(conn, metrics, params)
        if not rows:
            return
        yield rows
        if len(rows) < page_rows:
            return
        params["after"] = rows[-1][0]


def _tuple_page(conn: Connection, metrics: Sequence[str], params: dict) -> list[tuple]:
    """A page as the driver's tuples, through its cursor: no Row objects (SQLite names :params)."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_raw_sql(conn, metrics, True), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _packed_page(conn: Connection, metrics: Sequence[str], params: dict) -> list[tuple]:
    """A MySQL page fetched as one row of comma-separated columns, split into (ts, *texts) rows.

    PyMySQL decodes each row in Python (70 % of an export's time row by row); one row per page
    leaves the decoding to the server. The texts are those the driver would read as floats. A
    column longer than group_concat_max_len comes back cut: that page is read row by row instead.
    The columns' lists are aligned (one pass over the rows feeds them all); GROUP_CONCAT's own
    ORDER BY would triple the query's time, so the order is checked here.
    """
    columns = ["ts", *(f"IFNULL({_quote(conn, m)}, '')" for m in metrics)]
    packed = ", ".join(f"GROUP_CONCAT({c})" for c in columns)
    sql = f"SELECT COUNT(*), {packed} FROM ({_raw_sql(conn, metrics, True)}) AS page"
    count, *texts = conn.execute(sa.text(sql), params).one()
    if not count:
        return []
    split = [text.split(",") for text in texts]
    if any(len(column) != count for column in split):
        return [tuple(row) for row in conn.execute(sa.text(_raw_sql(conn, metrics, True)), params)]
    times = list(map(int, split[0]))
    rows = list(zip(times, *split[1:]))
    if times != sorted(times):
        rows.sort()  # times are unique: only they are compared
    return rows


def _next_time(conn: Connection, source: str, device_id: int, start_ms: int, end_ms: int) -> int | None:
    """The first reading (or bucket) time of a device in [start_ms, end_ms] in a source, if any."""
    table = TABLES[source]
    time_col = table.c.ts if source == RAW else table.c.bucket
    return conn.scalar(sa.select(sa.func.min(time_col)).where(
        table.c.device_id == device_id, time_col.between(start_ms, end_ms)))

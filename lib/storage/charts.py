"""Chart queries: active devices, point counts, series, and the `path` records of renders."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lib.catalogue import check_name
from lib.charts import HOUR, MINUTE, RAW, ChartFile, choose_source
from lib.models import ChartPath, Device, Reading, rollup_1h, rollup_1m

TABLES = {RAW: Reading.__table__, MINUTE: rollup_1m, HOUR: rollup_1h}
path_table = ChartPath.__table__


@dataclass(frozen=True, slots=True)
class ActiveDevice:
    """A device with data in the charted period."""

    id: int
    name: str


def active_devices(conn: Connection, since_ms: int,
                   device_ids: Iterable[int] | None = None) -> list[ActiveDevice]:
    """Devices with readings or hourly rollups at or after since_ms, by id.

    EXISTS per device is an index seek on both primary keys, so this stays cheap
    however many readings there are.
    """
    raw = sa.select(Reading.device_id).where(
        Reading.device_id == Device.id, Reading.ts >= since_ms).exists()
    hourly = sa.select(rollup_1h.c.device_id).where(
        rollup_1h.c.device_id == Device.id, rollup_1h.c.bucket >= since_ms).exists()
    query = sa.select(Device.id, Device.name).where(sa.or_(raw, hourly)).order_by(Device.id)
    if device_ids is not None:
        query = query.where(Device.id.in_([int(d) for d in device_ids]))
    return [ActiveDevice(*row) for row in conn.execute(query)]


def count_points(conn: Connection, source: str, device_id: int, start_ms: int, end_ms: int,
                 cap: int) -> int:
    """Rows of a device in [start_ms, end_ms] in the source's table, counting at most cap + 1.

    The cap bounds the work: a month of raw readings is never scanned just to learn
    that it holds more than max_points.
    """
    table = TABLES[source]
    time_col = table.c.ts if source == RAW else table.c.bucket
    inner = (sa.select(sa.literal(1).label("one")).select_from(table)
             .where(table.c.device_id == device_id, time_col.between(start_ms, end_ms))
             .limit(cap + 1).subquery())
    return conn.scalar(sa.select(sa.func.count()).select_from(inner))


def pick_source(conn: Connection, device_id: int, start_ms: int, end_ms: int, max_points: int,
                raw_kept_ms: int | None = None) -> str:
    """The source that draws [start_ms, end_ms] in at most max_points (see choose_source).

    Rows are counted only as far as needed: at most max_points + 1 of each table, and the
    minutes not at all when the raw readings fit.
    """
    span = end_ms - start_ms
    raw = count_points(conn, RAW, device_id, start_ms, end_ms, max_points)
    if choose_source(raw, 0, max_points, span, raw_kept_ms) == RAW:
        return RAW
    minute = count_points(conn, MINUTE, device_id, start_ms, end_ms, max_points)
    return choose_source(raw, minute, max_points, span, raw_kept_ms)


def series(conn: Connection, source: str, device_id: int, metrics: Sequence[str], start_ms: int,
           end_ms: int) -> dict[str, list]:
    """{metric: points} of a device from `source` (raw readings, or rollup buckets with their band)."""
    if source == RAW:
        return raw_series(conn, device_id, metrics, start_ms, end_ms)
    return rollup_series(conn, source, device_id, metrics, start_ms, end_ms)


def _quoted(conn: Connection, name: str) -> str:
    """A checked metric or column name, quoted for the connection's dialect."""
    return conn.dialect.identifier_preparer.quote(name)


def raw_series(conn: Connection, device_id: int, metrics: Sequence[str], start_ms: int,
               end_ms: int) -> dict[str, list[tuple[int, float]]]:
    """(ts, value) points per metric in [start_ms, end_ms], oldest first, without NULLs."""
    columns = ", ".join(_quoted(conn, check_name(m)) for m in metrics)
    rows = conn.execute(sa.text(
        f"SELECT ts, {columns} FROM reading WHERE device_id = :d AND ts BETWEEN :a AND :b ORDER BY ts"),
        {"d": device_id, "a": start_ms, "b": end_ms})
    series: dict[str, list[tuple[int, float]]] = {m: [] for m in metrics}
    lists = [series[m] for m in metrics]
    for ts, *values in rows:
        for points, value in zip(lists, values):
            if value is not None:
                points.append((ts, value))
    return series


def rollup_series(conn: Connection, source: str, device_id: int, metrics: Sequence[str],
                  start_ms: int, end_ms: int) -> dict[str, list[tuple[int, float, float, float]]]:
    """(bucket, mean, min, max) per metric for buckets in [start_ms, end_ms] with n > 0."""
    table = TABLES[source].name
    selects = []
    for metric in metrics:
        n, total, low, high = (_quoted(conn, f"{check_name(metric)}_{s}")
                               for s in ("n", "sum", "min", "max"))
        selects.append(f"CASE WHEN {n} > 0 THEN {total} / {n} END, "
                       f"CASE WHEN {n} > 0 THEN {low} END, CASE WHEN {n} > 0 THEN {high} END")
    rows = conn.execute(sa.text(
        f"SELECT bucket, {', '.join(selects)} FROM {table} "
        "WHERE device_id = :d AND bucket BETWEEN :a AND :b ORDER BY bucket"),
        {"d": device_id, "a": start_ms, "b": end_ms})
    series: dict[str, list[tuple[int, float, float, float]]] = {m: [] for m in metrics}
    lists = [series[m] for m in metrics]
    for bucket, *values in rows:
        for i, points in enumerate(lists):
            mean, low, high = values[3 * i:3 * i + 3]
            if mean is not None:
                points.append((bucket, float(mean), low, high))
    return series


# ---- the `path` table ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PathRecord:
    """A row of `path`: one chart file of a complete render."""

    id: int
    render: str
    device_id: int
    metric: str
    span: str
    file: str
    rendered_ms: int


def record_render(engine: Engine, render: str, rendered_ms: int, files: Sequence[ChartFile]) -> None:
    """Record every file of a complete render in one transaction: all rows or none."""
    if not files:
        return
    rows = [{"render": render, "device_id": f.device_id, "metric": f.metric, "span": f.span,
             "file": f.file, "rendered_ms": rendered_ms} for f in files]
    with engine.begin() as conn:
        conn.execute(sa.insert(path_table), rows)


def latest_paths(engine: Engine, device_id: int | None = None) -> list[PathRecord]:
    """The newest recorded file per (device, metric, span), ordered by device, metric, span."""
    p, newer = path_table.alias("p"), path_table.alias("newer")
    # A row is the latest when no row of the same key is newer (ties broken by id).
    newer_exists = sa.select(newer.c.id).where(
        newer.c.device_id == p.c.device_id, newer.c.metric == p.c.metric,
        newer.c.span == p.c.span,
        sa.or_(newer.c.rendered_ms > p.c.rendered_ms,
               sa.and_(newer.c.rendered_ms == p.c.rendered_ms, newer.c.id > p.c.id))).exists()
    query = sa.select(*p.c).where(~newer_exists).order_by(p.c.device_id, p.c.metric, p.c.span)
    if device_id is not None:
        query = query.where(p.c.device_id == device_id)
    with engine.connect() as conn:
        return [PathRecord(*row) for row in conn.execute(query)]


def list_paths(engine: Engine, render: str | None = None) -> list[PathRecord]:
    """All recorded files, or those of one render, oldest first."""
    query = sa.select(*path_table.c).order_by(path_table.c.rendered_ms, path_table.c.id)
    if render is not None:
        query = query.where(path_table.c.render == render)
    with engine.connect() as conn:
        return [PathRecord(*row) for row in conn.execute(query)]


def render_names(engine: Engine) -> set[str]:
    """Names of all recorded renders."""
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(path_table.c.render).distinct()))


def renders_before(engine: Engine, before_ms: int) -> list[str]:
    """Names of recorded renders older than before_ms, oldest first."""
    query = (sa.select(path_table.c.render).where(path_table.c.rendered_ms < before_ms)
             .group_by(path_table.c.render).order_by(sa.func.min(path_table.c.rendered_ms)))
    with engine.connect() as conn:
        return list(conn.scalars(query))


def delete_renders(engine: Engine, renders: Sequence[str]) -> int:
    """Delete the records of the named renders; returns the number of rows deleted."""
    if not renders:
        return 0
    with engine.begin() as conn:
        return conn.execute(sa.delete(path_table).where(path_table.c.render.in_(list(renders)))).rowcount

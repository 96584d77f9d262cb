"""API: a device's readings over a time range, as JSON points or a streamed CSV file."""
from __future__ import annotations

from typing import Iterator

import orjson
from flask import Response, abort, stream_with_context
from flask_smorest import Blueprint

from flask_front.access import read_access
from flask_front.api import common
from flask_front.api.schemas import CsvQuerySchema, ReadingsQuerySchema, ReadingsSchema
from lib import resolution, storage
from lib.charts import DAY_MS, RAW
from lib.csvformat import CsvFormatter, header as csv_header
from lib.resolution import AGGREGATES
from lib.storage.charts import count_points
from lib.storage.readings import device_name, export_pages, series
from lib.validation import ms_to_iso

blp = Blueprint("readings", __name__, description="Readings of a device over time")

# An explicit resolution may return at most this many points per metric; more needs the CSV export.
MAX_EXPLICIT_POINTS = 100_000


class Query:
    """A readings request, checked: device, metrics, range, plan and aggregates."""

    def __init__(self, device_id: int, args: dict, max_points: int, capped: bool = True) -> None:
        cfg = common.settings()
        now = storage.now_ms()
        try:
            self.metrics = resolution.parse_list(args.get("metrics"), common.catalogue().names, "metric")
            self.aggs = resolution.parse_list(args.get("agg"), AGGREGATES, "aggregate")
            self.start, self.end = resolution.time_range(args.get("from_"), args.get("to"), now)
            bucket = resolution.parse_resolution(args.get("resolution"))
        except ValueError as exc:
            abort(400, description=str(exc))
        self.device_id = device_id
        with common.engine().connect() as conn:
            self.device = device_name(conn, device_id)
            if self.device is None:
                abort(404, description=f"no device with id {device_id}")
            raw_covers = self.start >= now - cfg.retention.raw_days * DAY_MS
            if bucket is None:
                raw = count_points(conn, RAW, device_id, self.start, self.end, max_points)
                self.plan = resolution.auto_plan(self.end - self.start, raw, max_points, raw_covers)
            else:
                self.plan = resolution.plan_for(bucket)
                if capped:
                    self._check_size(conn, max_points)

    def _check_size(self, conn, max_points: int) -> None:
        """422 when an explicit resolution would return more than MAX_EXPLICIT_POINTS per metric."""
        limit = max(MAX_EXPLICIT_POINTS, max_points)
        if self.plan.bucket_ms:
            points = resolution.bucket_count(self.end - self.start, self.plan.bucket_ms)
        else:
            points = count_points(conn, RAW, self.device_id, self.start, self.end, limit)
        if points > limit:
            abort(422, description=f"more than {limit} points: choose a shorter range, a wider "
                                   "resolution or auto, or download readings.csv")

    @property
    def columns(self) -> list[str]:
        """What each point holds."""
        return ["ts", "value"] if self.plan.bucket_ms == 0 else ["ts", *self.aggs]


@blp.route("/devices/<id:device_id>/readings")
@read_access
@blp.arguments(ReadingsQuerySchema, location="query")
@blp.response(200, ReadingsSchema)
@blp.alt_response(400, schema=common.ERROR, description="a parameter is malformed")
@blp.alt_response(404, schema=common.ERROR)
@blp.alt_response(422, schema=common.ERROR, description="too many points for an explicit resolution")
def readings(args, device_id: int):
    """Readings of one device: raw, or per bucket avg/min/max from the rollups (auto: at most [web] max_points)."""
    query = Query(device_id, args, common.settings().web.max_points)
    with common.engine().connect() as conn:
        points = series(conn, query.plan, device_id, query.metrics, query.aggs, query.start, query.end)
    catalogue = common.catalogue()
    body = {"device_id": device_id, "device": query.device, "resolution": query.plan.name,
            "source": query.plan.source, "bucket_ms": query.plan.bucket_ms, "columns": query.columns,
            "series": points, "units": {m: catalogue[m].unit for m in query.metrics},
            **common.when(query.start, "from"), **common.when(query.end, "to")}
    # orjson, not marshmallow: thousands of points are serialised in well under a millisecond.
    return Response(orjson.dumps(body), mimetype="application/json")


@blp.route("/devices/<id:device_id>/readings.csv")
@read_access
@blp.arguments(CsvQuerySchema, location="query")
@blp.response(200, description="CSV: a header row, then one row per reading or bucket, times in ISO 8601 UTC",
              content_type="text/csv")
@blp.alt_response(400, schema=common.ERROR)
@blp.alt_response(404, schema=common.ERROR)
def readings_csv(args, device_id: int):
    """The same readings as CSV, streamed page by page: any range, in constant memory."""
    # The export has no point limit; auto still chooses its resolution as for a chart.
    query = Query(device_id, args, common.settings().web.max_points, capped=False)
    if query.plan.bucket_ms == 0:
        header = ["time", "ts_ms", *query.metrics]
    else:
        header = ["time", "ts_ms", *(f"{m}_{a}" for m in query.metrics for a in query.aggs)]
    pages = export_pages(common.engine(), query.plan, device_id, query.metrics, query.aggs,
                         query.start, query.end)
    response = Response(stream_with_context(csv_lines(header, pages)), mimetype="text/csv")
    if args["download"]:
        name = f"{safe_name(query.device)}_{ms_to_iso(query.start)}_{ms_to_iso(query.end)}.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{name.replace(":", "")}"'
    return response


def csv_lines(header: list[str], pages: Iterator[list[tuple]]) -> Iterator[str]:
    """CSV text, one chunk per page; empty cells for missing values."""
    yield csv_header(header)
    formatter = CsvFormatter()
    for page in pages:
        yield formatter.page(page)


def safe_name(name: str) -> str:
    """A device name reduced to characters safe in a file name."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name)[:64] or "device"

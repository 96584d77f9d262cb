"""API: HTTP ingest for devices that cannot hold a WebSocket: the same frames and replies as /ingest."""
from __future__ import annotations

import logging
import math
import threading
from typing import Callable, Sequence, TypeVar

import orjson
import sqlalchemy as sa
from flask import Response, abort, current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from flask_front.access import bearer_token, device_tokens
from flask_front.api import common
from lib import livebus, storage
from lib.ingest import DB_DOWN, hold_back, reply, rows_of, settle, store_error
from lib.ratelimit import LogLimiter, TokenBuckets
from lib.validation import UNKNOWN_METRIC, FrameError, Limits, Parsed, parse_frame

log = logging.getLogger(__name__)
blp = Blueprint("ingest", __name__, description="HTTP ingest: readings from devices")
# Stamps given to readings without `ts` are per device and must rise: one lock per process.
_stamp_lock = threading.Lock()
_engine_lock = threading.Lock()
_log_limit = LogLimiter()  # rate-limited devices: a few lines per device in 10 s
T = TypeVar("T")


class RejectionSchema(Schema):
    """A reading that was not stored, and why."""

    seq = fields.Integer(allow_none=True)
    error = fields.String(required=True)


class IngestReplySchema(Schema):
    """The reply of the WebSocket protocol: acks of stored readings and rejections."""

    ack = fields.List(fields.Integer(), required=True, metadata={"description": "seq of each stored reading"})
    rejected = fields.List(fields.Nested(RejectionSchema), required=True)
    retry = fields.List(fields.Nested(RejectionSchema), metadata={
        "description": "readings not stored because of the device's rate limit: send them again later"})
    retry_after = fields.Float(metadata={"description": "seconds to wait before sending `retry` again"})
    error = fields.String(metadata={"description": "why nothing was stored (database down, rate limit)"})


class FrameSchema(Schema):
    """A frame as the WebSocket protocol has it: {"readings": [...]} or one reading (see README)."""

    class Meta:
        unknown = "include"

    # Any JSON per item: one that is not a reading object is rejected on its own, with a reason (200).
    readings = fields.List(fields.Raw(allow_none=True), metadata={
        "description": 'readings: {"seq": 1, "ts": "2026-01-02T03:04:05.678Z", "values": {"co2": 612.5}}; '
                       "an item that is not such an object is rejected with a reason, the others stored"})


def _parse(device_id: int, body: bytes) -> Parsed:
    """Parse with the cached catalogue, re-reading it once when a metric is unknown to it."""
    cfg = common.settings().ingest
    limits = Limits(cfg.max_readings, int(cfg.max_future_seconds * 1000))
    stamps = current_app.extensions.setdefault("sensors_stamps", {})
    for refresh in (False, True):
        with _stamp_lock:
            parsed = parse_frame(body, common.catalogue(refresh), storage.now_ms(), limits,
                                 last_stamp_ms=stamps.get(device_id, 0))
            if parsed.last_stamp_ms:
                stamps[device_id] = parsed.last_stamp_ms
        if not any(r["error"].startswith(UNKNOWN_METRIC) for r in parsed.rejected):
            break
    return parsed


def device_rate() -> TokenBuckets:
    """This worker's token buckets of the current app ([ingest] device_max_rate, device_burst)."""
    buckets = current_app.extensions.get("sensors_device_rate")
    if buckets is None:
        cfg = common.settings().ingest
        buckets = current_app.extensions.setdefault(
            "sensors_device_rate", TokenBuckets(cfg.device_max_rate, cfg.device_burst))
    return buckets


def _rate_limited(device_id: int, parsed: Parsed) -> Response | None:
    """429 with Retry-After, nothing stored, when the request's readings exceed the device's limit."""
    retry, retry_after = hold_back(parsed, device_rate(), device_id, partial=False)
    if not retry:
        return None
    suppressed = _log_limit.allow(device_id)
    if suppressed is not None:
        log.warning("device %d: %d readings held back (429): %s%s", device_id, len(retry), retry[0]["error"],
                    f" ({suppressed} similar messages suppressed)" if suppressed else "")
    body = reply(parsed, retry[0]["error"], retry, retry_after)
    return Response(orjson.dumps(body), status=429, mimetype="application/json",
                    headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def ingest_engine() -> sa.Engine:
    """This process's engine of the ingest view: no pre-ping per checkout (_Link retries instead)."""
    engine = current_app.extensions.get("sensors_ingest_engine")
    if engine is None:
        with _engine_lock:
            engine = current_app.extensions.get("sensors_ingest_engine")
            if engine is None:
                engine = storage.make_engine(current_app.config["SQLALCHEMY_DATABASE_URI"], pre_ping=False)
                current_app.extensions["sensors_ingest_engine"] = engine
    return engine


class _Link:
    """A request's one pooled connection, taken on first use and replaced once if it proves stale.

    Without a pre-ping, the first statement on a connection the database has dropped (after a
    restart) fails; SQLAlchemy then invalidates the pool, and a new connection is taken.
    Running the work again is safe: nothing was committed, or, when the commit itself was
    cut off, the stored rows come back as replays, which count as stored.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.conn: sa.Connection | None = None
        self.renewed = False

    def run(self, work: Callable[[sa.Connection], T]) -> T:
        """work(conn); once more on a new connection when the pooled one was found dropped."""
        if self.conn is None:
            self.conn = self.engine.connect()
        try:
            return work(self.conn)
        except DBAPIError as exc:
            if self.renewed or not exc.connection_invalidated:
                raise
            log.info("HTTP ingest: a pooled connection was dropped (%s); retrying on a new one",
                     storage.describe_error(exc))
        self.close()
        self.renewed = True
        self.conn = self.engine.connect()
        return work(self.conn)

    def close(self) -> None:
        """Give the connection back (rolled back when a transaction is open)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _commit(conn: sa.Connection, names: Sequence[str], rows: list[tuple]) -> dict[int, str]:
    """Insert the rows and commit; {row index: reason} of those not stored."""
    failed = storage.insert_readings(conn, names, rows)
    conn.commit()
    return failed


def _unavailable(exc: SQLAlchemyError) -> Response:
    """503 with the ingest reply (nothing stored) when the database fails before the write."""
    if not storage.is_unavailable(exc):
        raise exc
    log.warning("HTTP ingest: database unavailable: %s", storage.describe_error(exc))
    body = {"ack": [], "rejected": [], "error": DB_DOWN}
    return Response(orjson.dumps(body), status=503, mimetype="application/json")


@blp.route("/readings", methods=["POST"])
@blp.doc(security=[{"bearerAuth": []}], requestBody={"required": True, "content": {
    "application/json": {"schema": FrameSchema}}})
@blp.response(200, IngestReplySchema, description="stored readings acked, invalid ones rejected with a reason")
@blp.alt_response(400, schema=common.ERROR, description="the body is not a frame")
@blp.alt_response(401, schema=common.ERROR, description="missing, unknown or revoked device token")
@blp.alt_response(413, schema=common.ERROR, description="the body exceeds [ingest] max_frame_bytes")
@blp.alt_response(429, schema=IngestReplySchema, description="over the device's rate limit: nothing stored, "
                  "send again after Retry-After seconds")
@blp.alt_response(503, schema=IngestReplySchema, description="the database is down: nothing stored")
def post_readings():
    """Store readings of the device whose token is given (Authorization: Bearer); acks come after commit."""
    token = bearer_token()
    if token is None:
        abort(401, description="missing device token: send Authorization: Bearer <token>")
    body = request.get_data(cache=False)
    limit = common.settings().ingest.max_frame_bytes
    if len(body) > limit:
        abort(413, description=f"the body has {len(body)} bytes, more than [ingest] max_frame_bytes ({limit})")
    # One pooled connection, unpinged, for the token lookup (only when not cached) and the write.
    link = _Link(ingest_engine())
    try:
        try:
            device_id = device_tokens().device_id(
                token, lambda digest: link.run(lambda conn: storage.device_of_token_hash(conn, digest)))
        except SQLAlchemyError as exc:
            return _unavailable(exc)
        if device_id is None:
            abort(401, description="unknown or revoked device token")
        try:
            parsed = _parse(device_id, body)
        except FrameError as exc:
            abort(400, description=str(exc))
        except SQLAlchemyError as exc:  # the catalogue could not be read
            return _unavailable(exc)
        limited = _rate_limited(device_id, parsed)
        if limited is not None:
            return limited
        status, error = 200, None
        if parsed.readings:
            names = common.catalogue().names
            rows = rows_of(parsed, device_id, names)
            try:
                settle(parsed, link.run(lambda conn: _commit(conn, names, rows)))
            except (SQLAlchemyError, OSError) as exc:
                log.warning("device %d: %d readings not stored: %s", device_id, len(parsed.readings),
                            storage.describe_error(exc))
                status, error = 503, store_error(storage.is_disk_full(exc))
            else:  # committed: on to the browsers watching live (lib/livebus.py), never waiting
                livebus.publish(common.settings(), link.engine, device_id, parsed.readings)
    finally:
        link.close()
    return Response(orjson.dumps(reply(parsed, error)), status=status, mimetype="application/json")

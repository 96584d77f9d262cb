"""What every ingest path (WebSocket and HTTP) does around storage, without I/O: rows out, replies in."""
from __future__ import annotations

from typing import Hashable, Sequence

from lib.ratelimit import TokenBuckets
from lib.validation import Parsed

DB_DOWN = "database unavailable: readings not stored, send them again later"
DB_FULL = "database disk full: readings not stored, send them again later"
RATE_LIMITED = "rate limit: more than {rate:g} readings/s from this device"


def rows_of(parsed: Parsed, device_id: int, names: Sequence[str]) -> list[tuple]:
    """(device_id, ts, *values in catalogue order) of each valid reading."""
    return [(device_id, r.ts_ms, *[r.values.get(n) for n in names]) for r in parsed.readings]


def store_error(disk_full: bool) -> str:
    """The reply's error when a commit failed: the device sends again either way, the operator needs to know which."""
    return DB_FULL if disk_full else DB_DOWN


def settle(parsed: Parsed, failed: dict[int, str]) -> None:
    """Turn readings the database did not store into rejections with their reasons."""
    if not failed:
        return
    kept = []
    for i, reading in enumerate(parsed.readings):
        if i in failed:
            parsed.rejected.append({"seq": reading.seq, "error": failed[i]})
        else:
            kept.append(reading)
    parsed.readings = kept


def hold_back(parsed: Parsed, buckets: TokenBuckets, device: Hashable,
              partial: bool = True) -> tuple[list[dict], float]:
    """Take the device's valid readings from its token bucket; those over it leave `parsed`.

    Returns their retry entries ({"seq", "error": "rate limit: ..."}; not stored, not final) and
    the seconds until the bucket holds that many again. Not `partial`: all readings or none.
    """
    count = len(parsed.readings)
    granted = buckets.take(device, count, partial)
    if granted == count:
        return [], 0.0
    reason = RATE_LIMITED.format(rate=buckets.rate)
    held = [{"seq": r.seq, "error": reason} for r in parsed.readings[granted:]]
    del parsed.readings[granted:]
    return held, buckets.wait(device, len(held))


def reply(parsed: Parsed, error: str | None = None, retry: list[dict] | None = None,
          retry_after: float = 0.0) -> dict:
    """The reply to a frame: acks of stored readings (none when `error`), final rejections, readings
    to send again after `retry_after` seconds (rate limit), any error."""
    body: dict = {"ack": [] if error else [r.seq for r in parsed.readings if r.seq is not None],
                  "rejected": parsed.rejected}
    if retry:
        body["retry"] = retry
        body["retry_after"] = round(retry_after, 3)
    if error:
        body["error"] = error
    return body

"""What every ingest path (WebSocket and HTTP) does around storage, without I/O: rows out, replies in."""
from __future__ import annotations

from typing import Sequence

from lib.validation import Parsed

DB_DOWN = "database unavailable: readings not stored, send them again later"


def rows_of(parsed: Parsed, device_id: int, names: Sequence[str]) -> list[tuple]:
    """(device_id, ts, *values in catalogue order) of each valid reading."""
    return [(device_id, r.ts_ms, *[r.values.get(n) for n in names]) for r in parsed.readings]


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


def reply(parsed: Parsed, error: str | None = None) -> dict:
    """The reply to a frame: acks of stored readings (none when `error`), final rejections, any error."""
    body: dict = {"ack": [] if error else [r.seq for r in parsed.readings if r.seq is not None],
                  "rejected": parsed.rejected}
    if error:
        body["error"] = error
    return body

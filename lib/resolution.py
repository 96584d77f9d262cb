"""Time ranges and resolutions of reading queries, without I/O: what the API's parameters mean."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from lib.charts import DAY_MS, HOUR, HOUR_MS, MINUTE, MINUTE_MS, RAW

SECOND_MS = 1000
DEFAULT_SPAN_MS = DAY_MS
# Bucket widths `auto` picks from: whole seconds, minutes and hours that read well on an axis.
NICE_STEPS_MS = tuple(s * SECOND_MS for s in (1, 2, 5, 10, 15, 30)) + tuple(
    m * MINUTE_MS for m in (1, 2, 5, 10, 15, 30)) + tuple(
    h * HOUR_MS for h in (1, 2, 3, 6, 12, 24, 48, 168))
NAMED = {"raw": 0, "1m": MINUTE_MS, "1h": HOUR_MS}
AGGREGATES = ("avg", "min", "max")
MIN_TS_MS = 0
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: beyond it datetime cannot show the time
_EPOCH_MS = re.compile(r"-?\d{1,16}")


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer a query: the table read and the bucket width (0: each raw reading)."""

    source: str
    bucket_ms: int

    @property
    def name(self) -> str:
        """The resolution as the API reports it: raw, 1m, 1h or a number of seconds."""
        for name, ms in NAMED.items():
            if ms == self.bucket_ms:
                return name
        return str(self.bucket_ms // SECOND_MS)


def parse_instant(text: str) -> int:
    """Epoch milliseconds from epoch ms digits or ISO 8601 (no zone means UTC); ValueError says why."""
    text = text.strip()
    if _EPOCH_MS.fullmatch(text):
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(f"{text[:40]!r} is neither ISO 8601 (2026-01-02T03:04:05Z) "
                             "nor epoch milliseconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        value = math.floor(moment.timestamp() * 1000 + 0.5)
    if not MIN_TS_MS <= value <= MAX_TS_MS:
        raise ValueError(f"{text[:40]!r} is outside 1970..9999")
    return value


def time_range(start: str | None, end: str | None, now_ms: int,
               default_ms: int = DEFAULT_SPAN_MS) -> tuple[int, int]:
    """[from, to] in epoch ms: `to` defaults to now, `from` to default_ms before `to`."""
    end_ms = parse_instant(end) if end else now_ms
    start_ms = parse_instant(start) if start else max(MIN_TS_MS, end_ms - default_ms)
    if start_ms > end_ms:
        raise ValueError("'from' must not be after 'to'")
    return start_ms, end_ms


def parse_resolution(text: str | None) -> int | None:
    """None for auto, 0 for raw, else a bucket width in ms from 1m, 1h or a number of seconds."""
    text = (text or "auto").strip().lower()
    if text == "auto":
        return None
    if text in NAMED:
        return NAMED[text]
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses with a cryptic message.
    if text.isascii() and text.isdigit() and 0 < int(text) <= 366 * 86400:
        return int(text) * SECOND_MS
    raise ValueError(f"resolution must be auto, raw, 1m, 1h or a number of seconds "
                     f"(1..31622400), got {text[:20]!r}")


def parse_list(text: str | None, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    """A comma-separated list, each item one of `allowed`, duplicates dropped; all when empty."""
    if not text or not text.strip():
        return list(allowed)
    items = list(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
    if not items:  # only commas: nothing named, as when empty (no query may name no column)
        return list(allowed)
    unknown = [i for i in items if i not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0][:40]!r}: choose from {', '.join(allowed)}")
    return items


def plan_for(bucket_ms: int) -> Plan:
    """The cheapest table that gives buckets of bucket_ms: hourly, 1-minute rollups or raw readings."""
    if bucket_ms == 0:
        return Plan(RAW, 0)
    if bucket_ms % HOUR_MS == 0:
        return Plan(HOUR, bucket_ms)
    if bucket_ms % MINUTE_MS == 0:
        return Plan(MINUTE, bucket_ms)
    return Plan(RAW, bucket_ms)


def auto_plan(span_ms: int, raw_points: int, max_points: int, raw_covers: bool = True) -> Plan:
    """Raw readings when they fit in max_points, else the narrowest nice bucket that keeps within it.

    Buckets of a minute or more come from the rollup tables, so a month costs a few
    thousand rows however many readings it holds.
    """
    if raw_covers and raw_points <= max_points:
        return Plan(RAW, 0)
    wanted = -(-max(span_ms, 1) // max_points)  # ceiling: at most max_points buckets
    if not raw_covers:
        wanted = max(wanted, MINUTE_MS)
    step = next((s for s in NICE_STEPS_MS if s >= wanted), None)
    if step is None:  # spans of decades: whole weeks
        step = -(-wanted // NICE_STEPS_MS[-1]) * NICE_STEPS_MS[-1]
    return plan_for(step)


def bucket_count(span_ms: int, bucket_ms: int) -> int:
    """How many buckets of bucket_ms a span of span_ms touches at most."""
    return span_ms // bucket_ms + 2 if bucket_ms else 0


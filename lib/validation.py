"""Parse and validate ingest frames (protocol v1 and the legacy CSV frame); no I/O here."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from lib.catalogue import Catalogue

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_TS_MS = 946_684_800_000  # 2000-01-01: earlier stamps come from a Pi whose clock was never set
LEGACY_METRICS = ("co2", "temperature", "humidity")
_MS = timedelta(milliseconds=1)
UNKNOWN_METRIC = "unknown metric"  # the start of that rejection, which the server re-checks
EXPECTED_SHAPE = 'expected a JSON object {"readings": [...]} or one reading object'


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated reading: UTC epoch milliseconds and finite, in-range values."""

    seq: int | None
    ts_ms: int
    values: dict[str, float]


@dataclass(slots=True)
class Parsed:
    """The outcome of one frame: readings to store and per-reading rejections."""

    readings: list[Reading] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    legacy: bool = False


class FrameError(ValueError):
    """The whole frame is unusable (not JSON, wrong shape, too large)."""


class LegacyFrameError(FrameError):
    """A legacy CSV frame is unusable; legacy clients read no replies, so it is only logged."""


class ReadingError(ValueError):
    """One reading is invalid; the message says why."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Protocol limits taken from [ingest]."""

    max_readings: int = 1000
    max_future_ms: int = 300_000


def parse_frame(frame: str | bytes, catalogue: Catalogue, now_ms: int,
                limits: Limits = Limits()) -> Parsed:
    """Parse one WebSocket frame into valid readings and rejections, or raise FrameError."""
    head = frame.lstrip()[:1]
    if head in ("{", b"{", "[", b"["):
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise FrameError(f"frame is not valid JSON: {exc}") from None
        return parse_message(message, catalogue, now_ms, limits)
    if isinstance(frame, str) and "," in frame:
        return Parsed([parse_legacy(frame, catalogue, now_ms)], legacy=True)
    raise FrameError(EXPECTED_SHAPE)


def parse_message(message: Any, catalogue: Catalogue, now_ms: int,
                  limits: Limits = Limits()) -> Parsed:
    """Validate a decoded v1 message: {"readings": [...]} or one reading object."""
    if not isinstance(message, dict):
        raise FrameError(EXPECTED_SHAPE)
    items = message.get("readings") if "readings" in message else [message]
    if not isinstance(items, list):
        raise FrameError("readings must be a list")
    if len(items) > limits.max_readings:
        raise FrameError(f"too many readings in one message: {len(items)} > {limits.max_readings}")
    parsed = Parsed()
    for item in items:
        try:
            parsed.readings.append(parse_reading(item, catalogue, now_ms, limits.max_future_ms))
        except ReadingError as exc:
            seq = item.get("seq") if isinstance(item, dict) else None
            parsed.rejected.append({"seq": seq, "error": str(exc)})
    return parsed


def parse_reading(item: Any, catalogue: Catalogue, now_ms: int, max_future_ms: int) -> Reading:
    """Validate one reading object, raising ReadingError with a reason a person can act on."""
    if not isinstance(item, dict):
        raise ReadingError("reading must be a JSON object")
    seq = item.get("seq")
    if seq is not None and (type(seq) is not int):
        raise ReadingError(f"seq must be an integer, got {seq!r}")
    values = item.get("values")
    if not isinstance(values, dict):
        raise ReadingError('reading needs "values": an object of metric names to numbers')
    checked = {}
    for name, value in values.items():
        metric = catalogue.get(name)
        if metric is None:
            raise ReadingError(f"{UNKNOWN_METRIC} {name!r}")
        if value is None:  # null means "not measured this time"
            continue
        number = check_number(name, value)
        error = metric.range_error(number)
        if error:
            raise ReadingError(error)
        checked[name] = number
    if not checked:
        raise ReadingError("reading has no values")
    return Reading(seq, parse_ts(item.get("ts"), now_ms, max_future_ms), checked)


def check_number(name: str, value: Any) -> float:
    """Return `value` as a finite float or raise ReadingError naming the metric."""
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            raise ReadingError(f"{name} {value} is too large") from None
    else:
        raise ReadingError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(number):
        raise ReadingError(f"{name} is {number!r}, not a finite number")
    return number


def parse_ts(value: Any, now_ms: int, max_future_ms: int) -> int:
    """Return a timestamp as UTC epoch milliseconds; missing means the time of receipt."""
    if value is None:
        return now_ms
    kind = type(value)
    if kind is str:
        ts_ms = _iso_to_ms(value)
    elif kind is int or kind is float:
        if not math.isfinite(value) or abs(value) > 1e11:
            raise ReadingError(f"ts {value!r} is not a plausible epoch time in seconds")
        ts_ms = round(value * 1000)
    else:
        raise ReadingError(f"ts must be an ISO 8601 string or epoch seconds, got {value!r}")
    if ts_ms < MIN_TS_MS:
        raise ReadingError(f"ts {value!r} is before 2000-01-01: is the device clock set?")
    if ts_ms > now_ms + max_future_ms:
        raise ReadingError(f"ts {value!r} is more than {max_future_ms // 1000} s in the future")
    return ts_ms


def _iso_to_ms(text: str) -> int:
    """Parse ISO 8601 with an explicit zone into epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReadingError(f"ts {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ReadingError(f"ts {text!r} has no time zone: add Z or an offset such as +00:00")
    return round((moment - EPOCH) / _MS)  # to the nearest ms, as for epoch seconds


def parse_legacy(text: str, catalogue: Catalogue, now_ms: int) -> Reading:
    """Parse the original client's "co2,temperature,humidity" frame, stamped on receipt."""
    fields = text.strip().split(",")
    if len(fields) != len(LEGACY_METRICS):
        raise LegacyFrameError(f"legacy frame needs {len(LEGACY_METRICS)} comma-separated numbers, "
                         f"got {text.strip()[:80]!r}")
    values = {}
    for name, raw in zip(LEGACY_METRICS, fields):
        try:
            number = float(raw)
        except ValueError:
            raise LegacyFrameError(f"legacy frame: {name} {raw.strip()!r} is not a number") from None
        if not math.isfinite(number):
            raise LegacyFrameError(f"legacy frame: {name} is {number!r}, not a finite number")
        error = catalogue[name].range_error(number) if name in catalogue else f"unknown metric {name!r}"
        if error:
            raise LegacyFrameError(f"legacy frame: {error}")
        values[name] = number
    return Reading(None, now_ms, values)


def ms_to_iso(ts_ms: int) -> str:
    """Format epoch milliseconds as ISO 8601 UTC with a Z suffix."""
    return (EPOCH + ts_ms * _MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")

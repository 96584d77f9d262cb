"""Parse and validate ingest frames (protocol v1 and the legacy CSV frame); no I/O here."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
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
QUOTE_MAX = 40  # characters of a client's value quoted in an error text
_OPENERS = ("{", b"{", "[", b"[")
_BOMS = {str: "\ufeff", bytes: b"\xef\xbb\xbf"}
# JSON's white space only: str.lstrip() also strips Unicode spaces, bytes.lstrip() does not, and
# one frame must get the same answer over the WebSocket (text) and HTTP (bytes).
_SPACE = {str: " \t\n\r", bytes: b" \t\n\r"}
# Text markers for the duplicate-key check, per frame type: backslash, key end, colon, space,
# quote + space, and the other JSON white space (one-character searches are the cheapest).
_MARKS = {str: ("\\", '":', ":", " ", '" ', "\n", "\r", "\t"),
          bytes: (b"\\", b'":', b":", b" ", b'" ', b"\n", b"\r", b"\t")}
_KEY_END = {str: re.compile(r'"[ \t\n\r]*:'), bytes: re.compile(rb'"[ \t\n\r]*:')}
_JSON_MARKS = re.compile(r'[{}\[\]"]')
_LEGACY_NUMBER = re.compile(r"[ \t]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t]*")
_SEQ_MIN, _SEQ_END = -2 ** 63, 2 ** 64  # what orjson reads (and writes) as an integer


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
    last_stamp_ms: int = 0  # the last time stamp the server gave; pass it to the next call


class FrameError(ValueError):
    """The whole frame is unusable (not JSON, wrong shape, too large)."""


class LegacyFrameError(FrameError):
    """A legacy CSV frame is unusable; legacy clients read no replies, so it is only logged."""


class ReadingError(ValueError):
    """One reading is invalid; the message says why."""


class _Repeated(dict):
    """A decoded JSON object in which `key` was given more than once (the last value is kept)."""

    __slots__ = ("key",)


@dataclass(frozen=True, slots=True)
class Limits:
    """Protocol limits taken from [ingest]."""

    max_readings: int = 1000
    max_future_ms: int = 300_000


def parse_frame(frame: str | bytes, catalogue: Catalogue, now_ms: int,
                limits: Limits = Limits(), last_stamp_ms: int = 0) -> Parsed:
    """Parse one WebSocket frame into valid readings and rejections, or raise FrameError.

    Readings without a time stamp get distinct, increasing stamps from `now_ms` on, after
    `last_stamp_ms` (the previous Parsed.last_stamp_ms of the same device).
    """
    space = _SPACE[type(frame)]
    text = frame.lstrip(space)
    if text[:1] not in _OPENERS:  # editors and some HTTP clients put a BOM first
        bom = _BOMS[type(text)]
        if text.startswith(bom):
            text = text[len(bom):].lstrip(space)
    if text[:1] in _OPENERS:
        return parse_message(decode(text), catalogue, now_ms, limits, last_stamp_ms)
    # Legacy frames are numbers and commas: one holding JSON's brackets or quotes (after a second
    # BOM, say) is a v1 client's mistake, which gets a reply; a legacy one would get none.
    if isinstance(text, str) and "," in text and not _JSON_MARKS.search(text):
        reading = parse_legacy(text, catalogue, now_ms, last_stamp_ms)
        return Parsed([reading], legacy=True, last_stamp_ms=reading.ts_ms)
    raise FrameError(EXPECTED_SHAPE)


def decode(text: str | bytes) -> Any:
    """Decode a JSON frame with orjson, falling back to decode_exact when orjson cannot be exact."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return decode_exact(text, exc)
    if _keys_may_repeat(text, message):
        return decode_exact(text)
    return message


def _keys_may_repeat(text: str | bytes, message: Any) -> bool:
    """Cheap check: True unless the keys in `text` match those orjson kept in the parts we read."""
    backslash, key_end, colon, space, quote_space, newline, cr, tab = _MARKS[type(text)]
    if backslash in text:  # an escaped quote could hide or fake a key
        return True
    # Without backslashes every '"' delimits a string, so '":' ends a key (or opens a string
    # starting with ':', which only makes the count larger and forces the exact path).
    keys = text.count(key_end)
    # A key with white space before its colon is missed, which could mask a repeated key;
    # there is none if every colon follows a quote, or if no quote is followed by white space.
    if keys != text.count(colon) and (space in text and quote_space in text or newline in text
                                      or cr in text or tab in text):
        keys = len(_KEY_END[type(text)].findall(text))
    return keys != _keys_kept(message)


def _keys_kept(message: Any) -> int:
    """Count the keys of the message, reading and values objects, as parse_message reads them."""
    if type(message) is not dict:
        return -1
    if "readings" in message:
        items = message["readings"]
        if type(items) is not list:
            return -1
        count = len(message)
    else:
        items, count = (message,), 0
    for item in items:
        if type(item) is dict:
            count += len(item)
            values = item.get("values")
            if type(values) is dict:
                count += len(values)
    return count


def decode_exact(text: str | bytes, error: Exception | None = None) -> Any:
    """Decode JSON with the stdlib: repeated keys are marked, 1e400 is inf, NaN is nan.

    Only what orjson also accepts is accepted otherwise (no lone surrogates, strict UTF-8,
    64-bit integers); `error` is orjson's complaint, quoted if the frame is refused.
    """
    try:
        data = text.decode("utf-8") if isinstance(text, bytes) else text
        message = json.loads(data, object_pairs_hook=_object, parse_int=_integer)
    except RecursionError:
        raise FrameError("frame is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FrameError(f"frame is not valid JSON: {error or exc}") from None
    _refuse_surrogates(message)
    return message


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """object_pairs_hook: a dict, or a _Repeated naming the first key given twice."""
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen = set()
    for key, _ in pairs:
        if key in seen:
            break
        seen.add(key)
    repeated = _Repeated(result)
    repeated.key = key
    return repeated


def _integer(digits: str) -> int | float:
    """parse_int: like orjson, an integer beyond 64 bits becomes a float (maybe inf)."""
    if len(digits) < 19:
        return int(digits)
    if len(digits) > 21:  # also avoids int()'s 4300-digit limit
        return float(digits)
    number = int(digits)
    return number if _SEQ_MIN <= number < _SEQ_END else float(digits)


def _refuse_surrogates(message: Any) -> None:
    """Raise FrameError if any string holds a lone surrogate (an escape orjson refuses)."""
    flaw = _flaw(message, repeated_keys=False)
    if flaw:
        raise FrameError(f"frame is not valid JSON: {flaw}")


def _flaw(message: Any, repeated_keys: bool) -> str | None:
    """A lone surrogate in a string (or, with repeated_keys, a key given twice), in words; else None."""
    stack = [message]
    while stack:  # iterative: the message may be nested hundreds deep
        value = stack.pop()
        kind = type(value)
        if kind is str:
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "lone surrogate in a string"
        elif kind is list:
            stack.extend(value)
        elif isinstance(value, dict):
            if repeated_keys and kind is _Repeated:
                return f"duplicate key {quote(value.key)}"
            stack.extend(value)
            stack.extend(value.values())
    return None


def decode_body(data: bytes) -> Any:
    """Decode an API request body strictly (UTF-8, each key once, 64-bit integers); ValueError says why.

    NaN and Infinity pass, as Python reads them: the schemas refuse them field by field.
    """
    if data.startswith(_BOMS[bytes]):
        raise ValueError("the body starts with a byte-order mark: send the JSON without it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the body is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}") from None
    try:
        document = json.loads(text, object_pairs_hook=_object, parse_int=_int64)
    except RecursionError:
        raise ValueError("the body is not valid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not valid JSON: {exc}") from None
    flaw = _flaw(document, repeated_keys=True)  # _int64 raises its own ValueError
    if flaw:
        raise ValueError(f"{flaw} in the body")
    return document


def _int64(digits: str) -> int:
    """parse_int of API bodies: beyond 64 bits, int() and float() fail further on, so refuse here."""
    number = int(digits) if len(digits) <= 21 else None
    if number is None or not _SEQ_MIN <= number < _SEQ_END:
        raise ValueError(f"integer {digits[:20]}{'…' if len(digits) > 20 else ''} in the body "
                         "does not fit in 64 bits")
    return number


def parse_message(message: Any, catalogue: Catalogue, now_ms: int,
                  limits: Limits = Limits(), last_stamp_ms: int = 0) -> Parsed:
    """Validate a decoded v1 message: {"readings": [...]} or one reading object."""
    if not isinstance(message, dict):
        raise FrameError(EXPECTED_SHAPE)
    if "readings" in message:
        if type(message) is _Repeated:
            raise FrameError(f"duplicate key {quote(message.key)} in the message")
        items = message["readings"]
    else:
        items = [message]
    if not isinstance(items, list):
        raise FrameError("readings must be a list")
    if len(items) > limits.max_readings:
        raise FrameError(f"too many readings in one message: {len(items)} > {limits.max_readings}")
    parsed = Parsed()
    stamp, max_future_ms = last_stamp_ms, limits.max_future_ms
    for item in items:
        given = now_ms if now_ms > stamp else stamp + 1
        try:
            reading = parse_reading(item, catalogue, now_ms, max_future_ms, given)
        except ReadingError as exc:
            parsed.rejected.append({"seq": _echo_seq(item), "error": str(exc)})
            continue
        parsed.readings.append(reading)
        if reading.ts_ms == given:  # stamped, or the client's own ts took that millisecond
            stamp = given
    parsed.last_stamp_ms = stamp
    return parsed


def _echo_seq(item: Any) -> int | None:
    """The seq to echo with a rejection: only an integer orjson can write back, else None."""
    seq = item.get("seq") if isinstance(item, dict) else None
    return seq if type(seq) is int and _SEQ_MIN <= seq < _SEQ_END else None


def parse_reading(item: Any, catalogue: Catalogue, now_ms: int, max_future_ms: int,
                  stamp_ms: int | None = None) -> Reading:
    """Validate one reading object, raising ReadingError with a reason a person can act on.

    A reading without ts gets `stamp_ms` (default `now_ms`).
    """
    if type(item) is not dict:
        if not isinstance(item, dict):
            raise ReadingError("reading must be a JSON object")
        if type(item) is _Repeated:
            raise ReadingError(f"duplicate key {quote(item.key)}")
    seq = item.get("seq")
    if seq is not None and (type(seq) is not int):
        raise ReadingError(f"seq must be an integer, got {quote(seq)}")
    values = item.get("values")
    if type(values) is not dict:
        if not isinstance(values, dict):
            raise ReadingError('reading needs "values": an object of metric names to numbers')
        if type(values) is _Repeated:
            raise ReadingError(f"duplicate key {quote(values.key)}")
    checked = {}
    for name, value in values.items():
        metric = catalogue.get(name)
        if metric is None:
            raise ReadingError(f"{UNKNOWN_METRIC} {quote(name)}")
        if type(value) is float and metric.min_value <= value <= metric.max_value:
            checked[name] = value  # the common case, inlined; NaN and inf fail the comparison
            continue
        if value is None:  # null means "not measured this time"
            continue
        number = check_number(name, value)
        error = metric.range_error(number)
        if error:
            raise ReadingError(error)
        checked[name] = number
    if not checked:
        raise ReadingError("reading has no values")
    ts = item.get("ts")
    if ts is None:
        return Reading(seq, now_ms if stamp_ms is None else stamp_ms, checked)
    if type(ts) is float and 0 < ts < 1e11:  # the common case of parse_ts, inlined
        ts_ms = round(ts * 1000)
        if MIN_TS_MS <= ts_ms <= now_ms + max_future_ms:
            return Reading(seq, ts_ms, checked)
    return Reading(seq, parse_ts(ts, now_ms, max_future_ms), checked)


def check_number(name: str, value: Any) -> float:
    """Return `value` as a finite float or raise ReadingError naming the metric."""
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            raise ReadingError(f"{name} {quote(value)} is too large") from None
    else:
        raise ReadingError(f"{name} must be a number, got {quote(value)}")
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
            raise ReadingError(f"ts {quote(value)} is not a plausible epoch time in seconds")
        ts_ms = round(value * 1000)
    else:
        raise ReadingError(f"ts must be an ISO 8601 string or epoch seconds, got {quote(value)}")
    if ts_ms < MIN_TS_MS:
        raise ReadingError(f"ts {quote(value)} is before 2000-01-01: is the device clock set?")
    if ts_ms > now_ms + max_future_ms:
        raise ReadingError(f"ts {quote(value)} is more than {max_future_ms // 1000} s in the future")
    return ts_ms


def _iso_to_ms(text: str) -> int:
    """Parse ISO 8601 with an explicit zone into epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReadingError(f"ts {quote(text)} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ReadingError(f"ts {quote(text)} has no time zone: add Z or an offset such as +00:00")
    return round((moment - EPOCH) / _MS)  # to the nearest ms, as for epoch seconds


def parse_legacy(text: str, catalogue: Catalogue, now_ms: int, last_stamp_ms: int = 0) -> Reading:
    """Parse the original client's "co2,temperature,humidity" frame, stamped on receipt.

    Each field is a plain ASCII decimal: optional sign, digits, optional fraction ("-12",
    "21.5", ".5" and "5." are numbers; "1e3", "1_000", "inf", "nan" and non-ASCII digits are
    not), with spaces or tabs around. The stamp is `now_ms`, or `last_stamp_ms` + 1 if later.
    """
    fields = text.strip().split(",")
    if len(fields) != len(LEGACY_METRICS):
        raise LegacyFrameError(f"legacy frame needs {len(LEGACY_METRICS)} comma-separated numbers, "
                         f"got {quote(text.strip())}")
    values = {}
    for name, raw in zip(LEGACY_METRICS, fields):
        if not _LEGACY_NUMBER.fullmatch(raw):
            raise LegacyFrameError(f"legacy frame: {name} {quote(raw.strip())} is not a number")
        number = float(raw)
        if not math.isfinite(number):  # hundreds of digits overflow a double
            raise LegacyFrameError(f"legacy frame: {name} is {number!r}, not a finite number")
        error = catalogue[name].range_error(number) if name in catalogue else f"unknown metric {name!r}"
        if error:
            raise LegacyFrameError(f"legacy frame: {error}")
        values[name] = number
    return Reading(None, max(now_ms, last_stamp_ms + 1), values)


def quote(value: Any) -> str:
    """repr of a client's value, cut to QUOTE_MAX characters with "…" (safe for any nesting)."""
    parts, size = [], 0
    for part in _repr_parts(value):
        parts.append(part)
        size += len(part)
        if size > QUOTE_MAX:
            return "".join(parts)[:QUOTE_MAX - 1] + "…"
    return "".join(parts)


def _repr_parts(value: Any) -> Iterator[str]:
    """repr of `value` piece by piece, so quote() stops early and never recurses deeply."""
    kind = type(value)
    if kind is str:
        yield repr(value[:QUOTE_MAX + 1])
    elif kind is int:
        try:
            yield repr(value)
        except ValueError:  # beyond int's string-conversion limit
            yield f"<integer of {value.bit_length()} bits>"
    elif kind in (float, bool) or value is None:
        yield repr(value)
    elif kind is list or kind is tuple:
        yield "["
        for index, element in enumerate(value):
            if index:
                yield ", "
            yield from _repr_parts(element)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, element) in enumerate(value.items()):
            if index:
                yield ", "
            yield from _repr_parts(key)
            yield ": "
            yield from _repr_parts(element)
        yield "}"
    else:  # never call a foreign __repr__
        yield f"<{kind.__name__}>"


def ms_to_iso(ts_ms: int) -> str:
    """Format epoch milliseconds as ISO 8601 UTC with a Z suffix."""
    return (EPOCH + ts_ms * _MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")

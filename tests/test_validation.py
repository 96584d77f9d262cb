"""lib.validation: frames, messages, readings, timestamps and the legacy CSV frame."""
from __future__ import annotations

import math

import orjson
import pytest

from lib.catalogue import Catalogue
from lib.validation import (MIN_TS_MS, FrameError, LegacyFrameError, Limits, ReadingError,
                            ms_to_iso, parse_frame, parse_legacy, parse_message, parse_reading,
                            parse_ts)

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z
NOW_ISO = "2023-11-14T22:13:20Z"
FUTURE = 300_000
CAT = Catalogue()


def frame(obj) -> str:
    """A JSON text frame."""
    return orjson.dumps(obj).decode()


def reading(values=None, **extra) -> dict:
    """A reading object with sensible values."""
    return {"values": {"co2": 612.0, "temperature": 21.5} if values is None else values, **extra}


def reject(item) -> str:
    """The ReadingError message parse_reading gives for `item`."""
    with pytest.raises(ReadingError) as info:
        parse_reading(item, CAT, NOW, FUTURE)
    return str(info.value)


def test_valid_batch():
    """A batch keeps every reading, its seq, its values as floats and its time."""
    parsed = parse_frame(frame({"readings": [
        reading(seq=1, ts=NOW_ISO),
        reading({"humidity": 40}, seq=2, ts=1_699_999_999),
    ]}), CAT, NOW)
    assert not parsed.legacy and parsed.rejected == []
    assert [(r.seq, r.ts_ms, r.values) for r in parsed.readings] == [
        (1, NOW, {"co2": 612.0, "temperature": 21.5}), (2, NOW - 1000, {"humidity": 40.0})]
    assert type(parsed.readings[1].values["humidity"]) is float


@pytest.mark.parametrize("data", [str, lambda s: s.encode(), lambda s: "  \n" + s])
def test_single_reading_object_text_bytes_and_leading_space(data):
    """One reading object without "readings" is accepted as str, bytes or after whitespace."""
    parsed = parse_frame(data(frame(reading(seq=7))), CAT, NOW)
    assert [(r.seq, r.ts_ms) for r in parsed.readings] == [(7, NOW)]


@pytest.mark.parametrize(("ts", "expected"), [
    ("2023-11-14T22:13:20Z", NOW),
    ("2023-11-14T22:13:20.123Z", NOW + 123),
    ("2023-11-14T23:13:20+01:00", NOW),
    ("2023-11-14T17:13:20.5-05:00", NOW + 500),
    ("2023-11-14T22:13:20+00:00", NOW),
    (1_700_000_000, NOW),
    (1_699_999_000.25, NOW - 999_750),
    (1_699_999_999.1234, NOW - 877),
    (1_699_999_999.9996, NOW),
    (None, NOW),
])
def test_parse_ts_accepts(ts, expected):
    """ISO 8601 with a zone and epoch seconds become UTC ms; missing means receipt time."""
    assert parse_ts(ts, NOW, FUTURE) == expected


@pytest.mark.parametrize(("ts", "fragment"), [
    ("2023-11-14T22:13:20", "has no time zone: add Z or an offset"),
    ("2023-11-14", "has no time zone"),
    ("yesterday", "is not an ISO 8601 time"),
    ("", "is not an ISO 8601 time"),
    ("1999-12-31T23:59:59.999Z", "is before 2000-01-01: is the device clock set?"),
    (0, "is before 2000-01-01"),
    (-5, "is before 2000-01-01"),
    (946_684_799, "is before 2000-01-01"),
    (NOW // 1000 + 301, "is more than 300 s in the future"),
    ("2023-11-14T22:18:20.001Z", "is more than 300 s in the future"),
    (1_700_000_000_000, "is not a plausible epoch time in seconds"),
    (math.nan, "is not a plausible epoch time"),
    (math.inf, "is not a plausible epoch time"),
    (True, "ts must be an ISO 8601 string or epoch seconds, got True"),
    ([2023], "ts must be an ISO 8601 string or epoch seconds"),
    ({"s": 1}, "ts must be an ISO 8601 string or epoch seconds"),
])
def test_parse_ts_rejects(ts, fragment):
    """Unusable times are rejected with a reason naming the value."""
    with pytest.raises(ReadingError) as info:
        parse_ts(ts, NOW, FUTURE)
    assert fragment in str(info.value)


@pytest.mark.parametrize("ts", [NOW // 1000 + 300, "2023-11-14T22:18:20Z", "2023-11-14T22:18:20.000+00:00"])
def test_ts_exactly_at_the_future_limit_is_accepted(ts):
    """A stamp exactly max_future_ms ahead is still accepted."""
    assert parse_ts(ts, NOW, FUTURE) == NOW + FUTURE


def test_first_millisecond_of_2000_is_accepted():
    """MIN_TS_MS itself is valid."""
    assert parse_ts("2000-01-01T00:00:00Z", NOW, FUTURE) == MIN_TS_MS
    assert parse_ts(946_684_800, NOW, FUTURE) == MIN_TS_MS


@pytest.mark.parametrize(("item", "fragment"), [
    ("co2=400", "reading must be a JSON object"),
    ([{"co2": 400}], "reading must be a JSON object"),
    (None, "reading must be a JSON object"),
    ({"co2": 400}, 'reading needs "values": an object of metric names to numbers'),
    ({"values": [400]}, 'reading needs "values"'),
    ({"values": {}}, "reading has no values"),
    ({"values": {"co2": None, "humidity": None}}, "reading has no values"),
    ({"values": {"co2": True}}, "co2 must be a number, got True"),
    ({"values": {"humidity": False}}, "humidity must be a number, got False"),
    ({"values": {"co2": "400"}}, "co2 must be a number, got '400'"),
    ({"values": {"co2": [400]}}, "co2 must be a number, got [400]"),
    ({"values": {"co2": {"v": 1}}}, "co2 must be a number"),
    ({"values": {"co2": math.nan}}, "co2 is nan, not a finite number"),
    ({"values": {"co2": math.inf}}, "co2 is inf, not a finite number"),
    ({"values": {"temperature": -math.inf}}, "temperature is -inf, not a finite number"),
    ({"values": {"co2": 10 ** 400}}, "co2 " + str(10 ** 400)[:20]),
    ({"values": {"pressure": 1013.0}}, "unknown metric 'pressure'"),
    ({"values": {"co2; DROP TABLE reading": 1.0}}, "unknown metric 'co2; DROP TABLE reading'"),
    ({"values": {"humidity": 140.0}}, "humidity 140.0 is outside 0..100"),
    ({"values": {"temperature": -41}}, "temperature -41.0 is outside -40..125"),
    ({"values": {"co2": 400}, "seq": "1"}, "seq must be an integer, got '1'"),
    ({"values": {"co2": 400}, "seq": 1.0}, "seq must be an integer, got 1.0"),
    ({"values": {"co2": 400}, "seq": True}, "seq must be an integer, got True"),
    ({"values": {"co2": 400}, "ts": "soon"}, "ts 'soon' is not an ISO 8601 time"),
])
def test_parse_reading_rejects(item, fragment):
    """Each invalid reading gets a specific, readable reason."""
    assert fragment in reject(item)


def test_float_subclass_and_int_subclass_values_are_rejected():
    """Values must be exactly int or float, so no subclass with odd behaviour gets through."""
    class Sneaky(float):
        def __repr__(self):
            return "1); DROP TABLE reading; --"

    assert "co2 must be a number" in reject({"values": {"co2": Sneaky(400.0)}})


def test_null_values_are_skipped():
    """null means not measured: the other values are kept."""
    result = parse_reading({"values": {"co2": None, "humidity": 41.5}, "seq": 0}, CAT, NOW, FUTURE)
    assert result.values == {"humidity": 41.5} and result.seq == 0


@pytest.mark.parametrize("seq", [None, 0, -1, 2 ** 40])
def test_integer_or_missing_seq_is_kept(seq):
    """Any integer seq, or none, is accepted and kept."""
    assert parse_reading(reading(seq=seq), CAT, NOW, FUTURE).seq == seq


def test_python_floats_nan_and_inf_via_parse_message():
    """Decoded messages with NaN or Infinity (not possible in JSON) are rejected per reading."""
    parsed = parse_message({"readings": [reading({"co2": math.nan}, seq=1),
                                         reading({"humidity": math.inf}, seq=2),
                                         reading(seq=3)]}, CAT, NOW)
    assert [r.seq for r in parsed.readings] == [3]
    assert parsed.rejected == [{"seq": 1, "error": "co2 is nan, not a finite number"},
                               {"seq": 2, "error": "humidity is inf, not a finite number"}]


@pytest.mark.parametrize(("text", "error"), [
    ('{"values": {"co2": NaN}}', "co2 is nan, not a finite number"),
    ('{"values": {"co2": Infinity}}', "co2 is inf, not a finite number"),
    ('{"values": {"co2": 1e400}}', "co2 is inf, not a finite number"),
])
def test_json_nan_infinity_and_overflow_reject_the_reading(text, error):
    """NaN, Infinity (not JSON) and numbers a double cannot hold reject just their reading."""
    assert parse_frame(text, CAT, NOW).rejected == [{"seq": None, "error": error}]


def test_mixed_valid_and_invalid_readings():
    """Valid readings are kept in order; each rejection carries its seq and its reason."""
    parsed = parse_frame(frame({"readings": [
        reading(seq=1), reading({"co2": "high"}, seq=2), reading(seq=3), "junk",
        reading({"humidity": 140.0}, seq=4), reading(seq=5, ts="2023-11-14T22:13:20"),
        reading(seq=6), reading({"co2": 1}, seq="x"),
    ]}), CAT, NOW)
    assert [r.seq for r in parsed.readings] == [1, 3, 6]
    assert [(r["seq"], r["error"].split(" ")[0]) for r in parsed.rejected] == [
        (2, "co2"), (None, "reading"), (4, "humidity"), (5, "ts"), (None, "seq")]
    assert "humidity 140.0 is outside 0..100" in parsed.rejected[2]["error"]


@pytest.mark.parametrize(("count", "ok"), [(3, True), (4, False)])
def test_too_many_readings(count, ok):
    """More readings than max_readings fail the whole frame; exactly the limit is fine."""
    message = frame({"readings": [reading(seq=i) for i in range(count)]})
    if ok:
        assert len(parse_frame(message, CAT, NOW, Limits(max_readings=3)).readings) == 3
    else:
        with pytest.raises(FrameError, match=r"too many readings in one message: 4 > 3"):
            parse_frame(message, CAT, NOW, Limits(max_readings=3))


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"readings": [', "frame is not valid JSON"),
    ('{co2: 400}', "frame is not valid JSON"),
    (b'{"values": {"co2": "\xff"}}', "frame is not valid JSON"),
    ('{"readings": {"co2": 1}}', "readings must be a list"),
    ('{"readings": null}', "readings must be a list"),
    ("", 'expected a JSON object {"readings": [...]} or one reading object'),
    ("   ", "expected a JSON object"),
    ("hello", "expected a JSON object"),
    ("[]", "expected a JSON object"),
    (b"[]", "expected a JSON object"),
    ("400", "expected a JSON object"),
    (b"400,21.5,40", "expected a JSON object"),
])
def test_unusable_frames(text, fragment):
    """Frames that are not a JSON object fail whole, with a hint about the expected shape."""
    with pytest.raises(FrameError) as info:
        parse_frame(text, CAT, NOW)
    assert fragment in str(info.value)
    assert not isinstance(info.value, LegacyFrameError)


@pytest.mark.parametrize("text", [
    '[{"values": {"co2": 400}}, {"values": {"co2": 401}}]',
    b'[{"values": {"co2": 400}}, {"values": {"co2": 401}}]',
    "[400, 21.5, 40]",
], ids=["objects-str", "objects-bytes", "numbers-str"])
def test_top_level_json_array_is_a_frame_error_not_a_legacy_frame(text):
    """A JSON array is answered as a bad v1 frame; legacy errors get no reply at all."""
    with pytest.raises(FrameError) as info:
        parse_frame(text, CAT, NOW)
    assert not isinstance(info.value, LegacyFrameError), f"treated as legacy CSV: {info.value}"


def test_parse_message_rejects_non_objects():
    """A decoded message must be a dict."""
    for message in ([reading()], "x", None, 3):
        with pytest.raises(FrameError, match="expected a JSON object"):
            parse_message(message, CAT, NOW)


@pytest.mark.parametrize(("text", "values"), [
    ("612,21.5,40", {"co2": 612.0, "temperature": 21.5, "humidity": 40.0}),
    (" 612 , -3.25 , 0 \n", {"co2": 612.0, "temperature": -3.25, "humidity": 0.0}),
    ("0,125,100", {"co2": 0.0, "temperature": 125.0, "humidity": 100.0}),
])
def test_legacy_frames(text, values):
    """The original CSV frame is parsed, stamped on receipt and flagged as legacy."""
    parsed = parse_frame(text, CAT, NOW)
    assert parsed.legacy and parsed.rejected == []
    assert [(r.seq, r.ts_ms, r.values) for r in parsed.readings] == [(None, NOW, values)]


@pytest.mark.parametrize(("text", "fragment"), [
    ("612,21.5", "legacy frame needs 3 comma-separated numbers, got '612,21.5'"),
    ("612,21.5,40,1", "legacy frame needs 3 comma-separated numbers"),
    ("612,,40", "legacy frame: temperature '' is not a number"),
    ("abc,21.5,40", "legacy frame: co2 'abc' is not a number"),
    ("nan,21.5,40", "legacy frame: co2 'nan' is not a number"),
    ("612,inf,40", "legacy frame: temperature 'inf' is not a number"),
    ("612,-Infinity,40", "legacy frame: temperature '-Infinity' is not a number"),
    ("612,21.5,NaN", "legacy frame: humidity 'NaN' is not a number"),
    ("612,21.5,1e999", "legacy frame: humidity '1e999' is not a number"),
    ("612,21.5,1" + "0" * 400, "legacy frame: humidity is inf, not a finite number"),
    ("612,21.5,140", "legacy frame: humidity 140.0 is outside 0..100"),
    ("612,-41,40", "legacy frame: temperature -41.0 is outside -40..125"),
    ("1); DROP TABLE reading; --,1,1", "legacy frame: co2 '1); DROP TABLE reading; --' is not a number"),
])
def test_invalid_legacy_frames(text, fragment):
    """A bad legacy frame raises LegacyFrameError (a FrameError) with the reason."""
    with pytest.raises(LegacyFrameError) as info:
        parse_frame(text, CAT, NOW)
    assert fragment in str(info.value)
    assert isinstance(info.value, FrameError)


def test_legacy_frame_message_is_truncated():
    """A huge bad legacy frame is quoted only in part."""
    with pytest.raises(LegacyFrameError) as info:
        parse_legacy("1," * 5000, CAT, NOW)
    assert len(str(info.value)) < 200


def test_legacy_frame_needs_the_builtin_metrics():
    """A catalogue without humidity cannot take legacy frames."""
    cat = Catalogue([CAT["co2"], CAT["temperature"]])
    with pytest.raises(LegacyFrameError, match="unknown metric 'humidity'"):
        parse_legacy("612,21.5,40", cat, NOW)


@pytest.mark.parametrize(("ts_ms", "iso"), [
    (NOW, "2023-11-14T22:13:20.000Z"), (MIN_TS_MS + 7, "2000-01-01T00:00:00.007Z"),
])
def test_ms_to_iso_round_trips(ts_ms, iso):
    """ms_to_iso is the inverse of parse_ts for ISO strings."""
    assert ms_to_iso(ts_ms) == iso
    assert parse_ts(iso, ts_ms, FUTURE) == ts_ms

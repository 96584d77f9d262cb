"""lib.validation against hostile frames: BOM, deep nesting, huge numbers, duplicate keys,
loose legacy numbers, and server stamps that must not collide."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.catalogue import Catalogue
from lib.validation import (FrameError, LegacyFrameError, Parsed, decode_body, decode_exact, parse_frame,
                            parse_legacy)

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z
CAT = Catalogue()
GOOD = '{"seq": %d, "values": {"co2": 612.0}}'


def batch(*readings: str) -> str:
    """A {"readings": [...]} frame from reading texts."""
    return '{"readings": [' + ", ".join(readings) + "]}"


def nested(depth: int, inner: str = "1") -> str:
    """`inner` inside `depth` JSON arrays."""
    return "[" * depth + inner + "]" * depth


def reply(parsed: Parsed) -> bytes:
    """The reply the server builds; it must always be serialisable."""
    return orjson.dumps({"ack": [r.seq for r in parsed.readings], "rejected": parsed.rejected})


# ---- 1. byte-order mark ------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    lambda s: "\ufeff" + s,
    lambda s: " \ufeff\n" + s,
    lambda s: b"\xef\xbb\xbf" + s.encode(),
    lambda s: b"\xef\xbb\xbf  " + s.encode(),
], ids=["str", "str-spaces", "bytes", "bytes-spaces"])
def test_leading_bom_is_stripped(data):
    """A BOM (and whitespace) before the JSON does not turn the frame into a legacy one."""
    parsed = parse_frame(data(batch(GOOD % 1, GOOD % 2)), CAT, NOW)
    assert not parsed.legacy
    assert [r.seq for r in parsed.readings] == [1, 2]


def test_bom_before_a_legacy_frame_is_stripped():
    """The original client's CSV frame after a BOM is still read."""
    parsed = parse_frame("\ufeff412,21.5,40.2", CAT, NOW)
    assert parsed.legacy and parsed.readings[0].values == {"co2": 412.0, "temperature": 21.5,
                                                           "humidity": 40.2}


@pytest.mark.parametrize("text", ["\ufeff", "\ufeff\ufeff{}", b"\xef\xbb\xbf", "\ufeffhello"])
def test_bom_alone_or_twice_is_a_frame_error(text):
    """Only one leading BOM is forgiven; what is left must still be a frame."""
    with pytest.raises(FrameError) as info:
        parse_frame(text, CAT, NOW)
    assert not isinstance(info.value, LegacyFrameError)


@pytest.mark.parametrize("text", ["\ufeff\ufeff" + batch(GOOD % 1, GOOD % 2), '"412",21.5,40.2',
                                  "[412,21.5,40.2]"])
def test_json_marks_make_a_frame_no_legacy_one(text):
    """A frame with commas and JSON's brackets or quotes is a v1 client's mistake: a FrameError (which
    gets a reply), never a legacy frame (which gets none, so the client would wait forever)."""
    with pytest.raises(FrameError) as info:
        parse_frame(text, CAT, NOW)
    assert not isinstance(info.value, LegacyFrameError)


# ---- 2. deep nesting ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    '{"seq": %s, "values": {"co2": 1}}' % nested(300),
    '{"seq": 5, "ts": %s, "values": {"co2": 1}}' % nested(300),
    '{"seq": 5, "values": {"co2": %s}}' % nested(300),
    '{"seq": 5, "values": {"co2": %s}}' % nested(1000),
    '{"seq": 5, "values": {"co2": %s}}' % nested(800, '{"a": 1}'),
    '{"seq": 5, "values": %s}' % nested(300),
    nested(300),
], ids=["seq", "ts", "value", "value-1000", "value-dict-800", "values", "reading"])
def test_deep_nesting_rejects_only_that_reading(bad):
    """A deeply nested field rejects its reading with a short reason; the reply still encodes."""
    parsed = parse_frame(batch(GOOD % 1, bad, GOOD % 2), CAT, NOW)
    assert [r.seq for r in parsed.readings] == [1, 2]
    [rejection] = parsed.rejected
    assert rejection["seq"] in (None, 5)
    assert len(rejection["error"]) < 120
    assert len(reply(parsed)) < 300


def test_non_integer_seq_is_not_echoed():
    """Only an integer seq is echoed; anything else would be a client's object sent back."""
    parsed = parse_frame(batch('{"seq": "x", "values": {"co2": 1}}',
                               '{"seq": {"a": [1, 2]}, "values": {"co2": 1}}',
                               '{"seq": true, "values": {"co2": 1}}'), CAT, NOW)
    assert [r["seq"] for r in parsed.rejected] == [None, None, None]
    assert "got 'x'" in parsed.rejected[0]["error"]


@pytest.mark.parametrize(("bad", "fragment"), [
    ('{"values": {"co2": "%s"}}' % ("x" * 10_000), "co2 must be a number, got 'xxxxx"),
    ('{"values": {"%s": 1}}' % ("m" * 10_000), "unknown metric 'mmmm"),
    ('{"seq": "%s", "values": {"co2": 1}}' % ("s" * 10_000), "seq must be an integer, got 'sss"),
    ('{"ts": "%s", "values": {"co2": 1}}' % ("t" * 10_000), "ts 'tttt"),
    ('{"values": {"co2": [%s]}}' % ", ".join(["1"] * 5000), "co2 must be a number, got [1, 1"),
])
def test_quoted_values_are_shortened(bad, fragment):
    """Error texts quote at most ~40 characters of the offending value, ending in an ellipsis."""
    [rejection] = parse_frame(batch(bad), CAT, NOW).rejected
    assert fragment in rejection["error"] and "…" in rejection["error"]
    assert len(rejection["error"]) < 120


def test_nesting_beyond_the_json_limit_is_a_clear_frame_error():
    """Deeper than the decoder allows, the whole frame is refused with a short message."""
    with pytest.raises(FrameError) as info:
        parse_frame(batch(GOOD % 1, '{"seq": %s}' % nested(2000)), CAT, NOW)
    assert len(str(info.value)) < 200


# ---- 3. numbers a double cannot hold -----------------------------------------------------

@pytest.mark.parametrize(("bad", "fragment"), [
    ('{"seq": 9, "values": {"co2": 1e400}}', "co2 is inf, not a finite number"),
    ('{"seq": 9, "values": {"co2": -1e400}}', "co2 is -inf, not a finite number"),
    ('{"seq": 9, "values": {"co2": 1%s}}' % ("0" * 5000), "co2 is inf, not a finite number"),
    ('{"seq": 9, "values": {"co2": NaN}}', "co2 is nan, not a finite number"),
    ('{"seq": 9, "values": {"co2": Infinity}}', "co2 is inf, not a finite number"),
    ('{"seq": 9, "values": {"humidity": -Infinity}}', "humidity is -inf, not a finite number"),
    ('{"seq": 9, "ts": 1e400, "values": {"co2": 1}}', "is not a plausible epoch time"),
    ('{"seq": 9, "ts": NaN, "values": {"co2": 1}}', "is not a plausible epoch time"),
])
def test_overflowing_numbers_reject_only_their_reading(bad, fragment):
    """1e400, NaN and Infinity reject their reading; the valid readings are kept."""
    parsed = parse_frame(batch(GOOD % 1, bad, GOOD % 2), CAT, NOW)
    assert [r.seq for r in parsed.readings] == [1, 2]
    assert parsed.rejected == [{"seq": 9, "error": parsed.rejected[0]["error"]}]
    assert fragment in parsed.rejected[0]["error"]
    reply(parsed)


@pytest.mark.parametrize(("seq", "kept"), [
    ("18446744073709551615", 2 ** 64 - 1), ("-9223372036854775808", -2 ** 63),
])
def test_64_bit_seq_survives_the_exact_path(seq, kept):
    """A seq in 64-bit range stays an integer even when the frame takes the exact path."""
    parsed = parse_frame(batch('{"seq": %s, "values": {"co2": 1}}' % seq,
                               '{"seq": 3, "values": {"co2": 1e400}}'), CAT, NOW)
    assert [r.seq for r in parsed.readings] == [kept]
    reply(parsed)


@pytest.mark.parametrize("seq", ["18446744073709551616", "-9223372036854775809", "1" + "0" * 30])
def test_seq_beyond_64_bits_is_rejected_on_both_paths(seq):
    """Beyond 64 bits a seq is a float, as orjson reads it, so it cannot break the reply."""
    for other in (GOOD % 3, '{"seq": 3, "values": {"co2": 1e400}}'):
        parsed = parse_frame(batch('{"seq": %s, "values": {"co2": 1}}' % seq, other), CAT, NOW)
        assert parsed.rejected[0]["seq"] is None
        assert "seq must be an integer" in parsed.rejected[0]["error"]
        reply(parsed)


# ---- 4. duplicate keys -------------------------------------------------------------------

@pytest.mark.parametrize(("bad", "fragment"), [
    ('{"seq": 9, "values": {"co2": 500, "co2": 900}}', "duplicate key 'co2'"),
    ('{"seq": 9, "values": {"co2": 500, "co2" : 900}}', "duplicate key 'co2'"),
    ('{"seq": 9, "values": {"co2": 500,\n "co2"\t:\r900}}', "duplicate key 'co2'"),
    ('{"seq": 9, "values": {"co2": 500, "co\\u0032": 900}}', "duplicate key 'co2'"),
    ('{"seq": 9, "values": {"co2": 1}, "values": {"co2": 2}}', "duplicate key 'values'"),
    ('{"seq": 9, "ts": 1699999999, "ts": 1700000000, "values": {"co2": 1}}', "duplicate key 'ts'"),
    ('{"seq": 9, "seq": 9, "values": {"co2": 1}}', "duplicate key 'seq'"),
])
def test_duplicate_keys_reject_the_reading(bad, fragment):
    """A key given twice in a reading or its values rejects that reading, whatever the spacing."""
    parsed = parse_frame(batch(GOOD % 1, bad, GOOD % 2), CAT, NOW)
    assert [r.seq for r in parsed.readings] == [1, 2]
    assert parsed.rejected == [{"seq": 9, "error": parsed.rejected[0]["error"]}]
    assert fragment in parsed.rejected[0]["error"]


@pytest.mark.parametrize("spaced", ['"x" :1', '"x"\t:1', '"x"\n:1', '"x"  :1', '"x"\r\n :1'])
@pytest.mark.parametrize("ts", ['', '"ts":"2023-11-14T22:13:20Z",'])
def test_repeated_key_masked_by_a_spaced_key_is_found(spaced, ts):
    """A key with white space before its colon cannot hide a repeated key from the cheap check."""
    text = '{"readings":[{"seq":9,%s"values":{"co2":1,"co2":2},%s}]}' % (ts, spaced)
    assert parse_frame(text, CAT, NOW).rejected == [{"seq": 9, "error": "duplicate key 'co2'"}]


def test_duplicate_key_in_a_single_reading_frame():
    """A frame that is one reading object with a repeated key gets that reading rejected."""
    parsed = parse_frame('{"seq": 4, "values": {"co2": 500, "co2": 900}}', CAT, NOW)
    assert parsed.readings == [] and parsed.rejected == [{"seq": 4, "error": "duplicate key 'co2'"}]


@pytest.mark.parametrize("text", [
    '{"readings": [%s], "readings": [%s]}' % (GOOD % 1, GOOD % 2),
    '{"readings": [%s], "note": 1, "note": 2}' % (GOOD % 1),
    b'{"readings": [], "readings": []}',
])
def test_duplicate_key_at_message_level_is_a_frame_error(text):
    """A message-level key given twice makes the whole frame ambiguous."""
    with pytest.raises(FrameError, match="duplicate key"):
        parse_frame(text, CAT, NOW)


@pytest.mark.parametrize("text", [
    batch('{"seq": 1, "values": {"co2": 1}, "extra": {"a": 1, "a": 2}}'),
    batch('{"seq": 1, "values": {"co2": 1}, "note": "a\\": \\"b"}'),
    batch('{"seq": 1, "values": {"co2": 1}, "note": ":x"}'),
    json.dumps({"readings": [{"seq": 1, "values": {"co2": 1}}]}, indent=2),
])
def test_tricky_frames_without_relevant_duplicates_are_accepted(text):
    """Nested duplicates in ignored fields, escaped quotes and pretty-printing are all fine."""
    parsed = parse_frame(text, CAT, NOW)
    assert [r.seq for r in parsed.readings] == [1] and parsed.rejected == []


@pytest.mark.parametrize("text", [
    batch('{"seq": 1, "values": {"co2": 1}, "note": "\\ud800"}', '{"values": {"co2": 1e400}}'),
    batch('{"seq": 1, "values": {"co\\udc00": 1}}', '{"values": {"co2": 1, "co2": 1}}'),
    b'{"values": {"co2": 1e400}, "note": "\xff"}',
    '{"values": {"co2": 1e400}, "note": "\ud800"}',
    '{"values": {"co2": 1e400}, "note": "\x01"}',
    '{"values": {"co2": 1e400}} x',
])
def test_exact_path_refuses_what_orjson_refuses(text):
    """The exact fallback never accepts lone surrogates, bad UTF-8 or junk that orjson refuses."""
    with pytest.raises(FrameError):
        parse_frame(text, CAT, NOW)


# ---- 5. legacy numbers -------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["1_000", "１２３", " inf", "nan", "-Infinity", "1e3", "0x10",
                                 "+-1", "1.2.3", ".", "", "1 2", "٣"])
def test_legacy_accepts_only_plain_ascii_decimals(raw):
    """Underscores, other digits, inf/nan and exponents are not numbers in a legacy frame."""
    with pytest.raises(LegacyFrameError, match="is not a number"):
        parse_legacy(f"{raw},21.5,40", CAT, NOW)


@pytest.mark.parametrize(("raw", "number"), [
    ("12", 12.0), ("-12", -12.0), ("+12", 12.0), ("21.5", 21.5), (".5", 0.5), ("5.", 5.0),
    ("-.5", -0.5), ("  7  ", 7.0), ("\t8", 8.0), ("0000012.50", 12.5),
])
def test_legacy_plain_decimals(raw, number):
    """Sign, digits and an optional fraction, with spaces around, are read."""
    assert parse_legacy(f"412,{raw},40", CAT, NOW).values["temperature"] == number


# ---- 6. server stamps --------------------------------------------------------------------

def test_server_stamps_in_one_frame_are_distinct():
    """Readings without ts get NOW, NOW+1, NOW+2; readings with ts keep theirs."""
    parsed = parse_frame(batch(GOOD % 1, GOOD % 2, '{"seq": 3, "ts": 1699999999, "values": {"co2": 1}}',
                               GOOD % 4), CAT, NOW)
    assert [(r.seq, r.ts_ms) for r in parsed.readings] == [
        (1, NOW), (2, NOW + 1), (3, NOW - 1000), (4, NOW + 2)]
    assert parsed.last_stamp_ms == NOW + 2


def test_server_stamps_continue_across_frames():
    """The next frame, even one received in the same millisecond, continues after last_stamp_ms."""
    first = parse_frame(batch(GOOD % 1, GOOD % 2), CAT, NOW)
    second = parse_frame(batch(GOOD % 3), CAT, NOW, last_stamp_ms=first.last_stamp_ms)
    legacy = parse_frame("412,21.5,40", CAT, NOW, last_stamp_ms=second.last_stamp_ms)
    later = parse_frame(GOOD % 4, CAT, NOW + 50, last_stamp_ms=legacy.last_stamp_ms)
    assert [r.ts_ms for p in (first, second, legacy, later) for r in p.readings] == [
        NOW, NOW + 1, NOW + 2, NOW + 3, NOW + 50]
    assert (legacy.last_stamp_ms, later.last_stamp_ms) == (NOW + 3, NOW + 50)


def test_rejected_and_timestamped_readings_take_no_stamp():
    """last_stamp_ms is unchanged when no reading was stamped by the server."""
    parsed = parse_frame(batch('{"seq": 1, "values": {"co2": -5}}',
                               '{"seq": 2, "ts": 1699999999, "values": {"co2": 1}}'),
                         CAT, NOW, last_stamp_ms=NOW - 7)
    assert parsed.last_stamp_ms == NOW - 7 and [r.ts_ms for r in parsed.readings] == [NOW - 1000]


def test_default_last_stamp_keeps_receipt_time():
    """Callers that pass no last_stamp_ms still get the time of receipt for the first reading."""
    assert parse_frame(GOOD % 1, CAT, NOW).readings[0].ts_ms == NOW
    assert parse_legacy("412,21.5,40", CAT, NOW).ts_ms == NOW


# ---- properties --------------------------------------------------------------------------

VALID = [
    lambda s: GOOD % s,
    lambda s: '{"seq": %d, "ts": 1699999999.5, "values": {"humidity": 40, "co2": null}}' % s,
    lambda s: '{"values": {"temperature": 21.5} , "seq" : %d}' % s,
    lambda s: '{"seq": %d, "values": {"co2": 1}, "x": {"a": 1, "a": [[[{"b": 2}]]]}}' % s,
    lambda s: '{"seq": %d, "values": {"co2": 1}, "note": "q\\"uote\\": x"}' % s,
]
INVALID = [
    lambda s: '{"seq": %d, "values": {"co2": 500, "co2": 900}}' % s,
    lambda s: '{"seq": %d, "seq": %d, "values": {"co2": 1}}' % (s, s),
    lambda s: '{"seq": %d, "values": {"co2": 1e400}}' % s,
    lambda s: '{"seq": %d, "values": {"co2": NaN}}' % s,
    lambda s: '{"seq": %d, "values": {"co2": "high"}}' % s,
    lambda s: '{"seq": %d, "values": {"humidity": 140}}' % s,
    lambda s: '{"seq": %d, "values": {"co2": %s}}' % (s, nested(300)),
    lambda s: '{"seq": %d, "ts": %s, "values": {"co2": 1}}' % (s, nested(50, "{}")),
    lambda s: '{"seq": %d, "values": {}}' % s,
    lambda s: '{"seq": %d, "values": {"co2": 1}, "values": {"co2": 2}}' % s,
]
ANONYMOUS = [  # invalid readings whose seq cannot be echoed
    lambda s: '{"seq": %s, "values": {"co2": 1}}' % nested(300),
    lambda s: '{"seq": "s%d", "values": {"co2": 1}}' % s,
    lambda s: nested(20, str(s)),
]


@settings(max_examples=300, deadline=None)
@given(kinds=st.lists(st.tuples(st.sampled_from(["valid", "invalid", "anonymous"]),
                                st.integers(0, 9)), max_size=30),
       last=st.integers(0, NOW + 10), as_bytes=st.booleans(), bom=st.booleans())
def test_every_reading_is_stored_or_rejected_exactly_once(kinds, last, as_bytes, bom):
    """Any mix of readings: each lands in exactly one of readings/rejected, as its kind says."""
    texts, expect_ok, expect_bad, anonymous = [], set(), set(), 0
    for seq, (kind, variant) in enumerate(kinds):
        table = {"valid": VALID, "invalid": INVALID, "anonymous": ANONYMOUS}[kind]
        texts.append(table[variant % len(table)](seq))
        if kind == "valid":
            expect_ok.add(seq)
        elif kind == "invalid":
            expect_bad.add(seq)
        else:
            anonymous += 1
    text = ("\ufeff" if bom else "") + batch(*texts)
    parsed = parse_frame(text.encode() if as_bytes else text, CAT, NOW, last_stamp_ms=last)
    assert {r.seq for r in parsed.readings} == expect_ok
    assert len(parsed.readings) == len(expect_ok)
    assert sorted(r["seq"] for r in parsed.rejected if r["seq"] is not None) == sorted(expect_bad)
    assert [r["seq"] for r in parsed.rejected].count(None) == anonymous
    stamps = [r.ts_ms for r in parsed.readings if r.ts_ms >= NOW]
    assert stamps == sorted(set(stamps)) and all(s > last for s in stamps)
    assert parsed.last_stamp_ms == (stamps[-1] if stamps else last)
    assert len(reply(parsed)) < 200 * (len(kinds) + 1)


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 5), max_size=10), now_steps=st.lists(st.integers(0, 3), max_size=10))
def test_server_stamps_strictly_increase_across_frames(sizes, now_steps):
    """However frames and clock ticks interleave, a device's server stamps strictly increase."""
    last, now, stamps = 0, NOW, []
    for size, step in zip(sizes, now_steps):
        now += step
        parsed = parse_frame(batch(*[GOOD % i for i in range(size)]), CAT, now, last_stamp_ms=last)
        stamps += [r.ts_ms for r in parsed.readings]
        assert all(r.ts_ms >= now for r in parsed.readings)
        last = parsed.last_stamp_ms
    assert stamps == sorted(set(stamps))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(value=JSON_VALUES, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans(),
       as_bytes=st.booleans())
def test_exact_decoder_agrees_with_orjson(value, indent, ascii_only, as_bytes):
    """The exact fallback decodes what orjson decodes, identically, and refuses what it refuses."""
    text = json.dumps({"v": value}, indent=indent, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        expected = orjson.loads(data)
    except orjson.JSONDecodeError:
        with pytest.raises(FrameError):
            decode_exact(data)
    else:
        assert decode_exact(data) == expected
        assert _types(decode_exact(data)) == _types(expected)


def _types(value):
    """The structure of `value` with each leaf replaced by its type, to catch int/float drift."""
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return type(value)


# ---- API bodies (flask_front.api.errors.check_request) -----------------------------------------

@pytest.mark.parametrize(("data", "reason"), [
    (b'\xef\xbb\xbf{"name": "x"}', "byte-order mark"),
    (b'{"name": "a\xffb"}', "not UTF-8: byte 0xff at offset 11"),
    (b'{"name": ', "not valid JSON: Expecting value: line 1 column 10"),
    (b'{"name": "x"} x', "not valid JSON: Extra data"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"name": "a", "name": "b"}', "duplicate key 'name' in the body"),
    (b'{"a": {"b": 1, "b": 2}}', "duplicate key 'b' in the body"),
    (b'{"name": "\\ud800"}', "lone surrogate"),
    (b'{"id": 18446744073709551616}', "integer 18446744073709551616 in the body does not fit in 64 bits"),
    (b'{"id": -1' + b"0" * 5000 + b"}", "does not fit in 64 bits"),
], ids=["bom", "utf8", "syntax", "trailing", "nesting", "duplicate", "nested-duplicate", "surrogate", "2**64",
        "5000-digits"])
def test_decode_body_refuses_with_a_reason(data, reason):
    """What Python's parser would read wrongly, keep the last of, or crash on, is refused, saying why."""
    with pytest.raises(ValueError) as info:
        decode_body(data)
    assert reason in str(info.value) and len(str(info.value)) < 120


@pytest.mark.parametrize(("data", "value"), [
    (b'{"name": "pi", "n": -9223372036854775808, "m": 18446744073709551615}',
     {"name": "pi", "n": -2 ** 63, "m": 2 ** 64 - 1}),
    (b'{"above": NaN}', None),  # the schemas refuse NaN by field
    (b"[1]", [1]),  # the schemas refuse a list by type
    (b'{"name": "\\u00e9t\\u00e9 \\ud83d\\ude00"}', {"name": "\u00e9t\u00e9 \U0001F600"}),
], ids=["64-bit", "nan", "list", "paired-surrogates"])
def test_decode_body_reads_what_the_schemas_judge(data, value):
    """Valid JSON within those rules decodes as json.loads would."""
    decoded = decode_body(data)
    if value is None:
        assert decoded["above"] != decoded["above"]
    else:
        assert decoded == value

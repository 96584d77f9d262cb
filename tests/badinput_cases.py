"""The WebSocket rows of the bad-input catalogue (tests/badinput_catalogue.py), run by
tests/test_bad_input.py: frames and their expected replies and stored rows (CASES), and handshakes
(HANDSHAKES).

Expected values follow the protocol rules (README "The ingest protocol"), not whatever the
server happens to do today.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Union

from lib import storage
from lib.validation import ms_to_iso

TS0 = 1_790_000_000_000  # 2026-09-21, in epoch ms
SAME_MS = "another reading of this device is stored at this millisecond"
FINITE = ("not a finite number", "too large")
NUMBER = "number"
NESTED = "[" * 300 + "1" + "]" * 300  # 300 levels of [[[...]]]
Row = tuple  # (ts, co2, temperature, humidity)


@dataclass(frozen=True)
class Reply:
    """A reply predicate: exact acks, rejected seqs with reason substrings, frame error or none."""

    ack: tuple[int, ...] = ()
    # (seq echoed, substring or tuple of alternative substrings of the reason)
    rejected: tuple[tuple[int | None, Union[str, tuple[str, ...]]], ...] = ()
    error: str | None = None  # substring of a frame-level "error"; None: no "error" key at all
    max_reason: int | None = None  # every rejection reason shorter than this many characters


Expected = Union[dict, Reply, None]  # exact JSON, predicate, or None: no reply to this frame


class TextBytes(bytes):
    """Bytes sent as a text frame as they are (a client that does not check its UTF-8)."""


@dataclass(frozen=True)
class Case:
    """One row: frames sent on one connection, a reply expectation per frame, what is stored."""

    id: str
    frames: list[str | bytes]  # str: a text frame, bytes: a binary one, TextBytes: text, unchecked
    replies: list[Expected]
    stored: Union[list[Row], int, Callable[[list[Row]], None]]
    closes: int | None = None  # close code the server must end with; None: stays open


def iso(ts_ms: int) -> str:
    """ISO 8601 UTC text of epoch ms."""
    return ms_to_iso(ts_ms)


def rd(seq, ts=TS0, **values) -> dict:
    """A v1 reading (seq ...: none; ts None: none; int ms: ISO text); co2 = 400 + seq by default."""
    item = {"seq": seq} if seq is not ... else {}
    if ts is not None:
        item["ts"] = iso(ts) if type(ts) is int and ts > 10**11 else ts
    item["values"] = values or {"co2": 400 + seq}
    return item


def msg(*readings) -> str:
    """A {"readings": [...]} text frame."""
    return json.dumps({"readings": list(readings)})


def one(reading: dict) -> str:
    """A single-reading text frame."""
    return json.dumps(reading)


def raw(seq: str = "1", ts: str | None = None, values: str = '{"co2": 401}') -> str:
    """One reading written as raw JSON text, for what json.dumps cannot produce."""
    ts = json.dumps(iso(TS0)) if ts is None else ts
    return f'{{"seq": {seq}, "ts": {ts}, "values": {values}}}'


def raw_msg(*readings: str) -> str:
    """A {"readings": [...]} frame from raw reading texts."""
    return '{"readings": [' + ", ".join(readings) + "]}"


def valid_second() -> str:
    """A valid reading seq 2 at TS0 + 1 s, as raw JSON."""
    return json.dumps(rd(2, TS0 + 1000))


SECOND_ROW = (TS0 + 1000, 402.0, None, None)


def stamped(*values: tuple) -> Callable[[list[Row]], None]:
    """Rows stamped by the server on receipt: these (co2, t, rh) in order, distinct increasing ts."""
    def check(rows: list[Row]) -> None:
        assert [tuple(r[1:]) for r in rows] == [tuple(v) for v in values], rows
        stamps = [r[0] for r in rows]
        assert stamps == sorted(set(stamps)), f"server stamps not distinct and increasing: {stamps}"
        assert all(abs(ts - storage.now_ms()) < 120_000 for ts in stamps), stamps
    check.__name__ = f"stamped{values}"
    return check


def ack(*seqs: int) -> dict:
    """The exact reply acking `seqs` with nothing rejected."""
    return {"ack": list(seqs), "rejected": []}


def rejected_one(case_id: str, values: str, reason, seq: str = "1", ts: str | None = None,
                 max_reason: int | None = None) -> Case:
    """Reading 1 (raw JSON) is rejected for `reason`, the valid reading 2 beside it is stored."""
    echoed = json.loads(seq) if seq.lstrip("-").isdigit() else None
    return Case(case_id, [raw_msg(raw(seq, ts, values), valid_second())],
                [Reply(ack=(2,), rejected=((echoed, reason),), max_reason=max_reason)],
                [SECOND_ROW])


def legacy_refused(case_id: str, frame: str) -> Case:
    """A legacy frame that must not be stored and gets no reply."""
    return Case(case_id, [frame], [None], 0)


CASES: list[Case] = [
    # ---- server stamps and the one-reading-per-millisecond rule --------------------
    Case("no-ts-three-readings-get-three-stamps",
         ['{"readings":[{"seq":1,"values":{"co2":501}},{"seq":2,"values":{"co2":502}},'
          '{"seq":3,"values":{"co2":503}}]}'],
         [ack(1, 2, 3)], stamped((501.0, None, None), (502.0, None, None), (503.0, None, None))),
    Case("no-ts-single-readings-in-a-row",
         [one(rd(i, None)) for i in range(1, 6)], [ack(i) for i in range(1, 6)],
         stamped(*[(400.0 + i, None, None) for i in range(1, 6)])),
    Case("same-ts-other-values-one-message",
         [msg(rd(1, TS0, co2=500), rd(2, TS0, co2=600))],
         [Reply(ack=(1,), rejected=((2, SAME_MS),))], [(TS0, 500.0, None, None)]),
    Case("same-ts-other-values-two-messages",
         [one(rd(1, TS0, co2=500)), one(rd(2, TS0, co2=600))],
         [ack(1), Reply(rejected=((2, SAME_MS),))], [(TS0, 500.0, None, None)]),
    Case("same-ts-other-values-two-messages-batches",
         [msg(rd(1, TS0, co2=500), rd(2, TS0 + 1, co2=501)),
          msg(rd(3, TS0 + 1, co2=501), rd(4, TS0, co2=999))],
         [ack(1, 2), Reply(ack=(3,), rejected=((4, SAME_MS),))],
         [(TS0, 500.0, None, None), (TS0 + 1, 501.0, None, None)]),
    Case("same-ts-same-values-replay-one-message",
         [msg(rd(1, TS0, co2=500), rd(2, TS0, co2=500))], [ack(1, 2)], [(TS0, 500.0, None, None)]),
    Case("same-ts-same-values-replay-two-messages",
         [one(rd(1, TS0, co2=500)), one(rd(1, TS0, co2=500))], [ack(1), ack(1)],
         [(TS0, 500.0, None, None)]),
    Case("same-ts-more-metrics-is-other-values",
         [one(rd(1, TS0, co2=500)), one(rd(2, TS0, co2=500, humidity=40.0))],
         [ack(1), Reply(rejected=((2, SAME_MS),))], [(TS0, 500.0, None, None)]),
    Case("sub-ms-apart-other-values",
         [raw_msg(raw("1", "1790000000.0001", '{"co2": 500}'),
                  raw("2", "1790000000.0002", '{"co2": 600}'))],
         [Reply(ack=(1,), rejected=((2, SAME_MS),))], [(TS0, 500.0, None, None)]),
    Case("sub-ms-apart-same-values",
         [raw_msg(raw("1", "1790000000.0001", '{"co2": 500}'),
                  raw("2", "1790000000.0002", '{"co2": 500}'))],
         [ack(1, 2)], [(TS0, 500.0, None, None)]),
    Case("iso-and-epoch-same-ms-other-values",
         [one(rd(1, TS0, co2=500)), raw("2", "1790000000.0", '{"co2": 600}')],
         [ack(1), Reply(rejected=((2, SAME_MS),))], [(TS0, 500.0, None, None)]),

    # ---- byte-order mark ----------------------------------------------------------
    Case("bom-before-json-text", ["\ufeff" + one(rd(1))], [ack(1)], [(TS0, 401.0, None, None)]),
    Case("bom-before-json-binary", [b"\xef\xbb\xbf" + one(rd(1)).encode()], [ack(1)],
         [(TS0, 401.0, None, None)]),

    # ---- deep nesting: that reading is rejected with a short reason -----------------
    rejected_one("nested-seq", '{"co2": 401}', "seq", seq=NESTED, max_reason=200),
    rejected_one("nested-ts", '{"co2": 401}', "ts", ts=NESTED, max_reason=200),
    rejected_one("nested-value", '{"co2": ' + NESTED + "}", "co2", max_reason=200),
    rejected_one("nested-values-object", NESTED, "values", max_reason=200),

    # ---- numbers JSON cannot hold -------------------------------------------------
    rejected_one("value-1e400", '{"co2": 1e400}', FINITE),
    rejected_one("value-minus-1e400", '{"temperature": -1e400}', FINITE),
    rejected_one("value-NaN", '{"co2": NaN}', FINITE),
    rejected_one("value-Infinity", '{"co2": Infinity}', FINITE),
    rejected_one("value-minus-Infinity", '{"humidity": -Infinity}', FINITE),
    rejected_one("value-huge-integer", '{"co2": 18446744073709551616}', ("outside", "too large")),

    # ---- duplicate keys ----------------------------------------------------------
    rejected_one("duplicate-metric-key", '{"co2": 500, "co2": 900}', "duplicate"),
    rejected_one("duplicate-metric-key-same-value", '{"co2": 500, "co2": 500}', "duplicate"),
    Case("duplicate-readings-key",
         ['{"readings": [' + json.dumps(rd(1)) + '], "readings": [' + valid_second() + "]}"],
         [Reply(error="")], 0),

    # ---- legacy CSV frames ----------------------------------------------------------
    Case("legacy-plain-is-stored", ["412,21.5,40.2"], [None], stamped((412.0, 21.5, 40.2))),
    Case("legacy-many-in-a-row-all-stored", [f"{410 + i},21.5,40.2" for i in range(20)],
         [None] * 20, stamped(*[(410.0 + i, 21.5, 40.2) for i in range(20)])),
    legacy_refused("legacy-underscore-digits", "1_000,21.5,40.2"),
    legacy_refused("legacy-underscore-in-humidity", "412,21.5,4_0"),
    legacy_refused("legacy-fullwidth-digits", "１２３,21.5,40.2"),
    legacy_refused("legacy-fullwidth-temperature", "412,２１.5,40.2"),
    legacy_refused("legacy-inf", "inf,21.5,40.2"),
    legacy_refused("legacy-nan", "nan,21.5,40.2"),
    legacy_refused("legacy-out-of-range", "412,21.5,140.2"),
    legacy_refused("legacy-two-fields", "412,21.5"),

    # ---- frames that are not a v1 message: error reply, connection stays ----------------
    Case("invalid-json", ["{broken"], [Reply(error="not valid JSON")], 0),
    Case("not-json-text", ["not json at all"], [Reply(error="expected a JSON object")], 0),
    Case("json-array", ["[1, 2]"], [Reply(error="expected a JSON object")], 0),
    Case("json-number", ["42"], [Reply(error="expected a JSON object")], 0),
    Case("json-null", ["null"], [Reply(error="expected a JSON object")], 0),
    Case("readings-not-a-list", ['{"readings": {"seq": 1}}'],
         [Reply(error="readings must be a list")], 0),
    Case("readings-null", ['{"readings": null}'], [Reply(error="readings must be a list")], 0),
    Case("too-many-readings", [msg(*[rd(i, TS0 + i) for i in range(1001)])],
         [Reply(error="too many readings")], 0),
    Case("max-readings-accepted", [msg(*[rd(i, TS0 + i, co2=500) for i in range(1000)])],
         [ack(*range(1000))], 1000),
    Case("empty-readings", ['{"readings": []}'], [{"ack": [], "rejected": []}], 0),
    Case("binary-json", [msg(rd(1), rd(2, TS0 + 1000)).encode()], [ack(1, 2)],
         [(TS0, 401.0, None, None), SECOND_ROW]),
    Case("binary-invalid-utf8", [b'{"seq": 1, "values": {"co2\xff": 1}}'], [Reply(error="")], 0),
    Case("oversized-frame-closes-1009", ["{" + " " * (1 << 20) + "}"], [None], 0, closes=1009),

    # ---- readings of the wrong shape: rejected one by one ------------------------------
    Case("reading-not-an-object", [raw_msg("1", valid_second())],
         [Reply(ack=(2,), rejected=((None, "must be a JSON object"),))], [SECOND_ROW]),
    rejected_one("values-not-an-object", "[401]", "values"),
    rejected_one("values-empty", "{}", "no values"),
    rejected_one("values-all-null", '{"co2": null}', "no values"),
    Case("values-missing", [raw_msg('{"seq": 1, "ts": "' + iso(TS0) + '"}', valid_second())],
         [Reply(ack=(2,), rejected=((1, "values"),))], [SECOND_ROW]),
    rejected_one("seq-string-echoed-null", '{"co2": 401}', "seq", seq='"7"'),
    rejected_one("seq-float-echoed-null", '{"co2": 401}', "seq", seq="1.5"),
    rejected_one("seq-bool-echoed-null", '{"co2": 401}', "seq", seq="true"),
    rejected_one("seq-object-echoed-null", '{"co2": 401}', "seq", seq='{"n": 1}'),
    Case("seq-missing-is-stored-not-acked", [one(rd(..., TS0, co2=401))], [ack()],
         [(TS0, 401.0, None, None)]),
    rejected_one("unknown-metric", '{"pressure": 1013}', "unknown metric"),
    rejected_one("unknown-metric-beside-known", '{"co2": 401, "pressure": 1013}', "unknown metric"),
    rejected_one("humidity-outside", '{"humidity": 140.0}', "outside"),
    rejected_one("co2-negative-outside", '{"co2": -1}', "outside"),
    rejected_one("temperature-outside", '{"temperature": 125.5}', "outside"),
    rejected_one("value-string", '{"co2": "401"}', NUMBER),
    rejected_one("value-empty-string", '{"co2": ""}', NUMBER),
    rejected_one("value-true", '{"co2": true}', NUMBER),
    rejected_one("value-false", '{"co2": false}', NUMBER),
    rejected_one("value-object", '{"co2": {"v": 401}}', NUMBER),
    rejected_one("value-list", '{"co2": [401]}', NUMBER),
    rejected_one("ts-before-2000", '{"co2": 401}', "before 2000", ts='"1999-12-31T23:59:59Z"'),
    rejected_one("ts-epoch-zero", '{"co2": 401}', "before 2000", ts="0"),
    rejected_one("ts-negative", '{"co2": 401}', "ts", ts="-1"),
    rejected_one("ts-far-future", '{"co2": 401}', "future", ts='"2100-01-01T00:00:00Z"'),
    rejected_one("ts-iso-without-zone", '{"co2": 401}', "time zone", ts='"2026-09-21T07:00:00"'),
    rejected_one("ts-not-iso", '{"co2": 401}', "ISO 8601", ts='"yesterday"'),
    rejected_one("ts-empty-string", '{"co2": 401}', "ts", ts='""'),
    rejected_one("ts-epoch-milliseconds", '{"co2": 401}', "ts", ts="1790000000000"),
    rejected_one("ts-bool", '{"co2": 401}', "ts", ts="true"),
    rejected_one("ts-object", '{"co2": 401}', "ts", ts='{"s": 1790000000}'),
    rejected_one("ts-NaN", '{"co2": 401}', "ts", ts="NaN"),
    rejected_one("ts-1e400", '{"co2": 401}', "ts", ts="1e400"),

    # ---- more frames that are not a message -------------------------------------------
    Case("empty-text-frame", [""], [Reply(error="expected a JSON object")], 0),
    Case("whitespace-frame", [" \n\t "], [Reply(error="expected a JSON object")], 0),
    Case("trailing-junk", [one(rd(1)) + " x"], [Reply(error="not valid JSON")], 0),
    Case("control-character-in-string", [raw_msg(raw()[:-1] + ', "note": "a\x01b"}')],
         [Reply(error="not valid JSON")], 0),
    Case("lone-surrogate-escape", [raw_msg(raw()[:-1] + ', "note": "\\ud800"}', valid_second())],
         [Reply(error="lone surrogate")], 0),
    Case("nested-beyond-the-decoder", [raw_msg(valid_second(), "[" * 5000 + "]" * 5000)],
         [Reply(error="nested too deeply")], 0),
    Case("bom-alone", ["\ufeff"], [Reply(error="expected a JSON object")], 0),
    Case("bom-twice", ["\ufeff\ufeff" + one(rd(1))], [Reply(error="expected a JSON object")], 0),
    Case("text-frame-invalid-utf8-closes-1007", [TextBytes(b'{"seq": 1, "values": {"co2\xff": 1}}')],
         [None], 0, closes=1007),

    # ---- more readings of the wrong shape ------------------------------------------------
    rejected_one("value-5000-digits", '{"co2": 1' + "0" * 5000 + "}", FINITE),
    Case("seq-beyond-64-bits", [raw_msg(raw("18446744073709551616"), valid_second())],
         [Reply(ack=(2,), rejected=((None, "seq must be an integer"),))], [SECOND_ROW]),
    Case("duplicate-seq-key", [raw_msg('{"seq": 1, "seq": 1, "values": {"co2": 401}}', valid_second())],
         [Reply(ack=(2,), rejected=((1, "duplicate key 'seq'"),))], [SECOND_ROW]),
    Case("duplicate-ts-key", [raw_msg(raw(ts=json.dumps(iso(TS0)) + ', "ts": 1790000000'), valid_second())],
         [Reply(ack=(2,), rejected=((1, "duplicate key 'ts'"),))], [SECOND_ROW]),
    rejected_one("metric-name-sql", '{"co2\' OR \'1\'=\'1": 401}', "unknown metric"),
    rejected_one("metric-name-path", '{"../../etc/passwd": 401}', "unknown metric"),
    rejected_one("metric-name-nul", '{"co2\\u0000": 401}', "unknown metric 'co2\\x00'"),
    rejected_one("metric-name-control", '{"co2\\n": 401}', "unknown metric 'co2\\n'"),
    rejected_one("metric-name-empty", '{"": 401}', "unknown metric ''"),
    rejected_one("metric-name-overlong", '{"' + "m" * 10_000 + '": 401}', "unknown metric", max_reason=120),
    rejected_one("metric-name-markup", '{"<script>alert(1)</script>": 401}', "unknown metric"),

    # ---- fields the protocol does not know: ignored, the reading is stored ---------------
    Case("unknown-field-in-reading", [raw_msg(raw()[:-1] + ', "note": {"any": [1, 2]}}')], [ack(1)],
         [(TS0, 401.0, None, None)]),
    Case("unknown-field-in-message", ['{"readings": [' + raw() + '], "firmware": "1.2"}'], [ack(1)],
         [(TS0, 401.0, None, None)]),
]


@dataclass(frozen=True)
class Handshake:
    """A WebSocket upgrade request sent raw, and the HTTP answer that must come back."""

    id: str
    request: str  # the whole request; {token} is a registered device's token; "\xff" is the byte 0xff
    status: int | None  # None: websockets closes the connection without an answer (not HTTP it can read)
    body: str  # a substring of the answer's body, which says why


def upgrade(target: str, *headers: str, method: str = "GET", version: str = "HTTP/1.1", eol: str = "\r\n") -> str:
    """An upgrade request for `target` with these extra header lines."""
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", *headers]
    return eol.join(lines) + eol + eol


BEARER = "Authorization: Bearer {token}"
HANDSHAKES: list[Handshake] = [
    Handshake("two-authorization-headers-same", upgrade("/ingest", BEARER, BEARER), 400,
              "more than one Authorization header"),
    Handshake("two-authorization-headers-good-bad", upgrade("/ingest", BEARER, "Authorization: Bearer nope"), 400,
              "more than one"),
    Handshake("two-authorization-headers-bad-good", upgrade("/ingest", "Authorization: Bearer nope", BEARER), 400,
              "more than one"),
    Handshake("two-token-parameters", upgrade("/ingest?token={token}&token={token}"), 400,
              "more than one token parameter"),
    Handshake("unknown-parameter-ignored", upgrade("/ingest?token={token}&colour=red"), 101, ""),
    Handshake("no-token", upgrade("/ingest"), 401, "missing device token"),
    Handshake("authorization-basic", upgrade("/ingest", "Authorization: Basic YTpi"), 401, "missing device token"),
    Handshake("token-unknown", upgrade("/ingest", "Authorization: Bearer sd_not-a-device-token"), 401,
              "unknown device token"),
    Handshake("token-with-sql", upgrade("/ingest", "Authorization: Bearer ' OR '1'='1"), 401, "unknown device token"),
    Handshake("token-parameter-with-sql", upgrade("/ingest?token=%27%20OR%20%271%27%3D%271"), 401,
              "unknown device token"),
    Handshake("token-invalid-utf8", upgrade("/ingest", "Authorization: Bearer \xff\xfe"), 401, "unknown device token"),
    Handshake("token-parameter-invalid-utf8", upgrade("/ingest?token=%ff%fe"), 401, "unknown device token"),
    Handshake("unknown-path", upgrade("/nope", BEARER), 404, "connect to /ingest"),
    Handshake("path-traversal", upgrade("/../../etc/passwd", BEARER), 404, "connect to /ingest"),
    Handshake("method-post", upgrade("/ingest", BEARER, method="POST"), 405, "unsupported HTTP method"),
    Handshake("no-upgrade-header", "GET /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BEARER + "\r\n\r\n", 426,
              "missing Connection header"),
    Handshake("header-too-large", upgrade("/ingest", BEARER, "X-Note: " + "a" * 10_000), 431,
              "expected no more than 8192 bytes"),
    Handshake("too-many-headers", upgrade("/ingest", BEARER, *[f"X-{i}: 1" for i in range(200)]), 431,
              "no more than 128 headers"),
    Handshake("request-line-too-long", upgrade("/ingest?" + "a" * 10_000, BEARER), 414, "no more than 8192 bytes"),
    Handshake("not-http", "HELLO\r\n\r\n", None, ""),
    Handshake("request-line-invalid-utf8", upgrade("/ingest\xff", BEARER), None, ""),
    Handshake("control-character-in-header", upgrade("/ingest", BEARER, "X-Note: a\x01b"), None, ""),
    Handshake("bare-lf-line-ends", upgrade("/ingest", BEARER, eol="\n"), None, ""),
    Handshake("unknown-http-version", upgrade("/ingest", BEARER, version="HTTP/9.9"), None, ""),
    Handshake("two-content-length-headers", upgrade("/ingest", BEARER, "Content-Length: 5", "Content-Length: 5")
              + "hello", None, ""),
]

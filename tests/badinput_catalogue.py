"""The bad-input catalogue: one list of input classes (an input shape, e.g. "NaN value", "BOM before the
JSON", "SQL text in a name"), each rendered for the three surfaces where bad input arrives:

- ws:   the WebSocket ingest server: frames (tests/badinput_cases.py CASES, "frame:<id>") and
        handshakes (HANDSHAKES, "handshake:<id>"), run by tests/test_bad_input.py;
- http: HTTP ingest, POST /api/v1/readings: the same frames posted as bodies ("frame:<id>", run by
        tests/test_api_ingest.py, which requires the WebSocket server's replies), requests of
        tests/badinput_http.py INGEST ("ingest:<id>") and raw requests to gunicorn (WIRE, "wire:<id>");
- api:  the rest of the web app: API bodies, parameters and paths, the login form (API, "api:<id>"),
        and raw requests to gunicorn ("wire:<id>"), run by tests/test_bad_input_http.py.

A rendering names the rows that hold the input and what must come back; a class that cannot arrive
on a surface says why with NA. gunicorn parses the request line and headers before any URL is
chosen, so its rows stand for both HTTP surfaces. Controls (kind="control") are the valid inputs at
the edge of each rule, which must not be refused; they do not count as bad-input classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class NA:
    """This class of input cannot arrive on the surface, and why."""

    why: str


Surface = Union[tuple[str, ...], NA]


@dataclass(frozen=True)
class InputClass:
    """One shape of input and its rows on each surface."""

    id: str
    shape: str
    ws: Surface
    http: Surface
    api: Surface
    kind: str = "bad"  # or "control": valid input at the edge of a rule


def frames(*ids: str) -> tuple[str, ...]:
    """Rows of CASES: on the ws surface, or as HTTP ingest bodies on the http surface."""
    return tuple(f"frame:{i}" for i in ids)


def refs(table: str, *ids: str) -> tuple[str, ...]:
    """Rows of another table."""
    return tuple(f"{table}:{i}" for i in ids)


NO_LIST = NA("no API body holds a list of objects: each is one flat object")
FLAT = NA("API bodies are one flat object: a nested member is refused as a wrong type")
NO_BODY_WS = NA("a handshake is a GET without a body, and a frame's length is WebSocket framing")
NO_PARAMS = NA("POST /api/v1/readings takes no parameters; the token goes in the Authorization header")
NO_READINGS_API = NA("the API reads readings but never writes them: only the ingest paths do")
NO_LEGACY_HTTP = NA("HTTP ingest takes v1 frames only: a CSV body is not a frame (see legacy-csv-over-http)")
NO_LEGACY_API = NA("legacy CSV frames exist only on the WebSocket")
QUERY_TEXT = NA("query parameters are always text")
WS_NO_IDS = NA("the ingest protocol names no rows by id, and has no parameters but token")
WS_NO_USERS = NA("the ingest protocol has no logins, forms or redirects: a device token is all")
HTTP_NO_USERS = NA("HTTP ingest takes a device token only: no logins, forms or redirects")
SCALAR_TEXT = NA("a frame's text fields are metric names (object keys: always text) and ts, where a number "
                 "is epoch seconds")
DEVICES_ADD_NO_METRICS = NA("metric names are made by add-metric or POST /metrics, never by a device")
HTTP_ONE_URL = NA("HTTP ingest is one URL, POST /api/v1/readings; its ids and paths are the API's")

CLASSES: list[InputClass] = [
    # ---- JSON that is broken or not one message ------------------------------------------
    InputClass("json-syntax", "broken JSON: an unclosed object",
               frames("invalid-json"), frames("invalid-json"), refs("api", "body-malformed-json")),
    InputClass("not-json", "plain text where JSON belongs",
               frames("not-json-text"), frames("not-json-text"), refs("api", "body-not-json")),
    InputClass("trailing-junk", "a valid JSON document followed by more characters",
               frames("trailing-junk"), frames("trailing-junk"), refs("api", "body-trailing-junk")),
    InputClass("raw-control-character", "a raw control character inside a JSON string",
               frames("control-character-in-string"), frames("control-character-in-string"),
               refs("api", "body-control-character")),
    InputClass("json-not-an-object", "an array, number or null where an object belongs",
               frames("json-array", "json-number", "json-null"), frames("json-array", "json-number", "json-null"),
               refs("api", "body-json-array", "body-json-null")),
    InputClass("empty", "an empty frame or body",
               frames("empty-text-frame"), frames("empty-text-frame") + refs("ingest", "ingest-empty-body"),
               refs("api", "body-empty")),
    InputClass("whitespace-only", "nothing but white space",
               frames("whitespace-frame"), frames("whitespace-frame") + refs("ingest", "ingest-whitespace-body"),
               refs("api", "body-whitespace")),
    InputClass("nesting-beyond-the-parser", "arrays nested thousands deep",
               frames("nested-beyond-the-decoder"), frames("nested-beyond-the-decoder"),
               refs("api", "body-deep-nesting")),
    InputClass("deep-nesting-in-a-field", "one member nested hundreds deep",
               frames("nested-seq", "nested-ts", "nested-value", "nested-values-object"),
               frames("nested-seq", "nested-ts", "nested-value", "nested-values-object"), FLAT),

    # ---- message shape ----------------------------------------------------------------------
    InputClass("readings-not-a-list", '"readings" holding an object or null',
               frames("readings-not-a-list", "readings-null"), frames("readings-not-a-list", "readings-null"),
               NO_LIST),
    InputClass("item-not-an-object", "a list item that is not an object",
               frames("reading-not-an-object"), frames("reading-not-an-object"), NO_LIST),
    InputClass("values-not-an-object", '"values" holding a list',
               frames("values-not-an-object"), frames("values-not-an-object"), FLAT),
    InputClass("too-many-items", "more items than the limit allows",
               frames("too-many-readings"), frames("too-many-readings"), refs("api", "query-limit-over-1000")),
    InputClass("required-member-missing", "a required member left out, or an empty object",
               frames("values-missing", "values-empty"), frames("values-missing", "values-empty"),
               refs("api", "device-name-missing", "rule-name-missing", "login-password-missing")),
    InputClass("null-where-required", "null where a value is required",
               frames("values-all-null"), frames("values-all-null"), refs("api", "device-name-null")),
    InputClass("unknown-member", "a member the receiver does not know (ingest: ignored, so newer clients work)",
               frames("unknown-field-in-reading", "unknown-field-in-message"),
               frames("unknown-field-in-reading", "unknown-field-in-message"),
               refs("api", "device-unknown-field", "rule-unknown-field")),
    InputClass("unknown-query-parameter", "a query parameter the URL does not know (ignored)",
               refs("handshake", "unknown-parameter-ignored"), NO_PARAMS,
               refs("api", "query-unknown-parameter-ignored")),

    # ---- wrong types ----------------------------------------------------------------------
    InputClass("number-as-text", 'a number written as text ("401")',
               frames("value-string"), frames("value-string"), refs("api", "rule-threshold-text")),
    InputClass("boolean-for-a-number", "true or false where a number belongs",
               frames("value-true", "value-false"), frames("value-true", "value-false"),
               refs("api", "rule-threshold-bool")),
    InputClass("container-for-a-scalar", "an object or list where a number or text belongs",
               frames("value-object", "value-list", "seq-object-echoed-null"),
               frames("value-object", "value-list", "seq-object-echoed-null"), refs("api", "device-name-object")),
    InputClass("text-for-an-integer", "text or a boolean where an integer id belongs",
               frames("seq-string-echoed-null", "seq-bool-echoed-null"),
               frames("seq-string-echoed-null", "seq-bool-echoed-null"), refs("api", "rule-device-id-text")),
    InputClass("fraction-for-an-integer", "1.5 where an integer belongs",
               frames("seq-float-echoed-null"), frames("seq-float-echoed-null"),
               refs("api", "rule-device-id-fraction")),
    InputClass("scalar-for-text", "a number or boolean where text belongs",
               SCALAR_TEXT, SCALAR_TEXT, refs("api", "device-name-number", "device-name-true")),
    InputClass("empty-text", "an empty or blank string, or a list of nothing but commas",
               frames("value-empty-string", "metric-name-empty", "ts-empty-string"),
               frames("value-empty-string", "metric-name-empty", "ts-empty-string"),
               refs("api", "device-name-empty", "device-name-blank", "query-metrics-only-commas")),

    # ---- numbers -----------------------------------------------------------------------
    InputClass("nan", "NaN (Python's parser reads it; JSON has none)",
               frames("value-NaN", "ts-NaN"), frames("value-NaN", "ts-NaN"),
               refs("api", "rule-threshold-NaN", "metric-min-NaN", "query-from-NaN", "query-resolution-NaN")),
    InputClass("infinity", "Infinity or -Infinity",
               frames("value-Infinity", "value-minus-Infinity"), frames("value-Infinity", "value-minus-Infinity"),
               refs("api", "rule-threshold-Infinity")),
    InputClass("double-overflow", "1e400: too large for a double",
               frames("value-1e400", "value-minus-1e400", "ts-1e400"),
               frames("value-1e400", "value-minus-1e400", "ts-1e400"),
               refs("api", "rule-threshold-1e400", "query-from-1e400")),
    InputClass("integer-beyond-64-bits", "an integer past 2**64",
               frames("value-huge-integer", "seq-beyond-64-bits"), frames("value-huge-integer", "seq-beyond-64-bits"),
               refs("api", "rule-device-id-beyond-64-bits")),
    InputClass("thousands-of-digits", "a number of thousands of digits (past int()'s limit)",
               frames("value-5000-digits"), frames("value-5000-digits"),
               refs("api", "rule-device-id-5000-digits", "query-from-40-digits", "query-resolution-40-digits",
                    "query-limit-40-digits")),
    InputClass("out-of-range", "a number outside its valid range",
               frames("humidity-outside", "co2-negative-outside", "temperature-outside"),
               frames("humidity-outside", "co2-negative-outside", "temperature-outside"),
               refs("api", "rule-device-id-beyond-int32", "rule-no-data-minutes-zero", "query-resolution-zero",
                    "metric-min-above-max")),

    # ---- duplicates ----------------------------------------------------------------------
    InputClass("duplicate-key-in-an-item", "a key given twice inside a reading or its values",
               frames("duplicate-metric-key", "duplicate-metric-key-same-value", "duplicate-seq-key",
                      "duplicate-ts-key"),
               frames("duplicate-metric-key", "duplicate-metric-key-same-value", "duplicate-seq-key",
                      "duplicate-ts-key"), FLAT),
    InputClass("duplicate-top-level-key", "a key given twice in the message or body itself",
               frames("duplicate-readings-key"), frames("duplicate-readings-key"), refs("api", "body-duplicate-key")),
    InputClass("duplicate-authorization", "two Authorization headers",
               refs("handshake", "two-authorization-headers-same", "two-authorization-headers-good-bad",
                    "two-authorization-headers-bad-good"),
               refs("ingest", "ingest-two-authorization-headers", "ingest-two-authorization-headers-joined")
               + refs("wire", "two-authorization-headers"),
               refs("api", "two-authorization-headers")),
    InputClass("duplicate-framing-headers", "Content-Type or Content-Length twice, or with chunked",
               refs("handshake", "two-content-length-headers"),
               refs("wire", "two-content-type-headers", "two-content-length-headers", "content-length-and-chunked"),
               refs("wire", "api-two-content-type-headers")),
    InputClass("duplicate-query-parameter", "a parameter given twice",
               refs("handshake", "two-token-parameters"), refs("ingest", "ingest-parameter-twice"),
               refs("api", "query-metrics-twice")),

    # ---- encodings -------------------------------------------------------------------------
    InputClass("bom", "a UTF-8 byte-order mark before the JSON (ingest: ignored, API: refused)",
               frames("bom-before-json-text", "bom-before-json-binary"),
               frames("bom-before-json-text", "bom-before-json-binary") + refs("ingest", "ingest-bom-before-body"),
               refs("api", "body-bom")),
    InputClass("bom-alone-or-twice", "a byte-order mark alone, or two",
               frames("bom-alone", "bom-twice"), frames("bom-alone", "bom-twice"), refs("api", "body-bom-alone")),
    InputClass("invalid-utf8-body", "bytes that are not UTF-8 in a binary frame or a body",
               frames("binary-invalid-utf8"), frames("binary-invalid-utf8"), refs("api", "body-invalid-utf8")),
    InputClass("invalid-utf8-text-frame", "a text frame that is not UTF-8",
               frames("text-frame-invalid-utf8-closes-1007"),
               NA("HTTP bodies are bytes, not text frames: see invalid-utf8-body"),
               NA("HTTP bodies are bytes, not text frames: see invalid-utf8-body")),
    InputClass("lone-surrogate", r"a \ud800 escape without its pair",
               frames("lone-surrogate-escape"), frames("lone-surrogate-escape"), refs("api", "body-lone-surrogate")),
    InputClass("invalid-utf8-percent-encoded", "%ff%fe in a query parameter or form field",
               refs("handshake", "token-parameter-invalid-utf8"), NO_PARAMS,
               refs("api", "query-metrics-invalid-utf8", "login-invalid-utf8")),
    InputClass("invalid-utf8-raw-request-line", "raw bytes 0xff in the request line",
               refs("handshake", "request-line-invalid-utf8"), refs("wire", "request-line-invalid-utf8"),
               refs("wire", "query-invalid-utf8")),
    InputClass("invalid-utf8-header", "raw bytes 0xff in a header value",
               refs("handshake", "token-invalid-utf8"), refs("wire", "authorization-invalid-utf8"),
               refs("api", "token-not-ascii")),
    InputClass("wrong-content-type", "a body sent as text/plain, a form or multipart",
               NA("frames have no content type: text and binary frames are both read as UTF-8 JSON "
                  "(see the control binary-frame)"),
               refs("ingest", "ingest-text-plain", "ingest-form-urlencoded", "ingest-multipart"),
               refs("api", "body-text-plain", "body-form", "login-json-body")),
    InputClass("no-content-type", "a body without Content-Type (ingest: read as JSON, API: refused)",
               NA("frames have no content type"), refs("ingest", "ingest-no-content-type-is-json"),
               refs("api", "body-no-content-type")),
    InputClass("compressed-body", "a gzip Content-Encoding",
               NA("WebSocket compression is permessage-deflate, negotiated by the protocol layer"),
               refs("ingest", "ingest-gzip-encoded"), refs("api", "body-gzip")),

    # ---- sizes -------------------------------------------------------------------------------
    InputClass("oversize", "a frame or body past its limit, with its length declared",
               frames("oversized-frame-closes-1009"),
               refs("ingest", "ingest-oversize-body") + refs("wire", "content-length-10-GB"),
               refs("api", "body-oversize") + refs("wire", "api-content-length-10-GB")),
    InputClass("oversize-undeclared", "a chunked body that goes on past the limit",
               NA("a WebSocket frame always declares its length (see oversize)"),
               refs("wire", "chunked-past-the-limit"), refs("wire", "api-chunked-past-the-limit")),
    InputClass("content-length-lies", "a Content-Length that does not match the body",
               NO_BODY_WS, refs("wire", "content-length-past-the-body", "content-length-short-of-the-body",
                                "content-length-negative", "content-length-not-a-number"),
               refs("wire", "api-content-length-past-the-body")),
    InputClass("overlong-text", "a name or token of thousands of characters",
               frames("metric-name-overlong"), frames("metric-name-overlong")
               + refs("ingest", "ingest-token-100k-characters"),
               refs("api", "device-name-overlong", "login-name-overlong")),
    InputClass("oversize-headers", "a header of 10 kB, or 200 headers",
               refs("handshake", "header-too-large", "too-many-headers"),
               refs("wire", "header-too-large", "too-many-headers"), refs("wire", "header-too-large")),
    InputClass("request-line-too-long", "a URL of 10 kB",
               refs("handshake", "request-line-too-long"), refs("wire", "request-line-too-long"),
               refs("wire", "request-line-too-long")),

    # ---- time stamps -------------------------------------------------------------------------
    InputClass("time-unset-clock", "a time before 2000 (year 0, 1999, epoch 0): a clock never set",
               frames("ts-before-2000", "ts-epoch-zero"), frames("ts-before-2000", "ts-epoch-zero"),
               refs("api", "query-from-year-0")),
    InputClass("time-negative", "a negative epoch time",
               frames("ts-negative"), frames("ts-negative"), refs("api", "query-from-negative")),
    InputClass("time-far-future", "a time far in the future (2100, past 9999)",
               frames("ts-far-future"), frames("ts-far-future"), refs("api", "query-to-past-9999")),
    InputClass("time-without-zone", "an ISO time without a zone (ingest: refused; API: UTC, as documented)",
               frames("ts-iso-without-zone"), frames("ts-iso-without-zone"), refs("api", "query-from-without-zone")),
    InputClass("time-in-words", 'a time that is not a time ("yesterday", "")',
               frames("ts-not-iso"), frames("ts-not-iso"), refs("api", "query-from-words")),
    InputClass("time-of-the-wrong-type", "a boolean or object as a time",
               frames("ts-bool", "ts-object"), frames("ts-bool", "ts-object"), QUERY_TEXT),
    InputClass("time-in-the-wrong-unit", "epoch milliseconds where seconds belong",
               frames("ts-epoch-milliseconds"), frames("ts-epoch-milliseconds"),
               NA("the API's epoch times are milliseconds, and any value in 1970..9999 is a time")),
    InputClass("time-range-reversed", "from after to",
               NA("a reading has one time"), NA("a reading has one time"), refs("api", "query-from-after-to")),
    InputClass("same-millisecond-other-values", "a second reading of a device at a stored millisecond",
               frames("same-ts-other-values-one-message", "same-ts-other-values-two-messages",
                      "same-ts-other-values-two-messages-batches", "same-ts-more-metrics-is-other-values",
                      "sub-ms-apart-other-values", "iso-and-epoch-same-ms-other-values"),
               frames("same-ts-other-values-one-message", "same-ts-other-values-two-messages",
                      "same-ts-other-values-two-messages-batches", "same-ts-more-metrics-is-other-values",
                      "sub-ms-apart-other-values", "iso-and-epoch-same-ms-other-values"), NO_READINGS_API),

    # ---- names and parameters: data, never code or paths ----------------------------------
    InputClass("unknown-name", "a metric or choice that does not exist",
               frames("unknown-metric", "unknown-metric-beside-known"),
               frames("unknown-metric", "unknown-metric-beside-known"),
               refs("api", "rule-metric-unknown", "query-resolution-words", "query-agg-unknown")),
    InputClass("sql-in-a-name", "SQL text in a name or token",
               frames("metric-name-sql") + refs("handshake", "token-with-sql"),
               frames("metric-name-sql") + refs("ingest", "ingest-token-with-sql"),
               refs("api", "device-name-sql", "rule-name-sql", "rule-metric-sql", "metric-name-sql",
                    "login-name-sql")),
    InputClass("sql-in-a-parameter", "SQL text in a query parameter or path",
               refs("handshake", "token-parameter-with-sql"), NO_PARAMS,
               refs("api", "query-metrics-sql", "query-state-sql", "path-task-id-sql")),
    InputClass("path-text", "../ and path text in names, parameters and URLs",
               frames("metric-name-path") + refs("handshake", "path-traversal"), frames("metric-name-path"),
               refs("api", "device-name-path", "metric-name-path", "query-metrics-path", "path-traversal")),
    InputClass("markup-in-a-name", "<script> in a name",
               frames("metric-name-markup"), frames("metric-name-markup"), refs("api", "device-name-markup")),
    InputClass("control-characters-in-text", "NUL, newline or another control character in a name",
               frames("metric-name-nul", "metric-name-control"), frames("metric-name-nul", "metric-name-control"),
               refs("api", "device-name-newline", "device-name-nul", "rule-name-control", "metric-unit-control",
                    "login-name-control", "query-metrics-nul")),
    InputClass("reserved-name", "a name the system uses itself",
               DEVICES_ADD_NO_METRICS, DEVICES_ADD_NO_METRICS,
               refs("api", "metric-name-reserved")),
    InputClass("bad-duration", "a duration in words, or of 400 digits",
               NA("frames hold no durations"), NA("frames hold no durations"),
               refs("api", "rule-duration-words", "rule-duration-huge")),
    InputClass("not-a-boolean", '"maybe" where true or false belongs',
               NA("frames hold no booleans"), NA("frames hold no booleans"),
               refs("api", "query-download-not-a-boolean", "query-delete-readings-not-a-boolean")),
    InputClass("not-an-integer-parameter", '"lots" where a number belongs, a negative id',
               WS_NO_IDS, NO_PARAMS, refs("api", "query-limit-words", "query-device-id-negative")),
    InputClass("id-out-of-range-in-path", "a huge, negative or non-numeric id in a URL",
               WS_NO_IDS, HTTP_ONE_URL,
               refs("api", "path-device-id-huge", "path-device-id-negative", "path-device-id-text")),

    # ---- authentication -----------------------------------------------------------------
    InputClass("missing-token", "no token at all",
               refs("handshake", "no-token"), refs("ingest", "ingest-no-token"), refs("api", "device-without-token")),
    InputClass("wrong-auth-scheme", "Authorization: Basic instead of Bearer",
               refs("handshake", "authorization-basic"), refs("ingest", "ingest-authorization-basic"),
               refs("api", "authorization-basic")),
    InputClass("unknown-token", "a token nobody holds, or one of the wrong kind",
               refs("handshake", "token-unknown"), refs("ingest", "ingest-user-token-not-device-token"),
               refs("api", "token-unknown")),
    InputClass("open-redirect", "a login whose next points to another site",
               WS_NO_USERS, HTTP_NO_USERS, refs("api", "login-next-to-another-site")),

    # ---- HTTP itself ---------------------------------------------------------------------
    InputClass("wrong-method", "a method the URL does not take",
               refs("handshake", "method-post", "no-upgrade-header"), refs("ingest", "ingest-method-get"),
               refs("api", "method-not-allowed")),
    InputClass("unknown-path", "a URL that names nothing",
               refs("handshake", "unknown-path"), HTTP_ONE_URL, refs("api", "path-unknown")),
    InputClass("not-http", "bytes that are not an HTTP request",
               refs("handshake", "not-http"), refs("wire", "not-http"), refs("wire", "not-http")),
    InputClass("malformed-http", "bare LF line ends, folded or badly named headers, HTTP/9.9",
               refs("handshake", "bare-lf-line-ends", "unknown-http-version"),
               refs("wire", "bare-lf-line-ends", "obsolete-line-folding", "space-before-colon",
                    "unknown-http-version"),
               refs("wire", "bare-lf-line-ends", "unknown-http-version")),
    InputClass("control-character-in-header", "a control character in a header value",
               refs("handshake", "control-character-in-header"), refs("wire", "control-character-in-header"),
               refs("wire", "control-character-in-header")),
    InputClass("legacy-csv-over-http", "the legacy CSV frame sent to HTTP ingest",
               NA("on the WebSocket it is a legacy frame: see the control legacy-frames"),
               refs("ingest", "ingest-legacy-csv-body"), NO_LEGACY_API),

    # ---- legacy CSV frames: no reply (legacy clients read none), nothing stored ---------------
    InputClass("legacy-underscore-digits", "1_000 in a legacy frame",
               frames("legacy-underscore-digits", "legacy-underscore-in-humidity"), NO_LEGACY_HTTP, NO_LEGACY_API),
    InputClass("legacy-non-ascii-digits", "full-width digits in a legacy frame",
               frames("legacy-fullwidth-digits", "legacy-fullwidth-temperature"), NO_LEGACY_HTTP, NO_LEGACY_API),
    InputClass("legacy-inf-nan", "inf or nan in a legacy frame",
               frames("legacy-inf", "legacy-nan"), NO_LEGACY_HTTP, NO_LEGACY_API),
    InputClass("legacy-out-of-range", "a value outside its range in a legacy frame",
               frames("legacy-out-of-range"), NO_LEGACY_HTTP, NO_LEGACY_API),
    InputClass("legacy-field-count", "two fields instead of three in a legacy frame",
               frames("legacy-two-fields"), NO_LEGACY_HTTP, NO_LEGACY_API),
    InputClass("forged-form", "a login form without its CSRF token, or as JSON",
               WS_NO_USERS, HTTP_NO_USERS, refs("api", "login-no-csrf-token")),

    # ---- controls: valid input at the edge of each rule ---------------------------------------
    InputClass("server-stamps", "readings without ts: distinct, rising server stamps",
               frames("no-ts-three-readings-get-three-stamps", "no-ts-single-readings-in-a-row"),
               frames("no-ts-three-readings-get-three-stamps", "no-ts-single-readings-in-a-row"),
               NO_READINGS_API, kind="control"),
    InputClass("replays", "a reading sent again with the same values: acked again, stored once",
               frames("same-ts-same-values-replay-one-message", "same-ts-same-values-replay-two-messages",
                      "sub-ms-apart-same-values"),
               frames("same-ts-same-values-replay-one-message", "same-ts-same-values-replay-two-messages",
                      "sub-ms-apart-same-values"), NO_READINGS_API, kind="control"),
    InputClass("limits-reached-exactly", "1000 readings, an empty list, a reading without seq",
               frames("max-readings-accepted", "empty-readings", "seq-missing-is-stored-not-acked"),
               frames("max-readings-accepted", "empty-readings", "seq-missing-is-stored-not-acked"),
               NO_READINGS_API, kind="control"),
    InputClass("legacy-frames", "the original client's CSV frames",
               frames("legacy-plain-is-stored", "legacy-many-in-a-row-all-stored"), NO_LEGACY_HTTP,
               NO_LEGACY_API, kind="control"),
    InputClass("binary-frame", "a v1 message in a binary frame; a charset on the JSON type; chunked",
               frames("binary-json"), frames("binary-json") + refs("ingest", "ingest-json-with-charset")
               + refs("wire", "chunked-body-is-fine"), refs("api", "body-json-with-charset"), kind="control"),
]

"""The HTTP rows of the bad-input catalogue (tests/badinput_catalogue.py), run by
tests/test_bad_input_http.py: HTTP ingest requests (INGEST), the rest of the API and the login form
(API), both through Flask's test client, and raw requests to gunicorn for what only a real server
sees (WIRE). The WebSocket frames of tests/badinput_cases.py also go through HTTP ingest, in
tests/test_api_ingest.py.

Expected values follow README "The web API" (errors are JSON {"error", "detail"}, the detail says
what to do), not whatever the app happens to do today.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Union

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
FRAME = '{"seq": 1, "ts": "2026-09-21T14:13:20.000Z", "values": {"co2": 401}}'
ACK_1 = '"ack":[1]'
NESTED = "[" * 100_000 + "]" * 100_000
READINGS = "/api/v1/devices/{device}/readings"
RULES = "/api/v1/alerts/rules"
CONTROL = "control characters"


@dataclass(frozen=True)
class Request:
    """One request through the test client and what must come back."""

    id: str
    method: str
    path: str  # {device}: a device of the module
    body: Union[str, bytes, dict, None] = None  # dict: JSON text; form rows: the form's fields
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()  # {admin}, {token}: the administrator's, the device's token
    auth: str | None = "admin"  # whose bearer token is sent: "admin", "device" (a fresh one) or None
    status: int = 400
    says: str = ""  # a substring of the JSON detail, of a 2xx body, or of the HTML page
    changes: tuple[tuple[str, int], ...] = ()  # (table, rows added); no other table may change
    check: Callable | None = None  # check(client, response): what else must hold
    csrf: bool = False  # a login form: the form's CSRF token is added to body


def device(name: str, status: int, says: str, **kwargs) -> Request:
    """POST /devices with {"name": name}."""
    return Request(f"device-name-{kwargs.pop('tag')}", "POST", "/api/v1/devices", {"name": name},
                   status=status, says=says, **kwargs)


def body(case_id: str, text: Union[str, bytes], status: int, says: str, path: str = "/api/v1/devices",
         **kwargs) -> Request:
    """POST raw `text` as the body."""
    return Request(case_id, "POST", path, text.encode() if isinstance(text, str) else text,
                   status=status, says=says, **kwargs)


def rule(case_id: str, fields: Union[dict, str], status: int, says: str, **kwargs) -> Request:
    """POST /alerts/rules: `fields` beside a name, or the raw JSON text of the body."""
    text = fields if isinstance(fields, str) else json.dumps({"name": "r", **fields})
    return Request(f"rule-{case_id}", "POST", RULES, text.encode(), status=status, says=says, **kwargs)


def query(case_id: str, params: str, status: int, says: str, path: str = READINGS, **kwargs) -> Request:
    """GET `path` with a query string, anonymously (reading is public)."""
    return Request(f"query-{case_id}", "GET", f"{path}?{params}", None, None, auth=None, status=status,
                   says=says, **kwargs)


def ingest(case_id: str, data: Union[str, bytes, None], status: int, says: str,
           content_type: str | None = JSON, path: str = "/api/v1/readings", **kwargs) -> Request:
    """POST /readings as a fresh device."""
    kwargs.setdefault("auth", "device")
    return Request(f"ingest-{case_id}", kwargs.pop("method", "POST"), path,
                   data.encode() if isinstance(data, str) else data, content_type, status=status, says=says,
                   **kwargs)


def login(case_id: str, form: dict, status: int, says: str, path: str = "/login", **kwargs) -> Request:
    """POST the login form (with its CSRF token unless csrf=False)."""
    kwargs.setdefault("csrf", True)
    return Request(f"login-{case_id}", "POST", path, form, FORM, auth=None, status=status, says=says, **kwargs)


def listed_verbatim(client, response) -> None:
    """The device's name comes back as sent, from the listing too."""
    name = response.get_json()["name"]
    assert name in [d["name"] for d in client.get("/api/v1/devices").get_json()], name


def csv_name_is_safe(client, response) -> None:
    """Its CSV download is named without path separators, whatever the device's name."""
    listed_verbatim(client, response)
    with client.get(f"/api/v1/devices/{response.get_json()['id']}/readings.csv?download=1") as csv:
        disposition = csv.headers["Content-Disposition"]  # closed after: the streamed body holds a context
        assert csv.status_code == 200 and "/" not in disposition and "\\" not in disposition, disposition


def range_in_utc(client, response) -> None:
    """A time without a zone is read as UTC, as README says."""
    assert response.get_json()["from"] == "2026-01-01T00:00:00.000Z", response.get_json()


def home_only(client, response) -> None:
    """After logging in, `next` pointing to another site leads home instead."""
    assert response.headers["Location"] in ("/", "http://localhost/"), response.headers["Location"]


INGEST: list[Request] = [
    ingest("empty-body", b"", 400, "expected a JSON object"),
    ingest("whitespace-body", " \r\n", 400, "expected a JSON object"),
    ingest("legacy-csv-body", "412,21.5,40.2", 400, "expected a JSON object"),
    ingest("text-plain", FRAME, 415, "Content-Type: application/json", content_type="text/plain"),
    ingest("form-urlencoded", "seq=1&co2=401", 415, "Content-Type: application/json", content_type=FORM),
    ingest("multipart", "--x\r\n\r\n" + FRAME + "\r\n--x--", 415, "application/json",
           content_type="multipart/form-data; boundary=x"),
    ingest("no-content-type-is-json", FRAME, 200, ACK_1, content_type=None, changes=(("reading", 1),)),
    ingest("json-with-charset", FRAME, 200, ACK_1, content_type="application/json; charset=utf-8",
           changes=(("reading", 1),)),
    ingest("gzip-encoded", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", 415, "Content-Encoding 'gzip'",
           headers=(("Content-Encoding", "gzip"),)),
    ingest("bom-before-body", b"\xef\xbb\xbf" + FRAME.encode(), 200, ACK_1, changes=(("reading", 1),)),
    ingest("oversize-body", '{"readings": []}' + " " * (1 << 20), 413, "max_body_bytes"),
    ingest("no-token", FRAME, 401, "missing device token", auth=None),
    ingest("authorization-basic", FRAME, 401, "Bearer", auth=None, headers=(("Authorization", "Basic YTpi"),)),
    ingest("token-with-sql", FRAME, 401, "unknown or revoked", auth=None,
           headers=(("Authorization", "Bearer ' OR '1'='1"),)),
    ingest("token-100k-characters", FRAME, 401, "unknown or revoked", auth=None,
           headers=(("Authorization", "Bearer " + "a" * 100_000),)),
    ingest("two-authorization-headers", FRAME, 400, "more than one Authorization header",
           headers=(("Authorization", "Bearer {token}"),)),
    ingest("two-authorization-headers-joined", FRAME, 400, "more than one Authorization header", auth=None,
           headers=(("Authorization", "Bearer {token},Bearer {token}"),)),
    ingest("user-token-not-device-token", FRAME, 401, "unknown or revoked", auth="admin"),
    ingest("method-get", None, 405, "takes OPTIONS, POST", content_type=None, method="GET"),
    ingest("parameter-twice", FRAME, 400, "given 2 times", path="/api/v1/readings?x=1&x=2"),
]

API: list[Request] = [
    # ---- names: stored as given when they are names at all, never run as SQL or paths --------
    device("x'); DROP TABLE device; --", 201, "DROP TABLE", tag="sql", changes=(("device", 1),),
           check=listed_verbatim),
    device("../../etc/passwd", 201, "passwd", tag="path", changes=(("device", 1),), check=csv_name_is_safe),
    device("<script>alert(1)</script>", 201, "<script>", tag="markup", changes=(("device", 1),),
           check=listed_verbatim),
    device("pi\nroom", 400, CONTROL, tag="newline"),
    device("pi\u0000", 400, CONTROL, tag="nul"),
    device("", 422, "Length", tag="empty"),
    device("   ", 400, "1 to 64", tag="blank"),
    device("a" * 65, 422, "Length", tag="overlong"),
    Request("device-name-number", "POST", "/api/v1/devices", {"name": 5}, status=422, says="Not a valid string"),
    Request("device-name-null", "POST", "/api/v1/devices", {"name": None}, status=422, says="may not be null"),
    Request("device-name-object", "POST", "/api/v1/devices", {"name": {"a": 1}}, status=422,
            says="Not a valid string"),
    Request("device-name-true", "POST", "/api/v1/devices", {"name": True}, status=422, says="Not a valid string"),
    Request("device-name-missing", "POST", "/api/v1/devices", {}, status=422, says="Missing data"),
    Request("device-unknown-field", "POST", "/api/v1/devices", {"name": "u", "colour": "red"}, status=422,
            says="Unknown field"),

    # ---- bodies that are not one clear JSON object ---------------------------------------
    body("body-lone-surrogate", '{"name": "\\ud800"}', 400, "lone surrogate"),
    body("body-duplicate-key", '{"name": "a", "name": "b"}', 400, "duplicate key 'name'"),
    body("body-malformed-json", '{"name": ', 400, "not valid JSON"),
    body("body-trailing-junk", '{"name": "x"} x', 400, "not valid JSON"),
    body("body-not-json", "hello", 400, "not valid JSON"),
    body("body-control-character", '{"name": "a\x01b"}', 400, "not valid JSON"),
    body("body-json-array", "[1]", 422, "Invalid input type"),
    body("body-json-null", "null", 422, "Invalid input type"),
    body("body-whitespace", "  \n", 400, "not valid JSON"),
    body("body-empty", b"", 422, "Missing data"),
    body("body-bom", b'\xef\xbb\xbf{"name": "bom"}', 400, "byte-order mark"),
    body("body-bom-alone", b"\xef\xbb\xbf", 400, "byte-order mark"),
    body("body-invalid-utf8", b'{"name": "a\xffb"}', 400, "not UTF-8: byte 0xff"),
    body("body-deep-nesting", '{"name": ' + NESTED + "}", 400, "nested too deeply"),
    body("body-json-with-charset", '{"name": "charset"}', 201, '"name":"charset"', changes=(("device", 1),),
         content_type="application/json; charset=utf-8"),
    body("body-text-plain", '{"name": "tp"}', 415, "Content-Type: application/json", content_type="text/plain"),
    body("body-form", "name=fm", 415, "Content-Type: application/json", content_type=FORM),
    body("body-no-content-type", '{"name": "nc"}', 415, "got none", content_type=None),
    body("body-gzip", b"\x1f\x8b\x08\x00", 415, "Content-Encoding 'gzip'", headers=(("Content-Encoding", "gzip"),)),
    body("body-oversize", '{"name": "' + "a" * (1 << 20) + '"}', 413, "max_body_bytes"),
    Request("two-authorization-headers", "GET", "/api/v1/users", auth=None, status=400,
            headers=(("Authorization", "Bearer {admin}"), ("Authorization", "Bearer {admin}")),
            says="more than one Authorization header"),
    Request("token-not-ascii", "GET", "/api/v1/users", auth=None, status=401, says="unknown or revoked",
            headers=(("Authorization", "Bearer \u00e9t\u00e9"),)),
    Request("token-unknown", "GET", "/api/v1/users", auth=None, status=401, says="unknown or revoked API token",
            headers=(("Authorization", "Bearer sd_not-a-token"),)),
    Request("device-without-token", "POST", "/api/v1/devices", {"name": "anon"}, auth=None, status=401,
            says="log in as an administrator"),
    Request("authorization-basic", "GET", "/api/v1/users", auth=None, status=401, says="Bearer <token>",
            headers=(("Authorization", "Basic YTpi"),)),

    # ---- numbers and types in alert rules ----------------------------------------------
    rule("threshold-NaN", '{"name": "r", "metric": "co2", "above": NaN}', 422, "Special numeric values"),
    rule("threshold-Infinity", '{"name": "r", "metric": "co2", "above": -Infinity}', 422, "Special numeric"),
    rule("threshold-1e400", '{"name": "r", "metric": "co2", "above": 1e400}', 422, "Special numeric values"),
    rule("threshold-text", {"metric": "co2", "above": "high"}, 422, "Not a valid number"),
    rule("threshold-bool", {"metric": "co2", "above": True}, 422, "Not a valid number"),
    rule("device-id-fraction", {"metric": "co2", "above": 1, "device_id": 1.5}, 422, "Not a valid integer"),
    rule("device-id-text", {"metric": "co2", "above": 1, "device_id": "1"}, 422, "Not a valid integer"),
    rule("device-id-beyond-int32", {"metric": "co2", "above": 1, "device_id": 2 ** 40}, 422, "less than"),
    rule("device-id-beyond-64-bits", {"metric": "co2", "above": 1, "device_id": 2 ** 70}, 400, "64 bits"),
    rule("device-id-5000-digits", '{"name": "r", "metric": "co2", "above": 1, "device_id": 1' + "0" * 5000 + "}",
         400, "64 bits"),
    rule("no-data-minutes-zero", {"no_data_minutes": 0}, 422, "greater than or equal to 1"),
    rule("metric-sql", {"metric": "co2' OR 1=1 --", "above": 1}, 400, "lowercase letters"),
    rule("metric-unknown", {"metric": "pressure", "above": 1}, 400, "unknown metric"),
    rule("name-control", {"name": "r\x00", "metric": "co2", "above": 1}, 422, CONTROL),
    rule("name-sql", {"name": "'; DELETE FROM alert_rule; --", "metric": "co2", "above": 1}, 201,
         "DELETE FROM", changes=(("alert_rule", 1),)),
    rule("duration-words", {"metric": "co2", "above": 1, "duration": "forever"}, 400, "must look like"),
    rule("duration-huge", {"metric": "co2", "above": 1, "duration": "9" * 400}, 400, "a year"),
    rule("name-missing", '{"metric": "co2", "above": 1}', 422, "Missing data"),
    rule("unknown-field", {"metric": "co2", "above": 1, "severity": "high"}, 422, "Unknown field"),

    # ---- the metric catalogue ---------------------------------------------------------
    Request("metric-name-sql", "POST", "/api/v1/metrics", {"name": "p; DROP TABLE reading", "unit": "x",
            "min": 0, "max": 1}, status=400, says="lowercase letters"),
    Request("metric-name-path", "POST", "/api/v1/metrics", {"name": "../x", "unit": "x", "min": 0, "max": 1},
            status=400, says="lowercase letters"),
    Request("metric-name-reserved", "POST", "/api/v1/metrics", {"name": "ts", "unit": "x", "min": 0, "max": 1},
            status=400, says="reserved"),
    Request("metric-min-above-max", "POST", "/api/v1/metrics", {"name": "pm1", "unit": "x", "min": 5, "max": 1},
            status=400, says="below max"),
    body("metric-min-NaN", '{"name": "pm2", "unit": "x", "min": NaN, "max": 1}', 422, "Special numeric",
         path="/api/v1/metrics"),
    Request("metric-unit-control", "POST", "/api/v1/metrics", {"name": "pm3", "unit": "u\n", "min": 0, "max": 1},
            status=422, says=CONTROL),

    # ---- query parameters ---------------------------------------------------------------
    query("metrics-sql", "metrics=co2;DROP TABLE reading", 400, "unknown metric"),
    query("metrics-path", "metrics=../../etc/passwd", 400, "unknown metric"),
    query("metrics-only-commas", "metrics=,,,", 200, '"series"'),
    query("metrics-nul", "metrics=co2%00", 400, "unknown metric"),
    query("metrics-invalid-utf8", "metrics=%ff%fe", 400, "unknown metric"),
    query("metrics-twice", "metrics=co2&metrics=humidity", 400, "given 2 times"),
    query("from-words", "from=yesterday", 400, "neither ISO 8601"),
    query("from-NaN", "from=NaN", 400, "neither ISO 8601"),
    query("from-1e400", "from=1e400", 400, "neither ISO 8601"),
    query("from-40-digits", "from=" + "9" * 40, 400, "neither ISO 8601"),
    query("from-year-0", "from=0000-01-01T00:00:00Z", 400, "neither ISO 8601"),
    query("from-negative", "from=-1", 400, "outside 1970..9999"),
    query("to-past-9999", "to=9999999999999999", 400, "outside 1970..9999"),
    query("from-after-to", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "must not be after"),
    query("from-without-zone", "from=2026-01-01T00:00:00&to=2026-01-02T00:00:00", 200, '"series"',
          check=range_in_utc),
    query("resolution-words", "resolution=fast", 400, "resolution must be"),
    query("resolution-zero", "resolution=0", 400, "resolution must be"),
    query("resolution-NaN", "resolution=nan", 400, "resolution must be"),
    query("resolution-40-digits", "resolution=" + "9" * 40, 400, "resolution must be"),
    query("agg-unknown", "agg=median", 400, "unknown aggregate"),
    query("unknown-parameter-ignored", "colour=red", 200, '"series"'),
    query("download-not-a-boolean", "download=maybe", 422, "Not a valid boolean", path=READINGS + ".csv"),
    query("limit-words", "limit=lots", 422, "Not a valid integer", path="/api/v1/alerts/events"),
    query("limit-over-1000", "limit=1001", 422, "less than or equal to 1000", path="/api/v1/alerts/events"),
    query("limit-40-digits", "limit=" + "9" * 40, 422, "less than or equal to 1000", path="/api/v1/alerts/events"),
    query("state-sql", "state=' OR 1=1 --", 422, "Must be one of", path="/api/v1/alerts/events"),
    query("device-id-negative", "device_id=-1", 422, "greater than or equal to 0", path="/api/v1/alerts/events"),
    Request("query-delete-readings-not-a-boolean", "DELETE", "/api/v1/devices/{device}?delete_readings=perhaps",
            content_type=None, status=422, says="Not a valid boolean"),

    # ---- paths -----------------------------------------------------------------------------
    Request("path-device-id-huge", "GET", "/api/v1/devices/99999999999999999999/readings", content_type=None,
            auth=None, status=404, says="nothing at this URL"),
    Request("path-device-id-negative", "GET", "/api/v1/devices/-1", content_type=None, auth=None, status=404,
            says="nothing at this URL"),
    Request("path-device-id-text", "GET", "/api/v1/devices/abc", content_type=None, auth=None, status=404,
            says="nothing at this URL"),
    Request("path-traversal", "GET", "/api/v1/devices/..%2f..%2fetc%2fpasswd", content_type=None, auth=None,
            status=404, says="nothing at this URL"),
    Request("path-task-id-sql", "GET", "/api/v1/tasks/' OR 1=1 --", content_type=None, auth=None, status=400,
            says="not a task id"),
    Request("path-unknown", "GET", "/api/v1/nope", content_type=None, auth=None, status=404,
            says="nothing at this URL"),
    Request("method-not-allowed", "PUT", "/api/v1/devices", {"name": "put"}, status=405, says="takes GET"),

    # ---- the login form (HTML: the page says why) -----------------------------------------
    login("name-sql", {"name": "admin' OR '1'='1", "password": "x"}, 401, "wrong user name or password"),
    login("name-control", {"name": "admin\x00", "password": "admin-password"}, 401, "wrong user name"),
    login("name-overlong", {"name": "a" * 65, "password": "x"}, 400, "longer than 64"),
    login("password-missing", {"name": "admin"}, 400, "This field is required"),
    login("no-csrf-token", {"name": "admin", "password": "admin-password"}, 400, "did not come from this site",
          csrf=False),
    Request("login-json-body", "POST", "/login", b'{"name": "admin", "password": "admin-password"}',
            auth=None, status=400, says="did not come from this site"),
    Request("login-invalid-utf8", "POST", "/login", b"name=%ff%fe&password=x", FORM, auth=None, csrf=True,
            status=401, says="wrong user name or password"),
    login("next-to-another-site", {"name": "admin", "password": "admin-password"}, 302, "",
          path="/login?next=//evil.example/", check=home_only),
]


@dataclass(frozen=True)
class Wire:
    """Bytes sent to gunicorn on a new connection, and the answer that must come back."""

    id: str
    data: bytes  # {token}: a fresh device's token
    status: int
    says: str  # a substring of the answer's body
    after: str = "closes"  # "keeps": the connection serves another request; "closes"; "any"
    half_close: bool = False  # the client stops sending after `data`
    stored: int = 0  # readings stored for the device


def http(head: str, payload: bytes = b"", path: str = "/api/v1/readings", method: str = "POST") -> bytes:
    """A request: the request line, Host, the header lines of `head` (\\r\\n-terminated), the body."""
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode("latin-1") + payload


BODY = FRAME.encode()
AUTH = "Authorization: Bearer {token}\r\n"
TYPE = "Content-Type: application/json\r\n"
LENGTH = f"Content-Length: {len(BODY)}\r\n"
CHUNKED = "Transfer-Encoding: chunked\r\n"
CLOSE = "Connection: close\r\n"
BIG = 8192  # past the wire server's [web] max_body_bytes (4096)
DEVICES = "/api/v1/devices"

WIRE: list[Wire] = [
    Wire("two-authorization-headers", http(AUTH + AUTH + TYPE + LENGTH, BODY), 400,
         "more than one Authorization header", after="keeps"),
    Wire("two-content-type-headers", http(AUTH + TYPE + "Content-Type: text/plain\r\n" + LENGTH, BODY), 400,
         "Invalid HTTP Header"),
    Wire("two-content-length-headers", http(AUTH + TYPE + LENGTH + LENGTH, BODY), 400, "Invalid HTTP Header"),
    Wire("content-length-and-chunked", http(AUTH + TYPE + LENGTH + CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (
        len(BODY), BODY)), 400, "Invalid HTTP Header"),
    Wire("content-length-negative", http(AUTH + TYPE + "Content-Length: -1\r\n", BODY), 400, "Invalid HTTP Header"),
    Wire("content-length-not-a-number", http(AUTH + TYPE + "Content-Length: 1e3\r\n", BODY), 400,
         "Invalid HTTP Header"),
    Wire("content-length-past-the-body", http(AUTH + TYPE + f"Content-Length: {len(BODY) + 50}\r\n", BODY), 400,
         "ended before its Content-Length", half_close=True, after="any"),
    Wire("content-length-short-of-the-body", http(AUTH + TYPE + "Content-Length: 10\r\n" + CLOSE, BODY), 400,
         "not valid JSON", after="any"),
    Wire("content-length-10-GB", http(AUTH + TYPE + "Content-Length: 10000000000\r\n" + CLOSE, BODY), 413,
         "max_body_bytes", after="any"),
    Wire("chunked-past-the-limit", http(AUTH + TYPE + CHUNKED + CLOSE, b"%x\r\n%s\r\n0\r\n\r\n" % (BIG, b" " * BIG)),
         413, "max_body_bytes", after="any"),
    # The same faults on API URLs (the rows above post to HTTP ingest).
    Wire("api-content-length-past-the-body", http(TYPE + "Content-Length: 100\r\n", b'{"name": "x"}',
         path=DEVICES), 400, "ended before its Content-Length", half_close=True, after="any"),
    Wire("api-content-length-10-GB", http(TYPE + "Content-Length: 10000000000\r\n" + CLOSE, b"{}", path=DEVICES),
         413, "max_body_bytes", after="any"),
    Wire("api-chunked-past-the-limit", http(TYPE + CHUNKED + CLOSE, b"%x\r\n%s\r\n0\r\n\r\n" % (BIG, b" " * BIG),
         path=DEVICES), 413, "max_body_bytes", after="any"),
    Wire("api-two-content-type-headers", http(TYPE + "Content-Type: text/plain\r\nContent-Length: 2\r\n", b"{}",
         path=DEVICES), 400, "Invalid HTTP Header"),
    Wire("chunked-body-is-fine", http(AUTH + TYPE + CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)), 200,
         ACK_1, after="keeps", stored=1),
    Wire("request-line-invalid-utf8", b"GET /api/v1/devices\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "Invalid HTTP request line"),
    Wire("query-invalid-utf8", b"GET /api/v1/devices?q=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "Invalid HTTP request line"),
    Wire("authorization-invalid-utf8", http("Authorization: Bearer \xff\xfe\r\n" + TYPE + LENGTH, BODY), 401,
         "unknown or revoked", after="keeps"),
    Wire("control-character-in-header", http(AUTH + TYPE + LENGTH + "X-Note: a\x01b\r\n", BODY), 400,
         "Invalid HTTP Header"),
    Wire("header-too-large", http("Authorization: Bearer " + "a" * 10_000 + "\r\n"), 431, "limit request headers"),
    Wire("too-many-headers", http("".join(f"X-{i}: 1\r\n" for i in range(200))), 431, "limit request headers"),
    Wire("request-line-too-long", http("", path="/api/v1/devices?" + "a" * 10_000, method="GET"), 414,
         "too large"),
    Wire("not-http", b"HELLO\r\n\r\n", 400, "Invalid HTTP request line"),
    Wire("bare-lf-line-ends", b"GET /api/v1/healthz HTTP/1.1\nHost: x\n\n", 400, "bare LF"),
    Wire("obsolete-line-folding", http(AUTH + "X-Note: a\r\n b\r\n" + TYPE + LENGTH, BODY), 400, "folding"),
    Wire("space-before-colon", http(AUTH + "Content-Type : application/json\r\n" + LENGTH, BODY), 400,
         "Invalid HTTP header name"),
    Wire("unknown-http-version", b"GET /api/v1/healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "Invalid HTTP Version"),
]

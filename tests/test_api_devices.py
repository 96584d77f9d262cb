"""/api/v1/devices, /devices/<id>, /devices/<id>/latest, /latest and /metrics on SQLite and MariaDB."""
from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
import sqlalchemy as sa

from lib import storage
from tests.test_auth import post_login
from tests.web_fixtures import make_app

BUILTIN = ("co2", "temperature", "humidity")
DEVICE_KEYS = {"id", "name", "online", "revoked", "latest", "last_seen", "last_seen_ms", "created", "created_ms"}
# Ids past SQLite's 64-bit INTEGER: Flask's <int:> converter and marshmallow accept them.
HUGE_ID = 10 ** 20


def assert_error(response, status: int, detail: str | None = None) -> dict:
    """An API error: `status`, JSON with exactly error and detail (containing `detail` when given)."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    if detail is not None:
        assert detail in str(body["detail"]), body
    return body


def iso_ms(text: str) -> int:
    """Epoch ms of an ISO 8601 time that must end in Z."""
    assert text.endswith("Z"), text
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def write(engine, device_id: int, ts_ms: int, co2=None, temperature=None, humidity=None) -> None:
    """Store one reading of the built-in metrics."""
    assert storage.write_readings(engine, BUILTIN, [(device_id, ts_ms, co2, temperature, humidity)]) == {}


def by_id(items: list[dict], key: str = "id") -> dict[int, dict]:
    return {item[key]: item for item in items}


# ---- GET /devices -------------------------------------------------------------------

def test_list_shows_every_field_and_the_newest_reading(web_client, engine, device):
    """Fields of a device with a fresh reading: online, every metric (null when missing), ISO = ms."""
    now = storage.now_ms()
    write(engine, device.id, now - 60_000, 500.0, 20.0, 40.0)
    write(engine, device.id, now - 1000, 612.5, None, 41.5)
    response = web_client.get("/api/v1/devices")
    assert response.status_code == 200
    [item] = response.get_json()
    assert set(item) == DEVICE_KEYS
    assert item["id"] == device.id and item["name"] == device.name
    assert item["online"] is True and item["revoked"] is False
    assert item["latest"] == {"co2": 612.5, "temperature": None, "humidity": 41.5}
    assert item["last_seen_ms"] == now - 1000 and iso_ms(item["last_seen"]) == item["last_seen_ms"]
    assert iso_ms(item["created"]) == item["created_ms"]


def test_a_device_without_readings_is_offline_with_null_values(web_client, device):
    """No reading yet: offline, last_seen null, every catalogue metric present and null."""
    [item] = web_client.get("/api/v1/devices").get_json()
    assert item["online"] is False
    assert item["last_seen"] is None and item["last_seen_ms"] is None
    assert item["latest"] == {m: None for m in BUILTIN}


def test_an_old_reading_means_offline(web_client, engine, device):
    """The newest reading older than [web] offline_seconds (300 s by default): offline."""
    write(engine, device.id, storage.now_ms() - 301_000, 500.0)
    [item] = web_client.get("/api/v1/devices").get_json()
    assert item["online"] is False and item["latest"]["co2"] == 500.0


def test_offline_seconds_comes_from_settings(web_settings, engine, device):
    """A reading 5 s old is online with the default threshold and offline with offline_seconds = 1."""
    write(engine, device.id, storage.now_ms() - 5000, 500.0)
    default = make_app(web_settings).test_client().get(f"/api/v1/devices/{device.id}").get_json()
    short = make_app(web_settings.with_overrides({"web": {"offline_seconds": "1"}})).test_client()
    assert default["online"] is True
    assert short.get(f"/api/v1/devices/{device.id}").get_json()["online"] is False


def test_devices_are_listed_by_name_with_revoked_ones_marked(web_client, engine):
    """All devices by name; a revoked one is listed, revoked and never online."""
    ids = {name: storage.add_device(engine, name)[0].id for name in ("b-pi", "a-pi", "c-pi")}
    write(engine, ids["c-pi"], storage.now_ms(), 500.0)
    storage.revoke_device(engine, "c-pi")
    items = web_client.get("/api/v1/devices").get_json()
    assert [i["name"] for i in items] == ["a-pi", "b-pi", "c-pi"]
    assert [i["revoked"] for i in items] == [False, False, True]
    assert items[2]["online"] is False and items[2]["latest"]["co2"] == 500.0


def count_statements(app, client, url: str) -> int:
    """SQL statements run by the app's engine while it answers GET `url` (which must be 200)."""
    from flask_front.extensions import db

    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    return len(seen)


def test_listing_200_devices_takes_as_many_queries_as_one(web_app, web_client, engine):
    """GET /devices runs one query per request, not one per device."""
    first = storage.add_device(engine, "dev-000")[0]
    write(engine, first.id, storage.now_ms(), 500.0)
    web_client.get("/api/v1/devices")  # loads the metric catalogue into the app's cache
    one = count_statements(web_app, web_client, "/api/v1/devices")
    now = storage.now_ms()
    for i in range(1, 200):
        info = storage.add_device(engine, f"dev-{i:03d}")[0]
        write(engine, info.id, now - i, 400.0 + i)
    many = count_statements(web_app, web_client, "/api/v1/devices")
    assert len(web_client.get("/api/v1/devices").get_json()) == 200
    assert 1 <= one <= 2 and many == one, (one, many)


# ---- GET /devices/<id>, /devices/<id>/latest, /latest --------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/devices/{}", "/api/v1/devices/{}/latest"])
@pytest.mark.parametrize("device_id", [987654, 0, HUGE_ID])
def test_an_unknown_device_is_404_json(web_client, device, path, device_id):
    """No such id: 404 JSON naming the id; one past the id column's range is a routing 404, never a 500."""
    detail = None if device_id == HUGE_ID else f"no device with id {device_id}"
    assert_error(web_client.get(path.format(device_id)), 404, detail)


@pytest.mark.parametrize("path", ["/api/v1/devices/abc", "/api/v1/devices/-1", "/api/v1/devices/1.5/latest"])
def test_an_id_that_is_not_a_number_is_404_json(web_client, path):
    """The <int:> converter refuses it: 404, still JSON under /api."""
    assert_error(web_client.get(path), 404)


def test_one_device_matches_its_list_entry(web_client, engine, device):
    """GET /devices/<id> gives the same object as the list."""
    write(engine, device.id, storage.now_ms(), 700.0, 21.0, 30.0)
    one = web_client.get(f"/api/v1/devices/{device.id}")
    assert one.status_code == 200
    assert one.get_json() == by_id(web_client.get("/api/v1/devices").get_json())[device.id]


def test_latest_of_one_device(web_client, engine, device):
    """The newest reading with every metric, its time in ISO (Z) and ms."""
    ts = storage.now_ms() - 2000
    write(engine, device.id, ts - 1000, 1.0, 2.0, 3.0)
    write(engine, device.id, ts, 800.0, None, None)
    response = web_client.get(f"/api/v1/devices/{device.id}/latest")
    assert response.status_code == 200
    assert response.get_json() == {"device_id": device.id, "device": device.name,
                                   "values": {"co2": 800.0, "temperature": None, "humidity": None},
                                   "time": response.get_json()["time"], "time_ms": ts}
    assert iso_ms(response.get_json()["time"]) == ts


def test_latest_of_a_device_without_readings_is_null(web_client, device):
    """A device that never reported: 200 with null time and values."""
    body = web_client.get(f"/api/v1/devices/{device.id}/latest").get_json()
    assert body["time"] is None and body["time_ms"] is None
    assert body["values"] == {m: None for m in BUILTIN}


def test_latest_of_all_leaves_out_revoked_devices(web_client, engine):
    """GET /latest: each device that is not revoked, with its newest reading."""
    keep = storage.add_device(engine, "keep")[0]
    gone = storage.add_device(engine, "gone")[0]
    now = storage.now_ms()
    write(engine, keep.id, now, 500.0)
    write(engine, gone.id, now, 600.0)
    storage.revoke_device(engine, "gone")
    response = web_client.get("/api/v1/latest")
    assert response.status_code == 200
    items = response.get_json()
    assert [i["device_id"] for i in items] == [keep.id]
    assert items[0]["values"]["co2"] == 500.0 and items[0]["time_ms"] == now


# ---- POST /devices --------------------------------------------------------------------------

def test_admin_registers_a_device_and_gets_a_working_token(web_client, engine, admin):
    """201 with the token once; it authenticates, and only its hash is stored."""
    response = web_client.post("/api/v1/devices", json={"name": "greenhouse"}, headers=admin.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == DEVICE_KEYS | {"token"}
    assert body["name"] == "greenhouse" and body["revoked"] is False and body["online"] is False
    assert storage.authenticate(engine, body["token"]) == body["id"]
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM device WHERE id = :i"), {"i": body["id"]}).scalar()
    assert stored != body["token"] and body["token"] not in stored
    assert stored == hashlib.sha256(body["token"].encode()).hexdigest()
    assert "token" not in web_client.get(f"/api/v1/devices/{body['id']}").get_json()


def test_a_new_device_shows_every_metric_as_null(web_client, admin):
    """The 201 body is a device like any other: `latest` holds every catalogue metric, null."""
    body = web_client.post("/api/v1/devices", json={"name": "fresh"}, headers=admin.headers).get_json()
    assert body["latest"] == {m: None for m in BUILTIN}


def test_a_taken_name_is_409(web_client, admin, device):
    """A name in use (after trimming) conflicts."""
    for name in (device.name, f"  {device.name} "):
        assert_error(web_client.post("/api/v1/devices", json={"name": name}, headers=admin.headers),
                     409, "already exists")


@pytest.mark.parametrize("kwargs,status,detail", [
    ({"json": {}}, 422, "name"),
    ({"json": {"name": ""}}, 422, "name"),
    ({"json": {"name": "   "}}, 400, "1 to 64"),
    ({"json": {"name": "x" * 65}}, 422, "name"),
    ({"json": {"name": 42}}, 422, "name"),
    ({"json": {"name": None}}, 422, "name"),
    ({"json": {"name": ["a"]}}, 422, "name"),
    ({"json": {"name": "ok", "colour": "red"}}, 422, "colour"),
    ({"json": ["name"]}, 422, None),
    ({"data": "null", "content_type": "application/json"}, 422, None),
    ({"data": "{name: x", "content_type": "application/json"}, 400, None),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, None),
    ({"data": "name=x", "content_type": "application/x-www-form-urlencoded"}, 415, "application/json"),
], ids=["missing", "empty", "blank", "65-chars", "number", "null", "list", "unknown-field", "array-body",
        "null-body", "not-json", "not-utf8", "form-body"])
def test_bad_bodies_are_4xx_json(web_client, engine, admin, kwargs, status, detail):
    """Each bad body: its 4xx with {error, detail}, never a 500, and no device made."""
    assert_error(web_client.post("/api/v1/devices", headers=admin.headers, **kwargs), status, detail)
    assert storage.list_devices(engine) == []


def test_a_64_character_name_is_accepted(web_client, admin):
    """The longest valid name."""
    response = web_client.post("/api/v1/devices", json={"name": "n" * 64}, headers=admin.headers)
    assert response.status_code == 201 and response.get_json()["name"] == "n" * 64


@pytest.mark.parametrize("who,status", [("anonymous", 401), ("user", 403), ("bad-token", 401)])
def test_only_admins_register_devices(web_client, engine, request, who, status):
    """Anonymous or a bad token: 401; a user who is not an administrator: 403."""
    headers = {"anonymous": {}, "bad-token": {"Authorization": "Bearer nope"}}.get(who)
    if headers is None:
        headers = request.getfixturevalue(who).headers
    assert_error(web_client.post("/api/v1/devices", json={"name": "x"}, headers=headers), status)
    assert storage.list_devices(engine) == []


# ---- DELETE /devices/<id> -------------------------------------------------------------------

def test_revoking_stops_the_token_and_keeps_readings(web_client, engine, admin, device):
    """DELETE: revoked, the token refused at once, the readings still there."""
    write(engine, device.id, storage.now_ms(), 500.0)
    response = web_client.delete(f"/api/v1/devices/{device.id}", headers=admin.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["id"] == device.id and body["revoked"] is True and body["online"] is False
    assert storage.authenticate(engine, device.token) is None
    assert storage.count_readings(engine, device.id) == 1
    after = web_client.get(f"/api/v1/devices/{device.id}").get_json()
    assert after["revoked"] is True and after["latest"]["co2"] == 500.0


def test_the_revoke_reply_shows_the_device_as_a_get_does(web_client, engine, admin, device):
    """The DELETE body is the device as stored: its kept readings' last_seen and latest included."""
    write(engine, device.id, storage.now_ms(), 500.0, 20.0, 30.0)
    body = web_client.delete(f"/api/v1/devices/{device.id}", headers=admin.headers).get_json()
    assert body == web_client.get(f"/api/v1/devices/{device.id}").get_json()


def test_revoking_twice_keeps_the_first_time(web_client, admin, device):
    """A second DELETE is harmless: still revoked (not a 500)."""
    first = web_client.delete(f"/api/v1/devices/{device.id}", headers=admin.headers)
    second = web_client.delete(f"/api/v1/devices/{device.id}", headers=admin.headers)
    assert second.status_code == 200 and second.get_json()["revoked"] is True
    assert first.get_json()["id"] == second.get_json()["id"]


@pytest.mark.parametrize("flag", ["true", "1", "yes"])
def test_delete_readings_removes_the_device(web_client, engine, admin, device, flag):
    """?delete_readings=true: readings gone, the device gone (404) and its name free."""
    write(engine, device.id, storage.now_ms(), 500.0)
    response = web_client.delete(f"/api/v1/devices/{device.id}?delete_readings={flag}", headers=admin.headers)
    assert response.status_code == 200 and response.get_json()["revoked"] is True
    assert storage.count_readings(engine, device.id) == 0
    assert_error(web_client.get(f"/api/v1/devices/{device.id}"), 404)
    again = web_client.post("/api/v1/devices", json={"name": device.name}, headers=admin.headers)
    assert again.status_code == 201


@pytest.mark.parametrize("flag", ["maybe", "2", ""])
def test_a_bad_delete_readings_flag_is_422(web_client, engine, admin, device, flag):
    """Not a boolean: 422 JSON and nothing revoked."""
    response = web_client.delete(f"/api/v1/devices/{device.id}?delete_readings={flag}", headers=admin.headers)
    assert_error(response, 422, "delete_readings")
    assert storage.authenticate(engine, device.token) == device.id


@pytest.mark.parametrize("device_id", [987654, HUGE_ID])
def test_deleting_an_unknown_device_is_404(web_client, admin, device_id):
    """No such device: 404 JSON."""
    assert_error(web_client.delete(f"/api/v1/devices/{device_id}", headers=admin.headers), 404)


@pytest.mark.parametrize("who,status", [("anonymous", 401), ("user", 403)])
def test_only_admins_revoke(web_client, engine, device, request, who, status):
    """Anonymous: 401, a user: 403; the token keeps working."""
    headers = {} if who == "anonymous" else request.getfixturevalue(who).headers
    assert_error(web_client.delete(f"/api/v1/devices/{device.id}", headers=headers), status)
    assert storage.authenticate(engine, device.token) == device.id


# ---- /metrics ----------------------------------------------------------------------------

def test_metrics_lists_the_catalogue(web_client):
    """The built-in metrics with unit, range and label."""
    response = web_client.get("/api/v1/metrics")
    assert response.status_code == 200
    metrics = by_id(response.get_json(), "name")
    assert list(metrics) == list(BUILTIN)
    assert metrics["co2"] == {"name": "co2", "unit": "ppm", "min": 0, "max": 40000, "label": "Carbon dioxide"}
    assert metrics["temperature"]["unit"] == "°C" and metrics["temperature"]["min"] == -40
    assert metrics["humidity"]["max"] == 100


def test_an_added_metric_is_listed_and_ingested(web_client, engine, admin, device):
    """POST pm2_5: 201, in GET /metrics, accepted by HTTP ingest and shown in the device's latest."""
    new = {"name": "pm2_5", "unit": "µg/m³", "min": 0, "max": 1000, "label": "PM2.5"}
    response = web_client.post("/api/v1/metrics", json=new, headers=admin.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json() == new
    assert by_id(web_client.get("/api/v1/metrics").get_json(), "name")["pm2_5"] == new
    ingest = web_client.post("/api/v1/readings", json={"seq": 7, "values": {"pm2_5": 12.5, "co2": 600}},
                             headers={"Authorization": f"Bearer {device.token}"})
    assert ingest.status_code == 200 and ingest.get_json()["ack"] == [7], ingest.get_data(as_text=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pm2_5 FROM reading WHERE device_id = :d"),
                            {"d": device.id}).scalar() == 12.5
    latest = web_client.get(f"/api/v1/devices/{device.id}").get_json()["latest"]
    assert latest == {"co2": 600.0, "temperature": None, "humidity": None, "pm2_5": 12.5}


def test_a_metric_without_label_gets_a_title(web_client, admin):
    """label defaults to a title made from the name."""
    body = {"name": "noise_db", "unit": "dB", "min": 0, "max": 200}
    response = web_client.post("/api/v1/metrics", json=body, headers=admin.headers)
    assert response.status_code == 201 and response.get_json()["label"] == "Noise db"


@pytest.mark.parametrize("change,status,detail", [
    ({"name": "PM25"}, 400, "lowercase"),
    ({"name": "1st"}, 400, "lowercase"),
    ({"name": "pm-25"}, 400, "lowercase"),
    ({"name": "ts"}, 400, "reserved"),
    ({"name": ""}, 422, "name"),
    ({"name": "a" * 33}, 422, "name"),
    ({"min": 10, "max": 10}, 400, "below max"),
    ({"min": 20, "max": 10}, 400, "below max"),
    ({"min": "low"}, 422, "min"),
    ({"unit": "u" * 17}, 422, "unit"),
    ({"name": "co2"}, 409, "already exists"),
    ({"extra": 1}, 422, "extra"),
], ids=["upper", "digit-first", "dash", "reserved", "empty", "33-chars", "min-eq-max", "min-gt-max",
        "min-text", "long-unit", "duplicate", "unknown-field"])
def test_bad_metrics_are_refused(web_client, admin, change, status, detail):
    """Each bad metric: its 4xx JSON, and the catalogue unchanged."""
    body = {"name": "pm10", "unit": "ug", "min": 0, "max": 500, **change}
    assert_error(web_client.post("/api/v1/metrics", json=body, headers=admin.headers), status, detail)
    assert [m["name"] for m in web_client.get("/api/v1/metrics").get_json()] == list(BUILTIN)


@pytest.mark.parametrize("missing", ["name", "unit", "min", "max"])
def test_a_metric_needs_each_field(web_client, admin, missing):
    """A missing required field: 422 naming it."""
    body = {"name": "pm10", "unit": "ug", "min": 0, "max": 500}
    del body[missing]
    assert_error(web_client.post("/api/v1/metrics", json=body, headers=admin.headers), 422, missing)


@pytest.mark.parametrize("text", ['{"name": "pm10", "unit": "u", "min": NaN, "max": 1}',
                                  '{"name": "pm10", "unit": "u", "min": -Infinity, "max": 1}'])
def test_non_finite_ranges_are_422(web_client, admin, text):
    """NaN and infinities (which Python's JSON parser accepts) are refused by the schema."""
    response = web_client.post("/api/v1/metrics", data=text, content_type="application/json",
                               headers=admin.headers)
    assert_error(response, 422, "min")


@pytest.mark.parametrize("who,status", [("anonymous", 401), ("user", 403)])
def test_only_admins_add_metrics(web_client, request, who, status):
    """Anonymous: 401, a user: 403."""
    headers = {} if who == "anonymous" else request.getfixturevalue(who).headers
    body = {"name": "pm10", "unit": "ug", "min": 0, "max": 500}
    assert_error(web_client.post("/api/v1/metrics", json=body, headers=headers), status)


# ---- who may read ----------------------------------------------------------------------

READ_URLS = ["/api/v1/devices", "/api/v1/devices/{id}", "/api/v1/devices/{id}/latest", "/api/v1/latest",
             "/api/v1/metrics"]


@pytest.mark.parametrize("url", READ_URLS)
def test_reading_is_public_by_default(web_client, device, url):
    """Anonymous reads are allowed unless [web] public is off."""
    assert web_client.get(url.format(id=device.id)).status_code == 200


@pytest.mark.parametrize("url", READ_URLS)
def test_public_off_needs_a_token_or_a_login(web_settings, device, user, url):
    """[web] public = off: anonymous 401 JSON; a user's token or session reads."""
    client = make_app(web_settings.with_overrides({"web": {"public": "off"}})).test_client()
    url = url.format(id=device.id)
    assert_error(client.get(url), 401, "public is off")
    assert client.get(url, headers=user.headers).status_code == 200
    assert post_login(client, user.name, user.password).status_code == 302
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("header", ["Bearer nope", "Basic YWRtaW46eA==", "Bearer "])
def test_a_bad_authorization_header_is_401_even_for_public_reads(web_client, header):
    """A wrong token is an error, not a quiet fall back to anonymous."""
    assert_error(web_client.get("/api/v1/devices", headers={"Authorization": header}), 401)


@pytest.mark.parametrize("method,url,allowed", [
    ("TRACE", "/api/v1/devices", {"GET", "HEAD", "OPTIONS", "POST"}),
    ("PUT", "/api/v1/devices/1", {"GET", "HEAD", "OPTIONS", "DELETE"}),
    ("POST", "/api/v1/healthz", {"GET", "HEAD", "OPTIONS"}),
])
def test_a_405_names_the_allowed_methods(web_client, method, url, allowed):
    """RFC 9110 requires Allow on a 405 (found by schemathesis: the JSON error handler dropped it)."""
    response = web_client.open(url, method=method)
    assert_error(response, 405)
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize("method,url,status", [
    ("put", "/api/v1/devices", 405),
    ("patch", "/api/v1/devices/1", 405),
    ("delete", "/api/v1/metrics", 405),
    ("get", "/api/v1/no-such-thing", 404),
])
def test_routing_errors_under_api_are_json_too(web_client, admin, method, url, status):
    """Unknown paths and methods under /api: the same {error, detail} JSON."""
    assert_error(getattr(web_client, method)(url, headers=admin.headers), status)

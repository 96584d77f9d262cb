"""HTTP ingest (POST /api/v1/readings): the same acks and rejections as the WebSocket server."""
from __future__ import annotations

import json
import time
import uuid

import pytest
import sqlalchemy as sa
from websockets.sync.client import connect

from flask_front.access import DeviceTokens
from flask_front.api.ingest import ingest_engine
from lib import storage
from tests.badinput_cases import CASES, TS0, Case, iso
from tests.conftest import ServerThread, module_settings, stored
from tests.test_bad_input import check_stored
from tests.web_fixtures import make_app

# The table's rows that HTTP can carry: legacy CSV frames get no WebSocket reply (and HTTP
# has no legacy clients), and frames that close a WebSocket have no HTTP counterpart.
PARITY = [c for c in CASES if None not in c.replies and c.closes is None]


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def both(request, tmp_path_factory):
    """A real ingest server and the web app on one fresh database of each backend."""
    cfg = module_settings(request, tmp_path_factory.mktemp("http-ingest"), "httpingest")
    server = ServerThread(cfg)
    engine = storage.make_engine(cfg.database_url)
    yield server, make_app(cfg).test_client(), engine
    server.stop()
    engine.dispose()


def new_device(engine) -> tuple[int, str]:
    """A fresh device, so each case sees only its own rows."""
    info, token = storage.add_device(engine, f"parity-{uuid.uuid4().hex[:10]}")
    return info.id, token


def ws_replies(server: ServerThread, token: str, frames: list) -> list[dict]:
    """The WebSocket server's reply to each frame, sent on one connection."""
    with connect(server.url, additional_headers={"Authorization": f"Bearer {token}"},
                 open_timeout=10, max_size=None) as ws:
        replies = []
        for frame in frames:
            ws.send(frame)
            replies.append(json.loads(ws.recv(timeout=5)))
        return replies


def http_replies(client, token: str, frames: list) -> list[dict]:
    """The HTTP ingest's reply to each frame, one request each, in the WebSocket's shape."""
    replies = []
    for frame in frames:
        body = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
        response = client.post("/api/v1/readings", data=body, content_type="application/json",
                               headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 400), response.data
        data = response.get_json()
        # A frame-level error: the WebSocket says {"error": reason}, the API {"error", "detail"}.
        replies.append({"error": data["detail"]} if response.status_code == 400 else data)
    return replies


@pytest.mark.parametrize("case", PARITY, ids=[c.id for c in PARITY])
def test_http_and_websocket_reply_alike(both, case: Case):
    """Each frame of the row gets the same reply over both, and both store what the row says."""
    server, client, engine = both
    ws_device, ws_token = new_device(engine)
    http_device, http_token = new_device(engine)
    assert http_replies(client, http_token, case.frames) == ws_replies(server, ws_token, case.frames)
    check_stored(case.stored, stored(engine, http_device))
    check_stored(case.stored, stored(engine, ws_device))


def test_the_parity_table_covers_most_rows():
    """Guard: the filter above must not silently drop the table."""
    assert len(PARITY) >= 25


@pytest.mark.parametrize("headers,status,detail", [
    ({}, 401, "missing device token"),
    ({"Authorization": "Bearer sd_not-a-token"}, 401, "unknown or revoked"),
    ({"Authorization": "Basic abc"}, 401, "Bearer"),
    ({"Authorization": "Bearer "}, 401, "Bearer"),
])
def test_a_device_token_is_required(web_client, headers, status, detail):
    """No token, a wrong one or another scheme: 401 JSON saying so."""
    response = web_client.post("/api/v1/readings", json={"values": {"co2": 500}}, headers=headers)
    assert response.status_code == status
    assert set(response.json) == {"error", "detail"} and detail in response.json["detail"]


@pytest.mark.parametrize("frame", [
    {"readings": ["not a reading", 5, None, [], {"seq": 1, "values": {"co2": 500}}]},
    {"readings": [{"seq": 2, "values": {"co2": 500}}], "note": "unknown keys are ignored"},
    {"seq": 3, "values": {"co2": 500}},
], ids=["items-of-any-type", "unknown-key", "one-reading"])
def test_a_frame_the_server_answers_200_is_valid_by_the_document(web_client, device, frame):
    """Found by schemathesis: readings that are not objects are each rejected with a reason (200),
    so the document must not say that readings hold only objects."""
    from openapi_core import Config, OpenAPI
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    headers = {"Authorization": f"Bearer {device.token}"}
    assert web_client.post("/api/v1/readings", json=frame, headers=headers).status_code == 200
    # Only this operation is in question here (tests/test_openapi.py checks the whole document).
    spec = OpenAPI.from_dict(web_client.get("/api/v1/openapi.json").json, config=Config(spec_validator_cls=None))
    environ = EnvironBuilder(method="POST", path="/api/v1/readings", json=frame, headers=headers).get_environ()
    spec.validate_request(WerkzeugOpenAPIRequest(Request(environ)))


def test_a_user_api_token_is_not_a_device_token(web_client, admin):
    """An administrator's API token cannot post readings."""
    response = web_client.post("/api/v1/readings", json={"values": {"co2": 500}}, headers=admin.headers)
    assert response.status_code == 401


def test_a_revoked_device_is_refused(web_client, engine, device):
    """Revocation stops HTTP ingest at once when the worker has not cached the token yet."""
    storage.revoke_device(engine, device.name)
    response = web_client.post("/api/v1/readings", json={"values": {"co2": 500}},
                               headers={"Authorization": f"Bearer {device.token}"})
    assert response.status_code == 401


def test_an_oversize_body_is_refused_and_nothing_stored(web_settings, engine, device):
    """A body over [ingest] max_frame_bytes gets 413 JSON."""
    cfg = web_settings.with_overrides({"ingest": {"max_frame_bytes": "2048"}})
    client = make_app(cfg).test_client()
    frame = json.dumps({"readings": [{"seq": i, "ts": iso(TS0 + i), "values": {"co2": 500}}
                                     for i in range(100)]})
    response = client.post("/api/v1/readings", data=frame, headers={"Authorization": f"Bearer {device.token}"})
    assert response.status_code == 413 and "max_frame_bytes" in response.json["detail"]
    assert storage.count_readings(engine, device.id) == 0


def test_a_failed_write_gives_503_and_no_ack(web_client, engine, device):
    """When the commit fails the reply acks nothing and says to send again; nothing is stored."""
    # Every ingest commit also marks rollup_pending: without that table the transaction fails.
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE rollup_pending RENAME TO rollup_pending_away")
    try:
        response = web_client.post("/api/v1/readings", json={"seq": 1, "ts": iso(TS0), "values": {"co2": 500}},
                                   headers={"Authorization": f"Bearer {device.token}"})
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE rollup_pending_away RENAME TO rollup_pending")
    assert response.status_code == 503
    assert response.json["ack"] == [] and "database unavailable" in response.json["error"]
    assert storage.count_readings(engine, device.id) == 0


def post(client, token: str, seq: int):
    """POST one reading stamped TS0 + seq ms."""
    return client.post("/api/v1/readings", json={"seq": seq, "ts": iso(TS0 + seq), "values": {"co2": 500}},
                       headers={"Authorization": f"Bearer {token}"})


def test_a_revoked_device_is_refused_once_its_cached_token_expires(web_settings, engine, device):
    """Tokens are cached for [ingest] revoke_check_seconds: after that a revoked device gets 401."""
    ttl = 0.5
    client = make_app(web_settings.with_overrides({"ingest": {"revoke_check_seconds": str(ttl)}})).test_client()
    assert post(client, device.token, 1).status_code == 200  # now cached
    cached_at = time.monotonic()
    storage.revoke_device(engine, device.name)
    time.sleep(max(0.0, cached_at + ttl + 0.05 - time.monotonic()))
    response = post(client, device.token, 2)
    assert response.status_code == 401 and "revoked" in response.json["detail"]
    assert storage.count_readings(engine, device.id) == 1


@pytest.mark.parametrize("ttl,found,lookups", [
    (60.0, 7, 1),     # known: looked up once, then served from the cache
    (60.0, None, 3),  # unknown: never cached, so a device registered meanwhile is not refused
    (0.0, 7, 3),      # expired at once: looked up every time
])
def test_device_tokens_cache_known_tokens_for_their_ttl(ttl, found, lookups):
    """DeviceTokens asks the database only when a known token's entry is missing or expired."""
    asked = []
    tokens = DeviceTokens(ttl)
    for _ in range(3):
        assert tokens.device_id("sd_token", lambda digest: asked.append(digest) or found) == found
    assert len(asked) == lookups and asked[0] == storage.hash_token("sd_token")


def test_a_connection_dropped_by_the_database_is_replaced_once(web_settings, engine, device):
    """No pre-ping on ingest: a pooled connection MariaDB has closed costs a retry, not a 503."""
    if engine.dialect.name != "mysql":
        pytest.skip("SQLite has no server to drop connections")
    app = make_app(web_settings)
    client = app.test_client()
    assert post(client, device.token, 1).status_code == 200
    with app.app_context(), ingest_engine().connect() as conn:  # the one pooled connection
        connection_id = conn.scalar(sa.text("SELECT CONNECTION_ID()"))
        conn.commit()
    with engine.begin() as conn:
        conn.execute(sa.text("KILL :id"), {"id": connection_id})
    response = post(client, device.token, 2)
    assert response.status_code == 200 and response.json["ack"] == [2]
    assert storage.count_readings(engine, device.id) == 2

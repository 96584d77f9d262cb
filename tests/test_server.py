"""The ingest server over real WebSocket connections, on SQLite and MariaDB."""
from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from lib import storage
from lib.catalogue import Metric
from lib.validation import ms_to_iso
from tests.conftest import ServerThread, stored

TS0 = 1_790_000_000_000  # 2026-09-21, in epoch ms


def reading(seq: int, ts_ms: int = TS0, **values) -> dict:
    """A v1 reading object; default values are a plausible SCD-30 sample."""
    values = values or {"co2": 600.5 + seq, "temperature": 21.25, "humidity": 40.0}
    return {"seq": seq, "ts": ms_to_iso(ts_ms), "values": values}


def open_ws(srv, token: str, **kwargs):
    """Connect with a bearer token."""
    return connect(srv.url, additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=10, **kwargs)


def exchange(ws, message) -> dict:
    """Send a JSON message and return the decoded reply."""
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=10))


def test_healthz(ingest):
    with urllib.request.urlopen(f"http://127.0.0.1:{ingest.port}/healthz", timeout=5) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("path,headers,status", [
    ("/ingest", {}, 401),
    ("/ingest?token=nope", {}, 401),
    ("/ingest", {"Authorization": "Bearer nope"}, 401),
    ("/ingest", {"Authorization": "Basic abc"}, 401),
    ("/elsewhere", {}, 404),
])
def test_handshake_refused(ingest, path, headers, status):
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{ingest.port}{path}", additional_headers=headers, open_timeout=10)
    assert info.value.response.status_code == status


@pytest.mark.parametrize("path", ["/ingest", "/"])
def test_token_in_query_string(ingest, device, engine, path):
    with connect(f"ws://127.0.0.1:{ingest.port}{path}?token={device.token}", open_timeout=10) as ws:
        assert exchange(ws, reading(1)) == {"ack": [1], "rejected": []}
    assert stored(engine, device.id) == [(TS0, 601.5, 21.25, 40.0)]


def test_batch_acks_valid_and_rejects_invalid(ingest, device, engine):
    batch = {"readings": [reading(41, TS0), reading(42, TS0 + 1000, humidity=140.0),
                          reading(43, TS0 + 2000, co2=float(412)), reading(44, TS0 + 3000, pressure=1.0),
                          {"seq": 45, "ts": "yesterday", "values": {"co2": 1.0}}]}
    with open_ws(ingest, device.token) as ws:
        reply = exchange(ws, batch)
        assert reply["ack"] == [41, 43]
        assert reply["rejected"] == [
            {"seq": 42, "error": "humidity 140.0 is outside 0..100"},
            {"seq": 44, "error": "unknown metric 'pressure'"},
            {"seq": 45, "error": "ts 'yesterday' is not an ISO 8601 time"}]
        # The connection stays open for the next message.
        assert exchange(ws, reading(46, TS0 + 4000))["ack"] == [46]
    assert [row[0] for row in stored(engine, device.id)] == [TS0, TS0 + 2000, TS0 + 4000]


def test_duplicates_are_acked_and_stored_once(ingest, device, engine):
    batch = {"readings": [reading(i, TS0 + i) for i in range(50)]}
    with open_ws(ingest, device.token) as ws:
        assert exchange(ws, batch)["ack"] == list(range(50))
        assert exchange(ws, batch)["ack"] == list(range(50))
    with open_ws(ingest, device.token) as ws:  # a replay after reconnecting
        assert exchange(ws, batch)["ack"] == list(range(50))
    assert len(stored(engine, device.id)) == 50


def test_single_reading_object_and_epoch_seconds(ingest, device, engine):
    with open_ws(ingest, device.token) as ws:
        assert exchange(ws, {"seq": 7, "ts": TS0 / 1000, "values": {"co2": 500}})["ack"] == [7]
        assert exchange(ws, {"seq": 8, "values": {"temperature": -3.5}})["ack"] == [8]
    rows = stored(engine, device.id)
    assert rows[0] == (TS0, 500.0, None, None)
    assert abs(rows[1][0] - storage.now_ms()) < 60_000 and rows[1][2] == -3.5


@pytest.mark.parametrize("frame,error", [
    ("not json at all", "expected a JSON object"),
    ("{broken", "not valid JSON"),
    ('{"readings": {"seq": 1}}', "readings must be a list"),
    (json.dumps({"readings": [reading(i) for i in range(1001)]}), "too many readings"),
])
def test_bad_frames_get_an_error_and_keep_the_connection(ingest, device, frame, error):
    with open_ws(ingest, device.token) as ws:
        ws.send(frame)
        assert error in json.loads(ws.recv(timeout=10))["error"]
        assert exchange(ws, reading(1))["ack"] == [1]


def test_oversized_frame_closes_with_1009(ingest, device):
    with open_ws(ingest, device.token, max_size=None) as ws:
        ws.send("{" + " " * (1 << 20) + "}")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd.code == 1009


def test_legacy_frames_are_stored_without_reply(ingest, device, engine):
    before = storage.now_ms()
    with open_ws(ingest, device.token) as ws:
        ws.send("612.30,21.40,40.10")
        ws.send("612.30,21.40,140.10")  # out of range: logged, no reply
        # The first reply belongs to this message, so the legacy frames got none.
        assert exchange(ws, reading(9))["ack"] == [9]
    rows = stored(engine, device.id)
    legacy = [r for r in rows if r[0] >= before]
    assert [r[1:] for r in legacy] == [(612.3, 21.4, 40.1)]


def test_metric_added_while_running_is_accepted(ingest, device, engine):
    storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))
    with open_ws(ingest, device.token) as ws:
        assert exchange(ws, reading(1, pressure=1013.25))["ack"] == [1]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT pressure FROM reading").scalar() == 1013.25


def test_two_instances_share_one_database(settings, ingest, device, engine):
    other = ServerThread(settings)
    try:
        for i, srv in enumerate((ingest, other)):
            with open_ws(srv, device.token) as ws:
                assert exchange(ws, reading(i, TS0 + i))["ack"] == [i]
    finally:
        other.stop()
    assert len(stored(engine, device.id)) == 2


def test_dead_link_is_dropped_by_keepalive(settings, device):
    fast_pings = settings.with_overrides({"ingest": {"ping_interval": "0.2", "ping_timeout": "0.3"}})
    srv = ServerThread(fast_pings)
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.sendall((f"GET /ingest?token={device.token} HTTP/1.1\r\nHost: x\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        deadline = time.monotonic() + 10  # never answer the pings
        while srv.server._server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not srv.server._server.connections
        sock.close()
    finally:
        srv.stop()

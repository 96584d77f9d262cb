"""Live readings: /live tokens, a real ingest server's /live WebSocket, the embedded and RabbitMQ buses."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lib import live
from Pi_Sensor import live as live_side
from tests.conftest import ServerThread, celery_settings
from tests.web_fixtures import make_app

NOW = 1_790_000_000.0


# ---- pure parts -------------------------------------------------------------------

@pytest.mark.parametrize("token_of,now,error", [
    (lambda: live.sign_token("s", NOW), NOW + 59, None),
    (lambda: live.sign_token("s", NOW), NOW - 3, None),  # another host's clock, a little ahead
    (lambda: live.sign_token("s", NOW), NOW + 61, live.EXPIRED),
    (lambda: live.sign_token("s", NOW + 60), NOW, live.INVALID),  # far in the future
    (lambda: live.sign_token("other", NOW), NOW, live.INVALID),
    (lambda: live.sign_token("s", NOW)[:-2], NOW, live.INVALID),
    (lambda: "not.a.token", NOW, live.INVALID),
    (lambda: "", NOW, live.MISSING),
])
def test_token(token_of, now, error):
    if error is None:
        live.verify_token("s", token_of(), 60, now=now)
    else:
        with pytest.raises(live.TokenError, match=error):
            live.verify_token("s", token_of(), 60, now=now)


@pytest.mark.parametrize("overrides,host,secure,url", [
    ({}, "localhost:4350", False, "ws://localhost:8080/live"),
    ({}, "example.org", True, "wss://example.org:8080/live"),
    ({}, "[::1]:4350", False, "ws://[::1]:8080/live"),
    ({"ports": {"ingest": 9000}}, "10.0.0.5:4350", False, "ws://10.0.0.5:9000/live"),
    ({"live": {"browser_url": "wss://example.org/live"}}, "localhost:4350", False,
     "wss://example.org/live"),
])
def test_browser_url(settings, overrides, host, secure, url):
    assert live.browser_url(settings.with_overrides(overrides), host, secure) == url


def test_message_round_trip():
    readings = [live.reading(3, "pi", 5, {"co2": 1.5, "humidity": None})]
    assert live.decode(live.encode(readings)) == [{"device_id": 3, "device": "pi", "ts": 5,
                                                   "values": {"co2": 1.5}}]


@pytest.mark.parametrize("public", [True, False])
def test_token_endpoint(web_settings, user, public):
    cfg = web_settings.with_overrides({"web": {"public": public}, "ports": {"ingest": 8123}})
    client = make_app(cfg).test_client()
    resp = client.get("/api/v1/live/token", headers={"Host": "sensors.example:4350"})
    if not public:
        assert resp.status_code == 401
        resp = client.get("/api/v1/live/token", headers={"Host": "sensors.example:4350", **user.headers})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["url"] == "ws://sensors.example:8123/live" and body["expires_in"] == 60
    live.verify_token(live.shared_secret(cfg), body["token"], 60)
    assert (cfg.var_dir / live.SECRET_FILE).stat().st_mode & 0o777 == 0o600


# ---- helpers ----------------------------------------------------------------------

@pytest.fixture
def live_settings(settings, tmp_path):
    """Settings with the secret and the datagram socket under tmp_path, no broker."""
    return settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}, "rabbitmq": {"host": ""}})


@pytest.fixture
def servers():
    """Factory of ingest servers on port 0, stopped afterwards."""
    started: list[ServerThread] = []

    def start(cfg) -> ServerThread:
        srv = ServerThread(cfg)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@contextlib.contextmanager
def viewer(srv, cfg, **kwargs):
    """A /live WebSocket with a fresh token, once the server said it is ready."""
    token = live.sign_token(live.shared_secret(cfg))
    with connect(f"ws://127.0.0.1:{srv.port}/live?token={token}", open_timeout=10, **kwargs) as ws:
        wait_ready(ws)
        yield ws


def wait_ready(ws) -> None:
    """Read up to the server's READY message; nothing else but heartbeats may come first."""
    while (message := ws.recv(timeout=15)) != live.READY.decode():
        assert not live.decode(message), "readings pushed before READY"


def device_ws(srv, device):
    return connect(srv.url, additional_headers={"Authorization": f"Bearer {device.token}"}, open_timeout=10)


def send(ws, readings: list[dict]) -> dict:
    ws.send(json.dumps({"readings": readings}))
    return json.loads(ws.recv(timeout=10))


def received(ws, count: int, timeout: float = 10) -> list[dict]:
    """The next `count` readings pushed to a viewer."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        got.extend(live.decode(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
    return got


# ---- the /live WebSocket ----------------------------------------------------------

@pytest.mark.parametrize("query,reason", [
    ("", live.MISSING),
    ("?token=nope", live.INVALID),
    ("?token=a&token=b", "more than one token parameter"),
    ("expired", live.EXPIRED),
    ("foreign", live.INVALID),
])
def test_unauthorised_live_is_closed_with_the_reason(servers, live_settings, query, reason):
    srv = servers(live_settings)
    if query == "expired":
        query = "?token=" + live.sign_token(live.shared_secret(live_settings), time.time() - 61)
    elif query == "foreign":
        query = "?token=" + live.sign_token("another installation's secret")
    with connect(f"ws://127.0.0.1:{srv.port}/live{query}", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd.code == 1008
    assert info.value.rcvd.reason == reason
    assert not srv.server.live.viewers


def test_device_reading_reaches_live(servers, live_settings, device):
    srv = servers(live_settings)
    with viewer(srv, live_settings) as browser, device_ws(srv, device) as pi:
        reply = send(pi, [{"seq": 1, "values": {"co2": 612.5, "temperature": 21.0}},
                          {"seq": 2, "values": {"humidity": 140.0}}])  # out of range: rejected
        assert reply["ack"] == [1] and [r["seq"] for r in reply["rejected"]] == [2]
        [got] = received(browser, 1)
        assert got["device_id"] == device.id and got["device"] == device.name
        assert got["values"] == {"co2": 612.5, "temperature": 21.0}
        assert abs(got["ts"] - time.time() * 1000) < 10_000
        with pytest.raises(TimeoutError):  # the rejected reading is not shown
            browser.recv(timeout=0.3)


def rabbit(cfg, tmp_path):
    """`cfg` on the local RabbitMQ with an exchange of its own."""
    return celery_settings(cfg, "rabbitmq", tmp_path)


def test_two_ingest_servers_on_rabbitmq(servers, live_settings, device, tmp_path):
    cfg = rabbit(live_settings, tmp_path)
    a, b = servers(cfg), servers(cfg)
    with viewer(b, cfg) as on_b, viewer(a, cfg) as on_a, device_ws(a, device) as pi:
        assert send(pi, [{"seq": 1, "values": {"co2": 700.0}}])["ack"] == [1]
        for browser in (on_b, on_a):
            [got] = received(browser, 1)
            assert (got["device_id"], got["values"]) == (device.id, {"co2": 700.0})


def test_nobody_watching_binds_no_queue_and_publishing_pauses(servers, live_settings, device, tmp_path):
    """RabbitMQ returns what no queue takes: the server then stops encoding and publishing."""
    cfg = rabbit(live_settings, tmp_path)
    srv = servers(cfg)
    hub = srv.server.live
    with device_ws(srv, device) as pi:
        assert send(pi, [{"seq": 1, "values": {"co2": 700.0}}])["ack"] == [1]
        deadline = time.monotonic() + 5
        while hub.watched:  # the message comes back; the publisher hears it with the next one
            assert time.monotonic() < deadline, "publishing never paused"
            assert send(pi, [{"seq": 2, "values": {"co2": 701.0}}])["ack"] == [2]
            time.sleep(0.05)
        assert not hub.consuming and not hub.viewers
        with viewer(srv, cfg) as browser:  # a browser binds the queue; publishing resumes
            assert hub.consuming and hub.watched
            assert send(pi, [{"seq": 3, "values": {"co2": 702.0}}])["ack"] == [3]
            assert [r["values"] for r in received(browser, 1)] == [{"co2": 702.0}]


def test_queue_is_unbound_after_the_last_browser_left(servers, live_settings, tmp_path, monkeypatch):
    monkeypatch.setattr(live_side, "LINGER_S", 0.2)
    cfg = rabbit(live_settings, tmp_path)
    srv = servers(cfg)
    with viewer(srv, cfg):
        assert srv.server.live.consuming
    deadline = time.monotonic() + 5
    while srv.server.live.consuming:
        assert time.monotonic() < deadline, "the queue stayed bound"
        time.sleep(0.05)


def test_broker_down_own_readings_still_reach_own_browsers(servers, live_settings, device, tmp_path,
                                                          monkeypatch):
    """With RabbitMQ unreachable, a server's browsers still see the devices of that server."""
    monkeypatch.setattr(live_side, "READY_WAIT_S", 0.5)
    cfg = rabbit(live_settings, tmp_path).with_overrides({"rabbitmq": {"port": str(closed_port())}})
    srv = servers(cfg)
    with viewer(srv, cfg) as browser, device_ws(srv, device) as pi:
        assert not srv.server.live.consuming
        assert send(pi, [{"seq": 1, "values": {"co2": 703.0}}])["ack"] == [1]
        assert [r["values"] for r in received(browser, 1)] == [{"co2": 703.0}]


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("bus", ["embedded", "rabbitmq"])
def test_http_ingest_reaches_live(servers, web_settings, device, tmp_path, bus):
    cfg = rabbit(web_settings, tmp_path) if bus == "rabbitmq" else web_settings.with_overrides(
        {"rabbitmq": {"host": ""}})
    srv = servers(cfg)
    client = make_app(cfg).test_client()
    with viewer(srv, cfg) as browser:
        resp = client.post("/api/v1/readings", json={"readings": [{"seq": 7, "values": {"co2": 455.0}}]},
                           headers={"Authorization": f"Bearer {device.token}"})
        assert resp.status_code == 200 and resp.get_json()["ack"] == [7]
        [got] = received(browser, 1)
        assert (got["device_id"], got["device"], got["values"]) == (device.id, device.name, {"co2": 455.0})


def stalled_viewer(srv, cfg) -> socket.socket:
    """A /live client that completes the handshake and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", srv.port))
    token = live.sign_token(live.shared_secret(cfg))
    sock.sendall(f"GET /live?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"
                 f"\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


def test_slow_viewer_does_not_hold_up_others_or_acks(servers, live_settings, device):
    # 30,000 readings at full speed from one device: over [ingest] device_max_rate, not the point here
    cfg = live_settings.with_overrides({"live": {"max_unsent_bytes": 4096}, "ingest": {"device_max_rate": 0}})
    srv = servers(cfg)
    frames, size = 150, 200  # about 3 MB to each browser: more than the kernel buffers hold
    with viewer(srv, cfg) as fast, device_ws(srv, device) as pi, stalled_viewer(srv, cfg):
        deadline = time.monotonic() + 5
        while len(srv.server.live.viewers) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        counted: list[dict] = []
        reader = threading.Thread(target=lambda: counted.extend(received(fast, frames * size, timeout=60)))
        reader.start()
        worst = 0.0
        for frame in range(frames):
            started = time.monotonic()
            reply = send(pi, [{"seq": frame * size + i, "values": {"co2": 400.0 + i, "temperature": 20.5,
                                                                   "humidity": 50.25}} for i in range(size)])
            worst = max(worst, time.monotonic() - started)
            assert len(reply["ack"]) == size
        reader.join(60)
        assert len(counted) == frames * size  # the fast browser got every reading
        assert srv.server.live.slow_dropped == 1  # the stalled one was disconnected
        assert len(srv.server.live.viewers) == 1
        # A server held up by the stalled browser would not ack until it is dropped (seconds);
        # the margin is for a loaded CI machine.
        assert worst < 2.5, f"an ack took {worst:.3f} s"


def test_live_in_a_server_process(server_process, live_settings, device):
    """`python -m Pi_Sensor.server` (uvloop where installed): device and HTTP ingest reach /live."""
    srv = server_process(cfg=live_settings)
    token = live.sign_token(live.shared_secret(live_settings))
    client = make_app(live_settings).test_client()
    with connect(f"ws://127.0.0.1:{srv.port}/live?token={token}", open_timeout=10) as browser:
        wait_ready(browser)
        with connect(srv.url, additional_headers={"Authorization": f"Bearer {device.token}"},
                     open_timeout=10) as pi:
            assert send(pi, [{"seq": 1, "values": {"co2": 501.0}}])["ack"] == [1]
        assert [r["values"] for r in received(browser, 1)] == [{"co2": 501.0}]
        resp = client.post("/api/v1/readings", json={"readings": [{"seq": 2, "values": {"co2": 502.0}}]},
                           headers={"Authorization": f"Bearer {device.token}"})
        assert resp.get_json()["ack"] == [2]
        assert [r["values"] for r in received(browser, 1)] == [{"co2": 502.0}]

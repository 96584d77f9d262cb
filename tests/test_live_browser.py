"""static/js/live.js in headless Chromium: live status, reconnect with resync, the polling fallback."""
from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.sync.client import connect

from tests.conftest import ServerThread, Device
from tests.web_fixtures import make_app

# A second SensorsLive on the overview page (which loads live.js), recording what it reports.
RECORD = """(opts) => {
  window.rec = {status: [], readings: [], resync: []};
  window.link = window.SensorsLive.start({
    onReadings: (list) => window.rec.readings.push(...list),
    onStatus: (s) => window.rec.status.push(s),
    onResync: (since) => window.rec.resync.push(since),
  }, opts);
}"""
FAST = {"firstDelayMs": 100, "maxDelayMs": 400, "pollMs": 200, "failuresBeforePolling": 3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(srv: ServerThread, device: Device, co2: float) -> None:
    with connect(srv.url, additional_headers={"Authorization": f"Bearer {device.token}"},
                 open_timeout=10) as ws:
        ws.send(json.dumps({"readings": [{"seq": 1, "values": {"co2": co2}}]}))
        assert json.loads(ws.recv(timeout=10))["ack"] == [1]


def last_status(page) -> str:
    return page.evaluate("window.rec.status[window.rec.status.length - 1]")


def wait_status(page, status: str, timeout: float = 10_000) -> None:
    page.wait_for_function(f"() => window.rec.status[window.rec.status.length - 1] === {status!r}",
                           timeout=timeout)


def wait_value(page, co2: float) -> dict:
    page.wait_for_function(f"() => window.rec.readings.some((r) => r.values.co2 === {co2})")
    return page.evaluate(f"window.rec.readings.find((r) => r.values.co2 === {co2})")


@pytest.fixture
def ingest_on(web_settings):
    """Factory: an ingest server on a given port (0: free), stopped afterwards."""
    started: list[ServerThread] = []

    def start(port: int = 0) -> ServerThread:
        started.append(ServerThread(web_settings, port=port))
        return started[-1]

    yield start
    for srv in started:
        if not srv.loop.is_closed():  # not stopped by the test
            srv.stop()


def test_live_then_reconnect_with_resync(web_settings, device, ingest_on, serve, new_page):
    srv = ingest_on()
    web = serve(make_app(web_settings.with_overrides({"ports": {"ingest": srv.port}})))
    page = new_page(web.url)
    page.goto("/")
    started_ms = time.time() * 1000
    page.evaluate(RECORD, FAST)
    wait_status(page, "live")
    # "live" comes with the server's READY, and with it a resync of what came since the start
    [first] = page.evaluate("window.rec.resync")
    assert started_ms - 10_000 < first < started_ms + 1_000
    send(srv, device, 612.0)
    got = wait_value(page, 612.0)
    assert (got["device_id"], got["device"]) == (device.id, device.name)
    assert abs(got["ts"] - time.time() * 1000) < 10_000

    srv.stop()  # the live link drops: the page says so, then comes back on its own
    dropped_ms = time.time() * 1000
    wait_status(page, "reconnecting")
    srv = ingest_on(srv.port)
    wait_status(page, "live")
    [_, since] = page.evaluate("window.rec.resync")
    assert dropped_ms - 10_000 < since < dropped_ms
    send(srv, device, 613.0)
    wait_value(page, 613.0)
    page.evaluate("window.link.stop()")
    # The server's failed connection attempts while down are console errors of Chromium itself.
    new_page.guard.errors[:] = [e for e in new_page.guard.errors if "WebSocket connection" not in e]


def test_falls_back_to_polling_when_websockets_fail(web_settings, device, serve, new_page):
    app = make_app(web_settings.with_overrides({"ports": {"ingest": free_port()}}))  # nobody listens
    page = new_page(serve(app).url)
    page.goto("/")
    page.evaluate(RECORD, FAST)
    wait_status(page, "polling")
    assert page.evaluate("window.rec.status.slice(0, 1)") == ["reconnecting"]  # never claimed "live"
    resp = app.test_client().post("/api/v1/readings", json={"readings": [{"seq": 1, "values": {"co2": 777.0}}]},
                                  headers={"Authorization": f"Bearer {device.token}"})
    assert resp.status_code == 200
    got = wait_value(page, 777.0)
    assert (got["device_id"], got["device"]) == (device.id, device.name)
    assert last_status(page) == "polling"
    page.evaluate("window.link.stop()")
    new_page.guard.errors[:] = [e for e in new_page.guard.errors if "WebSocket connection" not in e]

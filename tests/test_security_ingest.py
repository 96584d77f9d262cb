"""Ingest's per-device rate limit ([ingest] device_max_rate, device_burst) on the WebSocket and HTTP.

Readings over the limit are neither stored nor acked nor rejected: the reply lists them under
"retry" with the reason and "retry_after", and the Pi client keeps them spooled and sends them
again. HTTP ingest answers 429 with Retry-After and stores nothing of such a request.
"""
from __future__ import annotations

import json
import logging
import time
import uuid

import pytest

from flask_front.api.ingest import device_rate
from lib import storage
from lib.settings import SettingsError
from Pi_Sensor.client import Client, _finished
from Pi_Sensor.sensors import SimulatedSensor
from tests.conftest import ServerThread, reset_database, sqlite_settings, stored
from tests.test_client import client_settings, run_until, spool_len, spooled
from tests.test_server import TS0, exchange, open_ws, reading
from tests.web_fixtures import make_app

RATE, BURST = 10, 5
REASON = "rate limit: more than 10 readings/s from this device"
GOOD = {"co2": 500.0, "temperature": 20.0, "humidity": 40.0}


class Clock:
    """A clock the test moves by hand, so the buckets' state does not depend on the machine's load."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """Settings with a low limit (10 readings/s, bursts of 5, frames of at most 5) on SQLite."""
    folder = tmp_path_factory.mktemp("ratelimit")
    cfg = sqlite_settings(folder / "sensors.db")
    reset_database(cfg)
    return cfg.with_overrides({"ingest": {"device_max_rate": str(RATE), "device_burst": str(BURST),
                                          "max_readings": "5"},
                               "other": {"var_dir": str(folder / "var")}})


@pytest.fixture(scope="module")
def server(limited):
    """An ingest server with the low limit."""
    srv = ServerThread(limited)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def engine(limited):
    eng = storage.make_engine(limited.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock(server) -> Clock:
    """The server's buckets on a hand-moved clock."""
    fake = Clock()
    server.server.rate.clock = fake
    return fake


def new_device(engine) -> tuple[int, str]:
    """A fresh device: a full bucket of its own."""
    info, token = storage.add_device(engine, f"rate-{uuid.uuid4().hex[:10]}")
    return info.id, token


def frame(first: int, count: int, **values) -> dict:
    """`count` readings with seqs from `first`, 1 ms apart."""
    return {"readings": [reading(seq, TS0 + seq, **values) for seq in range(first, first + count)]}


# ---- WebSocket ------------------------------------------------------------------------

def test_readings_over_the_limit_are_held_back_for_a_retry(server, engine, clock):
    """The burst is acked; the rest is listed under retry (not rejected), stored once resent."""
    device_id, token = new_device(engine)
    with open_ws(server, token) as ws:
        assert exchange(ws, frame(1, 5)) == {"ack": [1, 2, 3, 4, 5], "rejected": []}
        held = exchange(ws, frame(6, 3))
        assert held == {"ack": [], "rejected": [], "retry_after": 0.3,
                        "retry": [{"seq": s, "error": REASON} for s in (6, 7, 8)]}
        assert len(stored(engine, device_id)) == 5
        clock.now += 0.3  # as long as the reply said
        assert exchange(ws, frame(6, 3)) == {"ack": [6, 7, 8], "rejected": []}
    assert [row[0] for row in stored(engine, device_id)] == [TS0 + s for s in range(1, 9)]


def test_a_frame_is_split_between_ack_retry_and_rejected(server, engine, clock):
    """Invalid readings are rejected as always (and cost no tokens); valid ones get what the bucket holds."""
    device_id, token = new_device(engine)
    with open_ws(server, token) as ws:
        exchange(ws, frame(1, 5))
        clock.now += 0.2  # two tokens
        message = frame(6, 3)
        message["readings"].append(reading(9, TS0 + 9, humidity=150.0))
        reply = exchange(ws, message)
    assert reply["ack"] == [6, 7] and reply["retry"] == [{"seq": 8, "error": REASON}]
    assert reply["rejected"] == [{"seq": 9, "error": "humidity 150.0 is outside 0..100"}]
    assert reply["retry_after"] == pytest.approx(0.1)
    assert len(stored(engine, device_id)) == 7


def test_the_limit_is_per_device_over_all_its_connections(server, engine, clock):
    """A second connection does not double a device's rate; other devices keep theirs."""
    _, token = new_device(engine)
    _, other = new_device(engine)
    with open_ws(server, token) as first, open_ws(server, token) as second, open_ws(server, other) as third:
        assert exchange(first, frame(1, 3))["ack"] == [1, 2, 3]
        reply = exchange(second, frame(4, 3))
        assert reply["ack"] == [4, 5] and [r["seq"] for r in reply["retry"]] == [6]
        assert exchange(third, frame(1, 5))["ack"] == [1, 2, 3, 4, 5]


def test_a_legacy_frame_over_the_limit_is_logged_not_stored(server, engine, clock, caplog):
    """Legacy clients read no replies: a held-back CSV reading is logged (bounded) and not stored."""
    device_id, token = new_device(engine)
    with open_ws(server, token) as ws:
        exchange(ws, frame(1, 5))
        with caplog.at_level(logging.WARNING, logger="Pi_Sensor.server"):
            ws.send("612.30,21.40,40.10")
            assert exchange(ws, frame(6, 1))["retry"] == [{"seq": 6, "error": REASON}]
    assert len(stored(engine, device_id)) == 5
    assert f"device {device_id}: 1 readings held back: {REASON}" in caplog.text


def test_the_client_keeps_held_back_readings_and_sends_them_again(server, engine, tmp_path, caplog):
    """The Pi client on the real clock: 15 spooled readings at 10/s arrive once each, none dropped."""
    server.server.rate.clock = time.monotonic
    device_id, token = new_device(engine)
    base = storage.now_ms() - 60_000
    spooled(tmp_path, *[(base + i, GOOD | {"co2": 400.0 + i}) for i in range(15)])
    client = Client(client_settings(tmp_path, server.url, token, batch=5, interval=3600),
                    SimulatedSensor(seed=1))
    assert run_until(client, lambda: storage.count_readings(engine, device_id) >= 16
                     and spool_len(tmp_path / "spool.db") == 0, timeout=20)
    rows = stored(engine, device_id)
    assert [r[0] for r in rows[:15]] == [base + i for i in range(15)]
    assert "server held back" in caplog.text and "server rejected" not in caplog.text


def test_readings_held_back_are_not_finished_for_the_client():
    """_finished (what leaves the spool) takes acks and rejections, never the retry list."""
    reply = {"ack": [1], "rejected": [{"seq": 2, "error": "x"}], "retry": [{"seq": 3, "error": REASON}],
             "retry_after": 0.1}
    assert _finished(reply) == [1, 2]


# ---- HTTP -----------------------------------------------------------------------------

@pytest.fixture
def web(limited, clock):
    """A test client of the web app with the low limit, its buckets on the hand-moved clock."""
    app = make_app(limited)
    with app.app_context():
        buckets = device_rate()
        assert (buckets.rate, buckets.burst) == (RATE, BURST)  # from the settings
        buckets.clock = clock
    return app.test_client()


def post(client, token: str, message: dict):
    return client.post("/api/v1/readings", data=json.dumps(message), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})


def test_http_over_the_limit_is_429_with_retry_after_and_stores_nothing(web, engine, clock):
    """A request is admitted whole or not at all, so a 429 means: nothing of it was stored."""
    device_id, token = new_device(engine)
    assert post(web, token, frame(1, 4)).status_code == 200
    message = frame(5, 3)
    message["readings"].append(reading(8, TS0 + 8, co2=-1.0))
    refused = post(web, token, message)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.get_json() == {
        "ack": [], "rejected": [{"seq": 8, "error": "co2 -1.0 is outside 0..40000"}],
        "retry": [{"seq": s, "error": REASON} for s in (5, 6, 7)], "retry_after": 0.2, "error": REASON}
    assert len(stored(engine, device_id)) == 4
    clock.now += 0.2
    assert post(web, token, frame(5, 3)).get_json() == {"ack": [5, 6, 7], "rejected": []}
    assert len(stored(engine, device_id)) == 7


def test_http_limit_off_with_rate_zero(limited, engine):
    """device_max_rate = 0 turns the limit off."""
    client = make_app(limited.with_overrides({"ingest": {"device_max_rate": "0"}})).test_client()
    device_id, token = new_device(engine)
    for first in (1, 6, 11):  # three times the burst at once
        assert post(client, token, frame(first, 5)).status_code == 200
    assert len(stored(engine, device_id)) == 15


# ---- settings -------------------------------------------------------------------------

@pytest.mark.parametrize("values, error", [
    ({"device_burst": "999"}, "[ingest] device_burst must be at least max_readings (1000), got 999"),
    ({"device_max_rate": "-1"}, "[ingest] device_max_rate must be at least 0"),
    ({"device_burst": "0"}, "[ingest] device_burst must be at least 1"),
], ids=["burst-below-frame", "negative-rate", "zero-burst"])
def test_bad_limits_are_refused(limited, values, error):
    """A burst smaller than a frame could never admit that frame over HTTP: refused at start."""
    with pytest.raises(SettingsError) as info:
        limited.with_overrides({"ingest": {"max_readings": "1000", **values}})
    assert str(info.value).startswith(error)


def test_defaults_and_off_switch(limited):
    """On by default (1000 readings/s, bursts of 10,000); 0 allows any burst."""
    from lib.settings import IngestSettings

    assert (IngestSettings().device_max_rate, IngestSettings().device_burst) == (1000, 10000)
    assert limited.with_overrides({"ingest": {"device_max_rate": "0", "device_burst": "1"}}).ingest.device_burst == 1

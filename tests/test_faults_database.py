"""MariaDB going away under load: the ingest withholds acks, the API answers 503 JSON, nothing is lost."""
from __future__ import annotations

import orjson
import pytest

from bench.fault_scenarios import database_restart
from lib import storage
from lib.ingest import DB_DOWN
from tests.conftest import MYSQL, mysql_settings, reset_database
from tests.tcpproxy import TcpProxy
from tests.web_fixtures import make_app


@pytest.mark.parametrize("token_cached", [False, True], ids=["token-not-cached", "token-cached"])
def test_http_ingest_answers_its_own_reply_when_the_database_is_gone(mysql_database, tmp_path, token_cached):
    """The 503 of POST /readings is the ingest reply (ack [], error), whichever query met the outage first."""
    reset_database(mysql_settings(mysql_database))  # the direct URL: emptied in place, not migrated again
    proxy = TcpProxy(MYSQL["host"], MYSQL["port"])
    cfg = mysql_settings(mysql_database, port=proxy.port).with_overrides(
        {"other": {"var_dir": str(tmp_path / "var")}})
    engine = storage.make_engine(mysql_settings(mysql_database).database_url)
    _, token = storage.add_device(engine, "http-outage")
    client = make_app(cfg).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    frame = {"readings": [{"seq": 1, "ts": storage.now_ms() / 1000, "values": {"co2": 500.0}}]}
    try:
        if token_cached:
            assert client.post("/api/v1/readings", json=frame, headers=headers).json["ack"] == [1]
            frame["readings"][0]["ts"] += 1
        proxy.cut()
        answer = client.post("/api/v1/readings", json=frame, headers=headers)
        assert answer.status_code == 503 and answer.mimetype == "application/json"
        assert orjson.loads(answer.data) == {"ack": [], "rejected": [], "error": DB_DOWN}
        proxy.restore()
        assert client.post("/api/v1/readings", json=frame, headers=headers).json["ack"] == [1]
    finally:
        proxy.cut()
        engine.dispose()


def test_database_restart_under_load(make_database, tmp_path):
    """Three Pis, a device on HTTP ingest and an API poller through a 3 s outage of MariaDB."""
    result = database_restart(mysql_settings(make_database("faults")), tmp_path, outage_s=3.0)
    print(result)
    assert result.problems == []
    assert result.exactly_once() and result.pending <= 3

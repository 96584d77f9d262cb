"""The ingest server when the database goes away, and when it is told to stop."""
from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed

from lib import storage
from tests.conftest import MYSQL, ServerThread, hold_write_lock, mysql_settings, reset_database, stored
from tests.tcpproxy import TcpProxy
from tests.test_server import TS0, exchange, open_ws, reading


def batch(first: int, count: int) -> dict:
    """`count` readings with consecutive seqs and timestamps."""
    return {"readings": [reading(seq, TS0 + seq) for seq in range(first, first + count)]}


def test_database_outage_acks_nothing_and_recovers(mysql_database):
    proxy = TcpProxy(MYSQL["host"], MYSQL["port"])
    cfg = mysql_settings(mysql_database, port=proxy.port)
    reset_database(cfg)
    engine = storage.make_engine(mysql_settings(mysql_database).database_url)  # not via the proxy
    info, token = storage.add_device(engine, "outage")
    srv = ServerThread(cfg)
    try:
        with open_ws(srv, token) as ws:
            assert exchange(ws, batch(0, 100))["ack"] == list(range(100))
            proxy.cut()
            reply = exchange(ws, batch(100, 100))
            assert reply["ack"] == [] and "database unavailable" in reply["error"]
            proxy.restore()
            deadline = time.monotonic() + 20  # the client's retry loop, in short
            while (reply := exchange(ws, batch(100, 100)))["ack"] == []:
                assert time.monotonic() < deadline, reply
                time.sleep(0.2)
            assert reply["ack"] == list(range(100, 200))
    finally:
        srv.stop()
        proxy.cut()
    assert [row[0] for row in stored(engine, info.id)] == [TS0 + i for i in range(200)]
    engine.dispose()


def test_sigterm_finishes_commits_in_flight(server_process, engine, device):
    proc = server_process()
    with open_ws(proc, device.token) as ws:
        assert exchange(ws, batch(0, 10))["ack"] == list(range(10))
        unlock = hold_write_lock(engine)
        ws.send(json.dumps(batch(10, 500)))
        time.sleep(0.5)  # the server has read the frame and waits on the lock
        proc.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        threading.Timer(0.5, unlock).start()
        assert json.loads(ws.recv(timeout=20))["ack"] == list(range(10, 510))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=20)
        assert info.value.rcvd.code == 1001
    assert proc.proc.wait(20) == 0
    assert len(stored(engine, device.id)) == 510
    assert "signal received" in proc.log_path.read_text()


def test_stopped_server_refuses_new_connections(server_process, device):
    proc = server_process()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(20) == 0
    with pytest.raises(OSError):
        open_ws(proc, device.token)

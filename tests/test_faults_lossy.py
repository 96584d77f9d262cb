"""The Pi client on a slow, lossy link (tests/lossyproxy.py): every reading arrives exactly once."""
from __future__ import annotations

import socket
import time

from bench.fault_scenarios import lossy_link
from tests.conftest import sqlite_settings
from tests.lossyproxy import LossyProxy


def test_the_link_delays_stalls_and_resets(tmp_path):
    """Bytes cross in order and late; a lost segment stalls the direction; the connection ends in a reset."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        link = LossyProxy("127.0.0.1", server.getsockname()[1], delay=0.2, loss=0.3, rto=0.05, reset_s=2.0)
        try:
            client = socket.create_connection(("127.0.0.1", link.port))
            upstream, _ = server.accept()
            started = time.monotonic()
            payload = bytes(range(256)) * 100  # 18 segments, a third of them lost once or more
            client.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += upstream.recv(65536)
            elapsed = time.monotonic() - started
            assert got == payload and elapsed >= 0.2
            assert link.stats.lost > 0 and link.stats.stalled_s >= 0.05 * link.stats.lost
            client.settimeout(5)
            try:  # lives 1 to 3 s, then reset
                assert client.recv(10) == b"", "expected a reset"
            except ConnectionResetError:
                pass
            assert link.stats.resets == 1 and time.monotonic() - started < 4
            client.close()
            upstream.close()
        finally:
            link.close()


def test_pi_client_on_a_lossy_link(tmp_path):
    """12 s at 300 ms each way, 5 % segment loss and a reset every ~5 s, then the spool drained."""
    result = lossy_link(sqlite_settings(tmp_path / "sensors.db"), tmp_path, seconds=12.0)
    print(result)
    assert result.problems == []
    assert result.exactly_once() and result.pending == 0 and result.sent > 100
    assert result.figures["resets"] > 0

"""One device, one bad row or one slow client cannot hurt the others; shutdown and logs stay bounded."""
from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from lib import storage
from lib.config import REPO_ROOT
from Pi_Sensor.writer import ReadingWriter
from tests.conftest import ServerProcess, ServerThread, settings_env, stored
from tests.test_server import TS0, exchange, open_ws, reading

NAMES = ("co2", "temperature", "humidity")


def handshake(sock: socket.socket, token: str) -> None:
    """Open a WebSocket on a raw socket (a client that can then misbehave at will)."""
    sock.sendall((f"GET /ingest?token={token} HTTP/1.1\r\nHost: x\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response


def text_frame(payload: bytes) -> bytes:
    """A masked client text frame (mask of zeros keeps the payload readable)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def test_a_revoked_device_is_closed_and_its_token_refused(settings, device, engine):
    srv = ServerThread(settings.with_overrides({"ingest": {"revoke_check_seconds": "0.2"}}))
    other, other_token = storage.add_device(engine, "pi-healthy")
    try:
        with open_ws(srv, device.token) as ws, open_ws(srv, other_token) as healthy:
            assert exchange(ws, reading(1))["ack"] == [1]
            storage.revoke_device(engine, device.name)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd.code == 1008 and info.value.rcvd.reason == "device revoked"
            assert exchange(healthy, reading(2))["ack"] == [2]
        with pytest.raises(InvalidStatus) as refused:
            open_ws(srv, device.token)
        assert refused.value.response.status_code == 401
    finally:
        srv.stop()
    assert len(stored(engine, device.id)) == 1  # its readings stay


def test_a_deleted_device_fails_only_its_own_rows_of_a_batch(device, engine, caplog):
    """Group commit puts devices in one transaction; a deleted device must not fail the others."""
    other, _ = storage.add_device(engine, "pi-healthy")
    storage.revoke_device(engine, device.name, delete_readings=True)
    rows_gone = [(device.id, TS0 + i, 400.0, 20.0, 40.0) for i in range(3)]
    rows_ok = [(other.id, TS0 + i, 500.0, 21.0, 41.0) for i in range(3)]
    with caplog.at_level(logging.WARNING):
        outcomes = ReadingWriter(engine)([(NAMES, rows_ok), (NAMES, rows_gone), (NAMES, rows_ok[:1])])
    assert outcomes[0] == {} and outcomes[2] == {}
    failed = outcomes[1]
    assert isinstance(failed, Exception) or set(failed) == {0, 1, 2}
    assert len(stored(engine, other.id)) == 3
    # A failed commit is logged as the error and the devices, never as the SQL statement.
    assert "INSERT" not in caplog.text and "VALUES" not in caplog.text


def test_readings_of_a_deleted_device_are_never_acked(ingest, device, engine):
    with open_ws(ingest, device.token) as ws:
        assert exchange(ws, reading(1))["ack"] == [1]
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM device WHERE id = {int(device.id)}")
        reply = exchange(ws, reading(2, TS0 + 1))
        assert reply["ack"] == []
    assert stored(engine, device.id) == []


def stall(srv: ServerThread, token: str, timeout: float = 10) -> socket.socket:
    """A client socket that sent frames with long replies and reads none, until the server stopped reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    sock.settimeout(timeout)
    handshake(sock, token)
    # Each frame is refused with a long reply: 1000 rejections of about 60 bytes.
    bad = json.dumps({"readings": [{"seq": i, "values": {"co2": -1}} for i in range(1000)]})
    frame = text_frame(bad.encode())
    sent = 0
    with pytest.raises(OSError):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sock.sendall(frame)
            sent += 1
        raise AssertionError(f"server still reads after {sent} frames of unread replies")
    return sock


def test_a_client_that_never_reads_is_dropped(settings, device):
    """Replies it does not read are bounded; after ping_timeout over the bound, it is closed."""
    cfg = settings.with_overrides({"ingest": {"ping_timeout": "1", "ping_interval": "0.5",
                                              "max_unsent_bytes": "4096"}})
    srv = ServerThread(cfg)
    sock = None
    try:
        sock = stall(srv, device.token)
        assert wait_until(lambda: not srv.server.cap.live, 5)
    finally:
        if sock is not None:
            sock.close()
        srv.stop()


def test_a_stalled_client_is_dropped_while_its_close_waits(settings, device):
    """A closing handshake (a keepalive timeout starts one) cannot reach a client that reads
    nothing: the stalled connection is dropped all the same, not after close_timeout."""
    cfg = settings.with_overrides({"ingest": {"ping_timeout": "4", "ping_interval": "60",
                                              "max_unsent_bytes": "4096", "close_timeout": "60"}})
    srv = ServerThread(cfg)
    sock = None
    try:
        sock = stall(srv, device.token, timeout=1)  # well within the 4 s of patience

        async def start_closing():
            for conn in srv.server._server.all_connections:
                asyncio.ensure_future(conn.close())
        srv.call(start_closing())  # its close frame waits behind the unread replies, forever
        # Dropped after ping_timeout (4 s); the margin is for a loaded machine, and still far
        # below the close_timeout (60 s) this proves it does not wait for.
        assert wait_until(lambda: not srv.server.cap.live, 25)
    finally:
        if sock is not None:
            sock.close()
        srv.stop()


def test_silent_sockets_cannot_lock_devices_out(settings, device, tmp_path):
    """With few open files and many silent sockets, a device still connects (its oldest are evicted)."""
    cfg = settings.with_overrides({"ingest": {"max_connections": "20", "handshake_timeout": "30"}})
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # noqa: E731
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "Pi_Sensor.server", "--host", "127.0.0.1",
                             "--port", "0"], cwd=REPO_ROOT, env=settings_env(cfg), stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=low)
    silent = []
    try:
        port = _port_of(tmp_path / "server.log", proc)
        for _ in range(100):
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        url = f"ws://127.0.0.1:{port}/ingest"
        from websockets.sync.client import connect
        with connect(url, additional_headers={"Authorization": f"Bearer {device.token}"},
                     open_timeout=10) as ws:
            assert exchange(ws, reading(1))["ack"] == [1]
        assert proc.poll() is None
    finally:
        for sock in silent:
            sock.close()
        proc.kill()
        proc.wait(10)
        log.close()


def _port_of(log_path, proc) -> int:
    """The port a server process logged it listens on."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = ServerProcess.LISTENING.search(log_path.read_text())
        if match:
            return int(match.group(1))
        assert proc.poll() is None, log_path.read_text()
        time.sleep(0.05)
    raise TimeoutError(log_path.read_text())


def test_sigterm_is_bounded_with_a_pipelining_client(settings, device, tmp_path):
    """A client pushing frames without reading replies cannot hold shutdown past drain + close."""
    cfg = settings.with_overrides({"ingest": {"drain_seconds": "2", "close_timeout": "1"}})
    srv = ServerProcess(cfg, tmp_path / "server.log")
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    stop = threading.Event()

    def pipeline() -> None:
        frame = text_frame(json.dumps({"readings": [reading(i, TS0 + i) for i in range(100)]}).encode())
        try:
            while not stop.is_set():
                sock.sendall(frame)
        except OSError:
            pass

    try:
        handshake(sock, device.token)
        pusher = threading.Thread(target=pipeline, daemon=True)
        pusher.start()
        time.sleep(1)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(15) == 0
        assert time.monotonic() - started < 2 + 1 + 1 + 1.5
    finally:
        stop.set()
        sock.close()
        srv.stop()


def test_repeated_bad_frames_are_logged_at_a_bounded_rate(ingest, device, caplog):
    with caplog.at_level(logging.WARNING, logger="Pi_Sensor.server"):
        with open_ws(ingest, device.token) as ws:
            for _ in range(2000):
                ws.send("1,2")  # an invalid legacy frame: no reply, one log line each before
            assert exchange(ws, reading(1))["ack"] == [1]
    lines = [r for r in caplog.records if r.name == "Pi_Sensor.server"]
    assert 1 <= len(lines) <= 10


def test_a_bad_catalogue_row_stops_neither_start_nor_other_metrics(settings, device, engine):
    """min = max in a hand-edited row: the server starts, and unknown metrics are still just rejected."""
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO metric (name, unit, min_value, max_value, label) "
                             "VALUES ('flat', 'x', 5, 5, '')")
    srv = ServerThread(settings)
    try:
        with open_ws(srv, device.token) as ws:
            reply = exchange(ws, {"readings": [reading(1), reading(2, TS0 + 1, flat=5.0),
                                               reading(3, TS0 + 2, pressure=1.0)]})
            assert reply["ack"] == [1]
            assert [r["seq"] for r in reply["rejected"]] == [2, 3]
            assert exchange(ws, reading(4, TS0 + 3))["ack"] == [4]
    finally:
        srv.stop()

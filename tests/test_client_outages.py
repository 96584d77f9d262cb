"""Zero loss, measured: the real client, server and database through four kinds of outage."""
from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lib import storage
from lib.config import REPO_ROOT
from tests.conftest import MYSQL, ServerThread, hold_write_lock, mysql_settings, reset_database
from tests.tcpproxy import TcpProxy

INTERVAL = 0.01  # 100 readings a second, so outages of seconds leave real backlogs
STARTED: list["ClientProcess"] = []


@pytest.fixture(autouse=True)
def _kill_leftover_clients():
    """Whatever a test asserts, no client process outlives it."""
    yield
    while STARTED:
        proc = STARTED.pop().proc
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class ClientProcess:
    """`python -m Pi_Sensor.client` with the simulated sensor and a journal."""

    def __init__(self, url: str, token: str, workdir: Path, name: str = "client",
                 *extra: str) -> None:
        self.journal, self.spool = workdir / "journal.jsonl", workdir / "spool.db"
        self.log = open(workdir / f"{name}.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "Pi_Sensor.client", "--url", url, f"--token={token}",
             "--sensor", "simulate", "--interval", str(INTERVAL), "--spool", str(self.spool),
             "--journal", str(self.journal), "--backoff-min", "0.2", "--backoff-max", "1",
             "--ping-interval", "0.5", "--ping-timeout", "0.5", "--ack-timeout", "2", *extra],
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        STARTED.append(self)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        finally:
            self.log.close()


@dataclass
class Account:
    """Where every reading the client generated ended up."""

    generated: int
    stored: int
    pending: int  # still in the spool and not yet stored, to be sent later
    resend: int  # stored, but the ack came too late: will be re-sent and kept once by key
    missing: int  # neither stored nor pending: lost
    unexpected: int  # stored but never generated
    wrong_values: int

    def assert_exactly_once(self) -> None:
        assert (self.missing, self.unexpected, self.wrong_values) == (0, 0, 0), self
        assert self.stored + self.pending == self.generated and self.generated > 0, self


def account(engine, device_id: int, client: ClientProcess) -> Account:
    """Compare the journal with the database (values too) and the spool left behind."""
    generated = {}
    for line in client.journal.read_text().splitlines():
        entry = json.loads(line)
        generated[entry["ts"]] = (entry["values"]["co2"], entry["values"]["temperature"],
                                  entry["values"]["humidity"])
    with engine.connect() as conn:
        stored = {ts: (c, t, h) for ts, c, t, h in conn.exec_driver_sql(
            f"SELECT ts, co2, temperature, humidity FROM reading WHERE device_id = {device_id:d}")}
    with sqlite3.connect(client.spool) as spool:
        pending = {ts for (ts,) in spool.execute("SELECT ts_ms FROM spool")}
    return Account(len(generated), len(stored), len(pending - stored.keys()),
                   len(pending & stored.keys()),
                   len(generated.keys() - stored.keys() - pending), len(stored.keys() - generated.keys()),
                   sum(1 for ts, v in stored.items() if ts in generated and generated[ts] != v))


def journal_spooled(client: ClientProcess) -> None:
    """Journal what a killed client spooled but had no time to journal (it writes the spool first)."""
    journaled = {json.loads(line)["ts"] for line in client.journal.read_text().splitlines()}
    with sqlite3.connect(client.spool) as spool:
        rows = spool.execute("SELECT seq, ts_ms, readings FROM spool ORDER BY seq").fetchall()
    with client.journal.open("a") as journal:
        for seq, ts_ms, values in rows:
            if ts_ms not in journaled:
                journal.write(json.dumps({"seq": seq, "ts": ts_ms, "values": json.loads(values)}) + "\n")


def wait_caught_up(engine, device_id: int, client: ClientProcess, timeout: float = 60) -> float:
    """Seconds until the database holds all but the last few readings generated."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        generated = len(client.journal.read_text().splitlines())
        if generated - storage.count_readings(engine, device_id) <= 3:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"client did not catch up within {timeout} s")


def wait_generated(client: ClientProcess, count: int, timeout: float = 30) -> None:
    """Wait until the client has generated `count` readings (its start-up is slow on a busy machine)."""
    deadline = time.monotonic() + timeout
    while not client.journal.exists() or len(client.journal.read_text().splitlines()) < count:
        assert time.monotonic() < deadline, f"the client generated fewer than {count} readings"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def finish(engine, device, client: ClientProcess, label: str, outage: float, catch_up: float) -> None:
    """Stop the client, check exactly-once delivery and print the figures."""
    client.stop()
    result = account(engine, device.id, client)
    print(f"\n{label}: outage {outage:.1f} s, generated {result.generated}, stored {result.stored}, "
          f"pending {result.pending}, lost {result.missing}, to re-send {result.resend}, "
          f"caught up {catch_up:.2f} s after the outage")
    result.assert_exactly_once()


def test_server_killed_and_restarted(server_process, engine, device, tmp_path):
    port = free_port()
    server = server_process(port)
    client = ClientProcess(f"ws://127.0.0.1:{port}/ingest", device.token, tmp_path)
    time.sleep(1.5)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    time.sleep(2)
    server_process(port)
    catch_up = wait_caught_up(engine, device.id, client)
    finish(engine, device, client, "server SIGKILL", 2.0, catch_up)


def test_database_unreachable(mysql_database, tmp_path):
    proxy = TcpProxy(MYSQL["host"], MYSQL["port"])
    cfg = mysql_settings(mysql_database, port=proxy.port)
    reset_database(cfg)
    engine = storage.make_engine(mysql_settings(mysql_database).database_url)
    info, token = storage.add_device(engine, "db-outage")
    server = ServerThread(cfg)
    client = ClientProcess(server.url, token, tmp_path)
    try:
        time.sleep(1.5)
        proxy.cut()
        time.sleep(3)
        proxy.restore()
        catch_up = wait_caught_up(engine, info.id, client)
        finish(engine, info, client, "database unreachable", 3.0, catch_up)
    finally:
        client.stop()
        server.stop()
        proxy.cut()
        engine.dispose()


def test_client_killed_mid_batch_and_restarted(server_process, engine, device, tmp_path):
    server = server_process()
    unlock = hold_write_lock(engine)  # the server's commit of the first batch waits on this
    client = ClientProcess(server.url, device.token, tmp_path, "client", "--batch", "20")
    wait_generated(client, 40)  # a batch is in flight, unacked, and a backlog builds up in the spool
    client.stop(signal.SIGKILL)
    journal_spooled(client)
    unlock()  # the batch is committed now, but its ack goes to a dead client
    deadline = time.monotonic() + 10
    while storage.count_readings(engine, device.id) == 0:
        assert time.monotonic() < deadline, "the batch in flight was never committed"
        time.sleep(0.05)
    in_flight = storage.count_readings(engine, device.id)
    restarted = ClientProcess(server.url, device.token, tmp_path, "client-2", "--batch", "20")
    catch_up = wait_caught_up(engine, device.id, restarted)
    assert 0 < in_flight <= 20 < len(restarted.journal.read_text().splitlines())
    finish(engine, device, restarted, "client SIGKILL", 1.0, catch_up)


@pytest.mark.parametrize("failure", ["cut", "freeze"])
def test_network_outage(ingest, engine, device, tmp_path, failure):
    proxy = TcpProxy("127.0.0.1", ingest.port)
    client = ClientProcess(f"ws://127.0.0.1:{proxy.port}/ingest", device.token, tmp_path)
    try:
        time.sleep(1.5)
        proxy.cut() if failure == "cut" else proxy.freeze()
        time.sleep(3)  # longer than the client's longest backoff (1 s here)
        proxy.restore() if failure == "cut" else proxy.thaw()
        catch_up = wait_caught_up(engine, device.id, client)
        finish(engine, device, client, f"network {failure}", 3.0, catch_up)
    finally:
        client.stop()
        proxy.cut()

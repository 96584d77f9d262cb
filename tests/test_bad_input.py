"""Bad input against a real ingest server, on SQLite and MariaDB: the WebSocket rows (frames and
handshakes, tests/badinput_cases.py) of the bad-input catalogue (tests/badinput_catalogue.py)."""
from __future__ import annotations

import json
import logging
import socket
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Engine
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lib import storage
from tests.badinput_cases import CASES, HANDSHAKES, TS0, Case, Handshake, Reply, TextBytes, iso
from tests.conftest import (ServerThread, mysql_settings, reset_database, sqlite_settings,
                            stored)
from tests.rawhttp import read_answer

PROBE_SEQ = 999_999
PROBE_TS = TS0 + 86_400_000  # a day after every case's own time stamps
REPLY_TIMEOUT = 5  # seconds; a missing reply fails the row, so keep the wait short


@dataclass
class Backend:
    """One running ingest server and an engine on its database."""

    server: ServerThread
    engine: Engine

    def new_device(self) -> tuple[int, str]:
        """Register a fresh device, so each case sees only its own rows."""
        info, token = storage.add_device(self.engine, f"bad-{uuid.uuid4().hex[:10]}")
        return info.id, token


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def backend(request, tmp_path_factory):
    """One ingest server per backend for the whole table (starting one per case is slow)."""
    if request.param == "sqlite":
        cfg = sqlite_settings(tmp_path_factory.mktemp("badinput") / "sensors.db")
    else:
        cfg = mysql_settings(request.getfixturevalue("make_database")("badinput"))
    reset_database(cfg)
    srv = ServerThread(cfg)
    eng = storage.make_engine(cfg.database_url)
    yield Backend(srv, eng)
    srv.stop()
    eng.dispose()


def open_ws(srv: ServerThread, token: str, **kwargs):
    """A client connection authenticated with a bearer token."""
    return connect(srv.url, additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=10, max_size=None, **kwargs)


def check_reply(expected, reply: dict, frame_no: int) -> None:
    """Assert that one decoded reply matches an exact dict or a Reply predicate."""
    where = f"reply to frame {frame_no}: {reply}"
    if isinstance(expected, dict):
        assert reply == expected, where
        return
    assert isinstance(expected, Reply)
    assert reply.get("ack", []) == list(expected.ack), where
    got = reply.get("rejected", [])
    assert [r.get("seq") for r in got] == [seq for seq, _ in expected.rejected], where
    for item, (_, reason) in zip(got, expected.rejected):
        options = (reason,) if isinstance(reason, str) else reason
        assert any(o in item["error"] for o in options), f"{options} not in reason; {where}"
        if expected.max_reason is not None:
            assert len(item["error"]) < expected.max_reason, f"reason too long; {where}"
    if expected.error is None:
        assert "error" not in reply, where
    else:
        assert expected.error in reply.get("error", ""), where
        assert "error" in reply, where


def probe(ws, seq: int = PROBE_SEQ, ts: int = PROBE_TS) -> dict:
    """Send one valid reading and return the reply: the first reply after the case's frames."""
    ws.send(json.dumps({"seq": seq, "ts": iso(ts), "values": {"co2": 777}}))
    return json.loads(ws.recv(timeout=REPLY_TIMEOUT))


def check_stored(expected, rows: list[tuple]) -> None:
    """Assert the case's stored rows: exact rows, a count, or a predicate."""
    if isinstance(expected, int):
        assert len(rows) == expected, rows[:5]
    elif callable(expected):
        expected(rows)
    else:
        assert rows == expected


def log_lines(caplog) -> list[str]:
    """What the processes under test logged during the test: our loggers from INFO, others from WARNING."""
    return [f"{r.name} {r.levelname} {r.getMessage()[:200]}" for r in caplog.records]


def watch_logs(caplog) -> None:
    """Capture our own loggers from INFO, as the servers run in production."""
    for name in ("Pi_Sensor", "lib", "flask_front"):
        caplog.set_level(logging.INFO, logger=name)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(backend, case: Case, caplog):
    """Send the row's frames on one connection; check replies, stored rows, connection state, and
    that the server logged at most one line per frame."""
    watch_logs(caplog)
    device_id, token = backend.new_device()
    with open_ws(backend.server, token) as ws:
        for n, (frame, expected) in enumerate(zip(case.frames, case.replies, strict=True)):
            ws.send(frame, text=True if isinstance(frame, TextBytes) else None)
            if expected is not None:
                check_reply(expected, json.loads(ws.recv(timeout=REPLY_TIMEOUT)), n)
        if case.closes is None:
            # Replies come in order, so this also proves frames expecting none got none.
            assert probe(ws) == {"ack": [PROBE_SEQ], "rejected": []}
        else:
            with pytest.raises(ConnectionClosed) as info:
                probe(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == case.closes
    rows = [r for r in stored(backend.engine, device_id) if r[0] != PROBE_TS]
    check_stored(case.stored, rows)
    assert len(log_lines(caplog)) <= len(case.frames), log_lines(caplog)


def test_legacy_frames_of_two_connections_are_all_stored(backend):
    """Two connections of one device sending legacy frames at once: no frame is lost."""
    device_id, token = backend.new_device()
    per_connection = 25
    with open_ws(backend.server, token) as a, open_ws(backend.server, token) as b:
        for i in range(per_connection):
            a.send(f"{500 + i},21.5,40.2")
            b.send(f"{600 + i},22.5,41.2")
        assert probe(a, 1, PROBE_TS)["ack"] == [1]
        assert probe(b, 2, PROBE_TS + 1)["ack"] == [2]
    rows = [r for r in stored(backend.engine, device_id) if r[0] not in (PROBE_TS, PROBE_TS + 1)]
    assert sorted(r[1] for r in rows) == [500.0 + i for i in range(per_connection)] + \
        [600.0 + i for i in range(per_connection)]
    assert len({r[0] for r in rows}) == len(rows), "server stamps must be distinct per device"


def raw_handshake(port: int, request: str) -> tuple[int | None, bytes]:
    """Send a request as it is; return the status and body of the answer (None: closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))  # "\xff" in a row is the byte 0xff
        return read_answer(sock)


@pytest.mark.parametrize("row", HANDSHAKES, ids=[h.id for h in HANDSHAKES])
def test_handshakes(backend, row: Handshake, caplog):
    """A handshake that cannot be authenticated gets its 4xx and a short reason, never a 500 (or, when
    it is not HTTP that websockets can read, a closed connection); the server logs at most one line
    and keeps serving."""
    watch_logs(caplog)
    _, token = backend.new_device()
    status, body = raw_handshake(backend.server.port, row.request.format(token=token))
    assert (status, row.body in body.decode("utf-8", "replace")) == (row.status, True), body
    assert len(body) < 200, body
    assert len(log_lines(caplog)) <= 1, log_lines(caplog)
    with open_ws(backend.server, token) as ws:  # the server is unharmed
        assert probe(ws) == {"ack": [PROBE_SEQ], "rejected": []}

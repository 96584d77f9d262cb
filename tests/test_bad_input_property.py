"""Property, through the real servers and storage (SQLite): for any generated message, every reading is
either acked and stored with its values, or rejected with a reason; never both, never neither. The
same message goes to the WebSocket ingest server and to HTTP ingest, which must answer alike.
(tests/test_validation_hardening.py holds the same property for the parser alone, with more examples.)"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from lib import storage
from lib.validation import ms_to_iso
from tests.conftest import ServerThread, reset_database, sqlite_settings, stored
from tests.web_fixtures import make_app

TS0 = 1_790_000_000_000  # 2026-09-21, in epoch ms
# How each part of a reading is written (JSON text, None: left out) and what it stores. A time's text
# holds {iso}, {seconds} or {naive}: the reading's own time; True stores that time, None a server stamp.
GOOD_TIMES = [('"{iso}"', True), ("{seconds}", True), (None, None)]
BAD_TIMES = ['"yesterday"', '"1999-12-31T23:59:59Z"', "1e400", '"2100-01-01T00:00:00Z"', '"{naive}"', "true"]
GOOD_TEMPERATURES = [("21.5", 21.5), ("-40", -40.0), ("null", None), (None, None)]
BAD_TEMPERATURES = ["125.5", "NaN", "-Infinity", '"21.5"', "[21.5]", "1e400", "false"]
GOOD_EXTRAS = [(None, None), ('"humidity": 40', 40.0)]  # another member of "values", and its humidity
BAD_EXTRAS = ['"humidity": 140', '"pressure": 1013', '"co2": 500', '"humidity": {"a": 1}']


@dataclass(frozen=True)
class Sent:
    """One generated reading: its JSON text, whether it is valid, and the row it must become."""

    seq: int
    text: str
    valid: bool
    ts_ms: int | None  # None: the server stamps it
    row: tuple  # (co2, temperature, humidity)


def reading(seq: int, choice: tuple) -> Sent:
    """Reading `seq` from its choices (at most one of them bad); its co2 (1000 + seq) finds its row."""
    (t_text, t_given), (v_text, v_value), (e_text, humidity), ms, valid = choice
    ts_ms = TS0 + seq * 1000 + ms  # a second of its own: no two readings share a millisecond
    members = [f'"co2": {1000 + seq}'] + ([f'"temperature": {v_text}'] if v_text else [])
    members += [e_text] if e_text else []
    parts = [f'"seq": {seq}']
    if t_text is not None:
        iso = ms_to_iso(ts_ms)
        parts.append('"ts": ' + t_text.format(iso=iso, seconds=ts_ms / 1000, naive=iso.rstrip("Z")))
    parts.append('"values": {' + ", ".join(members) + "}")
    return Sent(seq, "{" + ", ".join(parts) + "}", valid, ts_ms if t_given else None,
                (1000.0 + seq, v_value, humidity))


def bad(texts: list[str]) -> st.SearchStrategy:
    """One of these invalid texts, storing nothing."""
    return st.sampled_from([(t, None) for t in texts])


TIME, TEMPERATURE, EXTRA = (st.sampled_from(GOOD_TIMES), st.sampled_from(GOOD_TEMPERATURES),
                            st.sampled_from(GOOD_EXTRAS))
MS = st.integers(0, 999)
# A valid reading, or one with exactly one fault: each fault alone decides that its reading is rejected.
CHOICE = st.one_of(
    st.tuples(TIME, TEMPERATURE, EXTRA, MS, st.just(True)),
    st.tuples(bad(BAD_TIMES), TEMPERATURE, EXTRA, MS, st.just(False)),
    st.tuples(TIME, bad(BAD_TEMPERATURES), EXTRA, MS, st.just(False)),
    st.tuples(TIME, TEMPERATURE, bad(BAD_EXTRAS), MS, st.just(False)),
)
READINGS = st.lists(CHOICE, min_size=1, max_size=8)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The WebSocket ingest server and the web app on one SQLite database."""
    folder = tmp_path_factory.mktemp("property")
    cfg = sqlite_settings(folder / "sensors.db")
    reset_database(cfg)
    cfg = cfg.with_overrides({"other": {"var_dir": str(folder / "var")}})
    server = ServerThread(cfg)  # also takes the web app's live readings (var/live.sock)
    engine = storage.make_engine(cfg.database_url)
    yield server, make_app(cfg).test_client(), engine
    server.stop()
    engine.dispose()


def over_websocket(server: ServerThread, token: str, frame: bytes) -> dict:
    """The WebSocket server's reply to one frame."""
    with connect(server.url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        ws.send(frame.decode())
        return json.loads(ws.recv(timeout=10))


def over_http(client, token: str, frame: bytes) -> dict:
    """HTTP ingest's reply to the same frame."""
    response = client.post("/api/v1/readings", data=frame, content_type="application/json",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.data
    return response.get_json()


def check(reply: dict, rows: list[tuple], sent: list[Sent]) -> None:
    """Acked xor rejected (with a reason) for each reading, as its choices say; acked ones stored as sent."""
    acked = reply["ack"]
    rejected = {r["seq"]: r["error"] for r in reply["rejected"]}
    assert sorted(acked + list(rejected)) == [s.seq for s in sent], reply  # each once: never both, never neither
    assert all(isinstance(e, str) and e.strip() for e in rejected.values()), reply
    assert set(acked) == {s.seq for s in sent if s.valid}, reply
    by_co2 = {row[1]: row for row in rows}
    assert len(by_co2) == len(rows) == len(acked), rows  # nothing stored beyond the acked readings
    for s in sent:
        if s.valid:
            ts, *values = by_co2[s.row[0]]
            assert tuple(values) == s.row and (s.ts_ms is None or ts == s.ts_ms), (s, ts, values)


@settings(max_examples=40, deadline=None)
@given(choices=READINGS, bom=st.booleans())
def test_each_reading_is_stored_as_sent_or_rejected_with_a_reason(servers, choices, bom):
    """Through both ingest paths and into storage, against an oracle built from the choices."""
    server, client, engine = servers
    sent = [reading(seq, c) for seq, c in enumerate(choices)]
    frame = ("\ufeff" if bom else "").encode() + ('{"readings": [' + ", ".join(s.text for s in sent) + "]}").encode()
    replies = []
    for send in (over_websocket, over_http):
        info, token = storage.add_device(engine, f"prop-{uuid.uuid4().hex[:10]}")
        replies.append(send(server if send is over_websocket else client, token, frame))
        check(replies[-1], stored(engine, info.id), sent)
    assert replies[0] == replies[1]

"""Bad input against the web app: the HTTP ingest and API rows of the catalogue through Flask's test
client on SQLite and MariaDB, and the raw-request rows against gunicorn (see tests/badinput_http.py)."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib import storage
from lib.config import REPO_ROOT
from lib.storage import users
from tests.badinput_http import API, INGEST, WIRE, Request, Wire
from tests.conftest import mysql_settings, reset_database, sqlite_settings
from tests.rawhttp import read_answer
from tests.test_auth import csrf_token
from tests.test_bad_input import log_lines, watch_logs
from tests.web_fixtures import Account, make_account, make_app

TABLES = ("device", "alert_rule", "metric", "reading", "users")
# Says the environment (no ingest server here to pass live readings to), not the input: not counted.
ENVIRONMENT_LOGGERS = ("lib.livebus",)


@dataclass
class Site:
    """The web app on one backend, with an administrator and a device."""

    app: object
    engine: Engine
    admin: Account
    device_id: int
    token: str


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def site(request, tmp_path_factory):
    """One app per backend for the whole table (a fresh client per row keeps rows apart)."""
    folder = tmp_path_factory.mktemp("badinput-http")
    if request.param == "sqlite":
        cfg = sqlite_settings(folder / "sensors.db")
    else:  # the session's database, emptied in place (a new one costs a migration)
        cfg = mysql_settings(request.getfixturevalue("mysql_database"))
    reset_database(cfg)
    cfg = cfg.with_overrides({"other": {"var_dir": str(folder / "var")},
                              "web": {"login_limit": "10000 per minute"},
                              "celery": {"embedded_dir": str(folder / "celery")}})
    engine = storage.make_engine(cfg.database_url)
    info, token = storage.add_device(engine, "badinput-pi")
    with pytest.MonkeyPatch.context() as patch:  # bcrypt's lowest cost: logins check at the stored cost
        patch.setattr(users, "BCRYPT_ROUNDS", 4)
        patch.setattr(users, "_DUMMY_HASH", users._hash("not a password"))  # for unknown names
        yield Site(make_app(cfg), engine, make_account(engine, "admin", admin=True), info.id, token)
    engine.dispose()


def counts(engine: Engine) -> dict[str, int]:
    """Rows in each table a request could change (one round trip)."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {t})" for t in TABLES))).one()
    return dict(zip(TABLES, row))


def send(site: Site, row: Request, client):
    """Make the row's request: its headers and body, the token it names, a CSRF token for forms."""
    token = site.token
    if row.path.startswith("/api/v1/readings"):  # ingest rows: a fresh device, so its rows are its own
        token = storage.add_device(site.engine, f"bad-{uuid.uuid4().hex[:10]}")[1]
    headers = [(k, v.format(admin=site.admin.token, token=token)) for k, v in row.headers]
    if row.auth is not None:
        headers.append(("Authorization", f"Bearer {site.admin.token if row.auth == 'admin' else token}"))
    data = row.body
    if isinstance(data, dict) and not row.csrf:
        data = json.dumps(data)
    if row.csrf:
        csrf = csrf_token(client)
        data = {**data, "csrf_token": csrf} if isinstance(data, dict) else data + f"&csrf_token={csrf}".encode()
    kwargs = {} if row.content_type is None else {"content_type": row.content_type}
    return client.open(row.path.format(device=site.device_id), method=row.method, data=data, headers=headers,
                       **kwargs)


def check_answer(row: Request, response) -> None:
    """The status, and the reason: an API error is {"error", "detail"} and the detail says it."""
    text = response.get_data(as_text=True)
    assert response.status_code == row.status, text[:500]
    if row.path.startswith("/api/") and row.status >= 400:
        body = response.get_json()
        assert isinstance(body, dict) and set(body) == {"error", "detail"}, text[:500]
        assert row.says in str(body["detail"]), body
    else:
        assert row.says in text, text[:500]


@pytest.mark.parametrize("row", INGEST + API, ids=[r.id for r in INGEST + API])
def test_api_rows(site, row: Request, caplog):
    """Each request gets its answer and reason; only what the row says is stored; one log line at most."""
    watch_logs(caplog)
    client = site.app.test_client()
    before = counts(site.engine)
    response = send(site, row, client)
    check_answer(row, response)
    expected = {t: n + dict(row.changes).get(t, 0) for t, n in before.items()}
    if row.path.startswith("/api/v1/readings"):
        expected["device"] += 1  # the row's own device
    assert counts(site.engine) == expected
    if row.check is not None:
        row.check(client, response)
    lines = [line for line in log_lines(caplog) if not line.startswith(ENVIRONMENT_LOGGERS)]
    assert len(lines) <= 1, lines


# ---- the wire: raw requests to gunicorn ------------------------------------------------------

class Gunicorn:
    """gunicorn as start.sh runs it (one worker), started without waiting for it: it boots while
    the rows above run, in its own process group."""

    def __init__(self, folder: Path) -> None:
        from bench.web_server import GUNICORN, free_port

        cfg = sqlite_settings(folder / "sensors.db")  # the database does not matter to the wire rows
        reset_database(cfg)
        # A small body limit: a body past it fits in the socket buffers, so no row depends on timing.
        cfg = cfg.with_overrides({"web": {"workers": "1", "threads": "2", "max_body_bytes": "4096"}})
        self.port = free_port()
        self.engine = storage.make_engine(cfg.database_url)
        self.log_path = folder / "gunicorn.log"
        env = {**os.environ, **cfg.environ(), "SENSORS_ECS_INTRANET_IP": "127.0.0.1",
               "SENSORS_PORTS_FLASK": str(self.port), "SENSORS_OTHER_VAR_DIR": str(folder / "var")}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(GUNICORN, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the health URL answers (200, or 503 without a broker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/v1/healthz")
                if conn.getresponse().status in (200, 503):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"gunicorn did not start: {self.log_path.read_text()[-2000:]}")

    def log(self) -> list[str]:
        """gunicorn's log (its own lines and the app's), line by line."""
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        """SIGKILL to the master and its workers: nothing here needs a graceful stop."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.engine.dispose()


@pytest.fixture(scope="module", autouse=True)
def gunicorn_booting(tmp_path_factory):
    """Start gunicorn as the module begins."""
    server = Gunicorn(tmp_path_factory.mktemp("badinput-wire"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gunicorn(gunicorn_booting) -> Gunicorn:
    """gunicorn, once it answers."""
    gunicorn_booting.wait_ready()
    return gunicorn_booting


@pytest.mark.parametrize("row", WIRE, ids=[w.id for w in WIRE])
def test_wire_rows(gunicorn, row: Wire):
    """What only a real server sees: its answer and reason, the connection kept or closed, nothing
    stored that should not be, and one log line at most."""
    info, token = storage.add_device(gunicorn.engine, f"wire-{uuid.uuid4().hex[:10]}")
    logged = len(gunicorn.log())
    with socket.create_connection(("127.0.0.1", gunicorn.port), timeout=10) as sock:
        sock.sendall(row.data.replace(b"{token}", token.encode()))
        if row.half_close:
            sock.shutdown(socket.SHUT_WR)
        status, body = read_answer(sock)
        assert (status, row.says in body.decode("utf-8", "replace")) == (row.status, True), body[:300]
        if row.after == "keeps":
            sock.sendall(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(sock)[0] in (200, 503)
        elif row.after == "closes":
            assert sock.recv(65536) == b""
    assert storage.count_readings(gunicorn.engine, info.id) == row.stored
    new = gunicorn.log()[logged:]
    assert len(new) <= 1, new


def test_gunicorn_logged_no_error(gunicorn):
    """After every wire row: no traceback and no error in gunicorn's log (runs after them, file order)."""
    assert not [line for line in gunicorn.log() if "Traceback" in line or "[ERROR]" in line]

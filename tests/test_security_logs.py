"""Nothing secret in the logs of a full run, and every secret file of that run 0600.

The processes start as start.sh starts them (ingest server, gunicorn with the web app, a Celery
worker, Flower), each writing stdout and stderr to its log file; the test creates a user's
password, API tokens, device tokens, and lets the stack generate Flower's password, the live
secret and the secret key; it drives logins (good and bad), API calls by token and by session
cookie, HTTP and WebSocket ingest with right and wrong tokens, the live WebSocket and Flower;
then it looks for every one of those secrets, their hashes and any 12-character piece of them
in every log. Flower's address and password checks run against the same stack first.
"""
from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import sqlalchemy as sa
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from lib import config as config_mod, storage
from lib.config import REPO_ROOT
from lib.storage import users
from tests.conftest import settings_env
from tests.test_security_flower import listening_addresses, request, unprotected_routes
from tests.test_security_secrets import SECRET_FILES

PIECE = 12  # a secret logged in part (say, its first 12 characters) is found too
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def free_port() -> int:
    """A port free right now (gunicorn and Flower take port numbers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """The processes of start.sh's SERVICES (beat aside), with their logs under `folder`/log."""

    def __init__(self, cfg: config_mod.Config, folder: Path) -> None:
        self.cfg, self.log_dir = cfg, folder / "log"
        self.log_dir.mkdir()
        self.procs: dict[str, subprocess.Popen] = {}
        py = sys.executable
        self.start("ingest", [py, "-m", "Pi_Sensor.server"])
        self.start("web", [py, "-m", "gunicorn", "-c", "flask_front/gunicorn_conf.py", "flask_front:create_app()"])
        self.start("worker", [py, "-m", "celery", "-A", "celery_tasks", "worker", "--loglevel", "INFO",
                              "--hostname", f"sensors-logs-{cfg.ports.ingest}@%h",
                              "--without-mingle", "--without-gossip"])  # no neighbours to wait for
        # Flower as in a default install, [ecs] intranet_ip empty: [auth] flower_address keeps it on loopback.
        self.start("flower", [py, "-m", "celery_tasks.flower"], {"SENSORS_ECS_INTRANET_IP": ""})
        self.stopped = False

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(command, cwd=REPO_ROOT, env={**settings_env(self.cfg), **(env or {})},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def wait(self, name: str, ready, timeout: float = 60) -> None:
        """Wait until ready() is true; fail with the log when the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.procs[name].poll() is None, f"{name} exited:\n{self.log(name)}"
            assert time.monotonic() < deadline, f"{name} did not start:\n{self.log(name)}"
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM all at once (as start.sh stop does), then SIGKILL what is left of each group."""
        self.stopped = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # worker children, gunicorn workers
            except OSError:
                pass
            proc.wait(10)


def answers(url: str) -> bool:
    """True once `url` answers HTTP at all."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


class Browser:
    """An HTTP client with a cookie jar, like a browser's session."""

    def __init__(self, base: str) -> None:
        self.base, self.jar = base, http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def send(self, path: str, data: bytes | None = None, headers: dict | None = None,
             method: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {}, method=method)
        try:
            with self.opener.open(request, timeout=20) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def form(self, path: str, fields: dict) -> int:
        """POST a form with the CSRF token of the page at `path`."""
        token = CSRF_RE.search(self.send(path)[1])[1]
        body = urllib.parse.urlencode({**fields, "csrf_token": token}).encode()
        return self.send(path, body, {"Content-Type": "application/x-www-form-urlencoded"})[0]

    def cookies(self) -> list[str]:
        return [cookie.value for cookie in self.jar]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 302 is an answer here, not a hop
        return None


def pieces(secret: str) -> set[str]:
    """The secret and each PIECE-character piece of it."""
    return {secret} | {secret[i:i + PIECE] for i in range(max(1, len(secret) - PIECE + 1))}


class Run:
    """The running stack and the secrets made for it."""

    def __init__(self, folder: Path) -> None:
        var = folder / "var"
        self.cfg = cfg = config_mod.load(environ={
            "SENSORS_OTHER_VAR_DIR": str(var), "SENSORS_MYSQL_DATABASE": "",
            "SENSORS_SQLITE_PATH": str(var / "sensors.db"), "SENSORS_RABBITMQ_HOST": "",
            "SENSORS_CELERY_EMBEDDED_DIR": str(var / "celery"), "SENSORS_CELERY_QUEUE": f"test-logs-{folder.name}",
            "SENSORS_CELERY_CONCURRENCY": "1", "SENSORS_OTHER_FLASK_PATH": str(var / "charts"),
            "SENSORS_ECS_INTRANET_IP": "127.0.0.1", "SENSORS_PORTS_INGEST": str(free_port()),
            "SENSORS_PORTS_FLASK": str(free_port()), "SENSORS_PORTS_FLOWER": str(free_port()),
            "SENSORS_WEB_WORKERS": "1", "SENSORS_WEB_THREADS": "2",
            "SENSORS_WEB_SECRET_KEY": "", "SENSORS_LIVE_SECRET": "", "SENSORS_AUTH_FLOWER_PASSWORD": ""})
        self.engine = engine = storage.make_engine(cfg.database_url)
        storage.init_db(engine)  # start.sh runs `flask init-db` first
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(users, "BCRYPT_ROUNDS", 4)  # the lowest cost: the stack checks at the stored cost
            self.password, self.wrong_password = f"pw-{secrets.token_urlsafe(12)}", f"pw-{secrets.token_urlsafe(12)}"
            users.create_user(engine, "alice", self.password, admin=True)
        _, self.api_token = users.create_api_token(engine, "alice", "logs test")
        _, self.device_token = storage.add_device(engine, "pi-logs")
        self.wrong_token = secrets.token_urlsafe(32)
        self.web = f"http://127.0.0.1:{cfg.ports.flask}"
        self.flower = f"http://127.0.0.1:{cfg.ports.flower}"
        self.ingest = f"ws://127.0.0.1:{cfg.ports.ingest}"
        self.stack = Stack(cfg, folder)

    def flower_password(self) -> str:
        """Flower's generated password, once Flower answers."""
        self.stack.wait("flower", lambda: answers(self.flower + "/healthcheck"))
        return (self.cfg.var_dir / "flower_password").read_text().strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A full stack on SQLite and the embedded broker, free ports, under a temporary folder; stopped at the end."""
    started = Run(tmp_path_factory.mktemp("fullrun"))
    try:
        yield started
    finally:
        if not started.stack.stopped:
            started.stack.stop()
        started.engine.dispose()


def test_flower_listens_on_loopback_only(run):
    """[ecs] intranet_ip empty (the other servers on every address): Flower is on 127.0.0.1 alone."""
    run.flower_password()
    assert listening_addresses(run.cfg.ports.flower) == {"127.0.0.1"}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", run.cfg.ports.flower), timeout=2).close()  # other loopback address


def test_every_flower_route_asks_for_the_password(run):
    """Each of Flower's routes but the open ones answers 401 without the password or with a wrong one."""
    password = run.flower_password()
    assert unprotected_routes(run.flower, run.wrong_password) == {}
    assert request(run.flower + "/metrics", auth=("admin", password)) == 200  # /metrics too, with it
    assert request(run.flower + "/api/tasks", auth=("admin", password)) == 200


@pytest.mark.timeout(90)
def test_no_secret_reaches_any_log_of_a_full_run(run):
    """Drive every way a secret is used, stop the stack, then find none of them in any log."""
    cfg, stack, engine = run.cfg, run.stack, run.engine
    password, wrong_password, api_token = run.password, run.wrong_password, run.api_token
    device_token, wrong_token = run.device_token, run.wrong_token
    web, flower, ingest = run.web, run.flower, run.ingest
    try:
        stack.wait("ingest", lambda: "listening on" in stack.log("ingest"))
        stack.wait("web", lambda: answers(web + "/api/v1/healthz"))

        # The web app: a failed login, a login, reads and writes by token and by session cookie.
        browser = Browser(web)
        assert browser.form("/login", {"name": "alice", "password": wrong_password}) == 401
        assert browser.form("/login", {"name": "alice", "password": password, "remember": "y"}) == 302
        csrf = CSRF_RE.search(browser.send("/logout")[1])[1]
        status, body = browser.send("/api/v1/devices", b'{"name": "pi-by-session"}',
                                    {"Content-Type": "application/json", "X-CSRFToken": csrf})
        assert status == 201, body
        session_device_token = json.loads(body)["token"]
        assert browser.send("/api/v1/devices", b'{"name": "forged"}', {"Content-Type": "application/json"})[0] == 400
        anonymous = Browser(web)
        assert anonymous.send("/api/v1/users", headers={"Authorization": f"Bearer {api_token}"})[0] == 200
        assert anonymous.send("/api/v1/users", headers={"Authorization": f"Bearer {wrong_token}"})[0] == 401
        live_token = json.loads(browser.send("/api/v1/live/token")[1])["token"]
        frame = json.dumps({"readings": [{"seq": 1, "values": {"co2": 500.0}}]}).encode()
        for token, expected in ((session_device_token, 200), (wrong_token, 401)):
            status, body = anonymous.send("/api/v1/readings", frame, {"Authorization": f"Bearer {token}",
                                                                      "Content-Type": "application/json"})
            assert status == expected, body

        # The ingest server: wrong tokens (header and query), the right one, the live WebSocket.
        for kwargs in ({"additional_headers": {"Authorization": f"Bearer {wrong_token}"}},
                       {"uri": f"{ingest}/ingest?token={wrong_token}"}):
            with pytest.raises(InvalidStatus):
                connect(kwargs.pop("uri", f"{ingest}/ingest"), open_timeout=10, **kwargs).close()
        with connect(f"{ingest}/ingest?token={device_token}", open_timeout=10) as ws:
            ws.send(frame)
            assert json.loads(ws.recv(timeout=10))["ack"] == [1]
        for token in (live_token, wrong_token):
            with connect(f"{ingest}/live?token={token}", open_timeout=10) as ws:
                try:
                    ws.recv(timeout=2)
                except Exception:  # closed with a reason (wrong token), or nothing yet: both fine here
                    pass

        # Flower, behind its generated password; the worker, running a task.
        flower_password = run.flower_password()
        for secret, expected in ((wrong_password, 401), (flower_password, 200)):
            auth = base64.b64encode(f"admin:{secret}".encode()).decode()
            assert Browser(flower).send("/api/tasks", headers={"Authorization": f"Basic {auth}"})[0] == expected
        stack.wait("worker", lambda: " ready." in stack.log("worker"))
        from celery_tasks.main import make_celery
        app = make_celery(cfg)
        try:
            assert app.send_task("celery_tasks.rollup").get(timeout=30) is not None
        finally:
            app.close()
        session_cookies = browser.cookies()
    finally:
        stack.stop()

    with engine.connect() as conn:
        hashes = [row[0] for row in conn.execute(sa.text("SELECT password_hash FROM users"))]
        hashes += [row[0] for row in conn.execute(sa.text("SELECT token_hash FROM api_token"))]
        hashes += [row[0] for row in conn.execute(sa.text("SELECT token_hash FROM device"))]
    found = {name: (cfg.var_dir / name).read_text().strip() for name in SECRET_FILES}
    secrets_of_run = {
        "password": password, "wrong password": wrong_password, "API token": api_token,
        "device token": device_token, "device token from the API": session_device_token,
        "wrong token": wrong_token, "live token": live_token, "CSRF token": csrf,
        **{f"cookie {i}": value for i, value in enumerate(session_cookies)},
        **{f"{name} (file)": value for name, value in found.items()},
        **{f"hash {i}": value for i, value in enumerate(hashes)},
        **{f"sha256 of {name}": hashlib.sha256(v.encode()).hexdigest()
           for name, v in (("API token", api_token), ("device token", device_token))},
    }
    assert len(session_cookies) >= 2 and len(hashes) == 4  # session and remember; a user, a token, 2 devices
    # Stored: the password as a bcrypt hash, tokens as their SHA-256 (never the secrets themselves).
    assert bcrypt.checkpw(password.encode(), hashes[0].encode()) and hashes[0].startswith("$2b$")
    assert {hashlib.sha256(t.encode()).hexdigest() for t in (api_token, device_token, session_device_token)} \
        == set(hashes[1:])
    logs = {path.name: path.read_text(errors="replace") for path in stack.log_dir.iterdir()}
    assert "listening on" in logs["ingest.log"] and "failed login for user name 'alice'" in logs["web.log"]
    assert "logged in" in logs["web.log"] and " ready." in logs["worker.log"] and "succeeded" in logs["worker.log"]
    assert "Visit me at" in logs["flower.log"]
    leaks = {f"{name} in {log_name}" for name, secret in secrets_of_run.items() for log_name, text in logs.items()
             if any(piece in text for piece in pieces(secret))}
    assert leaks == set()

    # Every file directly in var/ but the database is a secret: owner-only.
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in cfg.var_dir.iterdir()
             if p.is_file() and not p.name.startswith("sensors.db")}
    assert modes == {name: 0o600 for name in SECRET_FILES}

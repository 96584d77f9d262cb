"""`sh start.sh` end to end, on MariaDB + RabbitMQ and on the embedded defaults; lib/startsh.py."""
from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from websockets.sync.client import connect

from lib import config as config_mod, storage
from lib.config import REPO_ROOT
from flask_front import gunicorn_conf
from lib.startsh import Watched, alive, answers, assignments, parse_spec, probe_host, shell_settings, watch
from tests.conftest import MYSQL, RABBITMQ, require_rabbitmq

SERVICES = {"ingest": "Pi_Sensor.server", "worker": "worker", "beat": "beat", "flower": "flower",
            "web": "gunicorn"}
UP_SECONDS = 10  # every process must still run this long after start.sh returned


# ---- lib/startsh.py ------------------------------------------------------------------


@pytest.mark.parametrize("intranet_ip, expected", [("", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"),
                                                   ("::", "127.0.0.1"), ("10.0.0.7", "10.0.0.7"),
                                                   ("::1", "[::1]")])
def test_probe_host_reaches_the_bind_address(intranet_ip, expected):
    """Servers bound to every interface are probed on loopback, others on their address."""
    assert probe_host(config_mod.load(environ={"SENSORS_ECS_INTRANET_IP": intranet_ip})) == expected


def test_settings_survive_the_shell(tmp_path):
    """What `lib.startsh settings` prints, eval'd by sh, gives back every value, spaces and quotes included."""
    odd = tmp_path / "it's a dir"
    cfg = config_mod.load(environ={"SENSORS_OTHER_VAR_DIR": str(odd), "SENSORS_PORTS_INGEST": "9001",
                                   "SENSORS_INGEST_TLS_CERT": "c.pem", "SENSORS_INGEST_TLS_KEY": "k.pem",
                                   "SENSORS_MYSQL_DATABASE": "db", "SENSORS_MYSQL_USER": "u",
                                   "SENSORS_MYSQL_PASSWORD": "secret"})
    values = shell_settings(cfg)
    script = assignments(values) + "".join(f'printf "%s\\n" "${name}"\n' for name in values)
    printed = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == list(values.values())
    assert values["VAR_DIR"] == str(odd) and values["INGEST_HEALTH"] == "https://127.0.0.1:9001/healthz"
    assert values["INGEST_SCHEME"] == "wss" and "secret" not in values["DATABASE"]
    assert values["WEB_HEALTH"] == f"http://127.0.0.1:{cfg.ports.flask}/api/v1/healthz"


@pytest.fixture
def status_server():
    """An HTTP server on port 0 answering GET with the status in its path: /503 gets 503."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            self.send_response(int(self.path.strip("/")))
            self.end_headers()

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status, expected", [(200, True), (503, True), (404, False), (500, False),
                                              (401, False)])
def test_answers_counts_200_and_503(status_server, status, expected):
    """503 is an answer (the web app runs, its database or broker is down); other errors are not."""
    assert answers(f"{status_server}/{status}") is expected


@pytest.mark.parametrize("intranet_ip, bind", [("", "0.0.0.0:4350"), ("10.0.0.7", "10.0.0.7:4350"),
                                               ("::", "[::]:4350"), ("::1", "[::1]:4350")])
def test_gunicorn_binds_like_the_other_servers(intranet_ip, bind):
    """[ecs] intranet_ip (all when empty) and [ports] flask; IPv6 in brackets."""
    cfg = config_mod.load(environ={"SENSORS_ECS_INTRANET_IP": intranet_ip, "SENSORS_PORTS_FLASK": "4350"})
    assert gunicorn_conf.options(cfg)["bind"] == [bind]


def test_gunicorn_options_come_from_the_settings():
    """Workers and threads from [web]; the app preloaded (one secret key); stops before start.sh kills."""
    cfg = config_mod.load(environ={"SENSORS_WEB_WORKERS": "3", "SENSORS_WEB_THREADS": "7"})
    options = gunicorn_conf.options(cfg)
    assert (options["workers"], options["threads"], options["worker_class"]) == (3, 7, "gthread")
    assert options["preload_app"] is True and options["control_socket_disable"] is True
    stop_seconds = int(next(line.split("=")[1].split()[0] for line in (REPO_ROOT / "start.sh").read_text()
                            .splitlines() if line.startswith("STOP_SECONDS=")))
    assert options["graceful_timeout"] < stop_seconds


@pytest.mark.parametrize("spec, expected", [
    ("beat=12", Watched("beat", 12)),
    ("ingest=7=http://127.0.0.1:1/healthz?a=b", Watched("ingest", 7, "http://127.0.0.1:1/healthz?a=b")),
])
def test_parse_spec(spec, expected):
    """NAME=PID[=URL]; the URL may itself hold '='."""
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["beat", "beat=", "beat=x1"])
def test_parse_spec_refuses_garbage(spec):
    """A spec without a numeric pid is an error."""
    with pytest.raises(ValueError, match="NAME=PID"):
        parse_spec(spec)


def test_a_zombie_counts_as_dead():
    """An exited child not yet reaped (what kill -0 still reports) is dead."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while alive(child.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert Path(f"/proc/{child.pid}").exists()  # not reaped yet: a zombie
    child.wait()


def test_watch_tells_ok_died_and_no_answer(tmp_path):
    """A quick death is caught, a silent health URL times out, a steady process is ok; all watched together."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        silent_url = f"http://127.0.0.1:{closed.getsockname()[1]}/healthz"
    steady = subprocess.Popen(["sleep", "30"])
    dying = subprocess.Popen(["sh", "-c", "sleep 0.5; exit 3"])
    deaf = subprocess.Popen(["sleep", "30"])
    try:
        began = time.monotonic()
        states = watch([Watched("steady", steady.pid), Watched("dying", dying.pid),
                        Watched("deaf", deaf.pid, silent_url)], seconds=1.5, timeout=3)
        took = time.monotonic() - began
    finally:
        for proc in (steady, dying, deaf):
            proc.kill()
            proc.wait()
    assert states == {"steady": "ok", "dying": "died", "deaf": "no-answer"}
    assert 3 <= took < 6


def test_watch_stops_early_when_the_url_answers(ingest):
    """A server that answers is ok as soon as the minimum time has passed, not at the timeout."""
    began = time.monotonic()
    states = watch([Watched("ingest", os.getpid(), f"http://127.0.0.1:{ingest.port}/healthz")],
                   seconds=0.5, timeout=30)
    assert states == {"ingest": "ok"} and time.monotonic() - began < 5


# ---- sh start.sh ------------------------------------------------------------------------


def free_port() -> int:
    """A port free right now (start.sh's services take fixed port numbers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(tmp_path: Path, backend: str, make_database=None) -> dict[str, str]:
    """Environment for a whole stack under tmp_path on free ports, on `backend`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORS_")}
    env.update({
        "SENSORS_OTHER_VAR_DIR": str(tmp_path / "var"), "SENSORS_SQLITE_PATH": str(tmp_path / "sensors.db"),
        "SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery"),
        "SENSORS_OTHER_FLASK_PATH": str(tmp_path / "charts"),
        "SENSORS_CELERY_QUEUE": f"test-startsh-{uuid.uuid4().hex[:10]}",
        "SENSORS_ECS_INTRANET_IP": "127.0.0.1", "SENSORS_PORTS_INGEST": str(free_port()),
        "SENSORS_PORTS_FLOWER": str(free_port()), "SENSORS_PORTS_FLASK": str(free_port()),
        "SENSORS_RABBITMQ_HOST": "", "SENSORS_MYSQL_DATABASE": ""})
    if backend == "mariadb":
        require_rabbitmq()
        env.update({
            "SENSORS_MYSQL_HOST": MYSQL["host"], "SENSORS_MYSQL_PORT": str(MYSQL["port"]),
            "SENSORS_MYSQL_USER": MYSQL["user"], "SENSORS_MYSQL_PASSWORD": MYSQL["password"],
            "SENSORS_MYSQL_DATABASE": make_database("startsh"),
            "SENSORS_RABBITMQ_HOST": RABBITMQ["host"], "SENSORS_RABBITMQ_PORT": str(RABBITMQ["port"]),
            "SENSORS_RABBITMQ_USER": "guest", "SENSORS_RABBITMQ_PASSWORD": "guest"})
    return env


def start_sh(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    """Run `sh start.sh ARGS` in `env`."""
    return subprocess.run(["sh", str(REPO_ROOT / "start.sh"), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


class Stack:
    """The pids `sh start.sh` wrote, so a failing test can still kill everything it started."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.services: dict[str, int] = {}
        self.writers: dict[str, int] = {}

    def read(self) -> None:
        """Remember every pid file's pid."""
        for name in SERVICES:
            for kind, store in (("pid", self.services), ("logpipe.pid", self.writers)):
                path = self.run_dir / f"{name}.{kind}"
                if path.exists():
                    store[name] = int(path.read_text())

    def leftovers(self) -> list[int]:
        """Processes still running: services, anything in their process groups, log writers."""
        pids = [pid for pgid in self.services.values() for pid in group_members(pgid)]
        return sorted(set(pids) | {pid for pid in [*self.services.values(), *self.writers.values()]
                                   if alive(pid)})

    def kill(self) -> None:
        """SIGKILL whatever is left."""
        for pgid in self.services.values():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def send_reading(port: int, token: str) -> dict:
    """Send one reading through the ingest server and return its reply."""
    with connect(f"ws://127.0.0.1:{port}/ingest", additional_headers={"Authorization": f"Bearer {token}"},
                 open_timeout=10) as ws:
        ws.send(json.dumps({"seq": 1, "values": {"co2": 500}}))
        return json.loads(ws.recv(timeout=20))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("backend", ["mariadb", "embedded"])
def test_start_sh_runs_the_stack_and_stops_it(backend, tmp_path, request):
    """start exits 0, every process serves and stays up, a reading is stored, stop leaves nothing behind."""
    env = stack_env(tmp_path, backend, request.getfixturevalue("make_database") if backend == "mariadb" else None)
    stack = Stack(tmp_path / "var" / "run")
    try:
        started = start_sh(env)
        up_since = time.monotonic()
        stack.read()
        assert started.returncode == 0, started.stdout + started.stderr
        for name, marker in SERVICES.items():
            assert f"{name}: started (pid {stack.services[name]}" in started.stdout
            # The pid file holds the service itself, not a shell or the log writer.
            assert marker in Path(f"/proc/{stack.services[name]}/cmdline").read_bytes().decode()

        port = int(env["SENSORS_PORTS_INGEST"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert (response.status, response.read()) == (200, b"ok\n")
        web = f"http://127.0.0.1:{env['SENSORS_PORTS_FLASK']}"
        with urllib.request.urlopen(f"{web}/api/v1/healthz", timeout=10) as response:
            assert (response.status, json.load(response)) == (200, {"status": "ok", "database": "ok",
                                                                   "broker": "ok"})
        web_workers = group_members(stack.services["web"])
        assert len(web_workers) == 1 + 2  # the master and [web] workers (2)
        added = subprocess.run([str(REPO_ROOT / ".venv/bin/flask"), "--app", "flask_front", "add-device", "pi-e2e"],
                               cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        reply = send_reading(port, added.stdout.strip().splitlines()[-1])
        assert reply["ack"] == [1], reply
        engine = storage.make_engine(config_mod.load(environ=env).database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT r.co2 FROM reading r JOIN device d ON d.id = r.device_id "
                                            "WHERE d.name = 'pi-e2e'")).all()
        finally:
            engine.dispose()
        assert [tuple(r) for r in rows] == [(500.0,)]

        time.sleep(max(0.0, up_since + UP_SECONDS - time.monotonic()))
        status = start_sh(env, "status", timeout=60)
        for name, pid in stack.services.items():
            assert alive(pid), f"{name} died: " + (tmp_path / "var" / "log" / f"{name}.log").read_text()
            assert f"{name}: running (pid {pid})" in status.stdout
        assert f"web:       http://localhost:{env['SENSORS_PORTS_FLASK']}/  (API docs /api/v1/docs)" in status.stdout
        with urllib.request.urlopen(f"{web}/api/v1/docs", timeout=10) as response:
            assert response.status == 200  # the app serves pages too, not just its health
        again = start_sh(env)  # starting a running stack starts nothing twice
        assert again.returncode == 0, again.stdout + again.stderr
        assert all(f"{name}: already running (pid {pid})" in again.stdout for name, pid in stack.services.items())
        log_dir = tmp_path / "var" / "log"
        assert "listening on 127.0.0.1" in (log_dir / "ingest.log").read_text()
        # Beat asks for charts when it starts; the worker running them proves the broker carries tasks.
        assert "celery_tasks.draw_charts" in (log_dir / "worker.log").read_text()

        stopped = start_sh(env, "stop", timeout=90)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert all(f"{name}: stopped" in stopped.stdout for name in SERVICES)
        deadline = time.monotonic() + 10  # the log writers finish their last lines
        while stack.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stack.leftovers() == []
        assert not [pid for pid in web_workers if alive(pid)]  # gunicorn's workers included
        assert not list((tmp_path / "var" / "run").glob("*.pid"))
        assert "Shutting down: Master" in (log_dir / "web.log").read_text()  # a graceful stop
        assert "ingest server stopped" in (log_dir / "ingest.log").read_text()
    finally:
        stack.read()
        stack.kill()


@pytest.mark.timeout(120)
def test_start_sh_reports_a_process_that_dies_at_once(tmp_path):
    """The ingest port is taken: start says so, shows why, and exits non-zero."""
    env = stack_env(tmp_path, "embedded")
    stack = Stack(tmp_path / "var" / "run")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["SENSORS_PORTS_INGEST"])))
        taken.listen()
        try:
            started = start_sh(env)
            stack.read()
            assert started.returncode != 0, started.stdout + started.stderr
            assert "ingest: FAILED: exited within its first 3 s" in started.stderr
            assert "address already in use" in started.stderr  # the log's last lines
            assert "ingest: stopped" in started.stdout and "ingest: started" not in started.stdout
            assert "worker: started" in started.stdout  # the others run; start again once fixed
        finally:
            start_sh(env, "stop", timeout=90)
            stack.read()
            leftovers = stack.leftovers()
            stack.kill()
    assert leftovers == []


def test_start_sh_refuses_an_unknown_command(tmp_path):
    """A typo is an error, not a start."""
    result = start_sh(stack_env(tmp_path, "embedded"), "strat", timeout=30)
    assert result.returncode == 2 and "usage" in result.stderr

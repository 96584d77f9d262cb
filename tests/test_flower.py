"""Flower: generated credentials, basic auth, and tasks from a real worker showing up."""
from __future__ import annotations

import base64
import json
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from celery_tasks.flower import PASSWORD_FILE, credentials
from lib import config as config_mod
from lib.config import REPO_ROOT
from tests.conftest import settings_env


@pytest.fixture
def var_settings(tmp_path) -> config_mod.Config:
    """Settings whose [other] var_dir is in tmp_path."""
    return config_mod.load(environ={"SENSORS_OTHER_VAR_DIR": str(tmp_path / "var")})


def test_password_is_generated_once_and_private(var_settings, tmp_path):
    """An empty [auth] flower_password is generated into var/, readable by its owner only."""
    user, password = credentials(var_settings)
    path = tmp_path / "var" / PASSWORD_FILE
    assert user == "admin" and len(password) >= 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials(var_settings) == (user, password)  # stable across starts


def test_configured_password_wins(var_settings, tmp_path):
    """A password in db_config.ini (or the environment) is used and nothing is written."""
    cfg = var_settings.with_overrides({"auth": {"flower_user": "ops", "flower_password": "pw"}})
    assert credentials(cfg) == ("ops", "pw")
    assert not (tmp_path / "var" / PASSWORD_FILE).exists()


def free_port() -> int:
    """A port the OS reports free (Flower takes a port number, not 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a GET, with optional basic auth."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("broker", ["embedded", "rabbitmq"])
def test_flower_shows_tasks_behind_basic_auth(broker, settings, celery_worker, tmp_path):
    """Flower refuses requests without the password and lists the tasks a real worker ran."""
    worker = celery_worker(settings, broker)
    port = free_port()
    cfg = worker.settings.with_overrides({
        "ports": {"flower": str(port)}, "ecs": {"intranet_ip": "127.0.0.1"},
        "auth": {"flower_user": "ops", "flower_password": "test-pw"}})
    log = open(tmp_path / "flower.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery_tasks.flower"], cwd=REPO_ROOT,
                            env=settings_env(cfg), stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = get(base + "/")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "flower.log").read_text()
                time.sleep(0.2)
        assert status == 401
        assert get(base + "/", ("ops", "wrong"))[0] == 401
        # Flower only hears of tasks sent after it subscribed to events: send until one shows.
        sent: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = worker.app.send_task("celery_tasks.rollup")
            result.get(timeout=60)
            sent.append(result.id)
            time.sleep(1)
            status, body = get(base + "/api/tasks", ("ops", "test-pw"))
            seen = json.loads(body) if status == 200 else {}
            shown = [seen[task_id] for task_id in sent if task_id in seen]
            if shown:
                break
        else:
            pytest.fail(f"no task showed in Flower: {(tmp_path / 'flower.log').read_text()}")
        assert shown[0]["name"] == "celery_tasks.rollup"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()

"""The Flask app factory and its admin CLI commands."""
from __future__ import annotations

import subprocess
import sys

import pytest

from flask_front import create_app
from lib import storage
from lib.config import REPO_ROOT
from tests.conftest import settings_env


@pytest.fixture
def app(settings):
    return create_app({"SQLALCHEMY_DATABASE_URI": settings.database_url, "TESTING": True})


def test_factory_uses_db_config_and_overrides(settings):
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == \
        create_app().config["SENSORS"].database_url
    app = create_app({"SQLALCHEMY_DATABASE_URI": settings.database_url})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == settings.database_url


def test_init_db_is_idempotent(app, engine):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "database ready" in result.output
    assert [m.name for m in storage.load_catalogue(engine)] == ["co2", "temperature", "humidity"]


def test_add_device_prints_token_last(app, engine):
    result = app.test_cli_runner().invoke(args=["add-device", "lab-pi"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert storage.authenticate(engine, token) is not None
    with engine.connect() as conn:
        assert token not in str(conn.exec_driver_sql("SELECT * FROM device").all())
    again = app.test_cli_runner().invoke(args=["add-device", "lab-pi"])
    assert again.exit_code != 0 and "already exists" in again.output
    listed = app.test_cli_runner().invoke(args=["list-devices"])
    assert "lab-pi" in listed.output


@pytest.mark.parametrize("args,error", [
    (["pm2_5", "--unit", "µg/m³", "--min", "0", "--max", "1000"], None),
    (["PM25", "--unit", "x", "--min", "0", "--max", "1"], "lowercase"),
    (["co2", "--unit", "ppm", "--min", "0", "--max", "1"], "already exists"),
    (["noise", "--unit", "dB", "--min", "10", "--max", "1"], "must be below"),
])
def test_add_metric(app, engine, args, error):
    result = app.test_cli_runner().invoke(args=["add-metric", *args])
    if error:
        assert result.exit_code != 0 and error in result.output
    else:
        assert result.exit_code == 0, result.output
        assert "pm2_5" in storage.load_catalogue(engine)
        listed = app.test_cli_runner().invoke(args=["list-metrics"])
        assert "pm2_5\tµg/m³\t0..1000" in listed.output


def test_real_flask_command_from_another_directory(settings, engine, tmp_path):
    flask = str(REPO_ROOT / ".venv" / "bin" / "flask")
    command = [flask, "--app", "flask_front", "add-device", "from-cli"]
    if not (REPO_ROOT / ".venv" / "bin" / "flask").exists():
        command = [sys.executable, "-m", "flask", "--app", "flask_front", "add-device", "from-cli"]
    env = settings_env(settings) | {"PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert storage.authenticate(engine, out.stdout.strip().splitlines()[-1]) is not None


@pytest.mark.parametrize("delete", [False, True])
def test_revoke_device(app, engine, delete):
    token = app.test_cli_runner().invoke(args=["add-device", "lab-pi"]).output.strip().splitlines()[-1]
    device_id = storage.authenticate(engine, token)
    storage.write_readings(engine, ["co2"], [(device_id, 1_790_000_000_000, 500.0)])
    args = ["revoke-device", "lab-pi"] + (["--delete-readings"] if delete else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "revoked" in result.output
    assert storage.authenticate(engine, token) is None
    assert storage.count_readings(engine, device_id) == (0 if delete else 1)
    listed = app.test_cli_runner().invoke(args=["list-devices"]).output
    assert ("lab-pi" not in listed) if delete else ("revoked" in listed)
    missing = app.test_cli_runner().invoke(args=["revoke-device", "nobody"])
    assert missing.exit_code != 0 and "no device named 'nobody'" in missing.output

"""The alert commands of `flask --app flask_front` (flask_front/cli.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from flask_front import create_app
from lib.alerts import Fired, State
from lib.config import REPO_ROOT
from lib.storage import alerts as st
from tests.conftest import settings_env


@pytest.fixture
def cli(settings):
    app = create_app({"SQLALCHEMY_DATABASE_URI": settings.database_url, "TESTING": True})
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=list(args))


@pytest.mark.parametrize("args,expected", [
    (["--metric", "co2", "--above", "1000", "--for", "5m", "--hysteresis", "50"],
     ("above", "co2", 1000.0, 300_000, 50.0)),
    (["--metric", "temperature", "--below", "-2.5"], ("below", "temperature", -2.5, 0, 0.0)),
    (["--metric", "humidity", "--above", "80", "--for", "90"], ("above", "humidity", 80.0, 90_000, 0.0)),
    (["--no-data-minutes", "15"], ("nodata", None, None, 900_000, 0.0)),
])
def test_add_alert(cli, engine, args, expected):
    result = cli("add-alert", "--name", "my rule", *args)
    assert result.exit_code == 0, result.output
    [info] = st.list_rules(engine)
    rule = info.rule
    assert (rule.kind, rule.metric, rule.threshold, rule.duration_ms, rule.hysteresis) == expected
    assert f"alert rule {rule.id} added" in result.output and "every device" in result.output
    assert rule.device_id is None


def test_add_alert_for_one_device_and_list_and_delete(cli, engine, device):
    result = cli("add-alert", "--name", "hot", "--device", device.name, "--metric", "temperature",
                 "--above", "30", "--for", "1h")
    assert result.exit_code == 0, result.output
    [info] = st.list_rules(engine)
    assert info.rule.device_id == device.id and info.rule.duration_ms == 3_600_000
    listed = cli("list-alerts")
    assert f"{info.rule.id}\thot\t{device.name}\ttemperature above 30 for 3600 s" in listed.output
    assert cli("delete-alert", str(info.rule.id)).exit_code == 0
    assert st.list_rules(engine) == []
    again = cli("delete-alert", str(info.rule.id))
    assert again.exit_code != 0 and "no alert rule" in again.output


@pytest.mark.parametrize("args,error", [
    (["--metric", "co2"], "exactly one of"),
    (["--metric", "co2", "--above", "1", "--below", "0"], "exactly one of"),
    (["--above", "1"], "need a metric"),
    (["--metric", "pressure", "--above", "1"], "unknown metric"),
    (["--metric", "co2", "--above", "1", "--for", "5 minutes"], "must look like"),
    (["--metric", "co2", "--above", "1", "--hysteresis", "-1"], "hysteresis"),
    (["--metric", "co2", "--above", "nan"], "threshold must be a finite number"),
    (["--no-data-minutes", "0"], "no-data-minutes"),
    (["--no-data-minutes", "5", "--metric", "co2"], "takes no metric"),
    (["--metric", "co2", "--above", "1", "--device", "nowhere"], "no device named"),
])
def test_add_alert_refuses(cli, engine, args, error):
    result = cli("add-alert", "--name", "bad", *args)
    assert result.exit_code != 0
    assert error in result.output
    assert st.list_rules(engine) == []


def test_list_alert_events(cli, engine, device):
    rule_id = st.add_rule(engine, name="co2 high", kind="above", metric="co2", threshold=1000.0)
    T = 1_790_000_000_000
    [(event_id, _)] = st.save_state(engine, rule_id, device.id, None, State("firing", T, T),
                                    [Fired(T, T, 1234.5)], due_ms=T)
    st.mark_sent(engine, event_id, "firing", T + 1)
    result = cli("list-alert-events")
    assert result.exit_code == 0, result.output
    assert result.output == (f"{event_id}\tfiring\tco2 high\t{device.name}\t1234.5\t"
                             "fired 2026-09-21T14:13:20.000Z\tresolved -\tsent firing\n")


def test_real_flask_add_alert(settings, engine, tmp_path):
    flask = REPO_ROOT / ".venv" / "bin" / "flask"
    command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
    command += ["--app", "flask_front", "add-alert", "--name", "stuffy", "--metric", "co2",
                "--above", "1500", "--for", "10m", "--hysteresis", "100"]
    env = settings_env(settings) | {"PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    [info] = st.list_rules(engine)
    assert info.rule.describe() == "co2 above 1500 for 600 s (hysteresis 100)"

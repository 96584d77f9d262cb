"""`flask --app flask_front run-task`: by name through lib.tasks, with a real worker."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from lib import tasks
from lib.config import REPO_ROOT
from tests.conftest import settings_env
from tests.web_fixtures import make_app


@pytest.fixture
def worker(settings, celery_worker):
    """A worker on the embedded broker (RabbitMQ is covered by the API tests)."""
    return celery_worker(settings, "embedded")


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["run-task", *args])


def test_wait_prints_the_id_and_the_result(worker, tmp_path):
    app = make_app(worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}}))
    result = run(app, "celery_tasks.rollup", "--wait", "--timeout", "60")
    assert result.exit_code == 0, result.output + worker.log()
    task_id, printed = result.output.strip().splitlines()
    assert str(uuid.UUID(task_id)) == task_id
    assert {"marks", "minute_rows", "hour_rows"} <= set(json.loads(printed))


def test_arguments_are_passed_as_json(worker, device, tmp_path):
    app = make_app(worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}}))
    result = run(app, "celery_tasks.rebuild_rollups", "--arg", str(device.id), "--arg", "null", "--arg", "0",
                 "--wait")
    assert result.exit_code == 0, result.output + worker.log()
    assert isinstance(json.loads(result.output.splitlines()[1]), dict)


def test_a_failed_task_prints_its_error_and_exits_1(worker, tmp_path):
    app = make_app(worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}}))
    result = run(app, "celery_tasks.rollup", "--arg", "1", "--arg", "2", "--wait")
    assert result.exit_code == 1
    assert "failed: TypeError" in result.output


def test_without_wait_only_the_id_is_printed(web_settings, tmp_path):
    app = make_app(web_settings.with_overrides({"rabbitmq": {"host": ""},
                                                "celery": {"embedded_dir": str(tmp_path / "celery")}}))
    result = run(app, "celery_tasks.draw_charts")
    assert result.exit_code == 0
    assert str(uuid.UUID(result.output.strip())) == result.output.strip()
    assert len(list((tmp_path / "celery" / "broker").glob("*.msg"))) == 1


def test_wait_gives_up_after_the_timeout(web_settings, tmp_path):
    """No worker: --wait stops after --timeout with the state, exit 1."""
    app = make_app(web_settings.with_overrides({"rabbitmq": {"host": ""},
                                                "celery": {"embedded_dir": str(tmp_path / "celery")}}))
    result = run(app, "celery_tasks.rollup", "--wait", "--timeout", "0.5")
    assert result.exit_code == 1 and "still PENDING after 0.5 s" in result.output


@pytest.mark.parametrize("name", ["celery_tasks.draw", "draw_charts", "celery.backend_cleanup"])
def test_unknown_names_are_refused_with_the_known_ones(web_app, name):
    result = run(web_app, name)
    assert result.exit_code == 2
    assert f"unknown task {name!r}" in result.output
    assert all(known in result.output for known in tasks.TASK_NAMES)


@pytest.mark.parametrize("arg", ["{", "nope", "1 2"])
def test_bad_json_arguments_are_refused(web_app, arg):
    result = run(web_app, "celery_tasks.rollup", "--arg", arg)
    assert result.exit_code == 2 and "--arg must be JSON" in result.output


def test_broker_down_is_a_clear_error(web_settings):
    app = make_app(web_settings.with_overrides({"rabbitmq": {"host": "127.0.0.1", "port": "1"}}))
    result = run(app, "celery_tasks.rollup")
    assert result.exit_code == 1 and "the task queue is unavailable" in result.output


def test_the_flask_command_line(worker, tmp_path):
    """The real `flask --app flask_front run-task ... --wait`, configured by SENSORS_* variables."""
    env = settings_env(worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}}))
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "flask_front", "run-task",
                           "celery_tasks.rollup", "--wait", "--timeout", "60"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + worker.log()
    assert "hour_rows" in done.stdout.splitlines()[-1]

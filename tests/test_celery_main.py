"""The Celery app's configuration, derived from db_config.ini and SENSORS_* variables."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celery_tasks.consumer import RECONNECT_MAX_S
from celery_tasks.main import TASK_MODULES, beat_schedule, make_celery, worker_config
from lib import config as config_mod
from lib.celery_config import celery_config
from tests.conftest import REPO_ROOT, closed_port, settings_env


def cfg(tmp_path, **env) -> config_mod.Config:
    """Settings with the embedded folder in tmp_path and `env` on top."""
    return config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery"), **env})


def test_embedded_transport_needs_no_server(tmp_path):
    """An empty [rabbitmq] host gives a filesystem broker; make_celery creates its folders."""
    settings = cfg(tmp_path)
    conf = celery_config(settings)
    assert conf["broker_url"] == "sensorsfs://"
    options = conf["broker_transport_options"]
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "celery" / "broker")
    assert not (tmp_path / "celery").exists()  # building the configuration creates nothing
    make_celery(settings)
    assert (tmp_path / "celery" / "broker").is_dir() and (tmp_path / "celery" / "control").is_dir()


@pytest.mark.parametrize("env, backend", [
    ({}, "db+sqlite:///{dir}/celery/results.sqlite"),
    ({"SENSORS_RABBITMQ_HOST": "mq.lan"}, "db+sqlite:///{dir}/celery/results.sqlite"),
    ({"SENSORS_MYSQL_DATABASE": "sensors", "SENSORS_MYSQL_PASSWORD": "pw"},
     "db+mysql+pymysql://root:pw@localhost:3306/sensors?charset=utf8mb4"),
    ({"SENSORS_MYSQL_DATABASE": "sensors", "SENSORS_MYSQL_PASSWORD": "pw", "SENSORS_RABBITMQ_HOST": "mq.lan"},
     "db+mysql+pymysql://root:pw@localhost:3306/sensors?charset=utf8mb4"),
], ids=["sqlite-embedded", "sqlite-rabbitmq", "mysql-embedded", "mysql-rabbitmq"])
def test_results_go_to_the_database_on_every_broker(tmp_path, env, backend):
    """Never rpc://: every process must read every result. SQLite results get their own file."""
    settings = cfg(tmp_path, SENSORS_MYSQL_USER="root", SENSORS_MYSQL_HOST="localhost", **env)
    assert celery_config(settings)["result_backend"] == backend.format(dir=tmp_path)


def test_rabbitmq_uses_amqp(tmp_path):
    """A [rabbitmq] host gives amqp:// and no filesystem options."""
    conf = celery_config(cfg(tmp_path, SENSORS_RABBITMQ_HOST="mq.lan", SENSORS_RABBITMQ_USER="pi",
                             SENSORS_RABBITMQ_PASSWORD="s3cret"))
    assert conf["broker_url"] == "amqp://pi:s3cret@mq.lan:5672/"
    assert "broker_transport_options" not in conf


@pytest.mark.parametrize("env", [{}, {"SENSORS_RABBITMQ_HOST": "mq.lan"}], ids=["embedded", "rabbitmq"])
def test_beat_schedule_folder_exists_on_every_broker(tmp_path, env):
    """Beat's schedule file can be created whichever broker is configured (it lives in embedded_dir)."""
    settings = cfg(tmp_path, **env)
    make_celery(settings)
    schedule = Path(worker_config(settings)["beat_schedule_filename"])
    assert schedule.parent == tmp_path / "celery" and schedule.parent.is_dir()


def test_result_backend_can_be_chosen(tmp_path):
    """[celery] result_backend replaces the default on either broker and database."""
    url = "db+sqlite:////tmp/results.db"
    for env in ({}, {"SENSORS_RABBITMQ_HOST": "mq"}, {"SENSORS_MYSQL_DATABASE": "x"}):
        assert celery_config(cfg(tmp_path, SENSORS_CELERY_RESULT_BACKEND=url, **env))["result_backend"] == url


def test_utc_queue_and_reliability_settings(tmp_path):
    """UTC throughout; tasks go to the configured queue and survive a worker killed mid-task."""
    conf = worker_config(cfg(tmp_path, SENSORS_CELERY_QUEUE="lab-3", SENSORS_CELERY_CONCURRENCY="4"))
    assert conf["enable_utc"] is True and conf["timezone"] == "UTC"
    assert conf["task_default_queue"] == "lab-3" and [q.name for q in conf["task_queues"]] == ["lab-3"]
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_concurrency"] == 4 and conf["accept_content"] == ["json"]


def test_beat_schedule_defaults(tmp_path):
    """Rollups every minute, alerts every 30 s, charts hourly, retention daily; each expires in one interval."""
    schedule = beat_schedule(cfg(tmp_path))
    assert {name: (entry["task"], entry["schedule"]) for name, entry in schedule.items()} == {
        "rollup": ("celery_tasks.rollup", 60.0),
        "alerts": ("celery_tasks.evaluate_alerts", 30.0),
        "charts": ("celery_tasks.draw_charts", 3600.0),
        "retention": ("celery_tasks.retention", 86400.0),
    }
    assert all(entry["options"]["expires"] == entry["schedule"] for entry in schedule.values())


def test_beat_intervals_are_configurable(tmp_path):
    """Every interval comes from db_config.ini or the environment."""
    schedule = beat_schedule(cfg(tmp_path, SENSORS_CELERY_ROLLUP_SECONDS="15", SENSORS_CELERY_ALERT_SECONDS="5",
                                 SENSORS_CHARTS_INTERVAL_SECONDS="600", SENSORS_CELERY_RETENTION_SECONDS="3600"))
    assert [schedule[n]["schedule"] for n in ("rollup", "alerts", "charts", "retention")] == [15, 5, 600, 3600]


@pytest.mark.parametrize("value", ["0", "-5", "often"])
def test_bad_interval_is_refused_with_its_name(tmp_path, value):
    """A zero, negative or non-numeric interval names the key at fault."""
    with pytest.raises(ValueError, match="rollup_seconds"):
        beat_schedule(cfg(tmp_path, SENSORS_CELERY_ROLLUP_SECONDS=value))


def test_importing_builds_nothing(tmp_path):
    """Importing the package and its task modules reads no settings and creates no folder."""
    import subprocess
    import sys

    from lib.config import REPO_ROOT
    code = ("import sys, celery_tasks, celery_tasks.main, celery_tasks.rollup_tasks, celery_tasks.alerts, "
            "celery_tasks.draw_picture.draw; print(celery_tasks.main._worker_app)")
    env = {"PATH": "/usr/bin:/bin", "SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery"),
           "SENSORS_CONFIG": str(tmp_path / "absent.ini")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr
    assert not (tmp_path / "celery").exists()


def test_app_registers_every_scheduled_task(tmp_path, monkeypatch):
    """`celery -A celery_tasks` finds one app, built on first access, with every scheduled task."""
    from celery.app.utils import find_app

    from celery_tasks import main
    monkeypatch.setenv("SENSORS_CELERY_EMBEDDED_DIR", str(tmp_path / "celery"))
    monkeypatch.setattr(main, "_worker_app", None)
    app = find_app("celery_tasks")
    assert app is main.worker_app() and app is find_app("celery_tasks")
    assert app.conf.beat_schedule_filename == str(tmp_path / "celery" / "beat-schedule")
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled <= set(app.tasks)


def test_make_celery_keeps_its_settings(tmp_path):
    """Tasks read the settings of the app that runs them; task options come from settings too."""
    settings = cfg(tmp_path, SENSORS_CELERY_QUEUE="q1", SENSORS_ALERTS_WEBHOOK_RETRIES="7")
    app = make_celery(settings)
    assert app.sensors is settings and app.conf.task_default_queue == "q1"
    assert set(TASK_MODULES) <= set(app.conf.include)
    app.loader.import_default_modules()
    assert app.tasks["celery_tasks.send_webhook"].max_retries == 7


def test_beat_draws_charts_when_it_starts(settings, engine, device, celery_worker, tmp_path):
    """Starting beat renders the charts at once (the [charts] interval is an hour)."""
    import subprocess
    import sys
    import time

    from lib import storage
    from lib.config import REPO_ROOT
    from lib.storage import charts as chart_store
    from tests.conftest import settings_env

    now = storage.now_ms()
    storage.write_readings(engine, ["co2"], [(device.id, now - i * 60_000, 600.0 + i) for i in range(5)])
    worker = celery_worker(settings, "embedded")
    log = open(tmp_path / "beat.log", "w")
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_tasks", "beat", "--loglevel", "INFO"],
                            cwd=REPO_ROOT, env=settings_env(worker.settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (paths := chart_store.latest_paths(engine, device.id)):
            assert time.monotonic() < deadline, (tmp_path / "beat.log").read_text() + worker.log()
            time.sleep(0.5)
        chart_dir = worker.settings.other.flask_path
        assert {p.span for p in paths} == {"24h", "7d", "30d"}
        assert all((chart_dir / p.file).is_file() for p in paths)
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()


def test_celery_script_finds_the_app(tmp_path):
    """`.venv/bin/celery -A celery_tasks` (the README's form, not `python -m`) loads the app and lib."""
    import subprocess
    import sys

    from lib.config import REPO_ROOT
    script = Path(sys.executable).parent / "celery"
    env = {"PATH": "/usr/bin:/bin", "SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery"),
           "SENSORS_SQLITE_PATH": str(tmp_path / "sensors.db")}
    done = subprocess.run([str(script), "-A", "celery_tasks", "report"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"db+sqlite:///{tmp_path / 'celery' / 'results.sqlite'}" in done.stdout


def test_the_worker_retries_a_lost_broker_every_few_seconds(tmp_path):
    """Celery's own schedule (2, 4, 6 … 30 s) left a worker down for up to 30 s after RabbitMQ returned."""
    settings = cfg(tmp_path, SENSORS_RABBITMQ_HOST="127.0.0.1", SENSORS_RABBITMQ_PORT=str(closed_port()),
                   SENSORS_SQLITE_PATH=str(tmp_path / "sensors.db"))
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "solo",
                                 "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
                                cwd=REPO_ROOT, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT)
        try:
            waits = []
            deadline = time.monotonic() + 60
            while len(waits) < 4 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
                waits = [float(s) for s in re.findall(r"Trying again in ([\d.]+) seconds", log_path.read_text())]
        finally:
            proc.kill()
            proc.wait(10)
    assert len(waits) >= 4, log_path.read_text()[-2000:]
    assert max(waits) <= RECONNECT_MAX_S, waits

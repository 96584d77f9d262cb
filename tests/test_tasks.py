"""lib.tasks: sending by name and reading results from any process, against real workers."""
from __future__ import annotations

import re
import time
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lib import config as config_mod, storage, tasks
from lib.celery_config import RESULT_TABLES, not_a_result_table
from lib.models import Base


def wait_ready(client, task_id: str, timeout: float = 60) -> dict:
    """Poll task_status until the task has finished."""
    status = tasks.wait(client, task_id, timeout)
    assert status["ready"], f"task {task_id} did not finish: {status}"
    return status


def registered_tasks(worker_log: str) -> set[str]:
    """The project's task names the worker lists in its start-up banner."""
    return set(re.findall(r"^\s+\. (celery_tasks\.\S+)", worker_log, re.MULTILINE))


@pytest.mark.parametrize("broker", ["rabbitmq", "embedded"])
def test_a_result_is_read_by_another_client(broker, settings, celery_worker):
    """A task sent through one client is seen finished, with its result or error, by a second one."""
    worker = celery_worker(settings, broker)
    sender, reader = tasks.client(worker.settings), tasks.client(worker.settings)
    ok = tasks.send(sender, "celery_tasks.rollup")
    status = wait_ready(reader, ok)
    assert status["state"] == "SUCCESS" and isinstance(status["result"], dict), worker.log()
    assert status["id"] == ok and status["done"].endswith("Z") and abs(status["done_ms"] - storage.now_ms()) < 60_000
    bad = tasks.send(sender, "celery_tasks.rollup", kwargs={"no_such_argument": 1})
    status = wait_ready(reader, bad)
    assert status["state"] == "FAILURE" and status["error"].startswith("TypeError")
    assert "result" not in status
    assert registered_tasks(worker.log()) == set(tasks.TASK_NAMES)


def test_task_names_are_what_the_worker_registers(tmp_path):
    """TASK_NAMES lists exactly the celery_tasks.* tasks of the worker's app (without starting one)."""
    from celery_tasks.main import make_celery

    app = make_celery(config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path)}))
    app.loader.import_default_modules()
    assert {name for name in app.tasks if name.startswith("celery_tasks.")} == set(tasks.TASK_NAMES)


def test_unknown_id_is_pending(tmp_path):
    """An id nobody used is PENDING and not ready, as Celery reports it."""
    client = tasks.client(config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path)}))
    status = tasks.task_status(client, str(uuid.uuid4()))
    assert status["state"] == "PENDING" and status["ready"] is False and "done" not in status


@pytest.mark.parametrize("task_id", ["", "../etc/passwd", "1; DROP TABLE x", None, 42, "0" * 33])
def test_malformed_id_is_refused(task_id, tmp_path):
    """Only UUIDs are looked up."""
    client = tasks.client(config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path)}))
    with pytest.raises(ValueError, match="not a task id"):
        tasks.task_status(client, task_id)


@pytest.mark.parametrize("name", ["celery_tasks.draw", "rollup", "celery.backend_cleanup", ""])
def test_unknown_names_are_refused(name, tmp_path):
    """A mistyped name is refused before anything is sent, listing the known names."""
    settings = config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery")})
    with pytest.raises(ValueError, match="celery_tasks.draw_charts"):
        tasks.send(tasks.client(settings), name)
    assert not (tmp_path / "celery").exists()


def test_creating_a_client_connects_to_nothing(tmp_path):
    """A client for an unreachable broker and database is made without error (it connects on use)."""
    settings = config_mod.load(environ={"SENSORS_RABBITMQ_HOST": "127.0.0.1", "SENSORS_RABBITMQ_PORT": "1",
                                        "SENSORS_MYSQL_DATABASE": "x", "SENSORS_MYSQL_PORT": "1",
                                        "SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery")})
    client = tasks.client(settings)
    assert client.conf.result_backend.startswith("db+mysql+pymysql://")
    assert not (tmp_path / "celery").exists()


def test_unreachable_broker_is_reported_quickly(tmp_path):
    """Sending to a closed RabbitMQ port raises BrokerUnavailable within seconds."""
    settings = config_mod.load(environ={"SENSORS_RABBITMQ_HOST": "127.0.0.1", "SENSORS_RABBITMQ_PORT": "1",
                                        "SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery")})
    started = time.monotonic()
    with pytest.raises(tasks.BrokerUnavailable, match="unavailable"):
        tasks.send(tasks.client(settings), "celery_tasks.rollup")
    assert time.monotonic() - started < 15


def test_unreachable_results_are_reported(tmp_path):
    """A result backend that cannot be read raises ResultsUnavailable, not a driver error."""
    settings = config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery"),
                                        "SENSORS_CELERY_RESULT_BACKEND": "db+mysql+pymysql://root@127.0.0.1:1/x"})
    with pytest.raises(tasks.ResultsUnavailable):
        tasks.task_status(tasks.client(settings), str(uuid.uuid4()))


def test_celery_tables_in_our_database_are_left_out_of_schema_comparisons(mysql_database, tmp_path,
                                                                         celery_worker):
    """On MariaDB the results live in our database; Alembic's comparison and init_db ignore their tables."""
    from tests.conftest import mysql_settings, reset_database

    settings = mysql_settings(mysql_database)
    reset_database(settings)
    worker = celery_worker(settings, "embedded")
    client = tasks.client(worker.settings)
    assert wait_ready(client, tasks.send(client, "celery_tasks.rollup"))["state"] == "SUCCESS"
    engine = storage.make_engine(settings.database_url)
    try:
        assert RESULT_TABLES <= set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            plain = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            filtered = compare_metadata(MigrationContext.configure(
                conn, opts={"include_name": not_a_result_table}), Base.metadata)
        assert {d[1].name for d in plain if d[0] == "remove_table"} == set(RESULT_TABLES)
        assert filtered == []
        storage.init_db(engine)  # an installed database with Celery's tables upgrades as before
    finally:
        engine.dispose()


def test_migrations_env_uses_the_filter():
    """`alembic revision --autogenerate` runs through env.py, which must pass the filter."""
    from lib.migrations import MIGRATIONS_DIR
    assert "include_name=not_a_result_table" in (MIGRATIONS_DIR / "env.py").read_text()

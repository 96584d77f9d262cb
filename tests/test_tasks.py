"""Task state lookup by id, against a real worker on RabbitMQ and on the embedded transport."""
from __future__ import annotations

import time
import uuid

import pytest

from celery_tasks.result import task_status


def wait_ready(task_id: str, app, timeout: float = 60) -> dict:
    """Poll task_status until the task has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = task_status(task_id, app)
        if status["ready"]:
            return status
        time.sleep(0.2)
    pytest.fail(f"task {task_id} did not finish: {status}")


@pytest.mark.parametrize("broker", ["rabbitmq", "embedded"])
def test_success_and_failure_by_id(broker, settings, celery_worker):
    """A finished task reports SUCCESS with its result; a failed one FAILURE with its error text."""
    worker = celery_worker(settings, broker)
    ok = worker.app.send_task("celery_tasks.rollup")
    status = wait_ready(ok.id, worker.app)
    assert status["state"] == "SUCCESS" and isinstance(status["result"], dict)
    assert status["id"] == ok.id and "done" in status
    bad = worker.app.send_task("celery_tasks.rollup", kwargs={"no_such_argument": 1})
    status = wait_ready(bad.id, worker.app)
    assert status["state"] == "FAILURE" and status["error"].startswith("TypeError")
    assert "result" not in status


def test_unknown_id_is_pending(tmp_path):
    """An id nobody used is PENDING and not ready, as Celery reports it."""
    from celery_tasks.main import make_celery
    from lib import config as config_mod
    app = make_celery(config_mod.load(environ={"SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path)}))
    status = task_status(str(uuid.uuid4()), app)
    assert status["state"] == "PENDING" and status["ready"] is False


@pytest.mark.parametrize("task_id", ["", "../etc/passwd", "1; DROP TABLE x", None, 42])
def test_malformed_id_is_refused(task_id):
    """Only UUIDs are looked up."""
    with pytest.raises(ValueError, match="not a task id"):
        task_status(task_id)

"""A Celery pool process SIGKILLed mid-task: the task is redelivered and its result is the same."""
from __future__ import annotations

from bench.fault_crashes import celery_child_killed
from tests.conftest import mysql_settings, require_rabbitmq


def test_celery_child_killed_mid_rollup(make_database, tmp_path):
    """A rollup held on a table lock loses its process; RabbitMQ redelivers it (acks_late)."""
    require_rabbitmq()
    result = celery_child_killed(mysql_settings(make_database("faults")), tmp_path)
    print(result)
    assert result.problems == []
    assert result.figures["runs of the task"] == 2
    assert result.stored == result.sent

"""Sending Celery tasks by name and reading their state, for the web app and the CLI (was celery_tasks/result.py).

Nothing here imports celery_tasks: a client knows the broker and the result backend
(lib.celery_config) and the task names, never the task code. Results live in the
database by default, so any process can read any task's result.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from celery import Celery, states
from celery.result import AsyncResult

from lib import config as config_mod
from lib.celery_config import celery_config, prepare_folders
from lib.validation import ms_to_iso

# Every task the worker registers (tests/test_tasks.py checks it against a real worker).
TASK_NAMES = (
    "celery_tasks.rollup",
    "celery_tasks.retention",
    "celery_tasks.rebuild_rollups",
    "celery_tasks.draw_charts",
    "celery_tasks.evaluate_alerts",
    "celery_tasks.send_webhook",
)
# One quick retry: a web request must answer "broker down" in seconds, not wait for it.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
POLL_S = 0.2


class BrokerUnavailable(RuntimeError):
    """The broker did not take the task (RabbitMQ down, embedded folder not writable)."""


class ResultsUnavailable(RuntimeError):
    """The result backend could not be read."""


def client(settings: config_mod.Config) -> Celery:
    """A Celery app that only sends tasks by name and reads results; connects on first use."""
    app = Celery("sensors-client", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.sensors = settings
    return app


def send(app: Celery, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """Queue task `name`; returns its id. ValueError for an unknown name, BrokerUnavailable when refused."""
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}")
    try:
        settings = getattr(app, "sensors", None)
        if settings is not None and not settings.uses_rabbitmq:
            prepare_folders(settings)  # the embedded broker's folders, on first send
        result = app.send_task(name, args=list(args), kwargs=dict(kwargs or {}),
                               retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:  # kombu raises OperationalError, OSError and more for one cause
        raise BrokerUnavailable(f"the task queue is unavailable: {type(exc).__name__}: {exc}") from exc
    return result.id


def check_id(task_id: Any) -> str:
    """The canonical form of a task id; ValueError unless it is a UUID."""
    try:
        return str(uuid.UUID(task_id))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{task_id!r} is not a task id (a UUID)") from None


def task_status(app: Celery, task_id: str) -> dict[str, Any]:
    """State of a task: PENDING (unknown or waiting), STARTED, RETRY, SUCCESS or FAILURE.

    A success carries its result, a failure its error text (never a traceback), a
    finished task the time it finished (`done`, ISO 8601 UTC, and `done_ms`).
    """
    task_id = check_id(task_id)
    try:
        result = AsyncResult(task_id, app=app)  # the database backend creates its tables here
        state = result.state
        value = result.result
        done = result.date_done
    except Exception as exc:  # the backend's driver decides the type (SQLAlchemy, kombu...)
        raise ResultsUnavailable(f"task results are unavailable: {type(exc).__name__}: {exc}") from exc
    status: dict[str, Any] = {"id": task_id, "state": state, "ready": state in states.READY_STATES}
    if state == states.SUCCESS:
        status["result"] = value
    elif state in states.PROPAGATE_STATES or state == states.RETRY:
        status["error"] = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
    done_ms = _epoch_ms(done)
    if done_ms is not None:
        status["done_ms"] = done_ms
        status["done"] = ms_to_iso(done_ms)
    return status


def wait(app: Celery, task_id: str, timeout: float) -> dict[str, Any]:
    """Poll task_status until the task is ready or `timeout` seconds passed; returns the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = task_status(app, task_id)
        if status["ready"] or time.monotonic() >= deadline:
            return status
        time.sleep(POLL_S)


def _epoch_ms(value: Any) -> int | None:
    """Epoch ms of Celery's date_done: a datetime (naive means UTC) or an ISO string."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)

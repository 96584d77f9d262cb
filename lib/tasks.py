"""Look up a task's state and result by id (for the web API and the command line).

With RabbitMQ the result backend is rpc:// (as in the original): results travel
back to the process that sent the task, so only that process sees them. Set
[celery] result_backend (e.g. db+mysql+pymysql://...) to look them up anywhere.
"""
from __future__ import annotations

import uuid
from typing import Any

from celery import Celery, states
from celery.result import AsyncResult


def task_status(task_id: str, app: Celery | None = None) -> dict[str, Any]:
    """State of a task: PENDING (unknown or waiting), STARTED, RETRY, SUCCESS or FAILURE.

    A success carries its result, a failure its error text, never a traceback.
    """
    try:
        task_id = str(uuid.UUID(task_id))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{task_id!r} is not a task id") from None
    if app is None:
        from celery_tasks.main import app
    result = AsyncResult(task_id, app=app)
    state = result.state
    status: dict[str, Any] = {"id": task_id, "state": state, "ready": state in states.READY_STATES}
    if state == states.SUCCESS:
        status["result"] = result.result
    elif state in states.PROPAGATE_STATES or state == states.RETRY:
        error = result.result
        status["error"] = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    if result.date_done is not None:
        status["done"] = result.date_done.isoformat()
    return status

"""GET /api/v1/tasks/<id>: a task's state from any app instance, with a real worker."""
from __future__ import annotations

import re
import time
import uuid

import pytest

from lib import tasks
from tests.web_fixtures import make_app


def web_settings_of(worker, tmp_path, name: str):
    """The worker's settings (queue, broker, charts) with an app's own var_dir."""
    return worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / name)}})


def poll(client, task_id: str, timeout: float = 60) -> dict:
    """GET /tasks/<id> until the task is ready."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        if response.json["ready"] or time.monotonic() > deadline:
            return response.json
        time.sleep(0.2)


@pytest.mark.parametrize("broker", ["rabbitmq", "embedded"])
def test_second_app_instance_sees_the_result(broker, settings, celery_worker, tmp_path):
    """A task sent by one app (one gunicorn worker) is read back by another, result and error alike."""
    worker = celery_worker(settings, broker)
    first = make_app(web_settings_of(worker, tmp_path, "first"))
    second = make_app(web_settings_of(worker, tmp_path, "second"))
    assert first.extensions["sensors_celery"] is not second.extensions["sensors_celery"]
    sent = tasks.send(first.extensions["sensors_celery"], "celery_tasks.rollup")
    body = poll(second.test_client(), sent)
    assert body["state"] == "SUCCESS" and body["id"] == sent, worker.log()
    assert set(body["result"]) >= {"marks", "minute_rows", "hour_rows"}
    assert body["done"].endswith("Z") and isinstance(body["done_ms"], int) and "error" not in body
    failed = tasks.send(first.extensions["sensors_celery"], "celery_tasks.rollup", kwargs={"bogus": 1})
    body = poll(second.test_client(), failed)
    assert body["state"] == "FAILURE" and body["error"].startswith("TypeError") and "result" not in body


def test_unknown_id_is_pending(web_client):
    task_id = str(uuid.uuid4())
    response = web_client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200
    assert response.json == {"id": task_id, "state": "PENDING", "ready": False}


def test_id_is_normalised(web_client):
    """Upper-case or brace-less spellings of a UUID name the same task."""
    task_id = uuid.uuid4()
    response = web_client.get(f"/api/v1/tasks/{str(task_id).upper()}")
    assert response.status_code == 200 and response.json["id"] == str(task_id)


@pytest.mark.parametrize("task_id", ["nope", "1234", "' OR 1=1 --", "%00", "x" * 300,
                                     "123e4567-e89b-12d3-a456-42661417400"])
def test_malformed_id_is_400_with_a_reason(web_client, task_id):
    response = web_client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 400
    assert response.json["error"] == "Bad Request" and "not a task id" in response.json["detail"]


def test_results_backend_down_is_503(web_settings):
    """An unreadable result backend gives 503 JSON, never 500."""
    app = make_app(web_settings.with_overrides(
        {"celery": {"result_backend": "db+mysql+pymysql://root@127.0.0.1:1/x"}}))
    response = app.test_client().get(f"/api/v1/tasks/{uuid.uuid4()}")
    assert response.status_code == 503 and "unavailable" in response.json["detail"]


@pytest.mark.parametrize("who, status", [("anonymous", 401), ("user", 200), ("admin", 200)])
def test_reading_follows_the_public_switch(web_settings, admin, user, who, status):
    app = make_app(web_settings.with_overrides({"web": {"public": "off"}}))
    headers = {"anonymous": {}, "user": user.headers, "admin": admin.headers}[who]
    response = app.test_client().get(f"/api/v1/tasks/{uuid.uuid4()}", headers=headers)
    assert response.status_code == status


def test_documented_in_openapi(web_client):
    spec = web_client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/tasks/{task_id}"]["get"]
    assert {"200", "400", "503"} <= set(operation["responses"])
    schema = spec["components"]["schemas"]["Task"]
    assert {"id", "state", "ready", "result", "error", "done", "done_ms"} <= set(schema["properties"])


CANONICAL = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize("task_id", [CANONICAL, CANONICAL.upper(), "{%s}" % CANONICAL, "urn:uuid:" + CANONICAL,
                                     CANONICAL.replace("-", ""), "__main__", CANONICAL[:-1] + "_"])
def test_the_documented_id_pattern_is_exactly_what_is_taken(web_client, task_id):
    """Found by schemathesis: the document allowed any string (schema-valid ids got 400), and
    uuid.UUID took spellings (braces, urn:, no hyphens) that no task id has."""
    spec = web_client.get("/api/v1/openapi.json").json
    param = spec["paths"]["/api/v1/tasks/{task_id}"]["parameters"][0]
    assert param["schema"]["format"] == "uuid"
    documented = re.fullmatch(param["schema"]["pattern"], task_id) is not None
    response = web_client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == (200 if documented else 400), response.json
    assert documented == (task_id.lower() == CANONICAL)

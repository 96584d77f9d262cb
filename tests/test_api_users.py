"""GET /api/v1/users: the web users, for administrators only, on SQLite and MariaDB."""
from __future__ import annotations

from datetime import datetime

import pytest


def test_administrators_list_every_user_without_secrets(web_client, admin, user):
    reply = web_client.get("/api/v1/users", headers=admin.headers)
    assert reply.status_code == 200
    got = reply.get_json()
    assert [u["name"] for u in got] == ["admin", "reader"]
    assert {u["name"]: u["is_admin"] for u in got} == {"admin": True, "reader": False}
    assert all(set(u) == {"id", "name", "is_admin", "created", "created_ms"} for u in got)
    for item in got:
        when = datetime.fromisoformat(item["created"].replace("Z", "+00:00"))
        assert round(when.timestamp() * 1000) == item["created_ms"]


@pytest.mark.parametrize("who, status", [("anonymous", 401), ("user", 403), ("bad token", 401)])
def test_others_may_not_list_users(web_client, admin, user, who, status):
    headers = {"anonymous": {}, "user": user.headers, "bad token": {"Authorization": "Bearer nope"}}[who]
    reply = web_client.get("/api/v1/users", headers=headers)
    assert reply.status_code == status and set(reply.get_json()) == {"error", "detail"}


def test_documented_in_openapi(web_client):
    spec = web_client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/users"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403"}
    assert "UserSchema" in str(operation["responses"]["200"]) or "User" in spec["components"]["schemas"]

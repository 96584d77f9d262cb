"""The OpenAPI document at /api/v1/openapi.json is valid and real responses conform to it."""
from __future__ import annotations

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from lib import storage
from lib.storage import alerts as alert_store

NAMES = ["co2", "temperature", "humidity"]


@pytest.fixture
def spec(web_client) -> OpenAPI:
    """The served document, checked as OpenAPI 3 on load."""
    response = web_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return OpenAPI.from_dict(response.json)


@pytest.fixture
def populated(engine, device):
    """A device with readings and a rule, so that responses carry data."""
    now = storage.now_ms()
    storage.write_readings(engine, NAMES, [(device.id, now - i * 1000, 400.0 + i, 20.5, None) for i in range(50)])
    alert_store.add_rule(engine, name="co2 high", kind="above", metric="co2", threshold=1000.0)
    return device


def calls(device_id: int, admin_headers: dict, device_headers: dict) -> list[tuple]:
    """(method, path, keyword arguments of the test client) of good and bad requests."""
    d = device_id
    return [
        ("get", "/api/v1/devices", {}),
        ("get", f"/api/v1/devices/{d}", {}),
        ("get", "/api/v1/devices/9999", {}),
        ("get", f"/api/v1/devices/{d}/latest", {}),
        ("get", "/api/v1/latest", {}),
        ("get", "/api/v1/metrics", {}),
        ("get", f"/api/v1/devices/{d}/readings", {}),
        ("get", f"/api/v1/devices/{d}/readings?resolution=raw&metrics=co2", {}),
        ("get", f"/api/v1/devices/{d}/readings?resolution=1h&agg=avg", {}),
        ("get", f"/api/v1/devices/{d}/readings?from=nonsense", {}),
        ("get", f"/api/v1/devices/{d}/readings.csv", {}),
        ("get", "/api/v1/alerts/rules", {}),
        ("get", "/api/v1/alerts/events?state=firing", {}),
        ("get", "/api/v1/alerts/events?state=sideways", {}),
        ("get", "/api/v1/healthz", {}),
        ("post", "/api/v1/devices", {"json": {"name": "spec-pi"}, "headers": admin_headers}),
        ("post", "/api/v1/devices", {"json": {"name": "spec-pi"}}),
        ("post", "/api/v1/devices", {"json": {"name": ""}, "headers": admin_headers}),
        ("post", "/api/v1/metrics", {"json": {"name": "pm2_5", "unit": "µg/m³", "min": 0, "max": 1000},
                                     "headers": admin_headers}),
        ("post", "/api/v1/alerts/rules", {"json": {"name": "quiet", "no_data_minutes": 5},
                                          "headers": admin_headers}),
        ("post", "/api/v1/alerts/rules", {"json": {"name": "bad", "metric": "co2"}, "headers": admin_headers}),
        ("post", "/api/v1/readings", {"json": {"readings": [{"seq": 1, "values": {"co2": 500}},
                                                            {"seq": 2, "values": {"co2": -1}}]},
                                      "headers": device_headers}),
        ("post", "/api/v1/readings", {"data": "not json", "headers": device_headers}),
        ("delete", "/api/v1/alerts/rules/1", {"headers": admin_headers}),
        ("delete", f"/api/v1/devices/{d}", {"headers": admin_headers}),
    ]


def test_every_response_conforms_to_the_document(web_client, spec, populated, admin):
    device_headers = {"Authorization": f"Bearer {populated.token}"}
    statuses = set()
    for method, path, kwargs in calls(populated.id, admin.headers, device_headers):
        response = getattr(web_client, method)(path, **kwargs)
        statuses.add(response.status_code)
        assert response.status_code < 500, (method, path, response.data)
        # The request's body has been read by the app: describe the request anew without it.
        request = WerkzeugOpenAPIRequest(Request(EnvironBuilder(method=method.upper(), path=path).get_environ()))
        spec.validate_response(request, WerkzeugOpenAPIResponse(response))
    assert {200, 201, 204, 400, 401, 404, 422} <= statuses


def test_every_operation_is_described(spec, web_client):
    """Each operation has a summary and its responses; writes say they need a token or a login."""
    document = web_client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation.get("summary"), (method, path)
            assert operation["responses"], (method, path)


def test_interactive_docs_are_served_without_a_cdn(web_client):
    page = web_client.get("/api/v1/docs")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "swagger" in text.lower()
    for host in ("cdn.jsdelivr", "unpkg.com", "cdnjs"):
        assert host not in text

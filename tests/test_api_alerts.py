"""/api/v1/alerts/rules and /api/v1/alerts/events on SQLite and MariaDB."""
from __future__ import annotations

import pytest

from celery_tasks.alerts import evaluate  # the plain function the evaluate_alerts task runs
from lib import storage
from lib.storage import alerts as alert_store
from tests.test_api_devices import BUILTIN, HUGE_ID, assert_error, iso_ms
from tests.web_fixtures import make_app

RULES = "/api/v1/alerts/rules"
EVENTS = "/api/v1/alerts/events"
RULE_KEYS = {"id", "name", "device_id", "device", "kind", "metric", "threshold", "duration_s", "hysteresis",
             "condition", "enabled", "created", "created_ms"}
EVENT_KEYS = {"id", "rule_id", "rule", "device_id", "device", "state", "value", "resolved_value", "since",
              "since_ms", "fired", "fired_ms", "resolved", "resolved_ms"}


def post_rule(client, admin, body: dict):
    return client.post(RULES, json=body, headers=admin.headers)


# ---- POST /alerts/rules ------------------------------------------------------------------

@pytest.mark.parametrize("body,expected", [
    ({"name": "co2 high", "metric": "co2", "above": 1000, "duration": "5m", "hysteresis": 50},
     {"kind": "above", "metric": "co2", "threshold": 1000.0, "duration_s": 300.0, "hysteresis": 50.0,
      "condition": "co2 above 1000 for 300 s (hysteresis 50)"}),
    ({"name": "cold", "metric": "temperature", "below": 5.5},
     {"kind": "below", "metric": "temperature", "threshold": 5.5, "duration_s": 0.0, "hysteresis": 0.0,
      "condition": "temperature below 5.5"}),
    ({"name": "dry", "metric": "humidity", "below": 20, "duration": "1h30m"},
     {"kind": "below", "duration_s": 5400.0, "condition": "humidity below 20 for 5400 s"}),
    ({"name": "slow", "metric": "co2", "above": 2000, "duration": "90"},
     {"duration_s": 90.0, "condition": "co2 above 2000 for 90 s"}),
    ({"name": "silent", "no_data_minutes": 10},
     {"kind": "nodata", "metric": None, "threshold": None, "duration_s": 600.0, "condition": "no data for 600 s"}),
], ids=["above-5m-hysteresis", "below", "below-1h30m", "duration-seconds", "no-data"])
def test_rules_are_added_with_their_condition(web_client, admin, body, expected):
    """201 with the rule in words; it is listed by GET as returned."""
    response = post_rule(web_client, admin, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    rule = response.get_json()
    assert set(rule) == RULE_KEYS
    assert {k: rule[k] for k in expected} == expected
    assert rule["name"] == body["name"] and rule["enabled"] is True
    assert rule["device_id"] is None and rule["device"] is None
    assert iso_ms(rule["created"]) == rule["created_ms"]
    assert web_client.get(RULES).get_json() == [rule]


def test_a_rule_for_one_device(web_client, admin, device):
    """device_id names the device; the reply carries its name."""
    response = post_rule(web_client, admin, {"name": "pi co2", "metric": "co2", "above": 900,
                                             "device_id": device.id})
    assert response.status_code == 201
    assert response.get_json()["device_id"] == device.id and response.get_json()["device"] == device.name


@pytest.mark.parametrize("body,status,detail", [
    ({"metric": "co2", "above": 1, "below": 2}, 400, "exactly one"),
    ({"metric": "co2"}, 400, "exactly one"),
    ({"above": 1000}, 400, "need a metric"),
    ({"no_data_minutes": 5, "metric": "co2"}, 400, "no-data rule takes no metric"),
    ({"no_data_minutes": 5, "duration": "5m"}, 400, "no-data rule takes no"),
    ({"no_data_minutes": 5, "hysteresis": 2}, 400, "no-data rule takes no"),
    ({"no_data_minutes": 5, "above": 3, "metric": "co2"}, 400, "exactly one"),
    ({"metric": "pm9", "above": 1}, 400, "unknown metric"),
    ({"metric": "Bad Name", "above": 1}, 400, "lowercase"),
    ({"metric": "co2", "above": 1, "duration": "5x"}, 400, "duration"),
    ({"metric": "co2", "above": 1, "duration": "-5"}, 400, "duration"),
    ({"metric": "co2", "above": 1, "duration": ""}, 400, "duration"),
    ({"name": "   ", "metric": "co2", "above": 1}, 400, "name"),
    ({"metric": "co2", "above": 1, "device_id": 987654}, 400, "no device with id 987654"),
    ({"name": None, "metric": "co2", "above": 1}, 422, "name"),
    ({"name": "", "metric": "co2", "above": 1}, 422, "name"),
    ({"name": "r" * 65, "metric": "co2", "above": 1}, 422, "name"),
    ({"metric": "co2", "above": "high"}, 422, "above"),
    ({"metric": "co2", "above": 1, "hysteresis": -1}, 422, "hysteresis"),
    ({"no_data_minutes": 0}, 422, "no_data_minutes"),
    ({"no_data_minutes": 525601}, 422, "no_data_minutes"),
    ({"metric": "co2", "above": 1, "device_id": "one"}, 422, "device_id"),
    ({"metric": "co2", "above": 1, "enabled": False}, 422, "enabled"),
], ids=["above-and-below", "no-condition", "no-metric", "nodata-metric", "nodata-duration",
        "nodata-hysteresis", "nodata-and-above", "unknown-metric", "bad-metric-name", "bad-duration",
        "negative-duration", "empty-duration", "blank-name", "unknown-device", "null-name", "empty-name",
        "65-char-name", "text-threshold", "negative-hysteresis", "nodata-0", "nodata-too-long",
        "text-device", "unknown-field"])
def test_invalid_rules_are_refused_with_the_reason(web_client, engine, admin, body, status, detail):
    """Each invalid rule: 400 (the domain's reason) or 422 (the schema's), JSON, and nothing stored."""
    body = {"name": "bad rule", **body}
    assert_error(post_rule(web_client, admin, body), status, detail)
    assert alert_store.list_rules(engine) == []


@pytest.mark.parametrize("body", [
    {"metric": "co2", "above": 1, "device_id": HUGE_ID},
    {"metric": "co2", "above": 1, "duration": "100000000d"},
    {"metric": "co2", "above": 1, "duration": "99999999999999999999d"},
], ids=["huge-device-id", "duration-past-int32", "duration-past-int64"])
def test_out_of_range_numbers_are_4xx_not_500(web_client, engine, admin, body):
    """Numbers the columns cannot hold are bad input, refused as such on both databases."""
    response = post_rule(web_client, admin, {"name": "big", **body})
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    assert alert_store.list_rules(engine) == []


@pytest.mark.parametrize("kwargs,status", [
    ({"data": "not json", "content_type": "application/json"}, 400),
    ({"data": "[]", "content_type": "application/json"}, 422),
    ({"data": '{"name": "x", "metric": "co2", "above": NaN}', "content_type": "application/json"}, 422),
])
def test_bad_rule_bodies_are_4xx_json(web_client, admin, kwargs, status):
    """A body that is not a rule object: 4xx JSON."""
    assert_error(web_client.post(RULES, headers=admin.headers, **kwargs), status)


@pytest.mark.parametrize("who,status", [("anonymous", 401), ("user", 403)])
def test_only_admins_add_rules(web_client, engine, request, who, status):
    """Anonymous: 401; a user who is not an administrator: 403."""
    headers = {} if who == "anonymous" else request.getfixturevalue(who).headers
    response = web_client.post(RULES, json={"name": "x", "metric": "co2", "above": 1}, headers=headers)
    assert_error(response, status)
    assert alert_store.list_rules(engine) == []


# ---- DELETE /alerts/rules/<id> -----------------------------------------------------------

def test_deleting_a_rule_is_204_then_404(web_client, engine, admin):
    """First DELETE: 204 with no body and the rule gone; the second: 404 JSON."""
    rule_id = post_rule(web_client, admin, {"name": "x", "no_data_minutes": 3}).get_json()["id"]
    response = web_client.delete(f"{RULES}/{rule_id}", headers=admin.headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert web_client.get(RULES).get_json() == []
    again = web_client.delete(f"{RULES}/{rule_id}", headers=admin.headers)
    assert_error(again, 404, f"no alert rule with id {rule_id}")


@pytest.mark.parametrize("rule_id", [987654, HUGE_ID])
def test_deleting_an_unknown_rule_is_404(web_client, admin, rule_id):
    """No such rule (a huge id included): 404 JSON."""
    assert_error(web_client.delete(f"{RULES}/{rule_id}", headers=admin.headers), 404)


@pytest.mark.parametrize("who,status", [("anonymous", 401), ("user", 403)])
def test_only_admins_delete_rules(web_client, engine, admin, request, who, status):
    """Anonymous: 401; a user: 403; the rule stays."""
    rule_id = post_rule(web_client, admin, {"name": "x", "no_data_minutes": 3}).get_json()["id"]
    headers = {} if who == "anonymous" else request.getfixturevalue(who).headers
    assert_error(web_client.delete(f"{RULES}/{rule_id}", headers=headers), status)
    assert [i.rule.id for i in alert_store.list_rules(engine)] == [rule_id]


# ---- GET /alerts/events -----------------------------------------------------------------

@pytest.fixture
def events(web_client, engine, admin):
    """Two devices and two rules run by the real evaluator: one event still firing, one resolved."""
    hot = storage.add_device(engine, "hot")[0]
    cooled = storage.add_device(engine, "cooled")[0]
    for device in (hot, cooled):
        response = post_rule(web_client, admin, {"name": f"co2 {device.name}", "metric": "co2", "above": 1000,
                                                 "device_id": device.id})
        assert response.status_code == 201
    t0 = storage.now_ms() - 60_000
    storage.write_readings(engine, BUILTIN, [(hot.id, t0, 1500.0, None, None), (cooled.id, t0, 1200.0, None, None)])
    counts, _ = evaluate(engine, t0 + 1000)
    assert counts["firing"] == 2
    storage.write_readings(engine, BUILTIN, [(cooled.id, t0 + 2000, 800.0, None, None)])
    counts, _ = evaluate(engine, t0 + 3000)
    assert counts["resolved"] == 1
    return {"hot": hot.id, "cooled": cooled.id, "t0": t0}


def test_events_of_every_state_newest_first(web_client, events):
    """No filter: both events, with every field."""
    response = web_client.get(EVENTS)
    assert response.status_code == 200
    found = response.get_json()
    assert {e["device_id"] for e in found} == {events["hot"], events["cooled"]}
    assert all(set(e) == EVENT_KEYS for e in found)
    hot = next(e for e in found if e["device_id"] == events["hot"])
    assert hot["state"] == "firing" and hot["value"] == 1500.0 and hot["device"] == "hot"
    assert hot["rule"] == "co2 hot" and hot["since_ms"] == events["t0"] == hot["fired_ms"]
    assert iso_ms(hot["fired"]) == hot["fired_ms"] and hot["resolved"] is None and hot["resolved_ms"] is None


def test_state_firing_lists_only_firing_events(web_client, events):
    """?state=firing: the hot device's event, not the resolved one."""
    found = web_client.get(f"{EVENTS}?state=firing").get_json()
    assert [(e["device_id"], e["state"]) for e in found] == [(events["hot"], "firing")]


def test_state_resolved_lists_only_resolved_events(web_client, events):
    """?state=resolved: the cooled device's event, with the reading that resolved it."""
    found = web_client.get(f"{EVENTS}?state=resolved").get_json()
    assert [(e["device_id"], e["state"]) for e in found] == [(events["cooled"], "resolved")]
    assert found[0]["value"] == 1200.0 and found[0]["resolved_value"] == 800.0
    assert found[0]["resolved_ms"] == events["t0"] + 2000 and iso_ms(found[0]["resolved"]) == found[0]["resolved_ms"]


def test_events_filtered_by_device_and_limited(web_client, events):
    """?device_id= keeps that device's events; ?limit=1 one event."""
    assert [e["device_id"] for e in web_client.get(f"{EVENTS}?device_id={events['hot']}").get_json()] == [events["hot"]]
    assert web_client.get(f"{EVENTS}?device_id={events['hot']}&state=resolved").get_json() == []
    assert len(web_client.get(f"{EVENTS}?limit=1").get_json()) == 1


def test_deleting_a_rule_deletes_its_events(web_client, admin, events):
    """The events of a deleted rule are gone."""
    hot = web_client.get(f"{EVENTS}?device_id={events['hot']}").get_json()[0]
    assert web_client.delete(f"{RULES}/{hot['rule_id']}", headers=admin.headers).status_code == 204
    assert web_client.get(f"{EVENTS}?device_id={events['hot']}").get_json() == []


def test_no_events_is_an_empty_list(web_client):
    """Before any evaluation: []."""
    response = web_client.get(f"{EVENTS}?state=firing")
    assert response.status_code == 200 and response.get_json() == []


@pytest.mark.parametrize("query,field", [
    ("state=bad", "state"), ("state=", "state"), ("state=FIRING", "state"), ("limit=0", "limit"),
    ("limit=1001", "limit"), ("limit=ten", "limit"), ("device_id=x", "device_id"),
])
def test_bad_event_queries_are_422(web_client, query, field):
    """Each bad query parameter: 422 JSON naming it."""
    assert_error(web_client.get(f"{EVENTS}?{query}"), 422, field)


def test_a_huge_device_id_filter_is_not_a_500(web_client):
    """A device id past 64 bits: no events (or a 4xx), never a server error."""
    response = web_client.get(f"{EVENTS}?device_id={HUGE_ID}")
    if response.status_code == 200:
        assert response.get_json() == []
    else:
        assert_error(response, response.status_code)
        assert 400 <= response.status_code < 500


@pytest.mark.parametrize("url", [RULES, EVENTS])
def test_public_off_needs_a_login_to_read(web_settings, user, url):
    """[web] public = off: anonymous 401 JSON; a user's token reads."""
    client = make_app(web_settings.with_overrides({"web": {"public": "off"}})).test_client()
    assert_error(client.get(url), 401)
    assert client.get(url, headers=user.headers).status_code == 200

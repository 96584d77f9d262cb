"""/alerts: who may see it and the rule form; in Chromium: firing and resolved events, adding and deleting a rule."""
from __future__ import annotations

import pytest

from celery_tasks.alerts import evaluate  # the plain function the evaluate_alerts task runs
from lib import storage
from lib.storage import alerts as alert_store
from tests.browser_fixtures import log_in
from tests.test_access import logged_in
from tests.web_fixtures import make_app

FORM = 'id="rule-form"'


@pytest.mark.parametrize("public", [True, False])
def test_who_sees_the_page_and_the_rule_form(web_settings, admin, user, public):
    """Public: everyone reads; [web] public = off: anonymous callers go to the login page."""
    app = make_app(web_settings.with_overrides({"web": {"public": public}}))
    for who in ("anonymous", "user", "admin"):
        client = app.test_client() if who == "anonymous" else logged_in(app, {"user": user, "admin": admin}[who])
        reply = client.get("/alerts")
        if who == "anonymous" and not public:
            assert reply.status_code == 302 and reply.headers["Location"].startswith("/login?next=")
            continue
        assert reply.status_code == 200, who
        page = reply.get_data(as_text=True)
        assert (FORM in page) is (who == "admin") and 'src="/static/js/alerts.js"' in page
        assert f'data-admin="{str(who == "admin").lower()}"' in page


def hot_and_cooled(engine) -> dict:
    """Two devices under one co2 rule, evaluated for real: one event still firing, one resolved."""
    hot = storage.add_device(engine, "hot-pi")[0]
    cooled = storage.add_device(engine, "cool-pi")[0]
    alert_store.add_rule(engine, name="CO2 high", kind="above", metric="co2", threshold=1000.0)
    t0 = storage.now_ms() - 60_000
    names = ["co2"]
    storage.write_readings(engine, names, [(hot.id, t0, 1500.0), (cooled.id, t0, 1200.0)])
    assert evaluate(engine, t0 + 1000)[0]["firing"] == 2
    storage.write_readings(engine, names, [(cooled.id, t0 + 2000, 800.0)])
    assert evaluate(engine, t0 + 3000)[0]["resolved"] == 1
    return {"hot": hot, "cooled": cooled}


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_reader_sees_firing_and_recent_events(settings, engine, page):
    hot_and_cooled(engine)
    page.goto("/alerts")
    page.wait_for_selector("#firing tbody tr")
    firing = page.locator("#firing tbody tr")
    assert firing.count() == 1 and "hot-pi" in firing.inner_text() and "1,500 ppm" in firing.inner_text()
    events = page.locator("#events tbody tr")
    assert events.count() == 2
    assert sorted(events.locator("td:first-child").all_inner_texts()) == ["firing", "resolved"]
    assert "UTC" in events.first.inner_text()  # times show their zone
    assert page.locator("#rules tbody tr").count() == 1 and page.locator("#rule-form").count() == 0
    assert page.locator("#rules button").count() == 0


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_admin_adds_and_deletes_rules(settings, engine, device, admin, page, new_page):
    log_in(page, admin.name, admin.password)
    page.goto("/alerts")
    page.wait_for_selector("#rules-empty:not([hidden])")
    page.wait_for_selector(f"#rule-form select[name=device_id] option[value='{device.id}']", state="attached")
    page.fill("#rule-form input[name=name]", "Too warm")
    page.select_option("#rule-form select[name=device_id]", str(device.id))
    page.select_option("#rule-form select[name=kind]", "above")
    page.select_option("#rule-form select[name=metric]", "temperature")
    page.fill("#rule-form input[name=threshold]", "28")
    page.fill("#rule-form input[name=duration]", "5m")
    page.click("#rule-form button[type=submit]")
    row = page.locator("#rules tbody tr", has_text="Too warm")
    row.wait_for()
    assert "temperature above 28" in row.inner_text() and device.name in row.inner_text()
    # A no-data rule: the threshold fields give way to minutes.
    page.select_option("#rule-form select[name=kind]", "nodata")
    assert page.locator("#rule-form input[name=threshold]").is_hidden()
    page.fill("#rule-form input[name=name]", "Silent")
    page.fill("#rule-form input[name=no_data_minutes]", "15")
    page.click("#rule-form button[type=submit]")
    page.locator("#rules tbody tr", has_text="no data for 900").wait_for()
    # A bad rule is refused with the API's reason, on the page.
    page.select_option("#rule-form select[name=kind]", "above")
    page.fill("#rule-form input[name=name]", "")
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("#rule-form .form-error:not([hidden])")
    assert "name" in page.inner_text("#rule-form .form-error")
    expected = [e for e in new_page.guard.errors if "status of 422" in e]
    assert len(expected) == 1  # Chromium logs the refused request; nothing else went wrong
    new_page.guard.errors.remove(expected[0])
    # Delete takes a second click.
    button = row.locator("button")
    button.click()
    assert button.inner_text() == "Confirm delete"
    button.click()
    row.wait_for(state="detached")
    assert [r.rule.name for r in alert_store.list_rules(engine)] == ["Silent"]

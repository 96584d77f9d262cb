"""Admin pages (/admin/devices, /admin/metrics, /admin/users): who may open them, what they bootstrap."""
from __future__ import annotations

import pytest

from flask_front.dashboard.admin import flower_url, ingest_url
from lib import storage
from lib.storage import users
from tests.browser_fixtures import PHONE, horizontal_overflow, log_in
from tests.test_access import logged_in
from tests.web_fixtures import make_app

ADMIN_PAGES = ["/admin/devices", "/admin/metrics", "/admin/users"]


def dashboard_app(settings, **web):
    """The web app on `settings` with `web` overrides of [web] (e.g. public=False)."""
    return make_app(settings.with_overrides({"web": web}) if web else settings)


@pytest.mark.parametrize("public", [True, False])
def test_anonymous_callers_go_to_the_login_page(web_settings, public):
    client = dashboard_app(web_settings, public=public).test_client()
    for path in ADMIN_PAGES + ["/admin"]:
        reply = client.get(path)
        assert reply.status_code == 302, path
        assert reply.headers["Location"].startswith("/login?next=") and path in reply.headers["Location"]


@pytest.mark.parametrize("public", [True, False])
def test_users_who_are_not_administrators_get_403(web_settings, user, public):
    client = logged_in(dashboard_app(web_settings, public=public), user)
    for path in ADMIN_PAGES + ["/admin"]:
        reply = client.get(path)
        assert reply.status_code == 403, path
        assert "administrator" in reply.get_data(as_text=True)


@pytest.mark.parametrize("public", [True, False])
def test_administrators_see_every_section(web_settings, admin, public):
    client = logged_in(dashboard_app(web_settings, public=public), admin)
    assert client.get("/admin").headers["Location"] == "/admin/devices"
    for path in ADMIN_PAGES:
        reply = client.get(path)
        assert reply.status_code == 200, path
        page = reply.get_data(as_text=True)
        assert 'src="/static/js/admin.js"' in page and 'data-api="/api/v1"' in page
        assert 'aria-current="page"' in page and "Flower" in page


def test_api_tokens_follow_the_same_rules(web_settings, admin, user):
    web_client = dashboard_app(web_settings).test_client()
    assert web_client.get("/admin/users", headers=user.headers).status_code == 403
    assert web_client.get("/admin/users", headers=admin.headers).status_code == 200
    assert web_client.get("/admin/users", headers={"Authorization": "Bearer wrong"}).status_code in (302, 401)


def test_devices_page_gives_the_pi_its_ingest_url_and_flower_its_link(web_settings, engine, admin):
    settings = web_settings.with_overrides({"ports": {"ingest": "8081", "flower": "5556"}})
    client = dashboard_app(settings).test_client()
    page = client.get("/admin/devices", base_url="http://sensors.local:4350",
                      headers=admin.headers).get_data(as_text=True)
    assert 'data-ingest-url="ws://sensors.local:8081/ingest"' in page
    assert 'href="http://sensors.local:5556/"' in page


@pytest.mark.parametrize("public_ip, tls, host, expected", [
    ("", False, "sensors.local", "ws://sensors.local:8080/ingest"),
    ("203.0.113.5", False, "sensors.local", "ws://203.0.113.5:8080/ingest"),
    ("", True, "sensors.example.org", "wss://sensors.example.org:8080/ingest"),
    ("2001:db8::1", False, "sensors.local", "ws://[2001:db8::1]:8080/ingest"),
    ("", False, "::1", "ws://[::1]:8080/ingest"),
])
def test_ingest_url(tmp_path, public_ip, tls, host, expected):
    from lib import config as config_mod

    overrides = {"ecs": {"public_ip": public_ip}, "ports": {"ingest": "8080"}}
    if tls:
        (tmp_path / "c.pem").write_text("x")
        overrides["ingest"] = {"tls_cert": str(tmp_path / "c.pem"), "tls_key": str(tmp_path / "c.pem")}
    settings = config_mod.load().with_overrides(overrides)
    assert ingest_url(settings, host) == expected


def test_flower_url_brackets_ipv6():
    from lib import config as config_mod

    settings = config_mod.load().with_overrides({"ports": {"flower": "5555"}})
    assert flower_url(settings, "::1") == "http://[::1]:5555/"


# ---- in Chromium ---------------------------------------------------------------------

@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_admin_registers_a_device_and_sees_its_token_once(settings, engine, admin, new_page, live_server):
    page = new_page(live_server.url, permissions=["clipboard-read", "clipboard-write"])
    log_in(page, admin.name, admin.password)
    page.goto("/admin/devices")
    page.wait_for_selector("#devices-empty:not([hidden])")
    page.fill("#device-form input[name=name]", "greenhouse-pi")
    page.click("#device-form button[type=submit]")
    page.wait_for_selector("#new-device:not([hidden])")
    token = page.input_value("#new-token")
    assert storage.authenticate(engine, token) is not None  # the real token, stored as a hash
    command = page.input_value("#new-command")
    port = settings.ports.ingest
    assert command == (f".venv/bin/python -m Pi_Sensor.client --url ws://127.0.0.1:{port}/ingest "
                       f"--token={token} --sensor scd30")
    page.click("button.copy[data-copy=new-token]")
    page.wait_for_selector("button.copy[data-copy=new-token]:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == token
    row = page.locator("#devices tbody tr", has_text="greenhouse-pi")
    assert "offline" in row.inner_text() and "never" in row.inner_text()
    page.click("#token-done")
    assert page.is_hidden("#new-device") and page.input_value("#new-token") == ""
    page.reload()
    page.wait_for_selector("#devices tbody tr")
    assert token not in page.content()  # shown once: never again
    # Revoking takes a second click.
    button = page.locator("#devices tbody tr", has_text="greenhouse-pi").locator("button")
    button.click()
    button.click()
    page.wait_for_selector("#devices td.state-revoked")
    assert storage.authenticate(engine, token) is None


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_admin_adds_a_metric_and_lists_users(settings, admin, user, page):
    log_in(page, admin.name, admin.password)
    page.goto("/admin/metrics")
    page.wait_for_selector("#metrics tr[data-metric=co2]")
    page.fill("#metric-form input[name=name]", "pressure")
    page.fill("#metric-form input[name=label]", "Air pressure")
    page.fill("#metric-form input[name=unit]", "hPa")
    page.fill("#metric-form input[name=min]", "300")
    page.fill("#metric-form input[name=max]", "1100")
    page.click("#metric-form button[type=submit]")
    row = page.locator("#metrics tr[data-metric=pressure]")
    row.wait_for()
    assert row.inner_text().split("\t") == ["pressure", "Air pressure", "hPa", "300", "1100"]
    page.click("nav.tabs a:has-text('Users')")
    page.wait_for_selector("#users tbody tr")
    rows = page.locator("#users tbody tr").all_inner_texts()
    assert [r.split("\t")[:2] for r in rows] == [["admin", "administrator"], ["reader", "reader"]]
    flower = page.get_attribute("a.flower", "href")
    assert flower == f"http://127.0.0.1:{settings.ports.flower}/"


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_admin_adds_a_user_who_logs_in_then_changes_and_deletes_them(settings, engine, admin, new_page,
                                                                       live_server):
    page = new_page(live_server.url)
    log_in(page, admin.name, admin.password)
    page.goto("/admin/users")
    page.wait_for_selector("#users tr[data-user=admin] td:has-text('you')")  # no buttons against oneself
    assert page.is_disabled("#user-form input[name=password]")  # "generate" is the default
    page.fill("#user-form input[name=name]", "carol")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("#new-user:not([hidden])")
    password = page.input_value("#new-password")
    assert users.check_login(engine, "carol", password) is not None
    page.click("#password-done")
    assert page.is_hidden("#new-user") and page.input_value("#new-password") == ""
    row = page.locator("#users tr[data-user=carol]")
    assert row.locator("td").nth(1).inner_text() == "reader"

    carol = new_page(live_server.url)  # another browser, without the administrator's cookies
    log_in(carol, "carol", password)
    assert carol.goto("/admin/users").status == 403

    row.locator("button:has-text('Make admin')").click()
    row.locator("button:has-text('Confirm: make admin')").click()
    page.wait_for_selector("#users tr[data-user=carol] td:has-text('administrator')")
    assert carol.goto("/admin/users").status == 200  # her session follows the new role
    carol.wait_for_selector("#users tr[data-user=admin]")
    row.locator("button.set-password").click()
    row.locator("input[name=password]").fill("carol-new-password")
    row.locator("button:has-text('Save')").click()
    row.locator("text=Password changed").wait_for()
    assert users.check_login(engine, "carol", "carol-new-password") is not None
    carol.goto("/admin/users")
    assert "/login?next=" in carol.url  # a new password ends her sessions
    carol.fill("input[name=name]", "carol")  # back in, so that deleting her ends a live session
    carol.fill("input[name=password]", "carol-new-password")
    carol.click("input[type=submit]")
    carol.wait_for_url("**/admin/users")

    row.locator("button:has-text('Delete')").click()
    row.locator("button:has-text('Confirm delete')").click()
    row.wait_for(state="detached")
    assert [u.name for u in users.list_users(engine)] == ["admin"]
    carol.goto("/admin/users")
    assert "/login?next=" in carol.url  # her session ended with her account
    # Chromium logs the refused page load as an error: expected here, anything else is not.
    refused = [e for e in new_page.guard.errors if "status of 403" in e]
    assert len(refused) == 1
    new_page.guard.errors.remove(refused[0])


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_reader_cannot_reach_admin_pages(settings, user, page, new_page):
    page.goto("/admin/devices")
    assert "/login?next=" in page.url  # anonymous: the login page
    log_in(page, user.name, user.password)
    assert page.locator("nav.main a[href='/admin']").count() == 0
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response.status == 403 and page.locator("#admin-page").count() == 0
    # Chromium logs each refused page load; those are the point of this test, anything else is not.
    refused = [e for e in new_page.guard.errors if "status of 403" in e]
    assert len(refused) == len(ADMIN_PAGES)
    for error in refused:
        new_page.guard.errors.remove(error)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_every_page_fits_a_phone(settings, web_settings, engine, admin, new_page, live_server):
    """375 px wide, as an administrator with data on every page: no horizontal scroll, no console error."""
    from tests.test_dashboard_alerts import hot_and_cooled
    from tests.test_dashboard_charts import render_files

    devices = hot_and_cooled(engine)
    render_files(web_settings, engine, devices["hot"].id)
    page = new_page(live_server.url, viewport=PHONE)
    log_in(page, admin.name, admin.password)
    for path, ready in [("/charts", ".chart-card iframe"), ("/alerts", "#events tbody tr"),
                        ("/admin/devices", "#devices tbody tr"), ("/admin/metrics", "#metrics tbody tr"),
                        ("/admin/users", "#users tbody tr")]:
        page.goto(path)
        page.wait_for_selector(ready)
        assert horizontal_overflow(page) == 0, path

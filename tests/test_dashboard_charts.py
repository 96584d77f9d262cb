"""/charts: who may see it and the redraw button, the rendered files' own CSP, and in Chromium: the frames
draw, and an administrator's "Redraw now" follows a real worker's task until it is done."""
from __future__ import annotations

import re

import pytest

from flask_front.charts import CHART_CSP
from lib import storage
from lib.charts import ChartFile, chart_file_name
from lib.storage import charts as chart_store
from tests.browser_fixtures import log_in
from tests.test_access import logged_in
from tests.web_fixtures import make_app

CSP = "Content-Security-Policy"
REDRAW = 'id="redraw"'


def render_files(settings, engine, device_id: int, render: str = "r1") -> None:
    """A recorded render with placeholder files of the device's co2 charts."""
    folder = settings.other.flask_path / render
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for span in ("24h", "7d", "30d"):
        name = chart_file_name(device_id, "co2", span)
        (folder / name).write_text(f"<!doctype html><title>{span}</title><script>var a = 1;</script>")
        files.append(ChartFile(device_id, "co2", span, f"{render}/{name}"))
    chart_store.record_render(engine, render, storage.now_ms(), files)


@pytest.mark.parametrize("public", [True, False])
def test_who_sees_the_page_and_the_redraw_button(web_settings, admin, user, public):
    """Public: everyone reads; [web] public = off: anonymous callers go to the login page."""
    app = make_app(web_settings.with_overrides({"web": {"public": public}}))
    for who in ("anonymous", "user", "admin"):
        client = app.test_client() if who == "anonymous" else logged_in(app, {"user": user, "admin": admin}[who])
        reply = client.get("/charts")
        if who == "anonymous" and not public:
            assert reply.status_code == 302 and reply.headers["Location"].startswith("/login?next=")
            continue
        assert reply.status_code == 200, who
        page = reply.get_data(as_text=True)
        assert (REDRAW in page) is (who == "admin") and 'src="/static/js/charts.js"' in page
        assert "'unsafe-inline'" not in reply.headers[CSP] and "script-src 'self'" in reply.headers[CSP]


def test_rendered_files_get_their_own_sandboxed_policy(web_settings, web_client, engine, device):
    render_files(web_settings, engine, device.id)
    url = web_client.get("/api/v1/charts").get_json()[0]["url"]
    for path in (url, "/co2"):
        reply = web_client.get(path)
        assert reply.status_code == 200 and "<script>" in reply.get_data(as_text=True)
        assert reply.headers[CSP] == CHART_CSP, path
        assert "sandbox allow-scripts" in CHART_CSP and "allow-same-origin" not in CHART_CSP
    # The dashboard's own pages keep the strict policy.
    assert "'unsafe-inline'" not in web_client.get("/charts").headers[CSP]


@pytest.mark.parametrize("path", ["/co2", "/temperature", "/humidity"])
def test_original_pages_without_charts_are_404(web_client, path):
    assert web_client.get(path).status_code == 404


# ---- in Chromium ---------------------------------------------------------------------

@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_redraw_follows_the_task_and_the_frames_draw(settings, engine, device, admin, celery_worker, tmp_path,
                                                      serve, new_page):
    """An admin clicks "Redraw now": the page follows the real worker's task to done and shows the charts."""
    now = storage.now_ms()
    storage.write_readings(engine, ["co2", "temperature"],
                           [(device.id, now - i * 60_000, 600.0 + i, 20.0 + i / 10) for i in range(30)])
    worker = celery_worker(settings, "embedded")
    app = make_app(worker.settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}}))
    page = new_page(serve(app).url)
    log_in(page, admin.name, admin.password)
    page.goto("/charts")
    page.wait_for_selector("#charts-message:has-text('No chart has been drawn yet')")
    page.click("#redraw")
    page.wait_for_selector("#redraw-status[data-state=running]")
    page.wait_for_selector("#redraw-status[data-state=done]", timeout=90_000)
    assert re.search(r"Done: 6 charts drawn", page.inner_text("#redraw-status")), worker.log()
    assert page.get_attribute("#redraw-progress", "value") == "3"
    cards = page.locator(".chart-card")
    assert cards.count() == 2  # co2 and temperature, 24h
    assert "Drawn " in cards.first.inner_text() and "UTC" in cards.first.inner_text()
    for i in range(2):
        frame = cards.nth(i).locator("iframe")
        assert frame.get_attribute("sandbox") == "allow-scripts"
        frame.content_frame.locator("canvas").first.wait_for(timeout=20_000)  # ECharts drew in the sandbox
    page.select_option("#chart-span", "30d")
    page.wait_for_selector(".chart-card[data-span='30d'] iframe")
    assert page.locator(".chart-card").count() == 2
    page.goto("/co2")  # the original's page, opened on its own under the same sandboxed policy
    page.locator("canvas").first.wait_for()


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_readers_see_the_charts_without_the_button(settings, web_settings, engine, device, serve, new_page):
    render_files(web_settings, engine, device.id)
    page = new_page(serve(make_app(web_settings)).url)
    page.goto("/charts")
    page.wait_for_selector(".chart-card iframe")
    assert page.locator("#redraw").count() == 0
    assert page.locator("#chart-device option").all_inner_texts() == ["every device", device.name]

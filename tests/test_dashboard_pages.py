"""The overview and device pages in headless Chromium, with the real ingest server and web app.

The pages are the same whatever the database, and the API under them is tested on both backends,
so these run on SQLite only."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import uuid

import pytest
from websockets.sync.client import connect

from celery_tasks.alerts import evaluate
from lib import storage
from lib.alerts import rule_spec
from lib.storage import alerts as alert_store, rollups
from lib.config import REPO_ROOT
from lib.validation import ms_to_iso
from tests.browser_fixtures import PHONE, horizontal_overflow
from tests.conftest import ServerThread
from tests.web_fixtures import make_app

pytestmark = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)

NAMES = ("co2", "temperature", "humidity")
# The README's screenshots: written to var/screenshots on every run; to docs/screenshots (committed)
# when SENSORS_UPDATE_SCREENSHOTS=1, so an ordinary run leaves the work tree clean.
SCREENSHOTS = REPO_ROOT / ("docs" if os.environ.get("SENSORS_UPDATE_SCREENSHOTS") == "1" else "var") / "screenshots"
MINUTE = 60_000


class Stack:
    """The ingest server and the web app (told the ingest server's port) on one database."""

    def __init__(self, settings, engine, serve) -> None:
        self.ingest = ServerThread(settings)
        self.settings = settings.with_overrides({"ports": {"ingest": str(self.ingest.port)}})
        self.engine = engine
        self.web = serve(make_app(self.settings))
        self.url = self.web.url

    def device(self, name: str | None = None):
        """A registered device: (id, token)."""
        info, token = storage.add_device(self.engine, name or f"pi-{uuid.uuid4().hex[:6]}")
        return info.id, token

    def history(self, device_id: int, start_ms: int, end_ms: int, step_ms: int, shape=None,
                rollup: bool = False) -> None:
        """Readings every step_ms from start_ms to end_ms, straight into the database (rolled up if asked)."""
        shape = shape or (lambda ts: (600 + 80 * ((ts // step_ms % 40) / 40), 21 + (ts // step_ms % 24) / 8,
                                      40 + (ts // step_ms % 30) / 3))
        rows = [(device_id, ts, *shape(ts)) for ts in range(start_ms, end_ms, step_ms)]
        assert storage.write_readings(self.engine, NAMES, rows) == {}
        if rollup:
            rollups.run_rollup(self.engine)

    def send(self, token: str, values: dict, ts_ms: int | None = None) -> None:
        """One reading through the real ingest server; returns once it is acked (committed)."""
        reading = {"seq": 1, "ts": ms_to_iso(ts_ms or storage.now_ms()), "values": values}
        with connect(self.ingest.url, additional_headers={"Authorization": f"Bearer {token}"},
                     open_timeout=10) as ws:
            ws.send(json.dumps({"readings": [reading]}))
            assert json.loads(ws.recv(timeout=10))["ack"] == [1]

    def stop(self) -> None:
        self.ingest.stop()


@pytest.fixture
def stack(web_settings, engine, serve):
    srv = Stack(web_settings, engine, serve)
    yield srv
    srv.stop()




def open_page(new_page, stack, path: str, **options):
    page = new_page(stack.url, **options)
    response = page.goto(path)
    assert response.status == 200, path
    return page


def wait_linked(page) -> None:
    """Wait until the page's live link is up (so that the test exercises the push, not a reload)."""
    page.wait_for_function("want => document.getElementById('live-status').textContent === want",
                           arg="live")


def tile_value(device_id: int, metric: str) -> str:
    return f".tile[data-device-id='{device_id}'] .metric[data-metric='{metric}'] .value"


def wait_drawn(page, since: str = "") -> str:
    """Wait for the device page to finish a draw after `since`; return its stamp."""
    page.wait_for_function("s => (document.getElementById('device').dataset.drawn || '') > s", arg=since)
    return page.get_attribute("#device", "data-drawn")


def last_chart_point(page, metric: str) -> list:
    """The newest point of the mean (or raw) series of `metric`'s chart."""
    return page.evaluate("""m => {
        const chart = echarts.getInstanceByDom(document.querySelector(`[data-metric='${m}'] .chart`));
        const series = chart.getOption().series;
        const data = series[series.length - 1].data;
        return data[data.length - 1];
    }""", metric)


# ---- every page loads cleanly ---------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/devices/{id}", "/login", "/charts", "/alerts", "/api/v1/docs"])
def test_page_loads_without_console_errors_or_foreign_requests(stack, new_page, path):
    device_id, _ = stack.device("greenhouse")
    now = storage.now_ms()
    stack.history(device_id, now - 30 * MINUTE, now, 10_000)
    page = open_page(new_page, stack, path.format(id=device_id))
    page.wait_for_load_state("networkidle")
    if path.startswith("/api/"):  # Swagger UI: its own page, under its own policy
        page.wait_for_selector(".swagger-ui .info")
    else:
        assert page.locator("header.site nav a").first.inner_text() == "Overview"


def test_pages_send_a_strict_content_security_policy(stack):
    client = make_app(stack.settings).test_client()
    device_id, _ = stack.device()
    for path in ("/", f"/devices/{device_id}", "/login"):
        policy = client.get(path).headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
        assert f"ws://localhost:{stack.ingest.port}" in policy  # the test client's host is localhost
    assert client.get("/devices/999999").status_code == 404


def test_overview_filters_by_name_and_shows_names_as_text(stack, new_page):
    for name in ("alpha", "beta", "<img src=x onerror=alert(1)>"):
        stack.device(name)
    page = open_page(new_page, stack, "/")
    page.wait_for_selector(".tile >> nth=2")
    assert page.locator(".tile img").count() == 0
    assert "<img src=x onerror=alert(1)>" in page.locator(".tile-head a").all_inner_texts()
    page.fill("#filter", "ALP")
    assert page.locator(".tile:visible").count() == 1
    assert page.inner_text("#count") == "1 of 3 devices"
    assert "q=alp" in page.url


def test_overview_without_devices_says_how_to_add_one(stack, new_page):
    page = open_page(new_page, stack, "/")
    page.wait_for_selector("#no-devices:visible")
    assert "add-device" in page.inner_text("#no-devices")


def test_overview_with_200_devices_draws_only_the_visible_sparklines(stack, new_page):
    for i in range(200):
        stack.device(f"pi-{i:03d}")
    page = new_page(stack.url)
    asked = []
    page.on("request", lambda r: "/readings" in r.url and asked.append(r.url))
    page.goto("/")
    page.wait_for_selector(".tile >> nth=199")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#count") == "200 devices"
    assert 0 < len(asked) < 60  # the tiles in (or near) view, not all 200
    page.fill("#filter", "pi-19")
    assert page.locator(".tile:visible").count() == 10


# ---- live readings ---------------------------------------------------------------------------

def test_reading_appears_on_the_overview_without_reload(stack, new_page):
    device_id, token = stack.device("kitchen")
    page = open_page(new_page, stack, "/")
    page.wait_for_selector(f".tile[data-device-id='{device_id}']")
    assert page.inner_text(tile_value(device_id, "co2")) == "–"
    wait_linked(page)
    stack.send(token, {"co2": 777.0, "temperature": 22.5})
    page.wait_for_function(
        "([sel, want]) => document.querySelector(sel).textContent === want",
        arg=[tile_value(device_id, "co2"), "777"], timeout=15_000)
    assert page.inner_text(tile_value(device_id, "temperature")) == "22.5"
    assert "online" in page.inner_text(f".tile[data-device-id='{device_id}'] .badge")
    assert page.inner_text("#live-status") == "live"


def test_reading_appears_on_the_device_page_without_reload(stack, new_page):
    device_id, token = stack.device()
    now = storage.now_ms()
    stack.history(device_id, now - 20 * MINUTE, now - MINUTE, 10_000)
    page = open_page(new_page, stack, f"/devices/{device_id}?range=1h")
    drawn = wait_drawn(page)
    wait_linked(page)
    stack.send(token, {"co2": 1234.0})
    page.wait_for_function("""() => {
        const c = echarts.getInstanceByDom(document.querySelector("[data-metric='co2'] .chart"));
        const s = c.getOption().series; const d = s[s.length - 1].data;
        return d.length && d[d.length - 1][1] === 1234; }""", timeout=15_000)
    assert page.get_attribute("#device", "data-drawn") > drawn
    assert page.inner_text("#device-state") == "online"
    assert page.inner_text("#live-status") == "live"


# ---- ranges and CSV --------------------------------------------------------------------------

def test_switching_the_range_redraws(stack, new_page):
    device_id, _ = stack.device()
    now = storage.now_ms()
    stack.history(device_id, now - 3 * 86_400_000, now, 5 * MINUTE)
    page = open_page(new_page, stack, f"/devices/{device_id}")
    drawn = wait_drawn(page)
    day_points = int(page.get_attribute("#device", "data-points"))
    page.click("button[data-range='7d']")
    drawn = wait_drawn(page, drawn)
    assert "range=7d" in page.url
    assert page.get_attribute("button[data-range='7d']", "aria-pressed") == "true"
    assert int(page.get_attribute("#device", "data-points")) > day_points
    page.click("button[data-range='1h']")
    wait_drawn(page, drawn)
    assert int(page.get_attribute("#device", "data-points")) < day_points
    # A custom range in local time: the day before yesterday only.
    page.click("button[data-range='custom']")
    start = page.evaluate("d => { const t = new Date(); t.setDate(t.getDate() - d); t.setHours(0, 0, 0, 0);"
                          " return Sensors.toLocalInput(t.getTime()); }", 2)
    end = page.evaluate("d => { const t = new Date(); t.setDate(t.getDate() - d); t.setHours(0, 0, 0, 0);"
                        " return Sensors.toLocalInput(t.getTime()); }", 1)
    page.fill("#range-from", start)
    page.fill("#range-to", end)
    drawn = page.get_attribute("#device", "data-drawn")
    page.click("#custom-range button[type=submit]")
    wait_drawn(page, drawn)
    assert "from=" in page.url and "to=" in page.url
    assert page.inner_text("#range-label").startswith(start.replace("T", " "))


def chart_color(page) -> str:
    return page.evaluate("""() => echarts.getInstanceByDom(
        document.querySelector("[data-metric='co2'] .chart")).getOption().color[0]""")


def test_charts_follow_a_change_of_the_system_theme(stack, new_page):
    device_id, _ = stack.device()
    now = storage.now_ms()
    stack.history(device_id, now - 20 * MINUTE, now - MINUTE, MINUTE)
    page = open_page(new_page, stack, f"/devices/{device_id}?range=1h", color_scheme="light")
    drawn = wait_drawn(page)
    assert chart_color(page) == "#1f6feb"
    page.emulate_media(color_scheme="dark")
    wait_drawn(page, drawn)
    assert chart_color(page) == "#4c9aff"


def test_csv_button_downloads_the_shown_range(stack, new_page, tmp_path):
    device_id, _ = stack.device("cellar")
    now = storage.now_ms()
    stack.history(device_id, now - 3 * 3_600_000, now, MINUTE)
    page = open_page(new_page, stack, f"/devices/{device_id}?range=1h", accept_downloads=True)
    wait_drawn(page)
    with page.expect_download() as info:
        page.click("#csv")
    download = info.value
    assert download.suggested_filename.startswith("cellar_") and download.suggested_filename.endswith(".csv")
    path = tmp_path / "readings.csv"
    download.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    stamps = [int(r["ts_ms"]) for r in rows]
    assert 55 <= len(rows) <= 61  # one reading a minute over the last hour
    assert min(stamps) >= now - 3_600_000 - 5_000 and max(stamps) <= storage.now_ms()


# ---- phone layout ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/devices/{id}", "/login"])
def test_phone_layout_has_no_horizontal_scroll(stack, new_page, path):
    device_id, _ = stack.device("a-device-with-a-rather-long-name-that-must-wrap-somewhere-xxxxxx")
    now = storage.now_ms()
    stack.history(device_id, now - 30 * MINUTE, now, 10_000)
    page = open_page(new_page, stack, path.format(id=device_id), viewport=PHONE)
    page.wait_for_load_state("networkidle")
    assert horizontal_overflow(page) == 0


# ---- screenshots for the README -----------------------------------------------------------------

def wave(period_ms: int, co2: float, temperature: float, humidity: float, swing: float = 1.0):
    """A day-like curve of the three metrics (a function of the time stamp)."""
    def shape(ts: int) -> tuple[float, float, float]:
        x = math.sin(2 * math.pi * ts / period_ms)
        wobble = (math.sin(ts / 1000 * 12.9898) * 43758.5453) % 1 - 0.5  # deterministic noise
        return (round(co2 + 180 * swing * (x + wobble / 3), 1), round(temperature + 2.5 * swing * (x + wobble / 20), 2),
                round(humidity - 6 * swing * (x - wobble), 1))
    return shape


def demo_data(stack) -> dict[str, int]:
    """A handful of devices: a day of history, one offline, one with a firing CO2 alert."""
    now = storage.now_ms()
    day = 86_400_000
    ids = {}
    for i, (name, co2, temp, hum) in enumerate([("greenhouse", 1250, 24.5, 62), ("cellar", 520, 12.5, 78),
                                                ("living-room", 700, 21.0, 45), ("office", 820, 22.5, 40),
                                                ("attic", 480, 27.0, 35), ("garage", 560, 15.0, 55)]):
        ids[name], _ = stack.device(name)
        days = 7 if name == "greenhouse" else 1
        stack.history(ids[name], now - days * day, now, 60_000, wave(day // (1 + i % 3), co2, temp, hum, 1 + i / 5))
    ids["shed"], _ = stack.device("shed")
    stack.history(ids["shed"], now - 2 * day, now - 3 * 3_600_000, 60_000, wave(day, 450, 9.0, 70))
    rollups.run_rollup(stack.engine)
    alert_store.add_rule(stack.engine, device_id=ids["greenhouse"], **rule_spec(name="CO2 high", metric="co2",
                                                                             above=1000))
    evaluate(stack.engine, storage.now_ms())
    return ids


def test_screenshots_of_the_overview_and_device_pages(stack, new_page):
    """Also checks the alert colouring and the min-max band; the PNGs go to SCREENSHOTS."""
    ids = demo_data(stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(new_page, stack, "/", viewport={"width": 1200, "height": 720}, timezone_id="Europe/Berlin")
    page.wait_for_selector(".tile.firing .metric.firing[data-metric='co2']")
    page.wait_for_function("() => document.querySelectorAll('.spark canvas').length >= 18")
    assert page.inner_text(f".tile[data-device-id='{ids['shed']}'] .badge") == "offline"
    page.screenshot(path=SCREENSHOTS / "overview.png")

    page = open_page(new_page, stack, f"/devices/{ids['greenhouse']}?range=7d", viewport={"width": 1200, "height": 1000},
                     timezone_id="Europe/Berlin")
    wait_drawn(page)
    assert page.inner_text("#resolution").startswith("mean and min–max")
    series = page.evaluate("echarts.getInstanceByDom(document.querySelector(\"[data-metric='co2'] .chart\"))"
                           ".getOption().series.map(s => s.name)")
    assert series == ["min", "min-max", "mean"]
    page.wait_for_selector("#rules tbody tr.firing")
    page.screenshot(path=SCREENSHOTS / "device.png")

    phone = open_page(new_page, stack, "/", viewport=PHONE, color_scheme="dark")
    phone.wait_for_function("() => document.querySelectorAll('.spark canvas').length >= 6")
    phone.screenshot(path=SCREENSHOTS / "overview-phone-dark.png")
    for name in ("overview.png", "device.png", "overview-phone-dark.png"):
        assert (SCREENSHOTS / name).stat().st_size < 400_000

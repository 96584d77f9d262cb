"""Page part of the web bench: opening a device's 30-day range in headless Chromium -> its first chart drawn.

Run through bench.web:  .venv/bin/python -m bench.web --keep --part page [--sqlite] [--page-loads 20]

Debian's Chromium (Playwright, the flags of tests/browser_fixtures.py) opens
/devices/<id>?range=30d of the first 20 M-table device (200,000 readings at 1 s, rolled up). An
init script stamps performance.now() (the page's own clock, 0 = navigation start) when device.js
marks a finished draw (data-drawn) and the first chart's ECharts instance holds data; ECharts'
setOption paints the canvas synchronously, and device.js draws every chart in one task, so no frame
can show the first chart before this moment.
Cold: a fresh browser context (empty HTTP cache) per load. Warm: one context, one untimed visit,
then a new page per load (a returning user: ECharts from the cache, the pages and API fresh).
One untimed cold load first, so gunicorn's workers have served the page once.
"""
from __future__ import annotations

import os
from pathlib import Path

from bench import loadgen
from bench.ingest import Figure
from bench.web_server import Gunicorn
from lib.rollup import DAY_MS
from lib.storage import now_ms

CHROMIUM = Path(os.environ.get("SENSORS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TARGET_MS = 1000.0
# Runs before the page's own scripts: stamps the first finished draw whose first chart holds data.
STAMP = """
window.benchDrawn = null;
new MutationObserver((records, observer) => {
  const node = document.querySelector("#charts .chart");
  const chart = node && window.echarts && window.echarts.getInstanceByDom(node);
  const series = chart ? chart.getOption().series : [];
  if (series.some((s) => s.data && s.data.length > 0)) {
    window.benchDrawn = performance.now();
    observer.disconnect();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-drawn"] });
"""
# ms since navigation start: the HTML received, the scripts run (DOMContentLoaded), the readings request
# sent and answered, the chart drawn.
TIMES = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const api = performance.getEntriesByType("resource").find((e) => e.name.includes("/readings?"));
  return { html: nav.responseEnd, scripts: nav.domContentLoadedEventEnd,
           apiStart: api.startTime, apiEnd: api.responseEnd,
           drawn: window.benchDrawn, points: Number(document.getElementById("device").dataset.points) };
}"""


def open_page(context, url: str) -> dict[str, float]:
    """Open `url` in a new page of `context`, wait for the first chart; its timings."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => window.benchDrawn !== null", timeout=30_000)
        times = page.evaluate(TIMES)
    finally:
        page.close()
    if not times["points"]:
        raise RuntimeError(f"{url}: the chart has no point")
    return times


def cold_loads(browser, url: str, loads: int) -> list[dict[str, float]]:
    """Each load in a fresh context: nothing cached."""
    results = []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(STAMP)
        try:
            results.append(open_page(context, url))
        finally:
            context.close()
    return results


def warm_loads(browser, url: str, loads: int) -> list[dict[str, float]]:
    """Loads in one context after an untimed visit: the static files come from its HTTP cache."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(STAMP)
    try:
        open_page(context, url)
        return [open_page(context, url) for _ in range(loads)]
    finally:
        context.close()


def figures_of(name: str, results: list[dict[str, float]]) -> list[Figure]:
    """Print the median of each step; median and p95 figures of navigation start -> chart drawn."""
    med = {key: loadgen.percentile(sorted(r[key] for r in results), 0.5)
           for key in ("html", "scripts", "apiStart", "apiEnd", "drawn")}
    drawn = sorted(r["drawn"] for r in results)
    p95 = loadgen.percentile(drawn, 0.95)
    print(f"  {name}: {len(results)} loads, {results[0]['points']:,} points; medians in ms after navigation "
          f"start: HTML {med['html']:.0f}, scripts run {med['scripts']:.0f}, "
          f"readings request {med['apiStart']:.0f} -> {med['apiEnd']:.0f}, "
          f"chart drawn {med['drawn']:.0f} (min {drawn[0]:.0f}, p95 {p95:.0f}, max {drawn[-1]:.0f})")
    return [Figure(f"{name} median", med["drawn"], "ms", TARGET_MS, "<="),
            Figure(f"{name} p95", p95, "ms", TARGET_MS, "<=")]


def part_page(gun: Gunicorn, device_id: int, data_end_ms: int, loads: int) -> list[Figure]:
    """Cold and warm loads of the device page's 30-day range; their figures."""
    from playwright.sync_api import Error as PlaywrightError, sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"no Chromium at {CHROMIUM} (sh tests/run.sh installs it)")
    if data_end_ms < now_ms() - 29 * DAY_MS:
        raise RuntimeError("the kept data ended over 29 days ago, outside the 30-day range: "
                           "drop it and reload")
    url = f"http://127.0.0.1:{gun.port}/devices/{device_id}?range=30d"
    print(f"page: {url} in headless Chromium, {loads} cold and {loads} warm loads")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            cold_loads(browser, url, 1)  # untimed: the workers' first page
            return (figures_of("page 30 days first chart cold", cold_loads(browser, url, loads))
                    + figures_of("page 30 days first chart warm", warm_loads(browser, url, loads)))
        except PlaywrightError as exc:  # e.g. the chart never drawn: a failed part, not a crash
            raise RuntimeError(str(exc).splitlines()[0]) from exc
        finally:
            browser.close()

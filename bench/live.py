"""Live bench: a reading sent by a device -> its value in the overview page's DOM, in headless Chromium.

Run from the repository root:  .venv/bin/python -m bench.live [--readings 500] [--sqlite]
    [--modes embedded,rabbitmq-1,rabbitmq-2]

Each mode starts its own ingest server children (`python -m Pi_Sensor.server`, port 0) and
gunicorn (as start.sh runs it) on one fresh database (`sensors_bench_live<pid>` on MariaDB at
127.0.0.1:3306, dropped at the end, or SQLite), opens `/` in Debian's Chromium (Playwright)
and waits for the live status "live". A device then sends one reading at a time over its
WebSocket; a MutationObserver in the page stamps the moment the device tile's co2 value shows
it, and the next reading goes out once it did. Latency = that stamp - the wall clock just
before the send (same machine, same clock). Modes: `embedded` (no broker, one server),
`rabbitmq-1` (one server, readings through RabbitMQ's fanout exchange), `rabbitmq-2` (the
device on server A, the browser on server B). Exit status 0 whether or not the goal is met;
1 when a reading never showed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

from bench import loadgen
from bench.ingest import database, register
from bench.web_server import Gunicorn
from lib import config as config_mod

CHROMIUM = os.environ.get("SENSORS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RABBITMQ = {"SENSORS_RABBITMQ_HOST": "127.0.0.1", "SENSORS_RABBITMQ_USER": "guest",
            "SENSORS_RABBITMQ_PASSWORD": "guest"}
MODES = {"embedded": (False, 1), "rabbitmq-1": (True, 1), "rabbitmq-2": (True, 2)}
GOAL_P95_MS = 200.0
WARMUP = 20
# Stamps the first time each co2 value shows in the device's tile (keys: the value to 1 decimal).
OBSERVE = """(deviceId) => {
  const node = document.querySelector(
    `article.tile[data-device-id="${deviceId}"] .metric[data-metric="co2"] .value`);
  window.benchSeen = new Map();
  const stamp = () => {
    const key = parseFloat(node.textContent.replace(/,/g, "")).toFixed(1);
    if (!window.benchSeen.has(key)) window.benchSeen.set(key, performance.timeOrigin + performance.now());
  };
  new MutationObserver(stamp).observe(node, {childList: true, characterData: true, subtree: true});
}"""


def run_mode(name: str, db_env: dict[str, str], tmp: Path, browser, readings: int) -> list[float]:
    """Latencies in ms of `readings` readings in one mode (nan: never shown)."""
    use_rabbitmq, count = MODES[name]
    var_dir = tmp / name
    env = {**os.environ, **db_env, "SENSORS_OTHER_VAR_DIR": str(var_dir),
           "SENSORS_LIVE_SECRET": secrets.token_urlsafe(32),
           "SENSORS_CELERY_QUEUE": f"bench-live-{os.getpid()}-{name}",
           "SENSORS_CELERY_EMBEDDED_DIR": str(var_dir / "celery"),
           **(RABBITMQ if use_rabbitmq else {"SENSORS_RABBITMQ_HOST": ""})}
    print(f"{name}: {count} ingest server(s){', RabbitMQ' if use_rabbitmq else ', no broker'}")
    [device] = register(config_mod.load(environ=env), 1)  # creates the tables too
    servers = [loadgen.Server(env, tmp / f"{name}-ingest-{i}.log") for i in range(count)]
    gunicorn = None
    try:
        port = int(servers[-1].url.rsplit(":", 1)[1].split("/")[0])  # the browser's server
        cfg = config_mod.load(environ={**env, "SENSORS_PORTS_INGEST": str(port)})
        gunicorn = Gunicorn(cfg, var_dir, tmp / f"{name}-gunicorn.log")
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{gunicorn.port}/")
            page.wait_for_selector(f'article.tile[data-device-id="{device.id}"]')
            # "live" once the server said ready: every ingest server publishes to this page's server
            page.wait_for_function("() => document.getElementById('live-status').textContent === 'live'")
            page.evaluate(OBSERVE, device.id)
            with connect(servers[0].url, additional_headers={"Authorization": f"Bearer {device.token}"},
                         open_timeout=10) as ws:
                return measure(page, ws, readings)[WARMUP:]
        finally:
            context.close()
    finally:
        if gunicorn:
            gunicorn.close()
        for server in servers:
            server.close()


def measure(page, ws, readings: int) -> list[float]:
    """Send readings one at a time; each goes once the previous one showed (or 5 s passed)."""
    latencies = []
    for i in range(WARMUP + readings):
        value = round(200 + i / 10, 1)
        sent = time.time() * 1000
        ws.send(json.dumps({"readings": [{"seq": i, "values": {"co2": value}}]}))
        if json.loads(ws.recv(timeout=10))["ack"] != [i]:
            raise RuntimeError(f"reading {i} was not acked")
        key = f"{value:.1f}"
        try:
            page.wait_for_function("(key) => window.benchSeen.has(key)", arg=key, timeout=5000)
            latencies.append(page.evaluate("(key) => window.benchSeen.get(key)", key) - sent)
        except Exception as exc:  # Playwright's TimeoutError: the value never showed
            print(f"  reading {i} ({value}) did not show: {str(exc).splitlines()[0]}")
            latencies.append(float("nan"))
    return latencies


def report(name: str, latencies: list[float]) -> bool:
    """Print the percentiles; True when every reading showed."""
    shown = sorted(x for x in latencies if x == x)
    pct = {p: loadgen.percentile(shown, p / 100) for p in (50, 95, 99)}
    verdict = "PASS" if pct[95] <= GOAL_P95_MS else "MISS"
    print(f"  {name}: {len(shown)}/{len(latencies)} readings shown; sent -> in the DOM "
          f"p50 {pct[50]:.1f} ms, p95 {pct[95]:.1f} ms, p99 {pct[99]:.1f} ms, max {shown[-1]:.1f} ms "
          f"(goal p95 <= {GOAL_P95_MS:.0f} ms) {verdict}")
    return len(shown) == len(latencies)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=500, help="readings measured per mode (default 500)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of MariaDB")
    args = parser.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes: {unknown}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run each mode on its own fresh database; print the figures."""
    from playwright.sync_api import sync_playwright

    args = parse_args(argv)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as folder, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for name in args.modes:
                tmp = Path(folder) / name
                tmp.mkdir()
                with database(args.sqlite, tmp, f"live{name.replace('-', '')}_") as db_env:
                    results[name] = run_mode(name, db_env, tmp, browser, args.readings)
        finally:
            browser.close()
    print("\nsummary")
    complete = [report(name, latencies) for name, latencies in results.items()]
    return 0 if all(complete) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

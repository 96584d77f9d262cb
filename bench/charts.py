"""Chart bench: draw_all for 10 devices × 3 metrics × 3 windows (90 pages) from a month of data.

Run from the repository root:  .venv/bin/python -m bench.charts [--quick] [--sqlite] [--runs N]

On a fresh database (`sensors_bench_charts_<pid>` on MariaDB at 127.0.0.1:3306 as root,
dropped at the end, or SQLite in a temporary folder) each device gets raw readings for the
last day at one per 5 s, 1-minute rollups for 30 days and hourly rollups for 30 days, the
rollup rows inserted directly (consistent with each other, not computed from the readings).
With [charts] max_points = 2000 the 24 h charts come from 1-minute rollups (1,440 points)
and the 7 d and 30 d charts from hourly ones (168 and 720 points). draw_all is timed per
run, into a temporary chart folder (target <= 5 s). Exit status 1 when a run draws another
number of files than expected.
"""
from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.ingest import Figure, database_settings
from celery_tasks.draw_picture.draw import draw_all
from lib import config as config_mod, storage
from lib.charts import DAY_MS, HOUR_MS, MINUTE_MS
from lib.models import rollup_1h, rollup_1m

METRICS = ("co2", "temperature", "humidity")
TARGET_S = 5.0
INSERT_ROWS = 5000


@dataclass(frozen=True)
class Sizes:
    """How much data the bench draws from."""

    devices: int = 10
    days: int = 30
    raw_step_ms: int = 5000
    raw_hours: int = 24


FULL = Sizes()
QUICK = Sizes(devices=2, days=3, raw_step_ms=60_000, raw_hours=6)


def walk(rng: random.Random, count: int, start: float, step: float, low: float, high: float) -> list[float]:
    """A bounded random walk: plausible sensor values."""
    values, value = [], start
    for _ in range(count):
        value = min(max(value + rng.gauss(0, step), low), high)
        values.append(value)
    return values


def rollup_rows(device_id: int, start_ms: int, count: int, bucket_ms: int, per_bucket: int,
                rng: random.Random) -> list[dict]:
    """Rollup rows of one device: per metric n, sum, min and max around a random walk."""
    walks = {"co2": walk(rng, count, 600, 8, 380, 3000), "temperature": walk(rng, count, 21, 0.05, 10, 35),
             "humidity": walk(rng, count, 45, 0.2, 15, 90)}
    spread = {"co2": 15.0, "temperature": 0.2, "humidity": 0.8}
    rows = []
    for i in range(count):
        row = {"device_id": device_id, "bucket": start_ms + i * bucket_ms}
        for metric in METRICS:
            mean, half = walks[metric][i], spread[metric] * rng.random()
            row.update({f"{metric}_n": per_bucket, f"{metric}_sum": mean * per_bucket,
                        f"{metric}_min": mean - half, f"{metric}_max": mean + half})
        rows.append(row)
    return rows


def fill(engine, sizes: Sizes, now_ms: int) -> int:
    """Devices, raw readings and rollups; returns the number of rows written."""
    rng = random.Random(4)
    written = 0
    for d in range(sizes.devices):
        device_id = storage.add_device(engine, f"bench-pi-{d:02d}")[0].id
        raw_count = sizes.raw_hours * HOUR_MS // sizes.raw_step_ms
        start = now_ms - raw_count * sizes.raw_step_ms
        co2, temp, hum = (walk(rng, raw_count, 600, 6, 380, 3000), walk(rng, raw_count, 21, 0.03, 10, 35),
                          walk(rng, raw_count, 45, 0.1, 15, 90))
        readings = [(device_id, start + i * sizes.raw_step_ms, round(co2[i], 1), round(temp[i], 2),
                     round(hum[i], 1)) for i in range(raw_count)]
        for first in range(0, len(readings), INSERT_ROWS):
            storage.write_readings(engine, METRICS, readings[first:first + INSERT_ROWS])
        minute_start = (now_ms - sizes.days * DAY_MS) // MINUTE_MS * MINUTE_MS
        hour_start = (now_ms - sizes.days * DAY_MS) // HOUR_MS * HOUR_MS
        minutes = rollup_rows(device_id, minute_start, sizes.days * 1440, MINUTE_MS,
                              MINUTE_MS // sizes.raw_step_ms, rng)
        hours = rollup_rows(device_id, hour_start, sizes.days * 24, HOUR_MS,
                            HOUR_MS // sizes.raw_step_ms, rng)
        with engine.begin() as conn:
            for table, rows in ((rollup_1m, minutes), (rollup_1h, hours)):
                for first in range(0, len(rows), INSERT_ROWS):
                    conn.execute(sa.insert(table), rows[first:first + INSERT_ROWS])
        written += len(readings) + len(minutes) + len(hours)
    return written


def run(cfg: config_mod.Config, sizes: Sizes, runs: int, chart_dir: Path) -> tuple[list[Figure], list[str]]:
    """Fill the database, then time draw_all `runs` times."""
    cfg = cfg.with_overrides({"other": {"flask_path": str(chart_dir)}, "charts": {"max_points": "2000"}})
    engine = storage.make_engine(cfg.database_url)
    problems: list[str] = []
    try:
        storage.init_db(engine)
        now = storage.now_ms()
        started = time.perf_counter()
        rows = fill(engine, sizes, now)
        print(f"{rows:,} rows ({sizes.devices} devices: raw {sizes.raw_hours} h every "
              f"{sizes.raw_step_ms / 1000:g} s, 1-minute and hourly rollups {sizes.days} d) "
              f"written in {time.perf_counter() - started:.1f} s")
        expected = sizes.devices * len(METRICS) * 3
        times, sizes_bytes = [], 0
        for i in range(runs):
            started = time.perf_counter()
            render = draw_all(engine, cfg, now)
            seconds = time.perf_counter() - started
            times.append(seconds)
            files = len(render.files) if render else 0
            sizes_bytes = sum((chart_dir / f.file).stat().st_size for f in render.files) if render else 0
            per_chart = seconds / max(files, 1) * 1000
            print(f"  run {i + 1}: {files} files in {seconds:.2f} s = {per_chart:.1f} ms per chart, "
                  f"{sizes_bytes / 1e6:.2f} MB")
            if files != expected:
                problems.append(f"run {i + 1} drew {files} files, expected {expected}")
    finally:
        engine.dispose()
    target = TARGET_S if sizes == FULL else None
    figures = [Figure("draw_all first run", times[0], "s", target, "<="),
               Figure("draw_all median run", statistics.median(times), "s", target, "<="),
               Figure("per chart", statistics.median(times) / expected * 1000, "ms"),
               Figure("files per run", expected, "files"),
               Figure("bytes per run", sizes_bytes, "bytes"),
               Figure("chart disk kept (bytes per run x renders in [charts] keep_days)",
                      sizes_bytes * kept_renders(cfg) / 1e6, "MB")]
    return figures, problems


def kept_renders(cfg: config_mod.Config) -> float:
    """How many renders exist at once: one per [charts] interval_seconds for keep_days."""
    return cfg.charts.keep_days * 86400 / cfg.charts.interval_seconds


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print a summary; 1 when a run drew the wrong number of files."""
    parser = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 devices, 3 days of data, for a smoke test")
    parser.add_argument("--sqlite", action="store_true",
                        help="SQLite in a temporary folder instead of MariaDB")
    parser.add_argument("--runs", type=int, default=3, help="timed draw_all runs (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-charts-") as tmp, database_settings(args.sqlite, Path(tmp), "charts_") as cfg:
        print(f"database {cfg.database_url}")
        figures, problems = run(cfg, QUICK if args.quick else FULL, max(1, args.runs), Path(tmp) / "charts")
    print("\nsummary" + (" (--quick: too small for the target to apply)" if args.quick else ""))
    for figure in figures:
        print("  " + figure.line())
    for problem in problems:
        print("  ERROR " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

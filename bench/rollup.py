"""Rollup bench: one day of 100 devices at one reading per 5 s (1.728 M readings) rolled up.

Run from the repository root:  .venv/bin/python -m bench.rollup [--quick] [--sqlite]

On a fresh database (`sensors_bench_rollup_<pid>` on MariaDB at 127.0.0.1:3306 as root,
dropped at the end, or SQLite in a temporary folder) readings are written in commits of
5,000 rows (the ingest's commit_rows), interleaved across devices as a live ingest writes
them. The ingest cost of the pending marks: the first 300,000 readings are inserted with
the plain INSERT and with storage.write_readings (INSERT plus marks), alternately, emptying
`reading` in between; the ratio of the best times is printed. Then all readings are loaded
with write_readings, the rollup of everything pending is timed (target <= 10 s for the full
size). Then the next hour is written live: a commit per minute of every device's readings,
each followed by a rollup run (as beat runs it every minute); each run should redo only the
new minute, so its time stays flat over the hour instead of growing with it. The rollup tables
are checked against the readings. Exit status 1 when that check fails.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.ingest import Figure, database_settings
from lib import config as config_mod, storage
from lib.rollup import DAY_MS, HOUR_MS, MINUTE_MS, RetentionPolicy, hour_of
from lib.storage import rollups

METRICS = ("co2", "temperature", "humidity")
COMMIT_ROWS = 5000
TARGET_S = 10.0
SAMPLE_ROWS = 300_000  # readings inserted with and without marks, to compare
MARK_ROUNDS = 3


@dataclass(frozen=True)
class Sizes:
    """How much data the bench rolls up."""

    devices: int = 100
    hours: int = 24
    step_ms: int = 5000


FULL = Sizes()
QUICK = Sizes(devices=5, hours=2)


def make_rows(sizes: Sizes, start_ms: int, device_ids: list[int], seed: int = 4) -> list[tuple]:
    """Readings of every device every step, time-major like a live ingest, with random walks."""
    rng = random.Random(seed)
    state = {d: [rng.uniform(450, 900), rng.uniform(19, 24), rng.uniform(35, 55)] for d in device_ids}
    rows = []
    for i in range(sizes.hours * HOUR_MS // sizes.step_ms):
        ts = start_ms + i * sizes.step_ms
        for d in device_ids:
            co2, temp, hum = state[d]
            co2 = min(max(co2 + rng.gauss(0, 6), 380), 3000)
            temp = min(max(temp + rng.gauss(0, 0.03), 10), 35)
            hum = min(max(hum + rng.gauss(0, 0.1), 15), 90)
            state[d] = [co2, temp, hum]
            # A sensor now and then returns nothing: 1 in 1000 values is missing.
            rows.append((d, ts + d % 1000, round(co2, 1), round(temp, 2),
                         None if rng.random() < 0.001 else round(hum, 1)))
    return rows


def insert(engine, rows: list[tuple], marked: bool) -> float:
    """Write `rows` in commits of COMMIT_ROWS, with or without pending marks; return seconds."""
    dialect = engine.dialect.name
    step = storage.CHUNK_ROWS.get(dialect, 500)
    started = time.perf_counter()
    for first in range(0, len(rows), COMMIT_ROWS):
        commit = rows[first:first + COMMIT_ROWS]
        if marked:
            storage.write_readings(engine, METRICS, commit)
            continue
        with engine.begin() as conn:
            for i in range(0, len(commit), step):
                conn.exec_driver_sql(storage.insert_readings_sql(dialect, METRICS, commit[i:i + step]))
    return time.perf_counter() - started


def mark_cost(engine, sample: list[tuple]) -> float:
    """Time of inserting `sample` with marks over without; best of alternating rounds."""
    best = {False: float("inf"), True: float("inf")}
    for _ in range(MARK_ROUNDS):
        for marked in (False, True):
            best[marked] = min(best[marked], insert(engine, sample, marked))
            empty_readings(engine)
    for marked, label in ((False, "without marks"), (True, "with marks   ")):
        print(f"  insert {label} {best[marked]:.2f} s = {len(sample) / best[marked]:,.0f} readings/s "
              f"(best of {MARK_ROUNDS}, {len(sample):,} readings)")
    return best[True] / best[False]


def live_hour(engine, sizes: Sizes, start: int, device_ids: list[int],
              cutoff: int) -> tuple[int, list[float]]:
    """Write the hour from `start` a minute per commit, rolling up after each; readings and run times."""
    rows = make_rows(Sizes(sizes.devices, 1, sizes.step_ms), start, device_ids, 5)
    minutes: dict[int, list[tuple]] = {}
    for row in rows:
        minutes.setdefault((row[1] - start) // MINUTE_MS, []).append(row)
    times = []
    for minute in sorted(minutes):
        storage.write_readings(engine, METRICS, minutes[minute])
        times.append(rollups.run_rollup(engine, stale_before=cutoff).seconds)
    return len(rows), times


def empty_readings(engine) -> None:
    """Remove every reading and pending mark."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM rollup_pending")
        conn.exec_driver_sql("TRUNCATE TABLE reading" if engine.dialect.name == "mysql"
                             else "DELETE FROM reading")


def check(engine, readings: int, minutes: int) -> list[str]:
    """Problems found comparing the rollup tables with the readings."""
    problems = []
    with engine.connect() as conn:
        counts = conn.execute(sa.text(
            "SELECT COUNT(co2), COUNT(temperature), COUNT(humidity), COUNT(*) FROM reading")).one()
        for table in ("rollup_1m", "rollup_1h"):
            sums = conn.execute(sa.text(
                f"SELECT SUM(co2_n), SUM(temperature_n), SUM(humidity_n) FROM {table}")).one()
            if tuple(map(int, sums)) != tuple(counts[:3]):
                problems.append(f"{table} counts {tuple(sums)} differ from the readings' {tuple(counts[:3])}")
        stored_minutes = conn.scalar(sa.text("SELECT COUNT(*) FROM rollup_1m"))
        left = conn.scalar(sa.text("SELECT COUNT(*) FROM rollup_pending"))
    if counts[3] != readings:
        problems.append(f"{counts[3]:,} readings stored, {readings:,} written")
    if stored_minutes != minutes:
        problems.append(f"{stored_minutes:,} minute rows, expected {minutes:,}")
    if left:
        problems.append(f"{left} pending marks left after the rollup")
    return problems


def run(cfg: config_mod.Config, sizes: Sizes) -> tuple[list[Figure], list[str]]:
    """Load the data, time the inserts and the rollup; return figures and problems."""
    engine = storage.make_engine(cfg.database_url)
    try:
        storage.init_db(engine)
        ids = [storage.add_device(engine, f"bench-{i:04d}")[0].id for i in range(sizes.devices)]
        now = storage.now_ms()
        start = hour_of(now - DAY_MS) - sizes.hours * HOUR_MS
        rows = make_rows(sizes, start, ids)
        print(f"{len(rows):,} readings: {sizes.devices} devices x {sizes.hours} h every "
              f"{sizes.step_ms / 1000:g} s, commits of {COMMIT_ROWS:,}")
        ratio = mark_cost(engine, rows[:SAMPLE_ROWS])
        loaded = insert(engine, rows, marked=True)
        print(f"  loaded with storage.write_readings in {loaded:.2f} s "
              f"= {len(rows) / loaded:,.0f} readings/s")
        cutoff = RetentionPolicy.from_settings(cfg).cutoffs(now).raw_ms
        stats = rollups.run_rollup(engine, stale_before=cutoff)
        print(f"  rollup: {stats.marks:,} pending hours in {stats.units} units, "
              f"{stats.minute_rows:,} minute rows, {stats.hour_rows:,} hour rows, {stats.seconds:.2f} s")
        live, times = live_hour(engine, sizes, start + sizes.hours * HOUR_MS, ids, cutoff)
        print(f"  live hour: {len(times)} commits of a minute ({live // len(times):,} readings), each rolled "
              f"up: first {times[0] * 1000:.0f} ms, last {times[-1] * 1000:.0f} ms, total {sum(times):.2f} s")
        problems = check(engine, len(rows) + live, sizes.devices * (sizes.hours + 1) * 60)
    finally:
        engine.dispose()
    target = TARGET_S if sizes == FULL else None  # small runs are dominated by fixed costs
    figures = [Figure("rollup of all pending", stats.seconds, "s", target, "<="),
               Figure("rollup throughput", len(rows) / stats.seconds, "readings/s"),
               Figure("rows written by the rollup", stats.minute_rows + stats.hour_rows, "rows"),
               Figure("live hour: rollup of its last minute", times[-1] * 1000, "ms"),
               Figure("live hour: all 60 minute rollups", sum(times), "s"),
               Figure("insert with marks / without", ratio, "x time")]
    return figures, problems


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print a summary; 1 when the rollup tables are wrong."""
    parser = argparse.ArgumentParser(prog="python -m bench.rollup", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 devices x 2 h, for a smoke test")
    parser.add_argument("--sqlite", action="store_true",
                        help="SQLite in a temporary folder instead of MariaDB")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-rollup-") as tmp, database_settings(args.sqlite, Path(tmp), "rollup_") as cfg:
        print(f"database {cfg.database_url}")
        figures, problems = run(cfg, QUICK if args.quick else FULL)
    print("\nsummary" + (" (--quick: too small for the target to apply)" if args.quick else ""))
    for figure in figures:
        print("  " + figure.line())
    for problem in problems:
        print("  ERROR " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

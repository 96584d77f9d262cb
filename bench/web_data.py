"""Data of the web bench: 20 million readings of 100 devices, plus a day, a year and a CSV device.

Loaded with storage.write_readings in big transactions (multi-row INSERTs rendered by
insert_readings_sql, plus the pending marks), then rolled up with one rollups.run_rollup.
With --keep the database is named (MariaDB `sensors_bench_web`, SQLite
var/bench/sensors_bench_web.sqlite) and reused by the next run when it holds what the sizes ask.
`--part csv` loads only the CSV device (csv_only), into `sensors_bench_web_csv` with --keep.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from bench.ingest import MYSQL, database, mysql
from lib import config as config_mod, storage
from lib.config import REPO_ROOT
from lib.rollup import DAY_MS, HOUR_MS
from lib.storage import rollups

METRICS = ("co2", "temperature", "humidity")
KEEP_NAME = "sensors_bench_web"
COMMIT_ROWS = 100_000  # rows per transaction while loading: fewer fsyncs on SQLite
# A pool of in-range values, cycled with a per-device offset: cheap to build, not constant.
POOL = [(round(420 + 300 * ((i * 37) % 101) / 101, 1), round(18 + 6 * ((i * 13) % 97) / 97, 2),
         round(30 + 30 * ((i * 7) % 89) / 89, 1)) for i in range(1009)]


@dataclass(frozen=True)
class Sizes:
    """How much data each part of the web bench uses."""

    bulk_devices: int = 100
    bulk_seconds: int = 200_000  # one reading per second: 100 x 200,000 = 20 M readings
    day_step_s: int = 5  # the 24 h device: 17,280 readings
    year_days: int = 365  # the year device: a reading every 10 minutes
    csv_rows: int = 1_000_000  # the CSV device, one reading per second
    devices: int = 200  # in all; the ones beyond the roles get a few readings each
    requests: int = 100  # timed GETs per figure
    ingest_clients: int = 50
    ingest_seconds: float = 10
    csv_only: bool = False  # only the CSV device: its part loads in seconds, not minutes

    @property
    def keep_name(self) -> str:
        """The database name (or SQLite file stem) of --keep: one per data set."""
        return KEEP_NAME + ("_csv" if self.csv_only else "")

    @property
    def total(self) -> int:
        """Readings the database holds when loaded."""
        if self.csv_only:
            return self.csv_rows
        small = self.devices - self.bulk_devices - 3
        return (self.bulk_devices * self.bulk_seconds + DAY_MS // (1000 * self.day_step_s)
                + self.year_days * 144 + self.csv_rows + small * SMALL_ROWS)


SMALL_ROWS = 10
FULL = Sizes()
QUICK = Sizes(bulk_devices=4, bulk_seconds=3_000, day_step_s=60, year_days=3, csv_rows=20_000,
              devices=12, requests=5, ingest_clients=5, ingest_seconds=1)


@dataclass(frozen=True)
class Roles:
    """Device ids of each role and the end (exclusive, ms) of their data."""

    bulk: int | None  # the first bulk device; None when not loaded (csv_only)
    day: int | None
    year: int | None
    csv: int
    ends: dict[int, int]


def names(sizes: Sizes) -> list[str]:
    """Device names in registration order: bulk, day, year, csv, then small ones."""
    if sizes.csv_only:
        return ["web-csv"]
    small = sizes.devices - sizes.bulk_devices - 3
    return ([f"web-bulk-{i:04d}" for i in range(sizes.bulk_devices)] + ["web-day", "web-year", "web-csv"]
            + [f"web-small-{i:04d}" for i in range(small)])


@contextlib.contextmanager
def kept_database(use_sqlite: bool, keep: bool, tmp: Path,
                  keep_name: str = KEEP_NAME) -> Iterator[config_mod.Config]:
    """Settings of the data database: named and never dropped with `keep`, else fresh (see bench.ingest)."""
    if not keep:
        with database(use_sqlite, tmp, "web_") as env:
            yield config_mod.load(environ=env)
        return
    if use_sqlite:
        path = REPO_ROOT / "var" / "bench" / f"{keep_name}.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        yield config_mod.load(environ={"SENSORS_MYSQL_DATABASE": "", "SENSORS_SQLITE_PATH": str(path)})
        return
    mysql(f"CREATE DATABASE IF NOT EXISTS `{keep_name}` CHARACTER SET utf8mb4")
    yield config_mod.load(environ={
        "SENSORS_MYSQL_HOST": MYSQL["host"], "SENSORS_MYSQL_PORT": str(MYSQL["port"]),
        "SENSORS_MYSQL_USER": MYSQL["user"], "SENSORS_MYSQL_PASSWORD": MYSQL["password"],
        "SENSORS_MYSQL_DATABASE": keep_name})


def prepare(cfg: config_mod.Config, sizes: Sizes) -> tuple[Roles, dict[str, float]]:
    """Reuse the database when it holds what `sizes` asks, else empty and load it; roles and load times."""
    engine = storage.make_engine(cfg.database_url)
    try:
        storage.init_db(engine)
        if loaded(engine, sizes):
            print(f"  reusing the loaded database ({sizes.total:,} readings)")
            return roles(engine, sizes), {}
        empty(engine)
        times = load(engine, sizes)
        return roles(engine, sizes), times
    finally:
        engine.dispose()


def loaded(engine, sizes: Sizes) -> bool:
    """Whether the devices and reading count are those of `sizes`, with nothing pending."""
    with engine.connect() as conn:
        have = list(conn.scalars(sa.text("SELECT name FROM device ORDER BY id")))
        if have != names(sizes) or conn.scalar(sa.text("SELECT COUNT(*) FROM rollup_pending")):
            return False
        return conn.scalar(sa.text("SELECT COUNT(*) FROM reading")) == sizes.total


def empty(engine) -> None:
    """Remove devices, readings and rollups of an earlier, different load."""
    with engine.begin() as conn:
        for table in ("rollup_pending", "rollup_1m", "rollup_1h", "reading", "device"):
            conn.exec_driver_sql(f"DELETE FROM {table}")


def roles(engine, sizes: Sizes) -> Roles:
    """Ids of the role devices and where their data ends."""
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT name, id FROM device")).all())
        role = [ids.get(name) for name in ("web-bulk-0000", "web-day", "web-year", "web-csv")]
        ends = {d: conn.scalar(sa.text("SELECT MAX(ts) FROM reading WHERE device_id = :d"), {"d": d}) + 1
                for d in role if d is not None}
    return Roles(*role, ends=ends)


def load(engine, sizes: Sizes) -> dict[str, float]:
    """Register the devices, write every reading (with marks), roll up; the seconds of each step."""
    ids = [storage.add_device(engine, name)[0].id for name in names(sizes)]
    end = storage.now_ms() // HOUR_MS * HOUR_MS - HOUR_MS  # a whole hour ago: nothing in the future
    if sizes.csv_only:
        return load_csv_only(engine, ids[0], end, sizes)
    n = sizes.bulk_devices
    bulk, (day, year, csv), small = ids[:n], ids[n:n + 3], ids[n + 3:]
    print(f"  loading {sizes.total:,} readings: {len(bulk)} devices x {sizes.bulk_seconds:,} s at 1 s, "
          f"a day at {sizes.day_step_s} s, {sizes.year_days} days at 10 min, {sizes.csv_rows:,} for CSV, "
          f"{len(small)} devices x {SMALL_ROWS}")
    started = time.perf_counter()
    for d in bulk:
        write_series(engine, d, end - sizes.bulk_seconds * 1000, 1000, sizes.bulk_seconds)
    write_series(engine, day, end - DAY_MS, sizes.day_step_s * 1000, DAY_MS // (1000 * sizes.day_step_s))
    write_series(engine, year, end - sizes.year_days * DAY_MS, 600_000, sizes.year_days * 144)
    write_series(engine, csv, end - sizes.csv_rows * 1000, 1000, sizes.csv_rows)
    for d in small:
        write_series(engine, d, end - SMALL_ROWS * 60_000, 60_000, SMALL_ROWS)
    written = time.perf_counter() - started
    stats = rollups.run_rollup(engine)
    print(f"  written in {written:.1f} s = {sizes.total / written:,.0f} readings/s; rollup of "
          f"{stats.marks:,} pending hours in {stats.seconds:.1f} s ({stats.minute_rows:,} minute rows, "
          f"{stats.hour_rows:,} hour rows)")
    return {"write": written, "rollup": stats.seconds}


def write_series(engine, device_id: int, start_ms: int, step_ms: int, count: int) -> None:
    """`count` readings of a device every `step_ms` from `start_ms`, in transactions of COMMIT_ROWS."""
    for first in range(0, count, COMMIT_ROWS):
        rows = [(device_id, start_ms + i * step_ms, *POOL[(i + device_id) % 1009])
                for i in range(first, min(count, first + COMMIT_ROWS))]
        failed = storage.write_readings(engine, METRICS, rows)
        if failed:
            raise RuntimeError(f"device {device_id}: {len(failed)} readings not stored")


def load_csv_only(engine, csv: int, end: int, sizes: Sizes) -> dict[str, float]:
    """Only the CSV device's readings, rolled up; the seconds of each step."""
    print(f"  loading only the CSV device: {sizes.csv_rows:,} readings at 1 s")
    started = time.perf_counter()
    write_series(engine, csv, end - sizes.csv_rows * 1000, 1000, sizes.csv_rows)
    written = time.perf_counter() - started
    stats = rollups.run_rollup(engine)
    print(f"  written in {written:.1f} s = {sizes.total / written:,.0f} readings/s; rollup of "
          f"{stats.marks:,} pending hours in {stats.seconds:.1f} s")
    return {"write": written, "rollup": stats.seconds}

"""Ingest bench: throughput, ack latency and idle memory of the WebSocket ingest server.

Run from the repository root:  .venv/bin/python -m bench.ingest [--seconds 10]
    [--scenario all|batched|single|idle] [--quick] [--sqlite] [--server-env KEY=VALUE ...]

Each scenario starts its own `python -m Pi_Sensor.server` child (port 0) on one fresh
database (`sensors_bench_<pid>` on MariaDB at 127.0.0.1:3306 as root, dropped at the end,
or SQLite in a temporary folder); this process simulates the devices with asyncio.
Baseline: the rows the batched scenario got acked, same shape, PyMySQL executemany of 100
rows (one multi-row INSERT IGNORE) with a commit every 5,000 rows (the server's
commit_rows), one connection, into `reading_copy` (LIKE reading: same keys, no foreign
key), rows built before the clock starts.  Exit status 0 whether or not targets are met;
1 on rejected or unacked readings, or a stored count that differs from the acked count.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import operator
import os
import re
import resource
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pymysql

from bench import loadgen
from bench.loadgen import Meter, Server
from lib import config as config_mod, storage

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
BASELINE_BATCH, BASELINE_COMMIT = 100, 5000
BASELINE_COLUMNS = "(device_id,ts,co2,temperature,humidity)"
HOURS_BACK = 6  # readings are stamped from this many hours ago, 1 ms apart per device
DB_COUNTERS = ("Com_commit", "Com_insert", "Com_rollback", "Com_admin_commands", "Handler_write")


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is."""

    batched_devices: int = 50
    batch: int = 100
    single_devices: int = 500
    open_rate: float = 5000
    idle_conns: int = 1000
    seconds: float = 10
    settle: float = 2


FULL = Sizes()
QUICK = Sizes(batched_devices=5, single_devices=20, open_rate=200, idle_conns=20, seconds=2, settle=0.5)


@dataclass
class Figure:
    """One measured figure with an optional target."""

    name: str
    value: float
    unit: str
    target: float | None = None
    op: str = ">="

    def line(self) -> str:
        """`name: value unit (target op x) PASS|MISS`, or `(info)` without a target."""
        text = f"{self.name}: {_num(self.value)} {self.unit}"
        if self.target is None:
            return text + " (info)"
        ok = {">=": operator.ge, "<=": operator.le, "<": operator.lt}[self.op](self.value, self.target)
        return f"{text} (target {self.op} {_num(self.target)}) {'PASS' if ok else 'MISS'}"


def _num(value: float) -> str:
    """Thousands separators for big numbers, two decimals for small ones."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


@dataclass
class Bench:
    """State shared by the scenarios."""

    sizes: Sizes
    cfg: config_mod.Config
    env: dict[str, str]
    tmp: Path
    devices: list[loadgen.Device] = field(default_factory=list)
    acked: int = 0
    figures: list[Figure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    servers: int = 0

    def server(self) -> Server:
        """Start a fresh ingest server child process."""
        self.servers += 1
        return Server(self.env, self.tmp / f"server-{self.servers}.log")

    def meter(self, server: Server) -> Meter:
        """CPU and (MariaDB) statement counters while `server` is loaded."""
        return Meter(server.pid, db_status if self.cfg.uses_mysql else dict)

    def record(self, scenario: str, tally: loadgen.Tally, srv: Server) -> None:
        """Add a scenario's acks to the total and its errors to the problems."""
        if srv.proc.poll() is not None:
            self.problems.append(f"{scenario}: the server exited with status {srv.proc.returncode}")
        self.acked += tally.acked
        self.problems += [f"{scenario}: {e}" for e in tally.errors]
        if tally.error_count > len(tally.errors):
            self.problems.append(f"{scenario}: ... {tally.error_count - len(tally.errors)} more")
        if tally.acked != tally.sent:
            self.problems.append(f"{scenario}: sent {tally.sent:,} readings, {tally.acked:,} acked")

    def check_count(self, scenario: str) -> None:
        """The database must hold exactly the acked readings."""
        engine = storage.make_engine(self.cfg.database_url)
        try:
            stored = storage.count_readings(engine)
        finally:
            engine.dispose()
        print(f"  stored rows {stored:,}, acked so far {self.acked:,}")
        if stored != self.acked:
            self.problems.append(f"{scenario}: {stored:,} rows stored but {self.acked:,} acked")


def db_status() -> dict[str, int]:
    """MariaDB's server-wide statement and row counters."""
    rows = mysql("SHOW GLOBAL STATUS WHERE Variable_name IN %s", (DB_COUNTERS,))
    return {name: int(value) for name, value in rows}


def mysql(statement: str, args: tuple = ()) -> tuple:
    """Run one statement on a short-lived connection to the MariaDB server; return its rows."""
    conn = pymysql.connect(**MYSQL, autocommit=True, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()
    finally:
        conn.close()


# ---- scenarios ----------------------------------------------------------------------

def scenario_batched(bench: Bench) -> None:
    """50 devices, 100 readings per message, closed loop; then the executemany baseline."""
    s = bench.sizes
    devices = bench.devices[:s.batched_devices]
    print(f"batched: {len(devices)} devices x {s.batch} readings per message, {s.seconds:g} s")
    with contextlib.closing(bench.server()) as srv:
        rate, acked = closed_run(bench, srv, devices, s.batch, "batched")
        print(f"  server RSS after the run {srv.rss_mb():.1f} MB")
    bench.check_count("batched")
    base = baseline(bench.cfg, devices, acked)
    bench.figures += [Figure("batched", rate, "readings/s", 80_000),
                      Figure("baseline executemany", base, "readings/s"),
                      Figure("batched / baseline", rate / base if base else 0, "x", 1.0)]


def scenario_single(bench: Bench) -> None:
    """500 devices, one reading per message: closed loop, then open loop at a fixed rate."""
    s = bench.sizes
    devices = bench.devices[:s.single_devices]
    print(f"single: {len(devices)} devices x 1 reading per message, closed loop, {s.seconds:g} s")
    with contextlib.closing(bench.server()) as srv:
        rate, _ = closed_run(bench, srv, devices, 1, "single closed loop")
        bench.figures.append(Figure("single closed loop", rate, "readings/s", 15_000))
        print(f"single open loop: {s.open_rate:,.0f} readings/s offered over {len(devices)} devices, "
              f"{s.seconds:g} s")
        bench.figures += open_run(bench, srv, devices)
    bench.check_count("single")


def closed_run(bench: Bench, srv: Server, devices: list[loadgen.Device], size: int,
               label: str) -> tuple[float, int]:
    """A closed-loop run of `size` readings per message; return readings/s and acked readings."""
    meter = bench.meter(srv)
    tally, elapsed = run_async(loadgen.run_closed(srv.url, devices, size, bench.sizes.seconds, meter.start))
    print(meter.line())
    bench.record(label, tally, srv)
    print(f"  acked {tally.acked:,} readings in {elapsed:.2f} s = {tally.acked / elapsed:,.0f} readings/s")
    return tally.acked / elapsed, tally.acked


def open_run(bench: Bench, srv: Server, devices: list[loadgen.Device]) -> list[Figure]:
    """An open-loop run at the offered rate; return the rate and latency figures."""
    s = bench.sizes
    meter = bench.meter(srv)
    tally, elapsed = run_async(loadgen.run_open(srv.url, devices, s.open_rate, s.seconds, meter.start))
    print(meter.line())
    bench.record("single open loop", tally, srv)
    lat = sorted(tally.latencies) or [float("nan")]
    p50, p95, p99 = (1000 * loadgen.percentile(lat, f) for f in (0.50, 0.95, 0.99))
    achieved = tally.acked / elapsed
    print(f"  sent {tally.sent:,}, acked {tally.acked:,} in {elapsed:.2f} s = {achieved:,.0f} readings/s; "
          f"ack latency ms p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f} max {1000 * lat[-1]:.1f}; "
          f"worst send lag behind schedule {1000 * tally.max_lag:.1f} ms")
    return [Figure(f"open loop achieved (offered {s.open_rate:,.0f})", achieved, "readings/s"),
            Figure("open loop p50 ack latency", p50, "ms"),
            Figure("open loop p95 ack latency", p95, "ms"),
            Figure("open loop p99 ack latency", p99, "ms", 50, "<=")]


def scenario_idle(bench: Bench) -> None:
    """1,000 authenticated idle connections; the server's RSS after they settle."""
    s = bench.sizes
    print(f"idle: {s.idle_conns:,} connections, RSS read after {s.settle:g} s")
    with contextlib.closing(bench.server()) as srv:
        before = srv.rss_mb()
        idle = loadgen.run_idle(srv.url, bench.devices, s.idle_conns, s.settle, srv.rss_mb)
        rss, still_open = run_async(idle)
    print(f"  RSS {before:.1f} MB before, {rss:.1f} MB with {still_open:,} open connections "
          f"({1024 * (rss - before) / max(still_open, 1):.1f} KB each)")
    if still_open != s.idle_conns:
        bench.problems.append(f"idle: only {still_open} of {s.idle_conns} connections stayed open")
    bench.figures.append(Figure(f"idle RSS with {s.idle_conns:,} connections", rss, "MB", 150, "<"))


SCENARIOS = {"batched": scenario_batched, "single": scenario_single, "idle": scenario_idle}


# ---- baseline -----------------------------------------------------------------------

def baseline(cfg: config_mod.Config, devices: list[loadgen.Device], total: int) -> float:
    """Insert `total` rows with executemany into reading_copy; return rows per second."""
    if not total:
        return 0.0
    base_ms = storage.now_ms() - HOURS_BACK * 3_600_000
    values = [(v["co2"], v["temperature"], v["humidity"]) for v in loadgen.VALUES]
    rows = [(devices[(i // BASELINE_BATCH) % len(devices)].id, base_ms + i, *values[i % len(values)])
            for i in range(total)]
    conn, sql = _baseline_connection(cfg)
    try:
        cur = conn.cursor()
        start = time.perf_counter()
        for i in range(0, total, BASELINE_BATCH):
            cur.executemany(sql, rows[i:i + BASELINE_BATCH])
            if (i + BASELINE_BATCH) % BASELINE_COMMIT == 0:
                conn.commit()
        conn.commit()
        elapsed = time.perf_counter() - start
        cur.execute("SELECT COUNT(*) FROM reading_copy")
        stored = cur.fetchone()[0]
    finally:
        conn.close()
    if stored != total:
        raise RuntimeError(f"baseline stored {stored:,} of {total:,} rows")
    print(f"  baseline: {total:,} rows in {elapsed:.2f} s = {total / elapsed:,.0f} readings/s")
    return total / elapsed


def _baseline_connection(cfg: config_mod.Config):
    """A DB-API connection with an empty reading_copy, and the INSERT statement for it."""
    if cfg.uses_mysql:
        conn = pymysql.connect(**MYSQL, database=cfg.mysql.database)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE reading_copy LIKE reading")
        return conn, f"INSERT IGNORE INTO reading_copy {BASELINE_COLUMNS} VALUES (%s,%s,%s,%s,%s)"
    conn = sqlite3.connect(cfg.sqlite.path)
    for pragma in storage.SQLITE_PRAGMAS:
        conn.execute("PRAGMA " + pragma)
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='reading'").fetchone()[0]
    conn.execute(re.sub(r'(?i)^CREATE TABLE\s+"?reading"?', "CREATE TABLE reading_copy", ddl))
    return conn, f"INSERT OR IGNORE INTO reading_copy {BASELINE_COLUMNS} VALUES (?,?,?,?,?)"


# ---- set-up -------------------------------------------------------------------------

@contextlib.contextmanager
def database(use_sqlite: bool, tmp: Path, tag: str = "") -> Iterator[dict[str, str]]:
    """Yield the environment that points the server at a fresh database; drop it afterwards."""
    if use_sqlite:
        yield {"SENSORS_MYSQL_DATABASE": "", "SENSORS_SQLITE_PATH": str(tmp / "sensors.db")}
        return
    name = f"sensors_bench_{tag}{os.getpid()}"
    mysql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield {"SENSORS_MYSQL_HOST": MYSQL["host"], "SENSORS_MYSQL_PORT": str(MYSQL["port"]),
               "SENSORS_MYSQL_USER": MYSQL["user"], "SENSORS_MYSQL_PASSWORD": MYSQL["password"],
               "SENSORS_MYSQL_DATABASE": name}
    finally:
        mysql(f"DROP DATABASE IF EXISTS `{name}`")
        print(f"dropped database {name}")


@contextlib.contextmanager
def database_settings(use_sqlite: bool, tmp: Path, tag: str = "") -> Iterator[config_mod.Config]:
    """Settings for a fresh database (see database)."""
    with database(use_sqlite, tmp, tag) as env:
        yield config_mod.load(environ=env)


def register(cfg: config_mod.Config, count: int) -> list[loadgen.Device]:
    """Initialise the schema and register `count` devices."""
    engine = storage.make_engine(cfg.database_url)
    try:
        storage.init_db(engine)
        start_ms = storage.now_ms() - HOURS_BACK * 3_600_000
        infos = [storage.add_device(engine, f"bench-{i:04d}") for i in range(count)]
    finally:
        engine.dispose()
    return [loadgen.Device(info.id, token, start_ms) for info, token in infos]


def raise_nofile(needed: int) -> None:
    """Raise the open-files soft limit towards the hard limit (the server child inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        limit = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def run_async(coro):
    """Run a coroutine on uvloop when installed, else on asyncio's loop."""
    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way: fewer pauses in the generator
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--seconds", type=float, help="length of each timed run (default 10, 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    parser.add_argument("--sqlite", action="store_true",
                        help="SQLite in a temporary folder instead of MariaDB")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server, e.g. SENSORS_INGEST_WRITERS=1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print a summary; 1 when something went wrong."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sizes = replace(sizes, seconds=args.seconds) if args.seconds else sizes
    raise_nofile(2 * sizes.idle_conns + 512)
    extra = dict(item.split("=", 1) for item in args.server_env)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, \
            database(args.sqlite, Path(tmp)) as db_env:
        env = {**os.environ, **db_env, **extra}
        cfg = config_mod.load(environ=env)
        print(f"database {cfg.database_url}; [ingest] " +
              ", ".join(f"{k}={v}" for k, v in asdict(cfg.ingest).items()))
        bench = Bench(sizes, cfg, env, Path(tmp))
        bench.devices = register(cfg, max(sizes.batched_devices, sizes.single_devices, sizes.idle_conns))
        for name in SCENARIOS if args.scenario == "all" else [args.scenario]:
            SCENARIOS[name](bench)
    print("\nsummary" + (" (--quick: too small for the targets to mean much)" if args.quick else ""))
    for figure in bench.figures:
        print("  " + figure.line())
    for problem in bench.problems:
        print("  ERROR " + problem)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())

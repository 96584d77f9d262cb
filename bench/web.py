"""Web bench: the JSON API, CSV export and HTTP ingest through gunicorn, as start.sh serves them.

Run from the repository root:  .venv/bin/python -m bench.web [--quick] [--sqlite] [--keep]
    [--part all|readings|devices|csv|page|ingest] [--page-loads 20]

gunicorn runs as a child process exactly as start.sh starts it (`python -m gunicorn -c
flask_front/gunicorn_conf.py 'flask_front:create_app()'`, settings as SENSORS_* variables,
[web] workers and threads), bound to a free port on 127.0.0.1. The data (bench/web_data.py):
100 devices x 200,000 readings at 1 s (20 M), a device with 24 h at 5 s, one with a year at
10 min, one with 1,000,000 readings for the CSV export and small ones up to 200 devices, all
rolled up. It is loaded into a fresh database (dropped at the end), or with --keep into
MariaDB `sensors_bench_web` / SQLite var/bench/sensors_bench_web.sqlite, kept and reused by
the next --keep run (drop it by hand when done). `--part csv` loads only the CSV device
(`sensors_bench_web_csv` / var/bench/sensors_bench_web_csv.sqlite with --keep). Timed GETs run one after the other on one
keep-alive connection. HTTP ingest: 50 client threads, each a device posting batches of 100
readings on its own keep-alive connection, each waiting for its reply; the WebSocket ingest
server gets the same load (bench.ingest's batched scenario) on the same fresh database.
Benchmarks print; they do not fail on a target. Exit status 1 only when a request fails or
an ack is missing. `--part page` (bench/page.py): the 30-day device page in headless Chromium,
navigation start -> first chart drawn, cold and warm cache.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import orjson

from bench import loadgen, page, web_data
from bench.ingest import Figure, database, register, run_async
from bench.loadgen import Meter
from bench.web_server import Gunicorn, RssSampler, connect, memory_mb, request, stream_lines, timed_gets
from lib import config as config_mod, storage
from lib.rollup import DAY_MS
from lib.validation import ms_to_iso

API = "/api/v1"


def gunicorn_meter(gun: Gunicorn) -> Meter:
    """CPU of the gunicorn workers, MariaDB, this process and the rest of the machine."""
    meter = Meter(gun.pid)
    # The workers serve the requests; the master only watches them.
    meter.pids = {**{f"worker {pid}": pid for pid in gun.workers()}, "mariadb": meter.pids["mariadb"]}
    meter.start()
    return meter


def latency(name: str, times: list[float], median_target: float | None,
            p95_target: float | None) -> list[Figure]:
    """Median and p95 figures in ms of sorted request times."""
    median, p95 = (1000 * loadgen.percentile(times, f) for f in (0.5, 0.95))
    print(f"  {name}: {len(times)} requests, ms min {1000 * times[0]:.1f} median {median:.1f} "
          f"p95 {p95:.1f} max {1000 * times[-1]:.1f}")
    return [Figure(f"{name} median", median, "ms", median_target, "<="),
            Figure(f"{name} p95", p95, "ms", p95_target, "<=")]


def readings_path(device_id: int, start_ms: int, end_ms: int, resolution: str, csv: bool = False) -> str:
    """URL of a device's readings in [start_ms, end_ms)."""
    return (f"{API}/devices/{device_id}/readings{'.csv' if csv else ''}?from={ms_to_iso(start_ms)}"
            f"&to={ms_to_iso(end_ms - 1)}&resolution={resolution}")


def points_check(min_points: int, max_points: int):
    """A check of a readings body: its co2 series has between min and max points."""
    def check(body: bytes) -> None:
        points = len(orjson.loads(body)["series"]["co2"])
        if not min_points <= points <= max_points:
            raise RuntimeError(f"{points} points, expected {min_points}..{max_points}")
    return check


def part_readings(gun: Gunicorn, roles: web_data.Roles, sizes: web_data.Sizes) -> list[Figure]:
    """30 days auto of a 1 s device, 24 h auto of a 5 s device, a year at 1 h."""
    figures = []
    conn = gun.connect()
    cases = [("readings 30 days auto", roles.bulk, 30 * DAY_MS, "auto", (50, 150)),
             ("readings 24 h auto", roles.day, DAY_MS, "auto", (None, None)),
             ("readings 1 year 1h", roles.year, 365 * DAY_MS, "1h", (None, None))]
    for name, device, span, res, (median_target, p95_target) in cases:
        end = roles.ends[device]
        path = readings_path(device, end - span, end, res)
        status, body = request(conn, "GET", path)
        reply = orjson.loads(body)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        points = len(reply["series"]["co2"])
        print(f"  {name}: resolution {reply['resolution']} from {reply['source']}, {points:,} points "
              f"per metric, {len(body):,} bytes")
        meter = gunicorn_meter(gun)
        times = timed_gets(conn, path, sizes.requests, 3, points_check(1, 10 * 2000 if res == "1h" else 2000))
        print(meter.line())
        figures += latency(name, times, median_target, p95_target)
    conn.close()
    return figures


def part_devices(gun: Gunicorn, sizes: web_data.Sizes) -> list[Figure]:
    """GET /devices with every device and its latest reading."""
    def check(body: bytes) -> None:
        listed = orjson.loads(body)
        if len(listed) != sizes.devices or any(d["latest"].get("co2") is None for d in listed):
            raise RuntimeError(f"{len(listed)} devices listed, expected {sizes.devices} with readings")
    conn = gun.connect()
    meter = gunicorn_meter(gun)
    times = timed_gets(conn, f"{API}/devices", sizes.requests, 3, check)
    print(meter.line())
    conn.close()
    return latency(f"devices list ({sizes.devices} devices)", times, 50, None)


def part_csv(gun: Gunicorn, roles: web_data.Roles, sizes: web_data.Sizes) -> list[Figure]:
    """CSV export of the CSV device's raw readings: rows/s and the workers' memory before and during."""
    end = roles.ends[roles.csv]
    path = readings_path(roles.csv, end - sizes.csv_rows * 1000, end, "raw", csv=True)
    workers = gun.workers()
    before = {pid: memory_mb(pid) for pid in workers}
    sampler = RssSampler(workers)
    meter = gunicorn_meter(gun)
    conn = gun.connect()
    started = time.perf_counter()
    lines, size = stream_lines(conn, path)
    elapsed = time.perf_counter() - started
    conn.close()
    peak = sampler.stop()
    print(meter.line())
    rows = lines - 1  # the header
    if rows != sizes.csv_rows:
        raise RuntimeError(f"CSV export gave {rows:,} rows, expected {sizes.csv_rows:,}")
    print(f"  csv export: {rows:,} rows, {size / 1e6:,.1f} MB in {elapsed:.2f} s")
    for pid in workers:
        print(f"  worker {pid}: VmRSS before {before[pid][0]:.1f} MB (VmHWM {before[pid][1]:.1f}), "
              f"peak during {peak[pid]:.1f} MB, VmHWM after {memory_mb(pid)[1]:.1f} MB")
    served = max(workers, key=lambda pid: peak[pid] - before[pid][0])
    return [Figure("csv export", rows / elapsed, "rows/s", 200_000),
            Figure("csv worker RSS before", before[served][0], "MB"),
            Figure("csv worker peak RSS during", peak[served], "MB"),
            Figure("csv worker RSS growth", peak[served] - before[served][0], "MB")]


def http_client(port: int, device: loadgen.Device, batch: int, deadline: float, tally: loadgen.Tally,
                lock: threading.Lock) -> None:
    """One device posting `batch` readings at a time, each after the previous reply, until the deadline."""
    conn = connect(port)
    headers = {"Authorization": f"Bearer {device.token}", "Content-Type": "application/json"}
    sent = acked = 0
    try:
        while time.monotonic() < deadline:
            readings = device.readings(batch)
            for r in readings:
                r["ts"] = ms_to_iso(round(r["ts"] * 1000))
            body = orjson.dumps({"readings": readings})
            status, body = request(conn, "POST", f"{API}/readings", body, headers)
            sent += batch
            if status != 200:
                raise RuntimeError(f"status {status}: {body[:200]!r}")
            with lock:
                tally.check(body, [r["seq"] for r in readings])
    except Exception as exc:  # one client's failure is reported, the others go on
        with lock:
            tally.error(f"device {device.id}: {exc!r}")
    finally:
        conn.close()
        with lock:
            tally.sent += sent


def http_ingest(gun: Gunicorn, devices: list[loadgen.Device], batch: int,
                seconds: float) -> tuple[loadgen.Tally, float]:
    """50 client threads through gunicorn; the tally and elapsed seconds."""
    tally, lock = loadgen.Tally(), threading.Lock()
    start = time.monotonic()
    threads = [threading.Thread(target=http_client, args=(gun.port, d, batch, start + seconds, tally, lock))
               for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.monotonic() - start


def part_ingest(sizes: web_data.Sizes, use_sqlite: bool, tmp: Path, problems: list[str]) -> list[Figure]:
    """Batches of 100 from 50 clients: WebSocket server first, then HTTP through gunicorn, same database."""
    batch = 100
    with database(use_sqlite, tmp, "web_ingest_") as db_env:
        cfg = config_mod.load(environ=db_env)
        devices = register(cfg, sizes.ingest_clients)
        print(f"websocket ingest: {len(devices)} devices x {batch} readings per message, "
              f"{sizes.ingest_seconds:g} s")
        server = loadgen.Server({**os.environ, **db_env}, tmp / "ingest-server.log")
        try:
            meter = Meter(server.pid)
            tally, elapsed = run_async(loadgen.run_closed(server.url, devices, batch, sizes.ingest_seconds,
                                                          meter.start))
            print(meter.line())
        finally:
            server.close()
        ws_rate = tally.acked / elapsed
        acked = tally.acked
        problems += [f"websocket ingest: {e}" for e in tally.errors]
        print(f"  acked {tally.acked:,} readings in {elapsed:.2f} s = {ws_rate:,.0f} readings/s")
        print(f"http ingest: {len(devices)} client threads x {batch} readings per POST, "
              f"{sizes.ingest_seconds:g} s")
        gun = Gunicorn(cfg, tmp / "var-ingest", tmp / "gunicorn-ingest.log")
        try:
            meter = gunicorn_meter(gun)
            tally, elapsed = http_ingest(gun, devices, batch, sizes.ingest_seconds)
            print(meter.line())
        finally:
            gun.close()
        http_rate = tally.acked / elapsed
        acked += tally.acked
        problems += [f"http ingest: {e}" for e in tally.errors]
        if tally.acked != tally.sent:
            problems.append(f"http ingest: sent {tally.sent:,} readings, {tally.acked:,} acked")
        print(f"  acked {tally.acked:,} readings in {elapsed:.2f} s = {http_rate:,.0f} readings/s")
        engine = storage.make_engine(cfg.database_url)
        stored = storage.count_readings(engine)
        engine.dispose()
        if stored != acked:
            problems.append(f"ingest: {stored:,} readings stored, {acked:,} acked")
    return [Figure("http ingest", http_rate, "readings/s", 20_000),
            Figure("websocket ingest", ws_rate, "readings/s"),
            Figure("http / websocket", http_rate / ws_rate if ws_rate else 0, "x")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "readings", "devices", "csv", "page", "ingest"],
                        default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of MariaDB")
    parser.add_argument("--keep", action="store_true",
                        help="load into a named database, keep it, and reuse it when already loaded")
    parser.add_argument("--requests", type=int, help="timed GETs per figure (default 100, 5 with --quick)")
    parser.add_argument("--seconds", type=float, help="length of each ingest run (default 10)")
    parser.add_argument("--page-loads", type=int,
                        help="timed page loads, cold and warm (default 20, 1 with --quick)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts and print a summary; 1 when a request failed or an ack was missing."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = web_data.QUICK if args.quick else web_data.FULL
    sizes = replace(sizes, requests=args.requests or sizes.requests,
                    ingest_seconds=args.seconds or sizes.ingest_seconds)
    figures: list[Figure] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        tmp_path = Path(tmp)
        if args.part != "ingest":
            figures += data_parts(args, sizes, tmp_path, problems)
        if args.part in ("all", "ingest"):
            figures += part_ingest(sizes, args.sqlite, tmp_path, problems)
    print("\nsummary" + (" (--quick: too small for the targets to mean much)" if args.quick else ""))
    for figure in figures:
        print("  " + figure.line())
    for problem in problems:
        print("  ERROR " + problem)
    return 1 if problems else 0


def data_parts(args: argparse.Namespace, sizes: web_data.Sizes, tmp: Path,
               problems: list[str]) -> list[Figure]:
    """Load (or reuse) the data, start gunicorn on it, run the readings, devices and CSV parts."""
    figures = []
    if args.part == "csv":
        sizes = replace(sizes, csv_only=True)
    with web_data.kept_database(args.sqlite, args.keep, tmp, sizes.keep_name) as cfg:
        print(f"database {cfg.database_url}; [web] workers {cfg.web.workers}, threads {cfg.web.threads}")
        roles, load_times = web_data.prepare(cfg, sizes)
        if load_times:
            figures += [Figure("load: write readings", sizes.total / load_times["write"], "readings/s"),
                        Figure("load: rollup", load_times["rollup"], "s")]
        gun = Gunicorn(cfg, tmp / "var", tmp / "gunicorn.log")
        try:
            parts = {"readings": lambda: part_readings(gun, roles, sizes),
                     "devices": lambda: part_devices(gun, sizes),
                     "csv": lambda: part_csv(gun, roles, sizes),
                     "page": lambda: page.part_page(gun, roles.bulk, roles.ends[roles.bulk],
                                                    args.page_loads or (1 if args.quick else 20))}
            for name, part in parts.items():
                if args.part in ("all", name):
                    try:
                        figures += part()
                    except (RuntimeError, OSError) as exc:
                        problems.append(f"{name}: {exc}")
        finally:
            gun.close()
    return figures


if __name__ == "__main__":
    sys.exit(main())

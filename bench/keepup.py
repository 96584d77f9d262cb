"""Keep-up bench: rollups and retention run by a real Celery worker while the ingest is loaded.

Run from the repository root:  .venv/bin/python -m bench.keepup [--seconds N] [--quick]

A fresh MariaDB database (dropped afterwards) gets 50 devices and, for retention to
delete, one day of readings from 31 days ago. The ingest server (a child process) is
then driven at full speed by 50 devices sending batches of 100 readings, twice: once
alone, once while a Celery worker (RabbitMQ when reachable, else the embedded broker)
runs retention once and the rollup every few seconds. Printed: ingest readings/s in
both runs and their ratio, each task's duration, the rollup backlog when the load
stops, and a check that the rollups match the readings.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import kombu
import sqlalchemy as sa

from bench import loadgen
from bench.ingest import database, register, run_async
from lib import config as config_mod, storage
from lib.config import REPO_ROOT

DEVICES = 50
BATCH = 100
OLD_DAYS = 31  # the preloaded day lies beyond the default raw_days = 30


def rabbitmq_reachable() -> bool:
    """True when the local RabbitMQ accepts a connection."""
    try:
        with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//", connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # any failure means: use the embedded broker
        return False


def preload(cfg: config_mod.Config, devices: list[loadgen.Device], per_device: int) -> int:
    """Write `per_device` readings 5 s apart per device, a day beyond raw retention."""
    engine = storage.make_engine(cfg.database_url)
    start = storage.now_ms() - OLD_DAYS * 86_400_000
    rows = [(d.id, start + i * 5000, 500.0, 20.0, 40.0) for i in range(per_device) for d in devices]
    for first in range(0, len(rows), 5000):
        storage.write_readings(engine, ["co2", "temperature", "humidity"], rows[first:first + 5000])
    engine.dispose()
    return len(rows)


class Worker:
    """A `celery -A celery_tasks worker` child process and an app to call it."""

    def __init__(self, cfg: config_mod.Config, env: dict[str, str], log_path: Path,
                 extra_args: tuple[str, ...] = ()) -> None:
        from celery_tasks.main import make_celery
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--loglevel", "INFO",
             "--concurrency", "2", "--without-mingle", "--without-gossip", *extra_args],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.app = make_celery(cfg)
        deadline = time.monotonic() + 60
        while " ready." not in log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)

    def call(self, name: str) -> tuple[dict, float]:
        """Run a task and return its result and duration in seconds."""
        started = time.monotonic()
        result = self.app.send_task(name).get(timeout=600)
        return result, time.monotonic() - started

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:  # a long task holds up the warm shutdown
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
        self.app.close()


def background(worker: Worker, stop: threading.Event, every: float, runs: list) -> None:
    """Retention once, then the rollup every `every` seconds until `stop`."""
    runs.append(("retention",) + worker.call("celery_tasks.retention"))
    while not stop.wait(every):
        runs.append(("rollup",) + worker.call("celery_tasks.rollup"))


def ingest_run(env: dict[str, str], tmp: Path, devices: list[loadgen.Device], seconds: float,
               name: str) -> float:
    """Drive a fresh ingest server for `seconds`; return acked readings/s."""
    server = loadgen.Server(env, tmp / f"server-{name}.log")
    try:
        tally, elapsed = run_async(loadgen.run_closed(server.url, devices, BATCH, seconds))
    finally:
        server.close()
    if tally.errors or tally.acked != tally.sent:
        raise RuntimeError(f"{name}: sent {tally.sent}, acked {tally.acked}, errors {tally.errors[:3]}")
    return tally.acked / elapsed


def check(cfg: config_mod.Config) -> tuple[int, int, int]:
    """Pending marks left, readings in the last 2 days, and the count the rollups hold for them."""
    engine = storage.make_engine(cfg.database_url)
    since = storage.now_ms() - 2 * 86_400_000
    with engine.connect() as conn:
        pending = conn.scalar(sa.text("SELECT COUNT(*) FROM rollup_pending"))
        raw = conn.scalar(sa.text("SELECT COUNT(co2) FROM reading WHERE ts >= :s"), {"s": since})
        rolled = conn.scalar(sa.text("SELECT COALESCE(SUM(co2_n), 0) FROM rollup_1m WHERE bucket >= :s"),
                             {"s": since})
    engine.dispose()
    return pending, raw, int(rolled)


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print its figures; 1 when the rollups do not match the readings."""
    parser = argparse.ArgumentParser(prog="python -m bench.keepup", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each ingest run")
    parser.add_argument("--rollup-every", type=float, default=5, help="seconds between rollups")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    seconds = 3 if args.quick else args.seconds
    old_per_device = 200 if args.quick else 17_280
    with tempfile.TemporaryDirectory(prefix="bench-keepup-") as tmp, database(False, Path(tmp)) as db_env:
        tmp_path = Path(tmp)
        broker = {"SENSORS_RABBITMQ_HOST": "127.0.0.1", "SENSORS_RABBITMQ_USER": "guest",
                  "SENSORS_RABBITMQ_PASSWORD": "guest"} if rabbitmq_reachable() else {}
        env = {**os.environ, **db_env, **broker, "SENSORS_CELERY_QUEUE": f"keepup-{uuid.uuid4().hex[:8]}",
               "SENSORS_CELERY_EMBEDDED_DIR": str(tmp_path / "celery"),
               "SENSORS_OTHER_FLASK_PATH": str(tmp_path / "charts")}
        cfg = config_mod.load(environ=env)
        devices = register(cfg, DEVICES)
        old = preload(cfg, devices, old_per_device)
        print(f"database {cfg.database_url}; broker {cfg.broker_url.split('@')[-1]}; "
              f"{old:,} readings preloaded {OLD_DAYS} days back")
        alone = ingest_run(env, tmp_path, devices, seconds, "alone")
        print(f"ingest alone:             {alone:>10,.0f} readings/s")
        worker = Worker(cfg, env, tmp_path / "worker.log")
        runs: list = []
        stop = threading.Event()
        thread = threading.Thread(target=background, args=(worker, stop, args.rollup_every, runs))
        try:
            thread.start()
            loaded = ingest_run(env, tmp_path, devices, seconds, "with-tasks")
            stop.set()
            thread.join(600)
            left = check(cfg)[0]
            final = worker.call("celery_tasks.rollup")
        finally:
            stop.set()
            worker.close()
        print(f"ingest with rollups:      {loaded:>10,.0f} readings/s (x{loaded / alone:.2f} of alone)")
        for name, result, took in runs:
            detail = {k: v for k, v in result.items() if k not in ("seconds",)}
            print(f"  {name:<9} {took:6.2f} s  {detail}")
        rollups = [took for name, _, took in runs if name == "rollup"]
        if rollups:
            print(f"rollups: {len(rollups)} runs, longest {max(rollups):.2f} s, "
                  f"interval {args.rollup_every:g} s")
        pending, raw, rolled = check(cfg)
        print(f"backlog when the load stopped: {left} pending hour marks; "
              f"final rollup {final[1]:.2f} s; left after it: {pending}")
        print(f"rollup check: {raw:,} co2 readings in the last 2 days, rollup_1m counts {rolled:,}")
        return 0 if raw == rolled and pending == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Soak bench: 1,000 devices at 5,000 readings/s for 10 minutes, with the worker and /live viewers.

Run from the repository root:  .venv/bin/python -m bench.soak [--minutes 10] [--devices 1000]
    [--rate 5000] [--viewers 20] [--generators 2] [--sqlite] [--broker auto|rabbitmq|embedded]
    [--rollup-seconds 10] [--no-plot] [--save-docs]

A fresh database (`sensors_bench_soak_<pid>` on MariaDB at 127.0.0.1:3306, dropped at the end,
or SQLite) gets the devices, alert rules and a few readings 31 days old for retention to
delete. The ingest server (`python -m Pi_Sensor.server`, port 0) and a Celery worker with beat
(`celery -A celery_tasks worker -B`: rollups, alerts and retention at short intervals; RabbitMQ
when reachable) run as child processes. Generator processes hold the device connections and
send one reading per message on an open-loop schedule; a viewer process holds the /live
WebSockets. Each device journals what was acked; at the end the journals are compared with
the database. Printed: a row per minute and a final table of checks; the plot goes to
var/bench/soak.png (and docs/soak.png with --save-docs; matplotlib from bench/requirements.txt).
Exit status 1 when a reading was lost, duplicated or left unanswered, or something failed;
targets missed are reported as FAIL but do not change it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen, soak_report as report
from bench.ingest import database, raise_nofile, register
from bench.keepup import Worker, preload, rabbitmq_reachable
from bench.soak_run import TICKS_PER_ROW, Load, run_load
from bench.soak_stack import (RABBITMQ, Sampler, add_alert_rules, compare_journals, forget_broker_names,
                              rollup_check, task_runs)
from lib import config as config_mod, storage
from lib.config import REPO_ROOT

LOGS = REPO_ROOT / "var" / "bench"
PLOT = LOGS / "soak.png"
DOCS_PLOT = REPO_ROOT / "docs" / "soak.png"
# Devices that only hold readings 31 days old, for retention to delete under load (and the
# no-data rule to fire for, once); the connected devices start without history.
ARCHIVE_DEVICES, OLD_PER_DEVICE = 10, 2  # old readings per archive device: 2 per connected device
BEGAN = time.monotonic()


def step(text: str) -> None:
    """Print a step of the run with the seconds since the bench started."""
    print(f"[{time.monotonic() - BEGAN:6.1f} s] {text}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    parser.add_argument("--devices", type=int, default=1000, help="device connections (default 1000)")
    parser.add_argument("--rate", type=float, default=5000.0, help="readings/s in all (default 5000)")
    parser.add_argument("--viewers", type=int, default=20, help="/live WebSockets (default 20)")
    parser.add_argument("--generators", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--row-seconds", type=float, help="seconds per table row (default 60, or "
                        "a fifth of a run shorter than 5 minutes)")
    parser.add_argument("--rollup-seconds", type=float, default=10.0, help="rollup and alert interval")
    parser.add_argument("--retention-seconds", type=float, default=60.0, help="retention interval")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of MariaDB")
    parser.add_argument("--broker", choices=["auto", "rabbitmq", "embedded"], default="auto",
                        help="Celery broker and live bus (auto: RabbitMQ when reachable)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    parser.add_argument("--save-docs", action="store_true", help="copy the plot to docs/soak.png")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    args.row_seconds = args.row_seconds or (60.0 if seconds >= 300 else seconds / 5)
    args.tick = args.row_seconds / TICKS_PER_ROW
    args.ticks = max(1, round(seconds / args.tick))
    args.seconds = args.ticks * args.tick
    args.generators = max(1, min(args.generators, args.devices))
    return args


def stack_env(args, tmp: Path, db_env: dict[str, str], use_rabbitmq: bool) -> dict[str, str]:
    """The environment of the server and the worker: short intervals, everything under tmp."""
    return {**os.environ, **db_env,
            **(RABBITMQ if use_rabbitmq else {"SENSORS_RABBITMQ_HOST": ""}),
            "SENSORS_OTHER_VAR_DIR": str(tmp / "var"), "SENSORS_OTHER_FLASK_PATH": str(tmp / "charts"),
            "SENSORS_LIVE_SECRET": secrets.token_urlsafe(32),
            "SENSORS_CELERY_QUEUE": f"bench-soak-{os.getpid()}",
            "SENSORS_CELERY_EMBEDDED_DIR": str(tmp / "celery"),
            "SENSORS_CELERY_ROLLUP_SECONDS": str(args.rollup_seconds),
            "SENSORS_CELERY_ALERT_SECONDS": str(args.rollup_seconds),
            "SENSORS_CELERY_RETENTION_SECONDS": str(args.retention_seconds),
            # Charts: drawn once as beat starts (before the load), not again; bench.charts measures them.
            "SENSORS_CHARTS_INTERVAL_SECONDS": str(max(3600.0, 10 * args.seconds))}


def wait_first_draw(worker: Worker, timeout: float = 120) -> None:
    """Beat draws the charts when it starts: wait for that to be done before the load begins."""
    deadline = time.monotonic() + timeout
    while "celery_tasks.draw_charts" not in task_runs(worker.log_path):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker never ran beat's first draw_charts")
        time.sleep(0.1)


def final_rollup(worker: Worker, cfg, since_ms: int, timeout: float = 120.0) -> tuple[int, int, int, int]:
    """Run the rollup until nothing since `since_ms` is pending (a beat run may hold the lock, a run
    may stop at its time budget), at most `timeout` s; return rollup_check's figures."""
    deadline = time.monotonic() + timeout
    while True:
        worker.call("celery_tasks.rollup")
        checked = rollup_check(cfg, since_ms)
        if checked[0] == 0 or time.monotonic() > deadline:
            return checked


@dataclass
class Outcome:
    """What a soak leaves for the report."""

    load: Load
    samples: list
    start: float
    found: Counter
    rolled: tuple[int, int, int, int]
    tasks: dict


def populate(args, cfg) -> list[loadgen.Device]:
    """Devices, old readings for retention and alert rules in the fresh database."""
    everyone = register(cfg, args.devices + ARCHIVE_DEVICES)
    devices = everyone[:args.devices]
    old = preload(cfg, everyone[args.devices:], OLD_PER_DEVICE * args.devices)
    add_alert_rules(cfg, devices[0].id)
    step(f"database {cfg.database_url.split('@')[-1]}; broker {cfg.broker_url.split('@')[-1]}; "
         f"{args.devices:,} devices, {args.rate:,.0f} readings/s for {args.seconds:,.0f} s, "
         f"{args.viewers} viewers; rollups and alerts every {args.rollup_seconds:g} s, "
         f"retention every {args.retention_seconds:g} s ({old:,} readings 31 days old to delete)")
    return devices


@contextlib.contextmanager
def running_stack(args, cfg, env: dict[str, str], tmp: Path):
    """Schema first; the ingest server and the worker (with beat) boot while populate() writes."""
    engine = storage.make_engine(cfg.database_url)
    try:
        storage.init_db(engine)
    finally:
        engine.dispose()
    beat = ("-B", "--schedule", str(tmp / "celery" / "beat"))
    with ThreadPoolExecutor(2) as pool:
        booting = [pool.submit(loadgen.Server, env, tmp / "server.log"),
                   pool.submit(Worker, cfg, env, tmp / "worker.log", beat)]
        try:
            devices = populate(args, cfg)
        except BaseException:
            for proc in [f.result() for f in booting if f.exception() is None]:
                proc.close()
            raise
    server, worker = booted(booting)
    step("server and worker up")
    try:
        yield devices, server, worker
    finally:
        if server.proc.poll() is None:
            server.close()
        worker.proc.send_signal(signal.SIGQUIT)  # cold shutdown: the checks are done, no task matters
        worker.close()
        if cfg.uses_rabbitmq:
            forget_broker_names(cfg)


def booted(booting: list) -> list:
    """The processes started side by side; when one failed, close the others and raise its error."""
    failed = [f.exception() for f in booting if f.exception() is not None]
    started = [f.result() for f in booting if f.exception() is None]
    if failed:
        for proc in started:
            proc.close()
        raise failed[0]
    return started


def soak(args, tmp: Path, db_env: dict[str, str], use_rabbitmq: bool) -> Outcome:
    """Start the stack and the load, run it, check the journals and the rollups, stop everything."""
    env = stack_env(args, tmp, db_env, use_rabbitmq)
    cfg = config_mod.load(environ=env)
    load = sampler = None
    with running_stack(args, cfg, env, tmp) as (devices, server, worker):
        try:
            load = Load(args, server, devices, env["SENSORS_LIVE_SECRET"])
            wait_first_draw(worker)
            load.wait_ready()
            step("load processes connected")
            since_ms = int(time.time() * 1000) - 1000
            sampler = Sampler(cfg, component_pids(server, worker, load), server, since_ms,
                              every=max(0.25, min(1.0, args.tick / 2)))
            start = run_load(args, load, sampler)
            samples = sampler.stop()
            server.close()  # every acked reading is committed; nothing more arrives
            step("load done; comparing the journals with the database, final rollup")
            found = compare_journals(cfg, load.journals, since_ms)
            rolled = final_rollup(worker, cfg, since_ms)
            step("checked")
        finally:
            if sampler is not None:
                sampler.stop()
            if load is not None:
                load.close()
    keep_logs(tmp)
    return Outcome(load, samples, start, found, rolled, task_runs(worker.log_path))


def keep_logs(tmp: Path) -> None:
    """Copy the server's and the worker's logs to var/bench/ (the temporary folder goes)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for name in ("server.log", "worker.log"):
        shutil.copyfile(tmp / name, LOGS / f"soak-{name}")
    step(f"logs: {LOGS}/soak-server.log, soak-worker.log")


def component_pids(server: loadgen.Server, worker: Worker, load: Load) -> dict[str, list[int]]:
    """The processes whose CPU the bench reports, by part."""
    found = {"mariadb": loadgen.find_pid("mariadbd", "mysqld"), "rabbitmq": loadgen.find_pid("beam.smp")}
    pids = [p.pid for p in load.procs]
    generators = pids[:load.args.generators]
    return {"server": [server.pid], "worker": [worker.proc.pid], "generators": generators,
            "viewers": pids[len(generators):], "bench": [os.getpid()],
            **{k: [pid] for k, pid in found.items() if pid}}


def summarise(args, out: Outcome) -> bool:
    """Print the tasks, CPU and the final table, draw the plot; True when every correctness check passed."""
    rows = report.rows_of(out.load.windows[:-1], out.samples, out.start, args.tick, TICKS_PER_ROW)
    print("\nworker tasks: " + ", ".join(f"{name.split('.')[-1]} {ok} ok/{bad} failed, longest {top:.2f} s"
                                         for name, (ok, bad, top) in sorted(out.tasks.items())))
    cpu = report.cpu_percent(out.samples)
    stalled, machine = cpu.pop("stalled", float("nan")), cpu.pop("machine", float("nan"))
    print("cpu over the run (% of one core): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
          + f"; whole machine {machine:.0f} of 200, of which other processes {machine - sum(cpu.values()):.0f}; "
          f"some task waited for a CPU {stalled:.0f} % of the time (PSI)")
    rate = sum(w.acked for w in out.load.windows[:-1]) / args.seconds
    if rate:
        print("cpu per reading acked (µs): " + ", ".join(f"{k} {10_000 * v / rate:.0f}" for k, v in cpu.items()))
    checks = report.verdicts(args, out.load.windows, out.load.counts, rows, out.found, out.rolled, out.tasks,
                             time.monotonic() - BEGAN)
    print(f"\n  {'check':<44} {'measured':<34} {'target':<26} result")
    for check in checks:
        print(check.line())
    for error in [e for w in out.load.windows for e in w.errors][:10]:
        print(f"  ERROR {error}")
    if not args.no_plot:
        ticks = report.rows_of(out.load.windows[:-1], out.samples, out.start, args.tick, 1)
        report.plot(ticks, out.samples, out.start, args.rate, args.rollup_seconds, PLOT)
        print(f"plot: {PLOT}")
        if args.save_docs:
            DOCS_PLOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(PLOT, DOCS_PLOT)
            print(f"copied to {DOCS_PLOT}")
    return all(c.ok is not False for c in checks if c.correctness)


def main(argv: list[str] | None = None) -> int:
    """Set up, soak, check; print the table; 1 when a reading was lost or duplicated or a part failed."""
    args = parse_args(argv)
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        print(report.MISSING_PLOT, file=sys.stderr)
        return 2
    raise_nofile(args.devices + 512)
    # SIGTERM (kill, a background job's stop) ends the run through the clean-up, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    use_rabbitmq = args.broker == "rabbitmq" or (args.broker == "auto" and rabbitmq_reachable())
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as folder, \
            database(args.sqlite, Path(folder), "soak_") as db_env:
        out = soak(args, Path(folder), db_env, use_rabbitmq)
    return 0 if summarise(args, out) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

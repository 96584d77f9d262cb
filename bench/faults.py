"""Every fault scenario with real processes, one after another, and a table of what each proved.

    .venv/bin/python -m bench.faults [--only NAME ...] [--long] [--keep]

Scenarios (bench/fault_scenarios.py, bench/fault_crashes.py): the broker gone, the database
"restarted" under load, a gunicorn worker and a Celery pool process SIGKILLed mid-work, var/ on a
full disk, the Pi client on a slow and lossy link. By default they run about as long as their
tests (tests/test_faults_*.py); --long uses the durations of the issue: the broker gone 60 s,
the database 30 s, the lossy link 5 minutes with the Pi client's own settings. Each scenario gets
a fresh MariaDB database (dropped afterwards) and a folder of its own, kept with --keep.
Needs MariaDB and RabbitMQ on 127.0.0.1, and root for the tmpfs of the full disk.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from bench import fault_crashes, fault_scenarios
from bench.fault_stack import Result
from bench.ingest import database
from lib import config as config_mod

Runner = Callable[[config_mod.Config, Path, bool], Result]

SCENARIOS: dict[str, Runner] = {
    "broker": lambda cfg, folder, long: fault_scenarios.broker_outage(cfg, folder, 60.0 if long else 5.0),
    "database": lambda cfg, folder, long: fault_scenarios.database_restart(cfg, folder,
                                                                          30.0 if long else 4.0),
    "web-kill": lambda cfg, folder, long: fault_crashes.web_worker_killed(cfg, folder),
    "celery-kill": lambda cfg, folder, long: fault_crashes.celery_child_killed(cfg, folder),
    "disk": lambda cfg, folder, long: fault_crashes.disk_full(folder),
    "lossy": lambda cfg, folder, long: fault_scenarios.lossy_link(
        cfg, folder, 300.0 if long else 20.0, reset_s=30.0 if long else 5.0,
        client_options=() if long else fault_scenarios.CI_CLIENT),
}


def run_one(name: str, long: bool, root: Path) -> Result:
    """One scenario on a fresh MariaDB database; a failure to run at all is a failed Result."""
    folder = root / name
    folder.mkdir(parents=True)
    started = time.monotonic()
    try:
        with database(False, folder, "faults_") as env:
            result = SCENARIOS[name](config_mod.load(environ=env), folder, long)
    except fault_crashes.MountRefused as exc:
        result = Result(name, "skipped", problems=[f"skipped: {exc}"])
    except Exception as exc:  # the table still shows the other scenarios
        traceback.print_exc()
        result = Result(name, "did not run", problems=[f"{type(exc).__name__}: {exc}"])
    result.figures["scenario s"] = round(time.monotonic() - started, 1)
    return result


def table(results: list[Result]) -> str:
    """The results as a Markdown table, then each scenario's other figures and problems."""
    lines = ["| Scenario | Checked | Sent | Stored | Lost | Duplicated | Recovery | Result |",
             "| -- | -- | --: | --: | --: | --: | --: | -- |"]
    for r in results:
        recovery = "" if r.recovery_s is None else f"{r.recovery_s:.1f} s"
        pending = f" (+{r.pending} spooled)" if r.pending else ""
        lines.append(f"| {r.scenario} | {r.checked} | {r.sent:,} | {r.stored:,}{pending} | {r.lost} | "
                     f"{r.duplicated} | {recovery} | {'pass' if r.passed else 'FAIL'} |")
    lines.append("")
    for r in results:
        figures = ", ".join(f"{k} {v}" for k, v in r.figures.items())
        lines.append(f"{r.scenario}: {figures}")
        lines += [f"  problem: {p}" for p in r.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--long", action="store_true", help="the issue's durations (about 9 minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the scenarios' folders (logs, spools)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    results = []
    try:
        for name in args.only or SCENARIOS:
            print(f"{name}: running", flush=True)
            results.append(run_one(name, args.long, root))
            print(f"{name}: {'pass' if results[-1].passed else 'FAIL'} "
                  f"({results[-1].figures['scenario s']} s)", flush=True)
    finally:
        if args.keep:
            print(f"folders kept in {root}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
    print()
    print(table(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

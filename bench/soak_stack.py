"""The stack under soak: settings, alert rules, a sampler of RSS, CPU and rollup lag, and the checks
at the end (acked journals against the database, rollups against readings, the worker's log)."""
from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench import loadgen
from bench.web_server import children
from lib import alerts, config as config_mod, storage
from lib.storage import alerts as alert_store, dialect as dialects

RABBITMQ = {"SENSORS_RABBITMQ_HOST": "127.0.0.1", "SENSORS_RABBITMQ_USER": "guest",
            "SENSORS_RABBITMQ_PASSWORD": "guest"}
TASK_LINE = re.compile(r"Task (celery_tasks\.\w+)\[[^\]]+\] (succeeded in ([\d.]+)s|raised|retry)")


def add_alert_rules(cfg: config_mod.Config, first_device: int) -> None:
    """Rules on every device (a threshold the readings never pass, and silence) and one that fires.

    The readings cycle through 400..1093 ppm every 100 readings; on the first device the last
    rule fires and resolves once per cycle.
    """
    engine = storage.make_engine(cfg.database_url)
    try:
        for device_id, spec in (
                (None, alerts.rule_spec(name="soak co2 high", metric="co2", above=1500, hold=60)),
                (None, alerts.rule_spec(name="soak silent", no_data_minutes=1)),
                (first_device, alerts.rule_spec(name="soak co2 cycle", metric="co2", above=1000,
                                                hysteresis=50))):
            alert_store.add_rule(engine, device_id=device_id, **spec)
    finally:
        engine.dispose()


@dataclass
class Sample:
    """One look at the stack: when, the ingest server's RSS, the rollup lag, cumulative CPU seconds."""

    t: float
    rss_mb: float
    lag_s: float
    cpu: dict[str, float]


@dataclass
class Sampler:
    """Samples every `every` s in a thread from start() to stop()."""

    cfg: config_mod.Config
    pids: dict[str, list[int]]  # component -> pids (the worker's children are added as found)
    server: loadgen.Server
    since_ms: int  # rollup marks of hours before this (the preloaded old readings) are not lag
    every: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = storage.make_engine(self.cfg.database_url)
        least = dialects.least(self.engine.dialect.name)
        hour = self.since_ms - self.since_ms % storage.HOUR_MS
        # The oldest reading written but not yet in the rollups: a mark's written or taken range.
        self.lag_sql = sa.text(f"SELECT MIN({least}(lo_ms, COALESCE(taken_lo_ms, lo_ms))) "
                               f"FROM rollup_pending WHERE hour >= {int(hour)}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Take a first sample now, then one every `every` s."""
        self.sample()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        """Take one sample (the rollup lag is 0 when nothing is pending)."""
        with self.engine.connect() as conn:
            oldest = conn.scalar(self.lag_sql)
        now_ms = storage.now_ms()
        lag = (now_ms - oldest) / 1000 if oldest is not None and oldest < now_ms + 3_600_000 else 0.0
        cpu = {name: sum(loadgen.cpu_seconds(pid) for pid in self._pids(name)) for name in self.pids}
        cpu["machine"] = loadgen.busy_seconds()
        cpu["stalled"] = cpu_stall_seconds()
        self.samples.append(Sample(time.monotonic(), self.server.rss_mb(), max(lag, 0.0), cpu))

    def _pids(self, name: str) -> list[int]:
        pids = self.pids[name]
        return pids + children(pids[0]) if name == "worker" and pids else pids

    def stop(self) -> list[Sample]:
        """Stop sampling (again: no-op); return the samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.engine.dispose()
        return self.samples


def cpu_stall_seconds() -> float:
    """Seconds in which some runnable task waited for a CPU (Linux PSI), nan where not available."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
    except OSError:
        return float("nan")
    return int(some.rpartition("total=")[2]) / 1e6


def compare_journals(cfg: config_mod.Config, journals: dict[int, object], since_ms: int) -> Counter:
    """Per device, the acked timestamps against the stored ones: lost, stored but not acked, acked twice."""
    engine = storage.make_engine(cfg.database_url)
    query = sa.text("SELECT ts FROM reading WHERE device_id = :d AND ts >= :s")
    found: Counter = Counter()
    try:
        with engine.connect() as conn:
            for device_id, journal in journals.items():
                acked = set(journal)
                stored = {ts for (ts,) in conn.execute(query, {"d": device_id, "s": since_ms})}
                found["acked"] += len(journal)
                found["acked twice"] += len(journal) - len(acked)
                found["lost"] += len(acked - stored)
                found["stored, not acked"] += len(stored - acked)
    finally:
        engine.dispose()
    return found


def rollup_check(cfg: config_mod.Config, since_ms: int) -> tuple[int, int, int, int]:
    """Marks pending since `since_ms`, readings stored since, the count rollup_1m holds, alert events."""
    minute = since_ms - since_ms % 60_000
    engine = storage.make_engine(cfg.database_url)
    try:
        with engine.connect() as conn:
            pending = conn.scalar(sa.text("SELECT COUNT(*) FROM rollup_pending WHERE hour >= :h"),
                                  {"h": minute - minute % storage.HOUR_MS})
            raw = conn.scalar(sa.text("SELECT COUNT(co2) FROM reading WHERE ts >= :s"), {"s": minute})
            rolled = conn.scalar(sa.text("SELECT COALESCE(SUM(co2_n), 0) FROM rollup_1m "
                                         "WHERE bucket >= :s"), {"s": minute})
            events = conn.scalar(sa.text("SELECT COUNT(*) FROM alert_event"))
    finally:
        engine.dispose()
    return int(pending), int(raw), int(rolled), int(events)


def task_runs(log_path: Path) -> dict[str, tuple[int, int, float]]:
    """Per task in the worker's log: (runs that succeeded, that failed or retried, longest seconds)."""
    runs: dict[str, list] = {}
    for match in TASK_LINE.finditer(log_path.read_text(errors="replace")):
        entry = runs.setdefault(match.group(1), [0, 0, 0.0])
        if match.group(3):
            entry[0] += 1
            entry[2] = max(entry[2], float(match.group(3)))
        else:
            entry[1] += 1
    return {name: tuple(v) for name, v in runs.items()}


def wait_for(log_path: Path, text: str, timeout: float, proc=None) -> None:
    """Wait until `text` shows in a child's log; fail with the log when it does not."""
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text(errors="replace"):
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise RuntimeError(f"{text!r} never showed in {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)


def forget_broker_names(cfg: config_mod.Config) -> None:
    """Delete the run's queue and exchanges from RabbitMQ (each run has names of its own)."""
    import kombu
    name = cfg.celery.queue
    with kombu.Connection(cfg.broker_url, connect_timeout=5) as conn:
        channel = conn.channel()
        channel.queue_delete(name)
        for exchange in (name, f"{name}.live"):
            channel.exchange_delete(exchange)

"""Load for the ingest bench: simulated devices that send readings and check the acks,
and the server process under load (start, stop, CPU and memory)."""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from lib.config import REPO_ROOT

# A small pool of in-range values, cycled, so building a message costs the client little.
VALUES = [{"co2": 400.0 + 7 * i, "temperature": 18.0 + i / 10, "humidity": 35.0 + i / 4}
          for i in range(100)]
OPEN_CONCURRENCY = 100  # handshakes in progress at once
DRAIN_TIMEOUT_S = 30.0  # how long to wait for the last acks after sending stops
MAX_ERRORS = 20
LISTENING = re.compile(r"listening on [^\s:]+:(\d+)")


@dataclass
class Device:
    """A registered device: its token, next sequence number and next timestamp (ms)."""

    id: int
    token: str
    next_ms: int
    seq: int = 0

    def readings(self, count: int) -> list[dict]:
        """`count` new readings with consecutive seqs and timestamps 1 ms apart."""
        seq, ms = self.seq, self.next_ms
        self.seq, self.next_ms = seq + count, ms + count
        return [{"seq": s, "ts": (ms + i) / 1000, "values": VALUES[s % 100]}
                for i, s in enumerate(range(seq, seq + count))]


@dataclass
class Tally:
    """What the server acknowledged, how fast, and anything that went wrong."""

    sent: int = 0
    acked: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first MAX_ERRORS problems
    error_count: int = 0
    max_lag: float = 0.0  # open loop: worst delay of a send behind its schedule (s)

    def check(self, raw: str | bytes, seqs: list[int]) -> None:
        """Count the acks of a reply to `seqs`; a partial ack, rejection or error is a problem."""
        reply = orjson.loads(raw)
        acks, rejected = reply.get("ack") or [], reply.get("rejected")
        self.acked += len(acks)
        if acks != seqs or rejected or "error" in reply:
            self.error(f"reply to seqs {seqs[0]}..{seqs[-1]}: {len(acks)} acked, "
                       f"rejected {str(rejected)[:200]}, error {reply.get('error')!r}")

    def error(self, message: str) -> None:
        """Record a problem, keeping the text of the first MAX_ERRORS."""
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


async def open_one(url: str, token: str) -> ClientConnection:
    """Open one authenticated connection (no compression, no client pings)."""
    return await connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                         compression=None, max_size=None, ping_interval=None, open_timeout=60)


async def open_all(url: str, devices: list[Device]) -> list[ClientConnection]:
    """Open a connection per device, OPEN_CONCURRENCY handshakes at a time."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def guarded(device: Device) -> ClientConnection:
        async with gate:
            return await open_one(url, device.token)
    return list(await asyncio.gather(*(guarded(d) for d in devices)))


async def close_all(conns: list[ClientConnection]) -> None:
    """Close connections, ignoring ones that are already gone."""
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def closed_loop(ws: ClientConnection, device: Device, size: int, deadline: float,
                      tally: Tally) -> None:
    """Send `size` readings per message, each after the previous ack, until the deadline."""
    try:
        while time.monotonic() < deadline:
            batch = device.readings(size)
            await ws.send(orjson.dumps({"readings": batch}), text=True)
            tally.sent += size
            tally.check(await ws.recv(), [r["seq"] for r in batch])
    except Exception as exc:  # a dropped connection ends this device, the bench reports it
        tally.error(f"device {device.id}: {exc!r}")


async def run_closed(url: str, devices: list[Device], size: int, seconds: float,
                     on_start=lambda: None) -> tuple[Tally, float]:
    """Closed loop over all devices; return the tally and the elapsed seconds."""
    conns = await open_all(url, devices)
    tally = Tally()
    on_start()
    start = time.monotonic()
    await asyncio.gather(*(closed_loop(ws, d, size, start + seconds, tally)
                           for ws, d in zip(conns, devices)))
    elapsed = time.monotonic() - start
    await close_all(conns)
    return tally, elapsed


async def open_loop(ws: ClientConnection, device: Device, interval: float, first: float,
                    count: int, tally: Tally) -> None:
    """Send `count` readings, one every `interval` s from `first`, without waiting for acks."""
    sent: dict[int, float] = {}
    receiver = asyncio.create_task(_receive_acks(ws, sent, tally))
    try:
        for k in range(count):
            due = first + k * interval
            await asyncio.sleep(due - time.monotonic())
            batch = device.readings(1)
            now = time.monotonic()
            tally.max_lag = max(tally.max_lag, now - due)
            sent[batch[0]["seq"]] = now
            await ws.send(orjson.dumps({"readings": batch}), text=True)
            tally.sent += 1
        give_up = time.monotonic() + DRAIN_TIMEOUT_S
        while sent and time.monotonic() < give_up:
            await asyncio.sleep(0.01)
        if sent:
            tally.error(f"device {device.id}: {len(sent)} readings never acked")
    except Exception as exc:
        tally.error(f"device {device.id}: {exc!r}")
    finally:
        receiver.cancel()


async def _receive_acks(ws: ClientConnection, sent: dict[int, float], tally: Tally) -> None:
    """Match acks to send times and record each reading's latency."""
    try:
        async for raw in ws:
            now = time.monotonic()
            reply = orjson.loads(raw)
            acks = reply.get("ack") or []
            if reply.get("rejected") or "error" in reply or not acks:
                tally.error(f"unexpected reply: {str(reply)[:200]}")
            for seq in acks:
                if seq in sent:
                    tally.latencies.append(now - sent.pop(seq))
                    tally.acked += 1
                else:
                    tally.error(f"ack of a seq never sent or acked twice: {seq}")
    except Exception as exc:
        tally.error(f"receiving acks: {exc!r}")


async def run_open(url: str, devices: list[Device], rate: float, seconds: float,
                   on_start=lambda: None) -> tuple[Tally, float]:
    """Open loop at `rate` readings/s in total, spread evenly over the devices."""
    conns = await open_all(url, devices)
    tally = Tally()
    on_start()
    n = len(devices)
    interval, total = n / rate, round(rate * seconds)  # each device's period; readings in all
    start = time.monotonic() + 0.05
    await asyncio.gather(*(open_loop(ws, d, interval, start + interval * i / n,
                                     total // n + (i < total % n), tally)
                           for i, (ws, d) in enumerate(zip(conns, devices))))
    elapsed = time.monotonic() - start
    await close_all(conns)
    return tally, elapsed


async def run_idle(url: str, devices: list[Device], count: int, settle: float,
                   measure) -> tuple[object, int]:
    """Hold `count` idle connections `settle` s; return measure() and how many stayed open."""
    conns = await open_all(url, [devices[i % len(devices)] for i in range(count)])
    await asyncio.sleep(settle)
    figure = measure()
    still_open = sum(ws.state is State.OPEN for ws in conns)
    await close_all(conns)
    return figure, still_open


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


# ---- the server process under load ----------------------------------------------------

class Server:
    """`python -m Pi_Sensor.server --host 127.0.0.1 --port 0` as a child process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        # The benches' devices send far above a Pi's rate: measure the server, not its per-device
        # limit ([ingest] device_max_rate), unless the caller's environment sets one.
        env = {"SENSORS_INGEST_DEVICE_MAX_RATE": "0", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "Pi_Sensor.server", "--host", "127.0.0.1", "--port", "0"],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.url = f"ws://127.0.0.1:{self._wait_port()}/ingest"
        print(f"  server pid {self.pid} at {self.url}")

    def _wait_port(self, timeout: float = 30) -> int:
        """Read the bound port from the log line `listening on HOST:PORT`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            match = LISTENING.search(self.log_path.read_text())
            if match:
                return int(match.group(1))
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"ingest server did not start:\n{self.log_path.read_text()}")

    def rss_mb(self) -> float:
        """Resident set size (VmRSS) in MiB."""
        try:
            match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.pid}/status").read_text())
        except OSError:
            match = None
        return int(match.group(1)) / 1024 if match else float("nan")  # nan: it has exited

    def close(self) -> None:
        """SIGTERM (the server drains its commits), SIGKILL if it hangs; show its warnings."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        lines = self.log_path.read_text().splitlines()
        for line in [l for l in lines if " WARNING " in l or " ERROR " in l][:5]:
            print(f"  server log: {line}")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (all its threads), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def find_pid(*names: str) -> int | None:
    """Pid of the first process whose command name is one of `names` (e.g. mariadbd)."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in names:
                return int(entry.name)
    return None


class Meter:
    """CPU of the server, MariaDB, this process (the generator) and the rest ("other": if
    more than a few %, something else loaded the machine), and database counters."""

    def __init__(self, server_pid: int, db_status: Callable[[], dict[str, int]] = dict) -> None:
        self.pids = {"server": server_pid, "mariadb": find_pid("mariadbd", "mysqld")}
        self.db_status = db_status
        self.start()

    def start(self) -> None:
        """Begin the window."""
        self.t0, self.busy0, self.self0 = time.monotonic(), busy_seconds(), time.process_time()
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.db0 = self.db_status()

    def line(self) -> str:
        """CPU as % of one core since start(), and database counters per second."""
        wall = time.monotonic() - self.t0
        cpu = {name: cpu_seconds(pid) - self.cpu0[name] for name, pid in self.pids.items()}
        cpu["generator"] = time.process_time() - self.self0
        cpu["other"] = max(0.0, busy_seconds() - self.busy0 - sum(cpu.values()))
        text = "  cpu (% of one core): " + ", ".join(f"{k} {100 * v / wall:.0f}" for k, v in cpu.items())
        db = {k: v - self.db0.get(k, 0) for k, v in self.db_status().items()}
        if db:
            text += "\n  db (server-wide, per s): " + ", ".join(f"{k} {v / wall:,.0f}" for k, v in db.items())
        return text

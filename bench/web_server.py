"""The web app under test: gunicorn as start.sh runs it, its workers' memory, and timed HTTP requests."""
from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from lib import config as config_mod
from lib.config import REPO_ROOT

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "flask_front/gunicorn_conf.py",
            "flask_front:create_app()"]
HEALTH = "/api/v1/healthz"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`python -m gunicorn -c flask_front/gunicorn_conf.py 'flask_front:create_app()'` as a child.

    The settings reach it as SENSORS_* variables (cfg.environ()), like start.sh's environment.
    """

    def __init__(self, cfg: config_mod.Config, var_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **cfg.environ(), "SENSORS_ECS_INTRANET_IP": "127.0.0.1",
               "SENSORS_PORTS_FLASK": str(self.port), "SENSORS_OTHER_VAR_DIR": str(var_dir)}
        self.workers_wanted = cfg.web.workers
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(GUNICORN, cwd=REPO_ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self._wait_ready()
        print(f"  gunicorn pid {self.pid} on 127.0.0.1:{self.port}, workers {self.workers()}, "
              f"threads {cfg.web.threads}")

    def _wait_ready(self, timeout: float = 60) -> None:
        """Until every worker runs and the health URL answers (200, or 503 without a broker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if len(self.workers()) >= self.workers_wanted:
                try:
                    status, _ = request(self.connect(), "GET", HEALTH)
                    if status in (200, 503):
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")

    def connect(self) -> http.client.HTTPConnection:
        """A keep-alive connection to the app."""
        return connect(self.port)

    def workers(self) -> list[int]:
        """Pids of the worker processes (children of the master)."""
        return children(self.pid)

    def close(self) -> None:
        """SIGTERM (workers finish their requests), SIGKILL if it hangs; show its errors."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        lines = self.log_path.read_text().splitlines()
        for line in [l for l in lines if "[ERROR]" in l or "Traceback" in l][:5]:
            print(f"  gunicorn log: {line}")


def connect(port: int, timeout: float = 120) -> http.client.HTTPConnection:
    """A keep-alive HTTP connection to 127.0.0.1:port."""
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB; nan when it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan"), float("nan")
    rss, hwm = (re.search(rf"{key}:\s+(\d+)", status) for key in ("VmRSS", "VmHWM"))
    return int(rss.group(1)) / 1024, int(hwm.group(1)) / 1024


class RssSampler:
    """Samples the VmRSS of some processes every `every` s in a thread; keeps each one's peak."""

    def __init__(self, pids: list[int], every: float = 0.02) -> None:
        self.pids, self.every = pids, every
        self.peak = {pid: memory_mb(pid)[0] for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], memory_mb(pid)[0])

    def stop(self) -> dict[int, float]:
        """Stop sampling; return the peak VmRSS of each pid."""
        self._stop.set()
        self._thread.join()
        return self.peak


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request on a keep-alive connection; its status and body."""
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def timed_gets(conn: http.client.HTTPConnection, path: str, count: int, warmup: int,
               check: Callable[[bytes], None] = lambda body: None, budget_s: float = 60) -> list[float]:
    """Seconds of up to `count` sequential GETs of `path` after `warmup` untimed ones, sorted.

    Timing stops early, after at least 3 requests, once `budget_s` is spent: a slow endpoint
    then still gives its figure in a minute instead of an hour.
    """
    times: list[float] = []
    first = time.monotonic()
    for i in range(warmup + count):
        started = time.perf_counter()
        status, body = request(conn, "GET", path)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        check(body)
        if i >= warmup or elapsed > 1:  # a slow warm-up request is measured: no time for more
            times.append(elapsed)
        if len(times) >= 3 and time.monotonic() - first > budget_s:
            break
    return sorted(times)


def stream_lines(conn: http.client.HTTPConnection, path: str, chunk: int = 1 << 16) -> tuple[int, int]:
    """GET `path` and read it chunk by chunk without keeping it; (lines, bytes)."""
    conn.request("GET", path)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {resp.read()[:300]!r}")
    lines = size = 0
    while data := resp.read(chunk):
        lines += data.count(b"\n")
        size += len(data)
    return lines, size

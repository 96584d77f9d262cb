"""Fault scenarios where a process dies or the disk fills: workers SIGKILLed mid-work, var/ full.

Plain functions like those of bench/fault_scenarios.py: settings of an empty database, a folder,
a Result. The worker kills need MariaDB (its table locks hold a request or a task in place); the
full disk needs root, to mount a small tmpfs holding the SQLite database and the charts.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import orjson
import sqlalchemy as sa
from websockets.sync.client import connect

from bench.fault_probes import get
from bench.fault_stack import RABBITMQ, Ingest, Result, Worker, stop_web, wait_for
from bench.web_server import Gunicorn
from celery_tasks.draw_picture.draw import draw_all
from lib import config as config_mod, storage
from lib.models import ROLLUP_TABLES
from lib.storage import charts as chart_store, rollups

CSV_ROWS = 100_000  # a CSV export far larger than the socket buffers between gunicorn and the client
METRICS = ["co2", "temperature", "humidity"]


class MountRefused(Exception):
    """The tmpfs could not be mounted (not root, or no permission in this container)."""


def hold_table(engine, table: str = "reading"):
    """Block other sessions' use of `table` (MariaDB LOCK TABLES) until the returned callable runs
    (calling it again does nothing)."""
    conn = engine.connect()
    conn.exec_driver_sql(f"LOCK TABLES `{table}` WRITE")

    def release() -> None:
        if not conn.closed:
            conn.exec_driver_sql("UNLOCK TABLES")
            conn.close()
    return release


def waiting_on_lock(engine) -> int:
    """Statements of this database that wait for a table lock."""
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT COUNT(*) FROM information_schema.processlist "
                                   "WHERE db = DATABASE() AND state LIKE 'Waiting for table%'"))


def frame(first_ms: int, count: int, seq: int = 0) -> dict:
    """`count` readings 1 ms apart from first_ms."""
    return {"readings": [{"seq": seq + i, "ts": (first_ms + i) / 1000,
                          "values": {"co2": 500.0 + i % 100, "temperature": 20.0, "humidity": 40.0}}
                         for i in range(count)]}


def web_worker_killed(base: config_mod.Config, folder: Path) -> Result:
    """SIGKILL gunicorn's worker while it holds an HTTP ingest request, then while it streams a CSV.

    Checked: each client sees a failed request (never a whole-looking answer), the master starts
    a new worker, and the ingest request sent again is acked and stored once.
    """
    result = Result("web worker SIGKILL", "mid-request and mid-CSV: the client sees an error, "
                                          "the retry is stored once")
    if not base.uses_mysql:
        raise ValueError("web_worker_killed needs MariaDB: its table lock holds the request")
    cfg = base.with_overrides({"other": {"var_dir": folder / "var"}, "web": {"workers": 1, "threads": 4}})
    engine = storage.make_engine(base.database_url)
    with contextlib.ExitStack() as stack:
        stack.callback(engine.dispose)
        storage.init_db(engine)
        (device, token), (big, _) = (storage.add_device(engine, name) for name in ("http-pi", "csv-pi"))
        start_ms = storage.now_ms() - CSV_ROWS * 500
        rows = [(big.id, start_ms + i * 500, 400.0 + i % 1000, 20.0, 40.0) for i in range(CSV_ROWS)]
        for first in range(0, CSV_ROWS, 20_000):
            storage.write_readings(engine, METRICS, rows[first:first + 20_000])
        web = Gunicorn(cfg, folder / "var", folder / "web.log")
        stack.callback(stop_web, web)

        body = orjson.dumps(frame(storage.now_ms() - 60_000, 50))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        release = hold_table(engine)
        outcome: dict = {}
        poster = threading.Thread(target=_request, args=(web.port, body, headers, outcome), daemon=True)
        poster.start()
        wait_for(lambda: waiting_on_lock(engine) > 0, 30, "the ingest request waiting for its INSERT")
        [victim] = web.workers()
        os.kill(victim, signal.SIGKILL)
        poster.join(30)
        release()
        result.check("error" in outcome, f"the killed request was answered: {outcome.get('answer')}")
        result.figures["killed POST"] = outcome.get("error", "answered")
        started = time.monotonic()
        wait_for(lambda: web.workers() and web.workers() != [victim], 60, "a new gunicorn worker")
        status, _, answer = get(web.port, "/api/v1/readings", "POST", body, headers)
        result.recovery_s = time.monotonic() - started
        acked = json.loads(answer).get("ack", []) if status == 200 else []
        stored = storage.count_readings(engine, device.id)
        result.sent, result.stored = 50, stored
        result.lost, result.duplicated = 50 - min(stored, 50), max(0, stored - 50)
        result.check(status == 200 and len(acked) == 50 and stored == 50,
                     f"the retry: {status}, {len(acked)} acked, {stored} stored of 50")

        received, error = _csv_cut_short(web, big.id, start_ms)
        result.check(error is not None, f"the CSV export killed mid-stream looked whole ({received:,} bytes)")
        result.figures.update({"killed CSV": error or "complete", "CSV bytes before the kill": received})
    return result


def _request(port: int, body: bytes, headers: dict, outcome: dict) -> None:
    """POST /api/v1/readings; outcome["answer"] (status, body) or outcome["error"]."""
    try:
        status, _, answer = get(port, "/api/v1/readings", "POST", body, headers, timeout=60)
        outcome["answer"] = (status, answer[:200])
    except (OSError, http.client.HTTPException) as exc:
        outcome["error"] = type(exc).__name__


def _csv_cut_short(web: Gunicorn, device_id: int, start_ms: int) -> tuple[int, str | None]:
    """Start a raw CSV export, read 64 KiB, SIGKILL the worker: (bytes received, the error read gave)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connecting: a small window
    sock.settimeout(30)
    sock.connect(("127.0.0.1", web.port))
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    conn.sock = sock
    try:
        conn.request("GET", f"/api/v1/devices/{device_id}/readings.csv?resolution=raw&from={start_ms}")
        response = conn.getresponse()
        received = len(response.read(65536))
        [victim] = web.workers()
        os.kill(victim, signal.SIGKILL)
        try:
            while chunk := response.read(65536):
                received += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            return received, type(exc).__name__
        return received, None
    finally:
        conn.close()
        wait_for(lambda: web.workers() and victim not in web.workers(), 60, "a new gunicorn worker")


def celery_child_killed(base: config_mod.Config, folder: Path) -> Result:
    """SIGKILL the prefork child running a rollup (held on a table lock); RabbitMQ redelivers it.

    Checked: the task runs again and succeeds (acks_late, reject_on_worker_lost), and the rollups
    it leaves are exactly those a rebuild from the raw readings gives (idempotent).
    """
    result = Result("celery child SIGKILL", "rollup killed mid-task: redelivered, same rollups as a rebuild")
    if not base.uses_mysql:
        raise ValueError("celery_child_killed needs MariaDB: its table lock holds the task")
    cfg = base.with_overrides({
        "rabbitmq": {"host": RABBITMQ[0], "port": RABBITMQ[1], "user": "guest", "password": "guest",
                     "v_host": ""},
        "celery": {"queue": f"faults-{uuid.uuid4().hex[:10]}", "embedded_dir": folder / "celery"},
        "other": {"var_dir": folder / "var", "flask_path": folder / "charts"}})
    engine = storage.make_engine(base.database_url)
    with contextlib.ExitStack() as stack:
        stack.callback(engine.dispose)
        storage.init_db(engine)
        device, _ = storage.add_device(engine, "rolled-pi")
        start_ms = (storage.now_ms() - 3 * 3_600_000) // 3_600_000 * 3_600_000
        rows = [(device.id, start_ms + i * 3000, 400.0 + i % 700, 15.0 + i % 10, 30.0 + i % 40)
                for i in range(3000)]  # 2.5 hours at one reading per 3 s
        storage.write_readings(engine, METRICS, rows)
        worker = Worker(cfg, folder / "worker.log", pool="prefork", concurrency=1).ready()
        stack.callback(worker.stop)
        release = hold_table(engine)
        stack.callback(release)
        task = worker.app.send_task("celery_tasks.rollup")
        wait_for(lambda: waiting_on_lock(engine) > 0, 60, "the rollup waiting for the readings")
        [child] = worker.pool_children()
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        try:
            wait_for(lambda: worker.log().count(f"[{task.id}] received") >= 2, 60, "the task redelivered")
            wait_for(lambda: waiting_on_lock(engine) > 0, 60, "the second run waiting for the readings")
        except TimeoutError as exc:
            result.problems.append(str(exc))
        release()
        try:
            wait_for(lambda: task.state == "SUCCESS", 60, "the redelivered rollup's success", every=0.2)
            result.recovery_s = time.monotonic() - killed
        except TimeoutError as exc:
            result.problems.append(f"{exc}: state {task.state}")
        outcome = task.result if task.state == "SUCCESS" else {}
        after_kill = snapshot(engine)
        rollups.rebuild(engine)
        rebuilt = snapshot(engine)
        result.sent = len(rows)
        result.stored = rolled_up(engine, device.id)
        result.lost = max(0, result.sent - result.stored)
        result.duplicated = max(0, result.stored - result.sent)
        result.check(bool(outcome) and not outcome.get("skipped") and outcome.get("units", 0) > 0,
                     f"the redelivered rollup returned {outcome}")
        result.check(after_kill == rebuilt, "the rollups after the kill differ from a rebuild")
        result.check("WorkerLostError" in worker.log() or "signal 9" in worker.log(),
                     "the worker did not report the lost child")
        counts = {k: outcome.get(k) for k in ("units", "minute_rows", "hour_rows")}
        result.figures.update({"rollup result": counts,
                               "runs of the task": worker.log().count(f"[{task.id}] received")})
    return result


def rolled_up(engine, device_id: int) -> int:
    """Readings the 1-minute rollups count for a device."""
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT COALESCE(SUM(co2_n), 0) FROM rollup_1m WHERE device_id = :d"),
                               {"d": device_id}))


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every rollup row, in key order."""
    with engine.connect() as conn:
        return {table.name: [tuple(row) for row in conn.execute(
            sa.select(table).order_by(table.c.device_id, table.c.bucket))] for table in ROLLUP_TABLES}


@contextlib.contextmanager
def tmpfs(mount: Path, size_kb: int):
    """A tmpfs of size_kb KiB mounted at `mount` for the block; MountRefused when it cannot be."""
    mount.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs",
                               str(mount)], capture_output=True, text=True)
    except OSError as exc:  # no mount command
        raise MountRefused(f"cannot run mount: {exc}") from None
    if done.returncode != 0:
        raise MountRefused(f"cannot mount a tmpfs at {mount}: {(done.stderr or done.stdout).strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # still busy: detach it


def fill(path: Path, leave: int = 0) -> int:
    """Grow `path` until the disk is full, then free `leave` bytes of it; its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            block = bytes(size)
            with contextlib.suppress(OSError):  # ENOSPC: on to smaller writes
                while True:
                    os.write(fd, block)
    finally:
        os.close(fd)
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave))
    return path.stat().st_size


def files_under(folder: Path) -> set[str]:
    """Every file below `folder`, relative."""
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def disk_full(folder: Path, size_kb: int = 4096) -> Result:
    """A tmpfs of size_kb holds the SQLite database and the charts; it is filled, then emptied.

    Checked: while full, the ingest server acks nothing and says why; a chart render fails
    without leaving a file or a `path` row; once space returns the ingest recovers by itself
    and the readings sent again are stored once.
    """
    result = Result("disk full", f"a {size_kb // 1024} MiB var/ filled: no ack with a reason, no half "
                                 "chart files, recovery")
    disk = folder / "disk"
    with contextlib.ExitStack() as stack:
        stack.enter_context(tmpfs(disk, size_kb))
        cfg = config_mod.load(environ={"SENSORS_SQLITE_PATH": str(disk / "sensors.db")}).with_overrides(
            {"other": {"var_dir": folder / "var", "flask_path": disk / "charts"}})
        engine = storage.make_engine(cfg.database_url)
        stack.callback(engine.dispose)
        storage.init_db(engine)
        device, token = storage.add_device(engine, "full-disk-pi")
        ingest = Ingest(cfg, folder / "ingest.log").ready()
        stack.callback(ingest.stop)
        ws = stack.enter_context(connect(ingest.url, additional_headers={"Authorization": f"Bearer {token}"},
                                         open_timeout=10))
        first_ms = storage.now_ms() - 600_000
        sent = acked = 0

        def send(count: int) -> dict:
            nonlocal sent, acked
            reply = exchange(ws, frame(first_ms + sent, count, sent))
            if reply.get("ack") == list(range(sent, sent + count)):
                sent, acked = sent + count, acked + count
            return reply

        result.check(not send(200).get("error"), "the first readings were refused")
        first_render = draw_all(engine, cfg, storage.now_ms())
        render_bytes = sum(p.stat().st_size for p in (disk / "charts" / first_render.name).iterdir())
        filler = disk / "filler"
        fill(filler)
        refused = {}
        for _ in range(200):  # SQLite's WAL may hold a few batches before it must grow
            refused = send(100)
            if refused.get("error"):
                break
        result.check(refused.get("ack") == [] and "database disk full" in refused.get("error", ""),
                     f"with the disk full the ingest answered {str(refused)[:200]}")
        result.figures["refusal"] = refused.get("error", "none")
        before = files_under(disk / "charts"), storage_renders(engine)
        fill(filler, leave=render_bytes // 2)  # room for part of a render only
        try:
            draw_all(engine, cfg, storage.now_ms())
            result.problems.append("a chart render succeeded on a full disk")
        except OSError as exc:
            result.figures["render error"] = f"{type(exc).__name__}: {exc.strerror}"
        after = files_under(disk / "charts"), storage_renders(engine)
        result.check(after == before, f"the failed render left {sorted(after[0] - before[0])[:3]} "
                                      f"and {sorted(after[1] - before[1])} behind")
        filler.unlink()
        freed = time.monotonic()
        try:
            wait_for(lambda: send(100).get("ack"), 30, "an ack after space returned", every=0.2)
            result.recovery_s = time.monotonic() - freed
        except TimeoutError as exc:
            result.problems.append(str(exc))
        result.check(draw_all(engine, cfg, storage.now_ms()) is not None,
                     "no chart render after space returned")
        stored = storage.count_readings(engine, device.id)
        result.sent, result.stored = acked, stored
        result.lost, result.duplicated = max(0, acked - stored), max(0, stored - acked)
        result.check(stored == acked, f"{acked} readings acked, {stored} stored")
        ws.close()
    return result


def exchange(ws, message: dict) -> dict:
    """Send a frame and return the reply."""
    ws.send(orjson.dumps(message))
    return json.loads(ws.recv(timeout=30))


def storage_renders(engine) -> set[str]:
    """The renders recorded in `path`."""
    return chart_store.render_names(engine)

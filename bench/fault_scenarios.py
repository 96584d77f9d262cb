"""Fault scenarios with real processes: the broker and the database go away, a link is slow and lossy.

Each scenario is a plain function (settings of an empty database, a folder of its own, durations)
returning a Result; it starts and stops its own processes. tests/test_faults_*.py call them with
short durations, `python -m bench.faults` with longer ones. Worker kills and a full disk are in
bench/fault_crashes.py.
"""
from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.fault_probes import ApiPoller, HttpDevice
from bench.fault_stack import (MYSQL, RABBITMQ, Beat, Delivery, Ingest, LiveViewer, PiClient, Probe, Result,
                               Sender, Webhook, Worker, delivery, stop_all, stop_web, wait_for)
from bench.web_server import Gunicorn
from lib import config as config_mod, storage
from lib.storage import alerts as alert_store, charts as chart_store
from tests.lossyproxy import LossyProxy
from tests.tcpproxy import TcpProxy

RECOVERY_S = 60.0  # how long everything may take to catch up once a fault ends
CO2_HIGH = 1500.0  # above the scenario's alert threshold, sent from the moment the broker goes
THRESHOLD = 1000.0


def rollup_gap(engine, device_id: int) -> tuple[int, int]:
    """(readings stored but not in the 1-minute rollups, pending marks) of a device."""
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT COUNT(*) FROM reading WHERE device_id = :d"), {"d": device_id})
        rolled = conn.scalar(sa.text("SELECT COALESCE(SUM(co2_n), 0) FROM rollup_1m WHERE device_id = :d"),
                             {"d": device_id})
        pending = conn.scalar(sa.text("SELECT COUNT(*) FROM rollup_pending WHERE device_id = :d"),
                              {"d": device_id})
    return int(stored) - int(rolled), int(pending)


def drawn_since(engine, device_id: int, since_ms: int) -> bool:
    """Whether a chart render of the device was recorded at or after since_ms."""
    return any(p.rendered_ms >= since_ms for p in chart_store.latest_paths(engine, device_id))


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))] if values else float("nan")


def broker_outage(base: config_mod.Config, folder: Path, outage_s: float = 5.0) -> Result:
    """RabbitMQ unreachable for outage_s (its proxy cut) while a device sends 20 readings a second.

    Checked: every reading acked and stored, browsers on /live still get them during the outage,
    and afterwards the rollups, a chart render and the alert the outage's readings raise catch up,
    the alert firing (and notified) once.
    """
    result = Result("broker outage", f"RabbitMQ gone {outage_s:g} s: acks, live push, then rollups, "
                                     "charts, one alert")
    proxy = TcpProxy(*RABBITMQ)
    hook = Webhook()
    cfg = base.with_overrides({
        "rabbitmq": {"host": "127.0.0.1", "port": proxy.port, "user": "guest", "password": "guest",
                     "v_host": ""},
        "celery": {"queue": f"faults-{uuid.uuid4().hex[:10]}", "embedded_dir": folder / "celery",
                   "rollup_seconds": 1, "alert_seconds": 1},
        "charts": {"interval_seconds": 2},
        "other": {"var_dir": folder / "var", "flask_path": folder / "charts"},
        "live": {"secret": secrets.token_hex(16)},
        "alerts": {"webhook_url": hook.url, "webhook_retries": 3, "webhook_timeout": 5}})
    engine = storage.make_engine(base.database_url)
    with contextlib.ExitStack() as stack:
        stack.callback(engine.dispose)
        stack.callback(hook.close)
        stack.callback(proxy.cut)
        # Celery starts slowly: while it does, the database is set up (its first tasks may fail).
        worker, beat = Worker(cfg, folder / "worker.log"), Beat(cfg, folder / "beat.log")
        stack.callback(stop_all, worker, beat)
        storage.init_db(engine)
        device, token = storage.add_device(engine, "broker-outage")
        alert_store.add_rule(engine, name="co2 high", kind="above", metric="co2", threshold=THRESHOLD,
                             duration_ms=1000, hysteresis=50.0)
        ingest = Ingest(cfg, folder / "ingest.log")
        stack.callback(ingest.stop)
        ingest.ready()
        viewer = LiveViewer(ingest.live_url())
        stack.callback(viewer.close)
        co2 = [600.0]
        sender = Sender(ingest.url, token, 0.05,
                        lambda: {"co2": co2[0], "temperature": 21.0, "humidity": 40.0})
        stack.callback(sender.stop)
        worker.ready()
        wait_for(lambda: viewer.seen, 20, "a first reading on /live")
        time.sleep(1.0)

        proxy.cut()
        cut_ms = storage.now_ms()
        co2[0] = CO2_HIGH
        time.sleep(outage_s)
        proxy.restore()
        restored_ms, restored = storage.now_ms(), time.monotonic()
        time.sleep(0.5)  # still sending after the broker is back
        sender.stop()

        during = [ts for ts in sender.acked if cut_ms <= ts < restored_ms]
        time.sleep(0.5)  # the last live messages
        live_during = sum(1 for ts in during if (device.id, ts) in viewer.seen)
        try:
            deadline = restored + RECOVERY_S
            wait_for(lambda: rollup_gap(engine, device.id) == (0, 0), deadline - time.monotonic(),
                     "rollups caught up")
            wait_for(lambda: any(b["state"] == "firing" for b in hook.bodies), deadline - time.monotonic(),
                     "the alert notified")
            wait_for(lambda: drawn_since(engine, device.id, restored_ms), deadline - time.monotonic(),
                     "a chart render")
            result.recovery_s = time.monotonic() - restored
        except TimeoutError as exc:
            result.problems.append(str(exc))
        time.sleep(2.0)  # two more evaluations: none may fire again

        stored = storage.count_readings(engine, device.id)
        result.sent, result.stored = len(sender.acked), stored
        result.lost = max(0, len(sender.acked) - stored)
        result.duplicated = max(0, stored - len(sender.acked))
        result.problems += sender.problems
        # Each reading waits for its ack: a loaded machine sends fewer than 20 a second, but never none.
        result.check(len(during) > 0.25 * outage_s / 0.05,
                     f"only {len(during)} readings acked during the outage")
        result.check(live_during == len(during),
                     f"/live pushed {live_during} of the {len(during)} readings acked during the outage")
        events = alert_store.list_events(engine)
        firing = [b for b in hook.bodies if b["state"] == "firing"]
        result.check(len(events) == 1 and len(firing) == 1,
                     f"{len(events)} alert events, {len(firing)} firing notifications (expected 1 and 1)")
        result.figures.update({
            "acked during outage": len(during), "live during outage": live_during,
            "live duplicates": viewer.duplicates,
            "p99 ack during outage ms": round(1000 * p99([s for ts, s in sender.latencies
                                                          if cut_ms <= ts < restored_ms]), 1),
            "alert events": len(events), "webhook posts": len(hook.bodies)})
    return result


def api_paths(device_id: int) -> list[str]:
    """The API reads polled through a database outage."""
    return ["/api/v1/healthz", "/api/v1/devices", "/api/v1/latest", f"/api/v1/devices/{device_id}",
            f"/api/v1/devices/{device_id}/readings", f"/api/v1/devices/{device_id}/readings.csv",
            "/api/v1/metrics", "/api/v1/charts", "/api/v1/alerts/events"]


def database_restart(base: config_mod.Config, folder: Path, outage_s: float = 4.0, pis: int = 3,
                     interval: float = 0.02) -> Result:
    """MariaDB "restarted" under load: its proxy cut (connections die, new ones are refused), then back.

    Load: `pis` Pi clients at 1/interval readings a second each, a device on HTTP ingest, and an
    API poller. Checked: the ingest server withholds acks and recovers by itself; the API answers
    200 or a JSON 503, never a 500; the clients' spools drain; none of their readings is lost,
    duplicated or changed.
    """
    result = Result("database restart", f"MariaDB gone {outage_s:g} s under {pis} Pis + HTTP: "
                                        "no ack, 503 JSON, spools drain")
    proxy = TcpProxy(*MYSQL)
    via = base.with_overrides({"mysql": {"port": proxy.port}, "other": {"var_dir": folder / "var"},
                               "web": {"workers": 1}, "celery": {"embedded_dir": folder / "celery"}})
    # No worker runs here; /healthz checks the embedded broker's folder, which a worker makes.
    (folder / "celery" / "broker").mkdir(parents=True, exist_ok=True)
    engine = storage.make_engine(base.database_url)  # the scenario's own view, not through the proxy
    with contextlib.ExitStack() as stack:
        stack.callback(engine.dispose)
        stack.callback(proxy.cut)
        storage.init_db(engine)
        devices = [storage.add_device(engine, f"db-restart-{i}") for i in range(pis + 2)]
        ingest = Ingest(via, folder / "ingest.log")
        stack.callback(ingest.stop)
        web = Gunicorn(via, folder / "var", folder / "web.log")
        stack.callback(stop_web, web)
        ingest.ready()
        clients = []
        for i, (_, token) in enumerate(devices[:pis]):
            clients.append(PiClient(ingest.url, token, folder / f"pi-{i}", via, interval,
                                    "--backoff-min", "0.2", "--backoff-max", "1", "--ack-timeout", "5"))
            stack.callback(clients[-1].stop)
        http_device = HttpDevice(web.port, devices[pis][1])
        stack.callback(http_device.stop)
        poller = ApiPoller(web.port, api_paths(devices[0][0].id))
        stack.callback(poller.stop)
        probe = Probe(ingest.url, devices[pis + 1][1])
        stack.callback(probe.close)
        wait_for(lambda: all(c.generated() > 20 for c in clients), 30, "the Pis' first readings")
        time.sleep(1.0)

        proxy.cut()
        cut_at = time.monotonic()
        time.sleep(min(1.0, outage_s / 2))
        withheld = probe.send()
        time.sleep(max(0.0, outage_s - (time.monotonic() - cut_at)))
        proxy.restore()
        restored = time.monotonic()
        try:
            deadline = restored + RECOVERY_S
            wait_for(lambda: all(caught_up(engine, d.id, c) for (d, _), c in zip(devices, clients)),
                     deadline - time.monotonic(), "the Pis' spools drained")
            wait_for(lambda: poller.all_ok_since(restored), deadline - time.monotonic(),
                     "every API path answering 200 again")
            http_device.drain(deadline - time.monotonic())
            result.recovery_s = time.monotonic() - restored
        except TimeoutError as exc:
            result.problems.append(f"{exc} ({poller.missing_since(restored)})")
        poller.stop()
        http_device.stop()
        for client in clients:
            client.stop()

        total = Delivery()
        for (device, _), client in zip(devices, clients):
            total += delivery(engine, device.id, client.journal, client.spool)
        http_stored = stored_ts(engine, devices[pis][0].id)
        http_lost = len(http_device.generated.keys() - http_stored)
        result.sent = total.generated + len(http_device.generated)
        result.stored = total.stored + len(http_stored)
        result.pending = total.pending
        result.lost = total.lost + http_lost
        result.duplicated = total.unexpected + total.wrong + len(http_stored - http_device.generated.keys())
        result.check(result.exactly_once(), f"{result.lost} readings lost, {result.duplicated} unexpected "
                                            f"or changed, {result.pending} left in spools")
        result.check(withheld.get("ack") == [] and "database unavailable" in withheld.get("error", ""),
                     f"a frame sent during the outage got {withheld}")
        result.problems += probe.problems + http_device.problems
        outage = [a for a in poller.answers if cut_at <= a.at < restored]
        bad = [a for a in poller.answers
               if a.status not in (200, 503) or (a.status == 503 and not a.json_error)]
        result.check(not bad, f"{len(bad)} API answers neither 200 nor a JSON 503, e.g. "
                              f"{bad[0] if bad else None}")
        result.check(any(a.status == 503 for a in outage), "no API answer showed the outage")
        result.figures.update({
            "API answers during outage": len(outage),
            "API 503 during outage": sum(a.status == 503 for a in outage),
            "HTTP ingest statuses": dict(sorted(http_device.statuses.items())),
            "Pi reconnects": sum(c.connections() for c in clients) - len(clients)})
    return result


def caught_up(engine, device_id: int, client: PiClient, slack: int = 3) -> bool:
    """Whether the database holds all but the last `slack` readings the client generated."""
    return client.generated() - storage.count_readings(engine, device_id) <= slack


def stored_ts(engine, device_id: int) -> set[int]:
    """The time stamps stored for a device."""
    with engine.connect() as conn:
        return set(conn.scalars(sa.text("SELECT ts FROM reading WHERE device_id = :d"), {"d": device_id}))


CI_CLIENT = ("--backoff-min", "0.5", "--backoff-max", "5")  # the Pi's defaults, but retries within 5 s


def lossy_link(base: config_mod.Config, folder: Path, seconds: float = 20.0, interval: float = 0.05,
               reset_s: float = 5.0, client_options: tuple[str, ...] = CI_CLIENT, seed: int = 1) -> Result:
    """The Pi client behind a slow, lossy link (tests/lossyproxy.py: 300 ms each way, 5 % of
    segments lost, a reset every `reset_s` on average) for `seconds`, then the same spool
    drained through the same link.

    Checked: every reading the client took is stored once, with its values.
    """
    result = Result("lossy link", f"{seconds:g} s at 300 ms, 5 % segment loss, resets every ~{reset_s:g} s: "
                                  "every reading once")
    cfg = base.with_overrides({"other": {"var_dir": folder / "var"}})
    engine = storage.make_engine(base.database_url)
    with contextlib.ExitStack() as stack:
        stack.callback(engine.dispose)
        storage.init_db(engine)
        device, token = storage.add_device(engine, "lossy-pi")
        ingest = Ingest(cfg, folder / "ingest.log").ready()
        stack.callback(ingest.stop)
        link = LossyProxy("127.0.0.1", ingest.port, delay=0.3, loss=0.05, reset_s=reset_s, seed=seed)
        stack.callback(link.close)
        url = f"ws://127.0.0.1:{link.port}/ingest"
        pi = PiClient(url, token, folder / "pi", cfg, interval, *client_options)
        stack.callback(pi.stop)
        wait_for(lambda: pi.generated() > 0, 30, "the Pi's first reading")
        time.sleep(seconds)
        pi.stop()
        # The backlog, through the same link: the same spool, and a reading an hour at most.
        drained = PiClient(url, token, folder / "pi", cfg, 3600.0, *client_options)
        stack.callback(drained.stop)
        started = time.monotonic()
        try:
            wait_for(lambda: spooled(drained.spool) == 0, RECOVERY_S, "the spool drained", every=0.2)
            result.recovery_s = time.monotonic() - started
        except TimeoutError as exc:
            result.problems.append(str(exc))
        drained.stop()
        got = delivery(engine, device.id, drained.journal, drained.spool)
        result.sent, result.stored, result.pending = got.generated, got.stored, got.pending
        result.lost, result.duplicated = got.lost, got.unexpected + got.wrong
        result.check(result.exactly_once() and got.pending == 0,
                     f"{got.lost} lost, {got.unexpected} unexpected, {got.wrong} changed, {got.pending} left")
        stats = link.stats
        result.check(stats.resets > 0 and stats.lost > 0, f"the link lost too little to tell: {stats}")
        result.figures.update({
            "link connections": stats.connections, "segments": stats.segments, "segments lost": stats.lost,
            "resets": stats.resets, "stalled s": round(stats.stalled_s, 1),
            "Pi connections": drained.connections()})
    return result


def spooled(spool: Path) -> int:
    """Readings waiting in a client's spool."""
    with contextlib.closing(sqlite3.connect(spool, timeout=5)) as db:
        return db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

"""Alerts end to end: readings through the ingest server, a real Celery worker, a local webhook."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from websockets.sync.client import connect

from celery_tasks.alerts import ALERTS_LOCK, WebhookError, deliver, lost_notifications
from lib import storage
from lib.storage import locks
from lib.alerts import Fired, Resolved, State, resend_window
from lib.storage import alerts as st
from lib.validation import ms_to_iso

MIN = 60_000


class Receiver:
    """A webhook endpoint on port 0: records every POST, answers 500 to the first `fail` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.posts: list[tuple[int, dict]] = []
        self.fail = fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(receiver.posts) < receiver.fail else 200
                receiver.posts.append((status, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def delivered(self) -> list[dict]:
        """Bodies answered with 200."""
        return [body for status, body in self.posts if status == 200]

    def wait(self, delivered: int, timeout: float = 20) -> list[dict]:
        """Wait until `delivered` POSTs were answered 200; return their bodies."""
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < delivered and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.delivered()) == delivered, self.posts
        return self.delivered()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(fail: int = 0) -> Receiver:
        made.append(Receiver(fail))
        return made[-1]

    yield make
    for r in made:
        r.close()


def send(ingest, token: str, start_ms: int, co2_values, every_ms: int = 10_000) -> None:
    """Send protocol v1 readings over a real WebSocket and check every one is acked."""
    readings = [{"seq": i, "ts": ms_to_iso(start_ms + i * every_ms), "values": {"co2": v}}
                for i, v in enumerate(co2_values)]
    with connect(ingest.url, additional_headers={"Authorization": f"Bearer {token}"},
                 open_timeout=10) as ws:
        ws.send(json.dumps({"readings": readings}))
        assert json.loads(ws.recv(timeout=10)) == {"ack": list(range(len(readings))), "rejected": []}


def webhook_settings(cfg, url: str, retries: int = 3):
    return cfg.with_overrides({"alerts": {"webhook_url": url, "webhook_retries": str(retries),
                                          "webhook_timeout": "5"}})


def start_ms() -> int:
    """A whole second an hour ago: the ingest accepts it, and each test steps now_ms from there."""
    return (storage.now_ms() - 3_600_000) // 1000 * 1000


def test_fires_once_and_resolves_once(settings, engine, device, ingest, celery_worker, receiver):
    hook = receiver()
    worker = celery_worker(webhook_settings(settings, hook.url), broker="rabbitmq")
    rule_id = st.add_rule(engine, name="stuffy", kind="above", metric="co2", threshold=1000.0,
                          duration_ms=MIN, hysteresis=50.0)
    t0 = start_ms()
    # 800 for a minute, 1200 for two, 980 (inside the hysteresis band) for 30 s, then 900.
    send(ingest, device.token, t0, [800.0] * 6 + [1200.0] * 12 + [980.0] * 3 + [900.0] * 3)
    fired_at = t0 + 2 * MIN  # the breach began at t0 + 60 s and has held a minute

    def evaluate(now_ms):
        return worker.call("celery_tasks.evaluate_alerts", now_ms)

    assert evaluate(fired_at - 1)["firing"] == 0
    assert evaluate(fired_at)["firing"] == 1
    [fired] = hook.wait(1)
    for now in (fired_at, fired_at + 10_000, t0 + 200_000, t0 + 200_000):
        counts = evaluate(now)
        assert (counts["firing"], counts["resolved"], counts["resent"]) == (0, 0, 0)
    assert evaluate(t0 + 210_000)["resolved"] == 1
    _, resolved = hook.wait(2)
    assert evaluate(t0 + 300_000)["resolved"] == 0
    [event] = st.list_events(engine)
    # A redelivered task finds the notification sent and posts nothing.
    assert worker.call("celery_tasks.send_webhook", event.id, "firing") == "sent already"
    time.sleep(0.5)
    assert len(hook.posts) == 2

    assert fired["state"] == "firing" and resolved["state"] == "resolved"
    assert {fired["event_id"], resolved["event_id"]} == {event.id}
    assert (fired["rule"], fired["rule_id"], fired["kind"], fired["metric"], fired["threshold"]) == \
        ("stuffy", rule_id, "above", "co2", 1000.0)
    assert (fired["device"], fired["device_id"], fired["value"]) == (device.name, device.id, 1200.0)
    assert (fired["since_ms"], fired["fired_ms"]) == (t0 + MIN, fired_at)
    assert fired["since"] == ms_to_iso(t0 + MIN) and fired["resolved"] is None
    assert (resolved["resolved_ms"], resolved["resolved"]) == (t0 + 210_000, ms_to_iso(t0 + 210_000))
    # The resolved body carries the reading that resolved it (900 at t0 + 210 s), not the 1200.
    assert (resolved["value"], resolved["resolved_value"], resolved["fired_value"]) == (900.0, 900.0, 1200.0)
    assert (fired["fired_value"], fired["resolved_value"]) == (1200.0, None)
    assert (resolved["since_ms"], resolved["fired_ms"]) == (t0 + MIN, fired_at)
    assert event.fire_sent_ms and event.resolve_sent_ms


def test_nodata_alert_times_are_the_silence_not_the_evaluation(settings, engine, device, ingest,
                                                              celery_worker, receiver):
    hook = receiver()
    worker = celery_worker(webhook_settings(settings, hook.url), broker="rabbitmq")
    st.add_rule(engine, name="pi silent", kind="nodata", duration_ms=2 * MIN, device_id=device.id)
    t0 = start_ms()
    send(ingest, device.token, t0, [600.0] * 6)  # the last reading at t0 + 50 s
    silent_at = t0 + 50_000 + 2 * MIN

    def evaluate(now_ms):
        return worker.call("celery_tasks.evaluate_alerts", now_ms)

    assert evaluate(silent_at - 1)["firing"] == 0
    assert evaluate(silent_at + 25_000)["firing"] == 1  # an evaluation 25 s after the instant
    [fired] = hook.wait(1)
    send(ingest, device.token, t0 + 10 * MIN, [610.0] * 3)  # back: t0 + 10 min .. + 20 s
    assert evaluate(t0 + 10 * MIN + 30_000)["resolved"] == 1
    _, resolved = hook.wait(2)

    assert (fired["state"], fired["kind"], fired["condition"]) == ("firing", "nodata", "no data for 120 s")
    for body in (fired, resolved):
        assert (body["since_ms"], body["since"]) == (t0 + 50_000, ms_to_iso(t0 + 50_000))
        assert (body["fired_ms"], body["fired"]) == (silent_at, ms_to_iso(silent_at))
        assert (body["value"], body["fired_value"], body["resolved_value"], body["metric"]) == \
            (None, None, None, None)
    assert fired["resolved_ms"] is None
    # Resolved by the newest reading, which showed the device current again.
    assert (resolved["resolved_ms"], resolved["resolved"]) == \
        (t0 + 10 * MIN + 20_000, ms_to_iso(t0 + 10 * MIN + 20_000))


def test_failed_delivery_is_retried_and_delivered_once(settings, engine, device, ingest,
                                                       celery_worker, receiver):
    hook = receiver(fail=1)
    worker = celery_worker(webhook_settings(settings, hook.url), broker="rabbitmq")
    st.add_rule(engine, name="cold", kind="below", metric="temperature", threshold=5.0,
                device_id=device.id)
    t0 = start_ms()
    storage.write_readings(engine, ["temperature"], [(device.id, t0, 4.0)])
    began = time.monotonic()
    assert worker.call("celery_tasks.evaluate_alerts", t0 + 1000)["firing"] == 1
    [body] = hook.wait(1)
    assert time.monotonic() - began < 15  # the first retry waits at most a second
    assert [status for status, _ in hook.posts] == [500, 200]
    assert body["device"] == device.name and body["value"] == 4.0
    time.sleep(0.5)
    assert len(hook.posts) == 2
    assert st.list_events(engine)[0].fire_sent_ms is not None


def test_a_notification_lost_before_queueing_is_resent_once(settings, engine, device,
                                                           celery_worker, receiver):
    hook = receiver()
    worker = celery_worker(webhook_settings(settings, hook.url), broker="rabbitmq")
    t = start_ms()
    event_id = fired_event(engine, device.id, t)  # committed, but no task was queued (a crash)
    cfg = worker.settings
    start, _ = resend_window(t, int(cfg.celery.alert_seconds * 1000),
                             cfg.alerts.webhook_retries, cfg.alerts.webhook_timeout)
    due = t + (t - start)
    assert worker.call("celery_tasks.evaluate_alerts", due - 30_001)["resent"] == 0
    assert worker.call("celery_tasks.evaluate_alerts", due)["resent"] == 1
    [body] = hook.wait(1)
    assert body["event_id"] == event_id and body["state"] == "firing"
    assert worker.call("celery_tasks.evaluate_alerts", due)["resent"] == 0  # sent now


# ---- delivery without a worker ---------------------------------------------------------

def fired_event(engine, device_id: int, t: int, resolved: bool = False) -> int:
    rule_id = st.add_rule(engine, name="co2 high", kind="above", metric="co2", threshold=1000.0)
    [(event_id, _)] = st.save_state(engine, rule_id, device_id, None, State("firing", t, t),
                                    [Fired(t, t, 1500.0)], due_ms=t)
    if resolved:
        old = st.load_states(engine, rule_id)[device_id]
        st.save_state(engine, rule_id, device_id, old, State("ok", None, t + 1), [Resolved(t + 1, 1.0)],
                      due_ms=t + 1)
    return event_id


def test_deliver_marks_sent_and_is_idempotent(settings, engine, device, receiver):
    hook = receiver()
    cfg = webhook_settings(settings, hook.url)
    event_id = fired_event(engine, device.id, start_ms(), resolved=True)
    with pytest.raises(WebhookError, match="not delivered yet"):
        deliver(engine, cfg, event_id, "resolved")  # waits for the firing notification
    assert deliver(engine, cfg, event_id, "firing") == "sent"
    assert deliver(engine, cfg, event_id, "firing") == "sent already"
    assert deliver(engine, cfg, event_id, "resolved") == "sent"
    assert [body["state"] for body in hook.wait(2)] == ["firing", "resolved"]
    assert deliver(engine, cfg, event_id + 1000, "firing") == "no event"


@pytest.mark.parametrize("fail", [0, 1])
def test_deliver_without_url_or_to_a_failing_receiver(settings, engine, device, receiver, fail):
    event_id = fired_event(engine, device.id, start_ms())
    assert deliver(engine, webhook_settings(settings, ""), event_id, "firing") == "no webhook"
    hook = receiver(fail=1)
    with pytest.raises(OSError):  # a 500 (HTTPError) is retried by the task's autoretry_for
        deliver(engine, webhook_settings(settings, hook.url), event_id, "firing")
    hook.close()
    with pytest.raises(OSError):  # nobody listening any more
        deliver(engine, webhook_settings(settings, hook.url), event_id, "firing")
    assert st.get_event(engine, event_id).fire_sent_ms is None


def test_lost_notifications_are_resent_once(settings, engine, device):
    cfg = webhook_settings(settings, "http://127.0.0.1:9/hook", retries=8)
    t = start_ms()
    event_id = fired_event(engine, device.id, t)
    start, end = resend_window(t, 30_000, 8, 5)
    due = t + (t - start)  # the evaluation whose window begins at the transition
    assert lost_notifications(engine, cfg, due) == [(event_id, "firing")]
    assert lost_notifications(engine, cfg, due - 30_001) == []  # earlier: still being delivered
    assert lost_notifications(engine, cfg, due + 30_000) == []  # the next evaluation: resent already
    assert lost_notifications(engine, webhook_settings(settings, ""), due) == []
    st.mark_sent(engine, event_id, "firing", t)
    assert lost_notifications(engine, cfg, due) == []


def test_an_evaluation_is_skipped_while_the_last_one_runs(settings, engine, device, ingest, celery_worker):
    """Beat queues one every interval: one that finds the previous still running skips, never overlaps."""
    worker = celery_worker(settings, broker="rabbitmq")
    st.add_rule(engine, name="stuffy", kind="above", metric="co2", threshold=1000.0, duration_ms=0,
                hysteresis=50.0)
    t0 = start_ms()
    send(ingest, device.token, t0, [1200.0] * 3)
    with locks.named_lock(engine, ALERTS_LOCK) as held:  # as a running evaluation holds it
        assert held
        skipped = worker.call("celery_tasks.evaluate_alerts", t0 + MIN)
    assert skipped["skipped"] and skipped["firing"] == 0 and st.list_events(engine) == []
    ran = worker.call("celery_tasks.evaluate_alerts", t0 + MIN)
    assert not ran["skipped"] and ran["firing"] == 1

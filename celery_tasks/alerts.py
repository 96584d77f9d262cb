"""Alert tasks: evaluate the rules, and deliver one webhook per firing and per resolution.

Delivery is at least once: a notification is marked sent only after a 2xx, so a worker
lost between the POST and the mark sends it again. Receivers can drop repeats by
(event_id, state), which every payload carries.
"""
from __future__ import annotations

import http.client
import json
import logging
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

from celery import shared_task
from sqlalchemy.engine import Engine

from celery_tasks.db import engine, settings
from lib import alerts, storage
from lib.storage import alerts as alert_store, locks

log = logging.getLogger(__name__)

ALERTS_LOCK = "alerts"  # held by the running evaluation


class WebhookError(Exception):
    """The webhook answered with something other than 2xx, or the notification must wait."""


# ---- plain functions -------------------------------------------------------------------

def evaluate(eng: Engine, now_ms: int) -> tuple[Counter, list[tuple[int, str]]]:
    """Run every enabled rule for its devices; returns counts and the notifications to send."""
    counts: Counter = Counter()
    notifications: list[tuple[int, str]] = []
    for rule in alert_store.load_rules(eng):
        counts["rules"] += 1
        devices = alert_store.rule_devices(eng, rule)
        stored = alert_store.load_states(eng, rule.id)
        states = {d: stored[d].state if d in stored else alerts.State() for d in devices}
        results = _run_rule(eng, rule, states, now_ms)
        cursor_moves = {}
        for device_id, (new, transitions) in results.items():
            counts["checked"] += 1
            old = stored.get(device_id)
            if not transitions and new == (old.state if old else alerts.State()):
                continue
            if old is not None and not transitions and _same_but_cursor(old.state, new):
                cursor_moves[device_id] = (old, new)
                continue
            sent = alert_store.save_state(eng, rule.id, device_id, old, new, transitions, due_ms=now_ms)
            if sent is None:
                counts["conflicts"] += 1
                continue
            notifications += sent
            counts.update(kind for _, kind in sent)
        alert_store.save_cursors(eng, rule.id, cursor_moves)
    return counts, notifications


def _same_but_cursor(old: alerts.State, new: alerts.State) -> bool:
    """True when only the cursor moved."""
    return (old.state, old.since_ms) == (new.state, new.since_ms)


def _run_rule(eng: Engine, rule: alerts.Rule, states: dict[int, alerts.State],
              now_ms: int) -> dict[int, tuple[alerts.State, list]]:
    """New state and transitions per device for one rule."""
    if rule.kind == "nodata":
        last = alert_store.last_reading_ms(eng, states)
        results = {}
        for device_id, state in states.items():
            new, transition = alerts.evaluate_nodata(rule, state, last.get(device_id), now_ms)
            results[device_id] = (new, [transition] if transition else [])
        return results
    readings = alert_store.read_values(eng, rule.metric, {d: s.cursor_ms for d, s in states.items()},
                                       alerts.lookback_start(rule, now_ms), now_ms)
    return {d: alerts.run(rule, s, readings.get(d, ()), now_ms) for d, s in states.items()}


def lost_notifications(eng: Engine, cfg, now_ms: int) -> list[tuple[int, str]]:
    """Unsent notifications due their one re-send at now_ms (see lib.alerts.resend_window)."""
    if not cfg.alerts.webhook_url:
        return []  # nothing is ever sent, so nothing is lost
    start, end = alerts.resend_window(now_ms, int(cfg.celery.alert_seconds * 1000),
                                      cfg.alerts.webhook_retries, cfg.alerts.webhook_timeout)
    return alert_store.unsent(eng, start, end)


def post_json(url: str, body: dict, timeout: float) -> int:
    """POST body as JSON; returns the status, raising on anything but 2xx or on network errors."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"[alerts] webhook_url must be an http or https URL, got {url!r}")
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "sensors-alerts/1"})
    # urlopen raises HTTPError (an OSError) for 4xx/5xx and does not follow redirects of a POST.
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = response.status
    if not 200 <= status < 300:
        raise WebhookError(f"webhook answered {status}")
    return status


def deliver(eng: Engine, cfg, event_id: int, notification: str) -> str:
    """Send one notification unless it is sent already or no webhook is set; returns what happened."""
    url = cfg.alerts.webhook_url
    if not url:
        log.info("alert event %s %s: no [alerts] webhook_url, not sent", event_id, notification)
        return "no webhook"
    event = alert_store.get_event(eng, event_id)
    if event is None:
        log.info("alert event %s is gone (its rule was deleted)", event_id)
        return "no event"
    if event.sent_ms(notification) is not None:
        return "sent already"
    if notification == "resolved" and event.state != "resolved":
        log.warning("alert event %s is not resolved; no resolved notification", event_id)
        return "not resolved"
    if notification == "resolved" and event.fire_sent_ms is None:
        # Keep the receiver's order: retry until the firing notification has gone out.
        raise WebhookError(f"alert event {event_id}: firing notification not delivered yet")
    status = post_json(url, alerts.payload(event, notification), cfg.alerts.webhook_timeout)
    alert_store.mark_sent(eng, event_id, notification, storage.now_ms())
    log.info("alert event %s %s: webhook answered %s", event_id, notification, status)
    return "sent"


# ---- tasks -----------------------------------------------------------------------------

@shared_task(name="celery_tasks.evaluate_alerts")
def evaluate_alerts(now_ms: int | None = None) -> dict:
    """Evaluate all rules at now_ms (default: now), then queue one webhook per transition.

    Skipped while another evaluation runs: beat queues one per interval, and one that outlasts
    it would otherwise have the next run beside it, both holding a worker process for nothing.
    """
    now = storage.now_ms() if now_ms is None else int(now_ms)
    eng = engine()
    counts: Counter = Counter()
    with locks.named_lock(eng, ALERTS_LOCK) as held:
        if not held:
            log.info("alert evaluation skipped: the previous one is still running")
            return {**_result(counts), "skipped": True}
        counts, notifications = evaluate(eng, now)
        # Queued only after the transitions committed; one lost in between is re-sent later.
        lost = lost_notifications(eng, settings(), now)
    for event_id, notification in notifications + lost:
        send_webhook.apply_async((event_id, notification), ignore_result=True)
    counts["resent"] = len(lost)
    return {**_result(counts), "skipped": False}


def _result(counts: Counter) -> dict:
    """The task's counts, every key present."""
    return {key: counts[key] for key in ("rules", "checked", "firing", "resolved", "conflicts", "resent")}


# max_retries comes from [alerts] webhook_retries through task_annotations (celery_tasks.main).
@shared_task(name="celery_tasks.send_webhook", autoretry_for=(OSError, http.client.HTTPException, WebhookError),
             retry_backoff=True, retry_backoff_max=alerts.BACKOFF_MAX_S, retry_jitter=True)
def send_webhook(event_id: int, notification: str) -> str:
    """POST one notification ("firing" or "resolved") of an alert event, retrying with backoff."""
    return deliver(engine(), settings(), int(event_id), notification)

"""Alert rules as a pure state machine: readings in, state and transitions out; no I/O here.

A threshold rule ("above"/"below") goes ok -> pending when a reading breaches the threshold,
pending -> firing once the breach has held for the rule's duration, and firing -> ok only
when a reading is past the threshold by more than the hysteresis margin, so a value hovering
around the threshold fires once instead of flapping. A "nodata" rule fires when a device's
newest reading is at least the duration old and resolves when the device is current again.

Lookback: readings older than `now - (duration + LOOKBACK_MARGIN_MS)` are never fed. A Pi
that comes back after an outage uploads hours of old readings; they are stored and rolled
up, but alerts are about the present, so old data must neither fire nor resolve an alert.
For the same reason a pending condition whose last evidence is older than the lookback is
forgotten rather than completed by the first fresh reading after a long gap.

Times of a transition mean the same for every kind of rule, and never the evaluation time
(evaluations run every 30 s or so, and may run late): `since` is when the condition began
(the first breaching reading; for nodata the last reading before the silence), `fired` the
reading or instant that completed it (for nodata since + duration, the moment the silence
reached the duration), `resolved` the reading that ended it (for nodata the newest reading,
which showed the device current again).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from lib.validation import ms_to_iso

KINDS = ("above", "below", "nodata")
STATES = ("ok", "pending", "firing")
LOOKBACK_MARGIN_MS = 5 * 60_000
# A lost notification is re-sent once, when it is this old at least (see resend_window).
RESEND_MIN_MS = 10 * 60_000
BACKOFF_MAX_S = 600  # the send task's retry_backoff_max


@dataclass(frozen=True)
class Rule:
    """An alert rule; device_id None means every device, metric None for nodata rules."""

    id: int
    name: str
    device_id: int | None
    metric: str | None
    kind: str
    threshold: float | None
    duration_ms: int
    hysteresis: float = 0.0

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("an alert rule needs a name")
        if self.kind not in KINDS:
            raise ValueError(f"alert kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.duration_ms, int) or self.duration_ms < 0:
            raise ValueError(f"duration must be a whole number of ms >= 0, got {self.duration_ms!r}")
        if not _finite(self.hysteresis) or self.hysteresis < 0:
            raise ValueError(f"hysteresis must be a number >= 0, got {self.hysteresis!r}")
        if self.kind == "nodata":
            if self.metric is not None or self.threshold is not None:
                raise ValueError("a nodata rule takes no metric and no threshold")
            if self.duration_ms <= 0:
                raise ValueError("a nodata rule needs a duration > 0")
        else:
            if not self.metric:
                raise ValueError(f"an {self.kind} rule needs a metric")
            if self.threshold is None or not _finite(self.threshold):
                raise ValueError(f"an {self.kind} rule needs a finite threshold")

    def describe(self) -> str:
        """The condition in words, e.g. 'co2 above 1000 for 300 s (hysteresis 50)'."""
        seconds = f"{self.duration_ms / 1000:g} s"
        if self.kind == "nodata":
            return f"no data for {seconds}"
        text = f"{self.metric} {self.kind} {self.threshold:g}"
        text += f" for {seconds}" if self.duration_ms else ""
        return text + (f" (hysteresis {self.hysteresis:g})" if self.hysteresis else "")


@dataclass(frozen=True)
class State:
    """Where a rule stands for one device; cursor_ms is the newest reading already fed."""

    state: str = "ok"
    since_ms: int | None = None  # when the condition began (pending or firing)
    cursor_ms: int = 0


@dataclass(frozen=True)
class Fired:
    """The condition began at since_ms, complete at at_ms; value: that reading's (None for nodata)."""

    since_ms: int
    at_ms: int
    value: float | None


@dataclass(frozen=True)
class Resolved:
    """The reading at at_ms ended the condition; value is that reading's (None for nodata)."""

    at_ms: int
    value: float | None


Transition = Fired | Resolved


def _finite(x: object) -> bool:
    """True for a finite int or float (not bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def breaching(rule: Rule, value: float) -> bool:
    """True when `value` is strictly past the threshold (equal is not a breach)."""
    if rule.kind == "above":
        return value > rule.threshold
    if rule.kind == "below":
        return value < rule.threshold
    raise ValueError(f"{rule.kind} rules have no threshold")


def cleared(rule: Rule, value: float) -> bool:
    """True when `value` is past the threshold by more than the hysteresis, back on the good side."""
    if rule.kind == "above":
        return value < rule.threshold - rule.hysteresis
    if rule.kind == "below":
        return value > rule.threshold + rule.hysteresis
    raise ValueError(f"{rule.kind} rules have no threshold")


def step(rule: Rule, state: State, ts_ms: int, value: float) -> tuple[State, Transition | None]:
    """Feed one reading (in time order); readings at or before the cursor are ignored."""
    if ts_ms <= state.cursor_ms:
        return state, None
    state = replace(state, cursor_ms=ts_ms)
    if state.state == "firing":
        if cleared(rule, value):
            return State("ok", None, ts_ms), Resolved(ts_ms, value)
        return state, None  # inside the hysteresis band or still breaching: keep firing
    if not breaching(rule, value):
        return State("ok", None, ts_ms), None  # a pending condition must hold without a break
    since = state.since_ms if state.state == "pending" else ts_ms
    if ts_ms - since >= rule.duration_ms:
        return State("firing", since, ts_ms), Fired(since, ts_ms, value)
    return State("pending", since, ts_ms), None


def lookback_start(rule: Rule, now_ms: int) -> int:
    """Oldest reading time still fed to `rule` at now_ms (see the module docstring)."""
    return now_ms - rule.duration_ms - LOOKBACK_MARGIN_MS


def run(rule: Rule, state: State, readings: Iterable[tuple[int, float]],
        now_ms: int) -> tuple[State, list[Transition]]:
    """Feed (ts_ms, value) readings newer than the cursor, within the lookback and not after now."""
    start = lookback_start(rule, now_ms)
    if state.state == "pending" and state.cursor_ms < start:
        state = State("ok", None, state.cursor_ms)  # stale evidence: start over
    transitions = []
    for ts, value in sorted(readings):
        if start <= ts <= now_ms:
            state, transition = step(rule, state, ts, value)
            if transition is not None:
                transitions.append(transition)
    return state, transitions


def evaluate_nodata(rule: Rule, state: State, last_ts_ms: int | None,
                    now_ms: int) -> tuple[State, Transition | None]:
    """Check a silent-device rule given the device's newest reading time (None: never reported).

    Fires when now - last >= duration; resolves once a reading newer than the silence has
    arrived and the device is current again (now - last < duration), so a backlog of old
    readings uploaded after an outage does not resolve and re-fire it. A device without
    readings (never reported, or all deleted by retention) changes nothing.
    """
    if rule.kind != "nodata":
        raise ValueError("evaluate_nodata takes nodata rules only")
    if last_ts_ms is None:
        return state, None
    cursor = max(state.cursor_ms, last_ts_ms)
    silent = now_ms - last_ts_ms >= rule.duration_ms
    if state.state == "firing":
        if not silent and last_ts_ms > (state.since_ms or 0):
            return State("ok", None, cursor), Resolved(last_ts_ms, None)
        return replace(state, cursor_ms=cursor), None
    if silent:
        # Fired when the silence reached the duration, however late this evaluation runs.
        fired = Fired(last_ts_ms, last_ts_ms + rule.duration_ms, None)
        return State("firing", last_ts_ms, cursor), fired
    return State("ok", None, cursor), None


# ---- notifications ----------------------------------------------------------------

def delivery_window_ms(retries: int, timeout_s: float) -> int:
    """Longest time one webhook delivery can take: every backoff at its maximum, every attempt timing out."""
    backoff = sum(min(BACKOFF_MAX_S, 2 ** n) for n in range(retries))
    return int((backoff + (retries + 1) * timeout_s) * 1000)


def resend_window(now_ms: int, interval_ms: int, retries: int, timeout_s: float) -> tuple[int, int]:
    """Transition times [start, end) whose still-unsent notifications are re-sent at now_ms.

    A notification is re-sent once, by the evaluation that sees it aged past the delay: by
    then its first delivery (retries included) has finished, so the re-send never runs
    beside it (no duplicate POSTs) and a receiver that stays down costs two chains, not one
    per evaluation. The delay is at least RESEND_MIN_MS plus two minutes of queueing slack.
    """
    delay = max(RESEND_MIN_MS, delivery_window_ms(retries, timeout_s) + 120_000)
    return now_ms - delay - interval_ms, now_ms - delay


@dataclass(frozen=True)
class Event:
    """An alert event with what a notification needs to say about its rule and device."""

    id: int
    rule_id: int
    rule_name: str
    kind: str
    metric: str | None
    threshold: float | None
    hysteresis: float
    duration_ms: int
    device_id: int
    device_name: str
    state: str
    value: float | None
    since_ms: int
    fired_ms: int
    resolved_ms: int | None
    fire_sent_ms: int | None
    resolve_sent_ms: int | None
    resolved_value: float | None = None  # the reading that resolved it; value fired it

    def sent_ms(self, notification: str) -> int | None:
        """When the "firing" or "resolved" notification was delivered, or None."""
        return self.fire_sent_ms if notification == "firing" else self.resolve_sent_ms


def _iso(ts_ms: int | None) -> str | None:
    return None if ts_ms is None else ms_to_iso(ts_ms)


def payload(event: Event, notification: str) -> dict:
    """The JSON body of a webhook: notification is "firing" or "resolved"."""
    if notification not in ("firing", "resolved"):
        raise ValueError(f"notification must be firing or resolved, got {notification!r}")
    rule = Rule(event.rule_id, event.rule_name, None, event.metric, event.kind,
                event.threshold, event.duration_ms, event.hysteresis)
    resolving = notification == "resolved"
    resolved_ms = event.resolved_ms if resolving else None
    resolved_value = event.resolved_value if resolving else None
    return {
        "event_id": event.id, "state": notification,
        "rule_id": event.rule_id, "rule": event.rule_name, "kind": event.kind,
        "condition": rule.describe(), "metric": event.metric, "threshold": event.threshold,
        "hysteresis": event.hysteresis, "duration_s": event.duration_ms / 1000,
        "device_id": event.device_id, "device": event.device_name,
        # value: the reading behind this notification; both are also given by name.
        "value": resolved_value if resolving else event.value,
        "fired_value": event.value, "resolved_value": resolved_value,
        "since_ms": event.since_ms, "since": _iso(event.since_ms),
        "fired_ms": event.fired_ms, "fired": _iso(event.fired_ms),
        "resolved_ms": resolved_ms, "resolved": _iso(resolved_ms),
        "text": f"[{notification.upper()}] {event.rule_name}: {rule.describe()} on {event.device_name}",
    }


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in "300", "90s", "5m", "1h30m" or "2d"."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact or \
            (len(parts) > 1 and any(u == "" for _, u in parts)):
        raise ValueError(f"duration {text!r} must look like 300, 90s, 5m, 1h30m or 2d")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def as_rule(row: Mapping) -> Rule:
    """A Rule from an alert_rule row (duration stored in seconds)."""
    return Rule(row["id"], row["name"], row["device_id"], row["metric"], row["kind"],
                row["threshold"], int(row["duration_s"]) * 1000, float(row["hysteresis"] or 0))


MAX_DURATION_S = 366 * 86400  # stored as INT seconds; longer holds make no sense for an alert


def rule_spec(*, name: str, metric: str | None = None, above: float | None = None,
              below: float | None = None, no_data_minutes: int | None = None,
              hold: str | int = 0, hysteresis: float = 0.0) -> dict:
    """The fields of a new rule from what a person asks for; ValueError says what is wrong.

    One of above, below or no_data_minutes; threshold rules need a metric and may hold for a
    duration ("5m") with hysteresis; no-data rules take neither. The CLI and the API both call this.
    """
    conditions = [c for c in (above, below, no_data_minutes) if c is not None]
    if len(conditions) != 1:
        raise ValueError("give exactly one of above, below and no-data minutes")
    if not _finite(hysteresis) or hysteresis < 0:
        raise ValueError("hysteresis must be a number of at least 0")
    seconds = parse_duration(str(hold)) if not isinstance(hold, int) else hold
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"duration must be 0 to {MAX_DURATION_S} seconds (a year), got {seconds}")
    if no_data_minutes is not None:
        if metric or seconds or hysteresis:
            raise ValueError("a no-data rule takes no metric, duration or hysteresis")
        if no_data_minutes < 1:
            raise ValueError("no-data minutes must be at least 1")
        return {"name": name, "kind": "nodata", "duration_ms": no_data_minutes * 60_000}
    if not metric:
        raise ValueError("above and below need a metric")
    kind, threshold = ("above", above) if above is not None else ("below", below)
    if not _finite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return {"name": name, "kind": kind, "metric": metric, "threshold": float(threshold),
            "duration_ms": seconds * 1000, "hysteresis": float(hysteresis)}

"""The alert state machine (lib/alerts.py): pure functions, no database."""
from __future__ import annotations

import pytest

from lib import alerts
from lib.alerts import (LOOKBACK_MARGIN_MS, RESEND_MIN_MS, Event, Fired, Resolved, Rule, State,
                        breaching, cleared, delivery_window_ms, evaluate_nodata, lookback_start,
                        parse_duration, payload, resend_window, run, step)

T = 1_790_000_000_000
MIN = 60_000


def rule(kind="above", threshold=1000.0, duration_ms=MIN, hysteresis=50.0, metric="co2"):
    if kind == "nodata":
        return Rule(1, "silent", None, None, "nodata", None, duration_ms, 0.0)
    return Rule(1, "co2 high", None, metric, kind, threshold, duration_ms, hysteresis)


def feed(r: Rule, values, state=State(), start=T, every=10_000):
    """Step readings `every` ms apart; returns the final state and the transitions."""
    transitions = []
    for i, value in enumerate(values):
        state, transition = step(r, state, start + i * every, value)
        if transition:
            transitions.append(transition)
    return state, transitions


@pytest.mark.parametrize("kind,value,breach,clear", [
    ("above", 1000.0, False, False),   # exactly at the threshold is no breach, nor clear
    ("above", 1000.001, True, False),
    ("above", 960.0, False, False),    # inside the hysteresis band
    ("above", 950.0, False, False),    # exactly at threshold - hysteresis is not clear yet
    ("above", 949.9, False, True),
    ("below", 1000.0, False, False),
    ("below", 999.0, True, False),
    ("below", 1050.0, False, False),
    ("below", 1050.1, False, True),
])
def test_breaching_and_cleared(kind, value, breach, clear):
    assert breaching(rule(kind), value) is breach
    assert cleared(rule(kind), value) is clear


def test_breach_held_for_the_duration_fires_once():
    r = rule()
    state, transitions = feed(r, [900, 1100, 1100, 1100, 1100, 1100, 1100, 1100, 1100])
    assert transitions == [Fired(since_ms=T + 10_000, at_ms=T + 70_000, value=1100)]
    assert state == State("firing", T + 10_000, T + 80_000)


@pytest.mark.parametrize("gap,fires", [(MIN - 1, False), (MIN, True), (MIN + 1, True)])
def test_duration_boundary(gap, fires):
    r = rule()
    state, _ = step(r, State(), T, 1100)
    assert state == State("pending", T, T)
    state, transition = step(r, state, T + gap, 1100)
    assert (transition == Fired(T, T + gap, 1100)) is fires
    assert state.state == ("firing" if fires else "pending")


@pytest.mark.parametrize("interruption", [1000.0, 999.0, 980.0])
def test_a_non_breaching_reading_resets_pending(interruption):
    r = rule()
    state, transitions = feed(r, [1100, 1100, 1100, interruption] + [1100] * 7)
    assert transitions == [Fired(since_ms=T + 40_000, at_ms=T + 100_000, value=1100)]


def test_zero_duration_fires_on_the_first_breach():
    r = rule(duration_ms=0)
    state, transition = step(r, State(), T, 1000.5)
    assert transition == Fired(T, T, 1000.5) and state == State("firing", T, T)


@pytest.mark.parametrize("values,resolved_at", [
    ([1100, 1000, 990, 960, 950], None),        # inside the band (and on its edge) keeps firing
    ([1100, 1000, 990, 949], 3),
    ([1100, 1100, 1200, 500], 3),
])
def test_hysteresis_band_keeps_firing(values, resolved_at):
    r = rule(duration_ms=0)
    state, transitions = feed(r, values)
    assert transitions[0] == Fired(T, T, 1100)
    if resolved_at is None:
        assert len(transitions) == 1 and state.state == "firing"
    else:
        assert transitions[1:] == [Resolved(T + resolved_at * 10_000, values[resolved_at])]
        assert state == State("ok", None, T + resolved_at * 10_000)


def test_below_rule_fires_and_resolves_past_the_margin():
    r = rule("below", threshold=18.0, hysteresis=0.5, metric="temperature", duration_ms=20_000)
    state, transitions = feed(r, [19, 17.9, 17.5, 17.0, 18.2, 18.5, 18.6])
    assert transitions == [Fired(T + 10_000, T + 30_000, 17.0), Resolved(T + 60_000, 18.6)]


def test_refires_after_resolving():
    r = rule(duration_ms=0, hysteresis=0)
    _, transitions = feed(r, [1100, 900, 1100, 900])
    assert [type(t) for t in transitions] == [Fired, Resolved, Fired, Resolved]


def test_readings_at_or_before_the_cursor_are_ignored():
    r = rule(duration_ms=0)
    state = State("ok", None, T)
    assert step(r, state, T, 5000) == (state, None)
    assert step(r, state, T - 1, 5000) == (state, None)


def test_run_feeds_only_new_readings_inside_the_lookback():
    r = rule(duration_ms=MIN)
    now = T + 3600_000
    start = lookback_start(r, now)
    assert start == now - MIN - LOOKBACK_MARGIN_MS
    old = [(T + i * 10_000, 5000.0) for i in range(300)]  # an hour-old backlog, all breaching
    state, transitions = run(r, State(), old, now)
    assert transitions == [] and state.state == "ok"
    fresh = [(start - 1, 5000.0), (start, 5000.0), (start + MIN, 5000.0), (now + 1, 5000.0)]
    state, transitions = run(r, State(), fresh, now)
    assert transitions == [Fired(start, start + MIN, 5000.0)]
    assert state.cursor_ms == start + MIN  # the future reading waits for a later now


def test_old_backlog_does_not_resolve_a_firing_alert():
    r = rule(duration_ms=0)
    now = T + 3600_000
    firing = State("firing", T, T)
    backlog = [(T + i * 10_000, 100.0) for i in range(1, 200)]  # clear, but stale
    assert run(r, firing, backlog, now) == (firing, [])
    state, transitions = run(r, firing, backlog + [(now - 1000, 100.0)], now)
    assert transitions == [Resolved(now - 1000, 100.0)] and state.state == "ok"


def test_stale_pending_starts_over():
    r = rule(duration_ms=MIN)
    now = T + 3600_000
    pending = State("pending", T, T)  # last evidence an hour ago
    state, transitions = run(r, pending, [(now - 1000, 1100.0)], now)
    assert transitions == [] and state == State("pending", now - 1000, now - 1000)


@pytest.mark.parametrize("last,now,expected", [
    (None, T, None),                      # never reported: nothing to miss
    (T, T + 2 * MIN - 1, None),
    (T, T + 2 * MIN, Fired(T, T + 2 * MIN, None)),
    # A late evaluation still says when the silence reached the duration, not when it looked.
    (T, T + 10 * MIN, Fired(T, T + 2 * MIN, None)),
])
def test_nodata_fires_when_silent_for_the_duration(last, now, expected):
    state, transition = evaluate_nodata(rule("nodata", duration_ms=2 * MIN), State(), last, now)
    assert transition == expected
    assert state.state == ("firing" if expected else "ok")


@pytest.mark.parametrize("last,now,resolves", [
    (T, T + 20 * MIN, False),               # nothing new
    (None, T + 20 * MIN, False),            # readings deleted by retention: still silent
    (T + 5 * MIN, T + 20 * MIN, False),     # a backlog of old readings: still not current
    (T + 19 * MIN, T + 20 * MIN, True),
])
def test_nodata_resolves_when_the_device_is_current_again(last, now, resolves):
    r = rule("nodata", duration_ms=2 * MIN)
    firing = State("firing", T, T)
    state, transition = evaluate_nodata(r, firing, last, now)
    # Resolved at the reading that showed the device current again, not at the evaluation.
    assert (transition == Resolved(last, None)) is resolves
    assert state.state == ("ok" if resolves else "firing")


def test_nodata_and_threshold_functions_refuse_the_other_kind():
    with pytest.raises(ValueError):
        evaluate_nodata(rule(), State(), T, T)
    with pytest.raises(ValueError):
        step(rule("nodata"), State(), T, 1.0)


@pytest.mark.parametrize("fields,error", [
    ({"kind": "equal"}, "kind"),
    ({"threshold": None}, "threshold"),
    ({"threshold": float("nan")}, "threshold"),
    ({"metric": None}, "metric"),
    ({"duration_ms": -1}, "duration"),
    ({"hysteresis": -0.1}, "hysteresis"),
    ({"name": " "}, "name"),
    ({"kind": "nodata", "metric": None, "threshold": None, "duration_ms": 0}, "duration > 0"),
    ({"kind": "nodata", "threshold": None}, "no metric"),
])
def test_rule_validation(fields, error):
    base = dict(id=1, name="r", device_id=None, metric="co2", kind="above", threshold=1.0,
                duration_ms=0, hysteresis=0.0)
    with pytest.raises(ValueError, match=error):
        Rule(**(base | fields))


@pytest.mark.parametrize("text,seconds", [("300", 300), ("90s", 90), ("5m", 300), ("1h30m", 5400),
                                          ("2d", 172800), ("0", 0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "1.5m", "-5", "5 5", "30s5"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("retries,timeout_s,expected_s", [(0, 10, 10), (3, 1, 7 + 4), (12, 0, 1023 + 2 * 600)])
def test_delivery_window(retries, timeout_s, expected_s):
    assert delivery_window_ms(retries, timeout_s) == expected_s * 1000


def test_resend_window_waits_past_delivery():
    now = T + 86_400_000
    start, end = resend_window(now, 30_000, 8, 10)
    assert end == now - RESEND_MIN_MS and end - start == 30_000
    start, end = resend_window(now, 30_000, 20, 10)  # long retry chains push it later
    assert now - end == delivery_window_ms(20, 10) + 120_000


def event(**fields) -> Event:
    """A resolved co2 event: fired by 1234.5 at T + 300 s, resolved by 940.0 at T + 900 s."""
    base = dict(id=7, rule_id=1, rule_name="co2 high", kind="above", metric="co2", threshold=1000.0,
                hysteresis=50.0, duration_ms=300_000, device_id=3, device_name="lab-pi",
                state="resolved", value=1234.5, since_ms=T, fired_ms=T + 300_000,
                resolved_ms=T + 900_000, fire_sent_ms=T + 300_100, resolve_sent_ms=None,
                resolved_value=940.0)
    return Event(**(base | fields))


def test_payload():
    body = payload(event(), "firing")
    assert body["event_id"] == 7 and body["state"] == "firing" and body["device"] == "lab-pi"
    assert body["condition"] == "co2 above 1000 for 300 s (hysteresis 50)"
    assert body["since"] == "2026-09-21T14:13:20.000Z" and body["fired_ms"] == T + 300_000
    assert body["resolved"] is None
    assert payload(event(), "resolved")["resolved_ms"] == T + 900_000
    with pytest.raises(ValueError):
        payload(event(), "pending")


@pytest.mark.parametrize("notification,value,resolved_ms,resolved_value", [
    ("firing", 1234.5, None, None),              # the reading that fired it
    ("resolved", 940.0, T + 900_000, 940.0),     # the reading that resolved it
])
def test_payload_value_is_the_reading_of_the_transition(notification, value, resolved_ms,
                                                        resolved_value):
    body = payload(event(), notification)
    assert (body["value"], body["fired_value"], body["resolved_value"]) == \
        (value, 1234.5, resolved_value)
    assert (body["since_ms"], body["fired_ms"], body["resolved_ms"]) == (T, T + 300_000, resolved_ms)
    assert body["resolved"] == (None if resolved_ms is None else "2026-09-21T14:28:20.000Z")


def test_payload_of_a_nodata_event_has_no_values():
    body = payload(event(kind="nodata", metric=None, threshold=None, hysteresis=0.0, value=None,
                         resolved_value=None), "resolved")
    assert (body["value"], body["fired_value"], body["resolved_value"]) == (None, None, None)
    assert body["condition"] == "no data for 300 s"


def test_payload_keys_are_documented():
    """Every field of the body, in order: the README documents exactly these."""
    assert list(payload(event(), "resolved")) == [
        "event_id", "state", "rule_id", "rule", "kind", "condition", "metric", "threshold",
        "hysteresis", "duration_s", "device_id", "device", "value", "fired_value", "resolved_value",
        "since_ms", "since", "fired_ms", "fired", "resolved_ms", "resolved", "text"]


# ---- what the time fields mean, for every kind of rule --------------------------------

def transitions_of(kind: str, evaluated_late_ms: int) -> list:
    """Fire and resolve a 2-minute rule of `kind`, each evaluation `evaluated_late_ms` late."""
    if kind == "nodata":
        r = rule("nodata", duration_ms=2 * MIN)
        state, fired = evaluate_nodata(r, State(), T, T + 2 * MIN + evaluated_late_ms)
        new_ts = T + 5 * MIN
        _, resolved = evaluate_nodata(r, state, new_ts, new_ts + evaluated_late_ms)
        return [fired, resolved]
    r = rule(kind, threshold=1000.0 if kind == "above" else 10.0, duration_ms=2 * MIN, hysteresis=0.0)
    bad, good = (1100.0, 900.0) if kind == "above" else (5.0, 15.0)
    readings = [(T + i * 10_000, bad) for i in range(13)] + [(T + 13 * 10_000, good)]
    _, transitions = run(r, State(), readings, T + 13 * 10_000 + evaluated_late_ms)
    return transitions


@pytest.mark.parametrize("late_ms", [0, 25_000])
@pytest.mark.parametrize("kind,resolved_at", [("above", T + 130_000), ("below", T + 130_000),
                                              ("nodata", T + 5 * MIN)])
def test_time_fields_mean_the_same_for_every_kind(kind, resolved_at, late_ms):
    """since = when the condition began, fired = since + duration at the earliest (the reading
    or instant that completed it), resolved = the reading that ended it; none is the evaluation time."""
    fired, resolved = transitions_of(kind, late_ms)
    assert (fired.since_ms, fired.at_ms) == (T, T + 2 * MIN)
    assert resolved.at_ms == resolved_at


# ---- rule_spec: what the CLI and the API ask for ---------------------------------------

@pytest.mark.parametrize("kwargs, want", [
    ({"metric": "co2", "above": 1000, "hold": "5m", "hysteresis": 50},
     {"kind": "above", "metric": "co2", "threshold": 1000.0, "duration_ms": 300_000, "hysteresis": 50.0}),
    ({"metric": "temperature", "below": -5.5},
     {"kind": "below", "metric": "temperature", "threshold": -5.5, "duration_ms": 0, "hysteresis": 0.0}),
    ({"metric": "co2", "above": 1, "hold": 90}, {"kind": "above", "duration_ms": 90_000}),
    ({"no_data_minutes": 10}, {"kind": "nodata", "duration_ms": 600_000}),
])
def test_rule_spec_builds_rule_fields(kwargs, want):
    spec = alerts.rule_spec(name="r", **kwargs)
    assert spec["name"] == "r" and want.items() <= spec.items()


@pytest.mark.parametrize("kwargs, error", [
    ({}, "exactly one"),
    ({"metric": "co2", "above": 1, "below": 2}, "exactly one"),
    ({"above": 1}, "need a metric"),
    ({"no_data_minutes": 5, "metric": "co2"}, "no-data rule takes no"),
    ({"no_data_minutes": 5, "hold": "1m"}, "no-data rule takes no"),
    ({"no_data_minutes": 0}, "at least 1"),
    ({"metric": "co2", "above": float("nan")}, "finite"),
    ({"metric": "co2", "above": 1, "hysteresis": -1}, "hysteresis"),
    ({"metric": "co2", "above": 1, "hold": "soon"}, "must look like"),
])
def test_rule_spec_refuses_what_cannot_be_a_rule(kwargs, error):
    with pytest.raises(ValueError, match=error):
        alerts.rule_spec(name="r", **kwargs)

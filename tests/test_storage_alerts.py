"""Alert rules, states and events in SQLite and MariaDB (lib/storage/alerts.py)."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from celery_tasks.alerts import evaluate
from lib import storage
from lib.alerts import Fired, Resolved, State, lookback_start
from lib.catalogue import Metric
from lib.storage import alerts as st

T = 1_790_000_000_000
METRICS = ["co2", "temperature", "humidity"]


def write(engine, device_id, values, start=T, every=10_000, metric_names=METRICS):
    """Store readings `every` ms apart with co2 from `values`."""
    rows = [(device_id, start + i * every, v, 20.0, 40.0) for i, v in enumerate(values)]
    storage.write_readings(engine, metric_names, rows)


def co2_rule(engine, **fields):
    return st.add_rule(engine, **({"name": "co2 high", "kind": "above", "metric": "co2",
                                   "threshold": 1000.0, "duration_ms": 60_000, "hysteresis": 50.0}
                                  | fields))


def due_times(engine, event_id: int) -> tuple:
    """(fire_due_ms, resolve_due_ms) of an event."""
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text("SELECT fire_due_ms, resolve_due_ms FROM alert_event "
                                          "WHERE id = :i"), {"i": event_id}).one())


def count_events(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT COUNT(*) FROM alert_event"))


def test_rules_crud(engine, device):
    first = co2_rule(engine, device_id=device.id)
    second = st.add_rule(engine, name="silent", kind="nodata", duration_ms=600_000)
    listed = st.list_rules(engine)
    assert [(i.rule.id, i.device_name, i.enabled) for i in listed] == \
        [(first, device.name, True), (second, None, True)]
    assert listed[0].rule.describe() == "co2 above 1000 for 60 s (hysteresis 50)"
    assert [r.id for r in st.load_rules(engine)] == [first, second]
    assert st.rule_devices(engine, listed[0].rule) == [device.id]
    assert st.rule_devices(engine, listed[1].rule) == [device.id]
    assert st.delete_rule(engine, first) is True
    assert st.delete_rule(engine, first) is False
    assert [r.id for r in st.load_rules(engine)] == [second]


def test_disabled_rules_are_not_loaded(engine):
    rule_id = co2_rule(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alert_rule SET enabled = :f WHERE id = :i"), {"f": False, "i": rule_id})
    assert st.load_rules(engine) == []
    assert st.list_rules(engine)[0].enabled is False


@pytest.mark.parametrize("fields,error", [
    ({"metric": "pressure"}, "unknown metric"),
    ({"metric": "Bad-Name"}, "must be lowercase"),
    ({"device_id": 999_999}, "no device"),
    ({"duration_ms": 1500}, "whole number of seconds"),
    ({"threshold": None}, "threshold"),
    ({"name": "x" * 65}, "64 characters"),
])
def test_add_rule_refuses(engine, fields, error):
    with pytest.raises(ValueError, match=error):
        co2_rule(engine, **fields)
    assert st.list_rules(engine) == []


def test_read_values_uses_cursor_lookback_and_now(engine, device):
    other, _ = storage.add_device(engine, "other-pi")
    write(engine, device.id, [1.0, 2.0, 3.0, 4.0, 5.0])
    write(engine, other.id, [10.0, 11.0, 12.0])
    storage.write_readings(engine, ["temperature"], [(device.id, T + 50_000, 1.0)])  # co2 NULL
    found = st.read_values(engine, "co2", {device.id: T + 10_000, other.id: 0}, T + 10_000, T + 30_000)
    assert found == {device.id: [(T + 20_000, 3.0), (T + 30_000, 4.0)],
                     other.id: [(T + 10_000, 11.0), (T + 20_000, 12.0)]}
    assert st.read_values(engine, "co2", {}, 0, T) == {}


@pytest.mark.parametrize("settings", ["mysql"], indirect=True)  # pymysql counts a SELECT's rows
def test_read_values_reads_each_device_from_its_own_cursor(engine, device):
    """A device with an old cursor (silent, or new) must not have the others read over the whole lookback."""
    silent, _ = storage.add_device(engine, "silent-pi")
    write(engine, device.id, [500.0] * 60)  # 10 minutes of readings
    fetched = []

    def count(conn, cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            fetched.append(cursor.rowcount)
    sa.event.listen(engine, "after_cursor_execute", count)
    try:
        found = st.read_values(engine, "co2", {device.id: T + 580_000, silent.id: 0}, T, T + 600_000)
    finally:
        sa.event.remove(engine, "after_cursor_execute", count)
    assert found == {device.id: [(T + 590_000, 500.0)], silent.id: []}
    assert sum(fetched) == 1  # not the 59 readings between the lookback's start and the cursor


def test_read_values_quotes_an_added_metric_named_like_a_keyword(engine, device):
    storage.add_metric(engine, Metric("order", "x", 0, 10))
    storage.write_readings(engine, ["order"], [(device.id, T, 7.0)])
    assert st.read_values(engine, "order", {device.id: 0}, 0, T) == {device.id: [(T, 7.0)]}


def test_last_reading_ms(engine, device):
    silent, _ = storage.add_device(engine, "silent-pi")
    write(engine, device.id, [1.0, 2.0, 3.0])
    assert st.last_reading_ms(engine, [device.id, silent.id]) == {device.id: T + 20_000, silent.id: None}
    assert st.last_reading_ms(engine, []) == {}


def test_save_state_opens_and_closes_events(engine, device):
    rule_id = co2_rule(engine)
    firing = State("firing", T, T + 60_000)
    sent = st.save_state(engine, rule_id, device.id, None, firing, [Fired(T, T + 60_000, 1100.0)],
                         due_ms=T + 65_000)
    [(event_id, kind)] = sent
    assert kind == "firing"
    stored = st.load_states(engine, rule_id)[device.id]
    assert stored.state == firing and stored.event_id == event_id and stored.version == 1
    event = st.get_event(engine, event_id)
    assert (event.state, event.value, event.since_ms, event.fired_ms, event.resolved_ms) == \
        ("firing", 1100.0, T, T + 60_000, None)
    assert (event.rule_name, event.device_name, event.metric) == ("co2 high", device.name, "co2")
    ok = State("ok", None, T + 90_000)
    assert st.save_state(engine, rule_id, device.id, stored, ok, [Resolved(T + 90_000, 900.0)],
                         due_ms=T + 95_000) == [(event_id, "resolved")]
    stored = st.load_states(engine, rule_id)[device.id]
    assert stored.event_id is None and stored.version == 2
    event = st.get_event(engine, event_id)
    # The firing reading's value stays; the resolving reading's is kept beside it.
    assert (event.state, event.resolved_ms, event.value, event.resolved_value) == \
        ("resolved", T + 90_000, 1100.0, 900.0)
    assert due_times(engine, event_id) == (T + 65_000, T + 95_000)
    assert [e.id for e in st.list_events(engine)] == [event_id]


def test_fire_and_resolve_in_one_save(engine, device):
    rule_id = co2_rule(engine)
    sent = st.save_state(engine, rule_id, device.id, None, State("ok", None, T + 20_000),
                         [Fired(T, T, 1100.0), Resolved(T + 20_000, 900.0)], due_ms=T + 30_000)
    assert [kind for _, kind in sent] == ["firing", "resolved"] and sent[0][0] == sent[1][0]
    assert st.load_states(engine, rule_id)[device.id].event_id is None


@pytest.mark.parametrize("first_exists", [False, True])
def test_optimistic_concurrency_keeps_one_transition(engine, device, first_exists):
    rule_id = co2_rule(engine)
    if first_exists:
        st.save_state(engine, rule_id, device.id, None, State("pending", T, T), [], due_ms=T)
    old = st.load_states(engine, rule_id).get(device.id)  # both evaluators read this version
    firing = State("firing", T, T + 60_000)
    won = st.save_state(engine, rule_id, device.id, old, firing, [Fired(T, T + 60_000, 1100.0)],
                        due_ms=T + 60_000)
    lost = st.save_state(engine, rule_id, device.id, old, firing, [Fired(T, T + 60_000, 1200.0)],
                         due_ms=T + 60_000)
    assert len(won) == 1 and lost is None
    assert count_events(engine) == 1
    assert st.get_event(engine, won[0][0]).value == 1100.0


def test_save_cursors_skips_rows_changed_meanwhile(engine, device):
    rule_id = co2_rule(engine)
    st.save_state(engine, rule_id, device.id, None, State("ok", None, T), [], due_ms=T)
    old = st.load_states(engine, rule_id)[device.id]
    st.save_cursors(engine, rule_id, {device.id: (old, State("ok", None, T + 10_000))})
    assert st.load_states(engine, rule_id)[device.id].state.cursor_ms == T + 10_000
    st.save_cursors(engine, rule_id, {device.id: (old, State("ok", None, T + 99_000))})  # stale version
    assert st.load_states(engine, rule_id)[device.id].state.cursor_ms == T + 10_000


def test_two_concurrent_evaluators_fire_each_alert_once(settings, engine):
    devices = [storage.add_device(engine, f"pi-{i}")[0].id for i in range(8)]
    co2_rule(engine, duration_ms=0)
    for device_id in devices:
        write(engine, device_id, [1100.0] * 5)
    now = T + 60_000
    barrier = threading.Barrier(2)
    outcomes = []

    def evaluator():
        eng = storage.make_engine(settings.database_url)  # as a second process would
        barrier.wait()
        outcomes.append(evaluate(eng, now))
        eng.dispose()

    threads = [threading.Thread(target=evaluator) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    notifications = [n for _, sent in outcomes for n in sent]
    assert len(outcomes) == 2
    assert sorted(kind for _, kind in notifications) == ["firing"] * len(devices)
    assert count_events(engine) == len(devices)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(DISTINCT device_id) FROM alert_event")) == len(devices)
    # A third evaluation finds nothing new.
    assert evaluate(engine, now)[1] == []


def test_evaluate_steps_through_time(engine, device):
    co2_rule(engine)
    write(engine, device.id, [800.0] * 6 + [1200.0] * 12 + [980.0] * 3 + [900.0] * 3)
    fired_at = T + 60_000 + 60_000
    assert evaluate(engine, fired_at - 1)[1] == []
    [(event_id, kind)] = evaluate(engine, fired_at)[1]
    assert kind == "firing"
    for now in (fired_at + 10_000, T + 200_000):  # 980 is inside the hysteresis band
        assert evaluate(engine, now)[1] == []
    assert evaluate(engine, T + 210_000)[1] == [(event_id, "resolved")]
    assert evaluate(engine, T + 400_000)[1] == []
    assert count_events(engine) == 1


def test_evaluate_ignores_an_old_backlog(engine, device):
    co2_rule(engine, duration_ms=0)
    now = T + 86_400_000
    write(engine, device.id, [5000.0] * 100)  # a day old
    counts, sent = evaluate(engine, now)
    assert sent == [] and counts["checked"] == 1
    rule = st.load_rules(engine)[0]
    write(engine, device.id, [5000.0], start=lookback_start(rule, now))
    assert [kind for _, kind in evaluate(engine, now)[1]] == ["firing"]


def test_nodata_rule_for_every_device(engine, device):
    st.add_rule(engine, name="silent", kind="nodata", duration_ms=120_000)
    never, _ = storage.add_device(engine, "never-reported")
    write(engine, device.id, [1.0, 2.0])
    assert evaluate(engine, T + 120_000)[1] == []
    [(event_id, kind)] = evaluate(engine, T + 135_000)[1]
    assert kind == "firing"
    event = st.get_event(engine, event_id)
    # Silent since the last reading; fired when the silence reached 2 minutes, not at the evaluation.
    assert (event.since_ms, event.fired_ms, event.value) == (T + 10_000, T + 130_000, None)
    assert evaluate(engine, T + 300_000)[1] == []
    write(engine, device.id, [3.0, 4.0], start=T + 280_000)
    assert evaluate(engine, T + 300_000)[1] == [(event_id, "resolved")]
    event = st.get_event(engine, event_id)
    assert (event.resolved_ms, event.resolved_value) == (T + 290_000, None)  # the newest reading
    assert due_times(engine, event_id) == (T + 135_000, T + 300_000)
    assert st.load_states(engine, st.load_rules(engine)[0].id).get(never.id) is None


def test_mark_sent_once_and_unsent_window(engine, device):
    rule_id = co2_rule(engine)
    [(first, _)] = st.save_state(engine, rule_id, device.id, None, State("firing", T, T),
                                 [Fired(T, T, 1.0)], due_ms=T)
    old = st.load_states(engine, rule_id)[device.id]
    st.save_state(engine, rule_id, device.id, old, State("ok", None, T + 5000), [Resolved(T + 5000, 0.0)],
                  due_ms=T + 5000)
    assert st.unsent(engine, T, T + 10_000) == [(first, "firing"), (first, "resolved")]
    assert st.unsent(engine, T + 1, T + 10_000) == [(first, "resolved")]
    assert st.unsent(engine, T - 10_000, T) == []
    assert st.mark_sent(engine, first, "firing", T + 100) is True
    assert st.mark_sent(engine, first, "firing", T + 200) is False
    assert st.get_event(engine, first).fire_sent_ms == T + 100
    assert st.unsent(engine, T, T + 10_000) == [(first, "resolved")]
    with pytest.raises(ValueError):
        st.mark_sent(engine, first, "pending", T)


def test_deleting_a_rule_deletes_its_states_and_events(engine, device):
    rule_id = co2_rule(engine)
    st.save_state(engine, rule_id, device.id, None, State("firing", T, T), [Fired(T, T, 1.0)], due_ms=T)
    assert st.delete_rule(engine, rule_id)
    assert count_events(engine) == 0 and st.load_states(engine, rule_id) == {}


def test_unsent_goes_by_when_notifications_became_due(engine, device):
    """A no-data alert fires at an old instant (last reading + duration) but is due when evaluated."""
    day = 86_400_000
    rule_id = st.add_rule(engine, name="silent", kind="nodata", duration_ms=600_000)
    [(event_id, _)] = st.save_state(engine, rule_id, device.id, None, State("firing", T - day, T),
                                    [Fired(T - day, T - day + 600_000, None)], due_ms=T)
    assert st.unsent(engine, T - day, T - day + 3_600_000) == []
    assert st.unsent(engine, T, T + 30_000) == [(event_id, "firing")]
    old = st.load_states(engine, rule_id)[device.id]
    st.save_state(engine, rule_id, device.id, old, State("ok", None, T + 60_000),
                  [Resolved(T - 60_000, None)], due_ms=T + 60_000)
    assert st.unsent(engine, T - 60_000, T) == []  # not by the resolving reading's time
    assert st.unsent(engine, T + 60_000, T + 90_000) == [(event_id, "resolved")]


def test_unsent_falls_back_to_transition_times_of_events_stored_before_upgrade(engine, device):
    """Rows written before the due columns existed were stamped with the evaluation time anyway."""
    rule_id = co2_rule(engine)
    [(event_id, _)] = st.save_state(engine, rule_id, device.id, None, State("firing", T, T),
                                    [Fired(T, T, 1.0)], due_ms=T + 5000)
    old = st.load_states(engine, rule_id)[device.id]
    st.save_state(engine, rule_id, device.id, old, State("ok", None, T + 20_000),
                  [Resolved(T + 20_000, 0.0)], due_ms=T + 25_000)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alert_event SET fire_due_ms = NULL, resolve_due_ms = NULL"))
    assert st.unsent(engine, T, T + 1) == [(event_id, "firing")]
    assert st.unsent(engine, T + 20_000, T + 20_001) == [(event_id, "resolved")]
    assert st.unsent(engine, T + 5000, T + 6000) == []


def test_init_db_adds_the_event_columns_to_an_older_table(settings, engine, device):
    """An installation from before resolved_value and the due times gets them on init_db."""
    added = ("resolved_value", "fire_due_ms", "resolve_due_ms")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")  # an installation from before migrations
        for table in ("api_token", "users"):  # added by a later revision
            conn.exec_driver_sql(f"DROP TABLE {table}")
        for index in ("ix_alert_event_fire_due_ms", "ix_alert_event_resolve_due_ms"):
            on = "" if engine.dialect.name == "sqlite" else " ON alert_event"
            conn.exec_driver_sql(f"DROP INDEX {index}{on}")
        for column in added:
            conn.exec_driver_sql(f"ALTER TABLE alert_event DROP COLUMN {column}")
    assert not set(added) & {c["name"] for c in sa.inspect(engine).get_columns("alert_event")}
    storage.init_db(engine)
    assert set(added) <= {c["name"] for c in sa.inspect(engine).get_columns("alert_event")}
    rule_id = co2_rule(engine)
    [(event_id, _), _] = st.save_state(engine, rule_id, device.id, None, State("ok", None, T),
                                       [Fired(T, T, 1100.0), Resolved(T, 900.0)], due_ms=T)
    assert st.get_event(engine, event_id).resolved_value == 900.0

"""Alert rules, their per-device state and their events in the database.

State rows are written with optimistic concurrency: every write names the version it was
computed from and bumps it, so when two evaluators run at once only the first one's
transition (and event) is kept; the other sees 0 rows updated and skips that rule/device.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib.alerts import Event, Fired, Resolved, Rule, State, Transition, as_rule
from lib.catalogue import check_name
from lib.models import AlertEvent, AlertRule, AlertState, Device, Reading
from lib.storage import load_catalogue, now_ms

log = logging.getLogger(__name__)

NOTIFICATIONS = ("firing", "resolved")


class Conflict(Exception):
    """Another evaluator changed the state row first."""


# ---- rules --------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleInfo:
    """A rule as listed to administrators."""

    rule: Rule
    device_name: str | None  # None: every device
    enabled: bool
    created_ms: int


def add_rule(engine: Engine, *, name: str, kind: str, metric: str | None = None,
             threshold: float | None = None, device_id: int | None = None,
             duration_ms: int = 0, hysteresis: float = 0.0) -> int:
    """Validate and store a rule; the device must exist and the metric be in the catalogue."""
    rule = Rule(0, name.strip(), device_id, metric, kind, threshold, duration_ms, hysteresis)
    if len(rule.name) > 64:
        raise ValueError("rule name must be at most 64 characters")
    if duration_ms % 1000:
        raise ValueError("duration must be a whole number of seconds")
    if metric is not None and metric not in load_catalogue(engine):
        raise ValueError(f"unknown metric {check_name(metric)!r}")
    with engine.begin() as conn:
        if device_id is not None and conn.scalar(
                sa.select(Device.id).where(Device.id == device_id)) is None:
            raise ValueError(f"no device with id {device_id}")
        result = conn.execute(sa.insert(AlertRule).values(
            name=rule.name, device_id=device_id, metric=metric, kind=kind,
            threshold=threshold, duration_s=duration_ms // 1000, hysteresis=hysteresis,
            enabled=True, created_ms=now_ms()))
        return result.inserted_primary_key[0]


def _rule_rows(conn: sa.Connection, enabled_only: bool) -> list:
    query = (sa.select(AlertRule.__table__, Device.name.label("device_name"))
             .outerjoin(Device, Device.id == AlertRule.device_id).order_by(AlertRule.id))
    if enabled_only:
        query = query.where(AlertRule.enabled == sa.true())
    return conn.execute(query).mappings().all()


def list_rules(engine: Engine) -> list[RuleInfo]:
    """All rules, oldest first."""
    with engine.connect() as conn:
        rows = _rule_rows(conn, enabled_only=False)
    return [RuleInfo(as_rule(r), r["device_name"], bool(r["enabled"]), r["created_ms"]) for r in rows]


def load_rules(engine: Engine) -> list[Rule]:
    """The enabled rules."""
    with engine.connect() as conn:
        return [as_rule(r) for r in _rule_rows(conn, enabled_only=True)]


def delete_rule(engine: Engine, rule_id: int) -> bool:
    """Delete a rule with its states and events; False when there was none."""
    with engine.begin() as conn:
        # Explicit deletes: the cascade also holds where foreign keys are not enforced.
        conn.execute(sa.delete(AlertState).where(AlertState.rule_id == rule_id))
        conn.execute(sa.delete(AlertEvent).where(AlertEvent.rule_id == rule_id))
        return conn.execute(sa.delete(AlertRule).where(AlertRule.id == rule_id)).rowcount > 0


def rule_devices(engine: Engine, rule: Rule) -> list[int]:
    """Ids of the devices a rule applies to (its device, or all of them)."""
    query = sa.select(Device.id).order_by(Device.id)
    if rule.device_id is not None:
        query = query.where(Device.id == rule.device_id)
    with engine.connect() as conn:
        return list(conn.scalars(query))


# ---- state --------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredState:
    """A state row: the machine's state plus the open event and the row version."""

    state: State
    event_id: int | None
    version: int


def load_states(engine: Engine, rule_id: int) -> dict[int, StoredState]:
    """State rows of a rule by device id."""
    t = AlertState.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.rule_id == rule_id)).mappings().all()
    return {r["device_id"]: StoredState(State(r["state"], r["since_ms"], r["cursor_ms"]),
                                        r["event_id"], r["version"]) for r in rows}


def save_state(engine: Engine, rule_id: int, device_id: int, old: StoredState | None,
               new: State, transitions: Sequence[Transition], *,
               due_ms: int) -> list[tuple[int, str]] | None:
    """Write a new state and its events in one transaction; None when another evaluator won.

    due_ms is the evaluation time: when the notifications became due, which the re-send of
    lost ones goes by (a transition's own time can be long before it, see lib.alerts).
    Returns the notifications to send: (event_id, "firing"|"resolved") per transition.
    """
    try:
        with engine.begin() as conn:
            _claim(conn, rule_id, device_id, old, new)
            before = event_id = old.event_id if old else None
            notifications = []
            for transition in transitions:
                if isinstance(transition, Fired):
                    event_id = _open_event(conn, rule_id, device_id, transition, due_ms)
                    notifications.append((event_id, "firing"))
                elif event_id is None:
                    log.warning("alert rule %s, device %s resolved without an open event",
                                rule_id, device_id)
                else:
                    _close_event(conn, event_id, transition, due_ms)
                    notifications.append((event_id, "resolved"))
                    event_id = None
            if event_id != before:
                conn.execute(sa.update(AlertState).where(AlertState.rule_id == rule_id,
                                                         AlertState.device_id == device_id)
                             .values(event_id=event_id))
            return notifications
    except (Conflict, sa.exc.IntegrityError):
        # Another evaluator wrote first, or the rule or device was deleted meanwhile.
        log.info("alert rule %s, device %s changed meanwhile; skipped", rule_id, device_id)
        return None


def _claim(conn: sa.Connection, rule_id: int, device_id: int, old: StoredState | None,
           new: State) -> None:
    """Write the state row if it is still at old's version (or still absent), else raise Conflict."""
    values = {"state": new.state, "since_ms": new.since_ms, "cursor_ms": new.cursor_ms}
    if old is None:
        # A concurrent insert of the same key raises IntegrityError: the other evaluator won.
        conn.execute(sa.insert(AlertState).values(rule_id=rule_id, device_id=device_id,
                                                  event_id=None, version=1, **values))
        return
    done = conn.execute(sa.update(AlertState).where(
        AlertState.rule_id == rule_id, AlertState.device_id == device_id,
        AlertState.version == old.version).values(version=AlertState.version + 1, **values))
    if done.rowcount != 1:
        raise Conflict()


def _open_event(conn: sa.Connection, rule_id: int, device_id: int, fired: Fired, due_ms: int) -> int:
    """Insert a firing event and return its id."""
    result = conn.execute(sa.insert(AlertEvent).values(
        rule_id=rule_id, device_id=device_id, state="firing", value=fired.value,
        since_ms=fired.since_ms, fired_ms=fired.at_ms, fire_due_ms=due_ms))
    return result.inserted_primary_key[0]


def _close_event(conn: sa.Connection, event_id: int, resolved: Resolved, due_ms: int) -> None:
    """Mark an event resolved; value stays the reading that fired it, resolved_value is the new one."""
    conn.execute(sa.update(AlertEvent).where(AlertEvent.id == event_id)
                 .values(state="resolved", resolved_ms=resolved.at_ms, resolved_value=resolved.value,
                         resolve_due_ms=due_ms))


def save_cursors(engine: Engine, rule_id: int, moves: Mapping[int, tuple[StoredState, State]]) -> None:
    """Advance cursors of existing rows whose state did not change, in one transaction.

    Nothing else changes, so a row another evaluator updated meanwhile is simply left alone.
    """
    params = [{"r": rule_id, "d": device_id, "v": old.version, "c": new.cursor_ms}
              for device_id, (old, new) in sorted(moves.items())]
    if not params:
        return
    t = AlertState.__table__
    stmt = (sa.update(t).where(t.c.rule_id == sa.bindparam("r"), t.c.device_id == sa.bindparam("d"),
                               t.c.version == sa.bindparam("v"))
            .values(cursor_ms=sa.bindparam("c"), version=t.c.version + 1))
    with engine.begin() as conn:
        conn.execute(stmt, params)


# ---- readings -----------------------------------------------------------------------

READ_DEVICES_PER_STATEMENT = 100  # SQLite allows 500 SELECTs in one compound statement


def read_values(engine: Engine, metric: str, cursors: Mapping[int, int], start_ms: int,
                now_ms: int) -> dict[int, list[tuple[int, float]]]:
    """(ts, value) readings per device newer than its cursor, from start_ms up to now_ms.

    One range scan of the primary key (device_id, ts) per device, from its own cursor: with
    one lower bound for all, a single silent device (its cursor far back) would have every
    device read over the whole lookback, at thousands of readings per second.
    """
    column = engine.dialect.identifier_preparer.quote(check_name(metric))
    branch = (f"SELECT device_id, ts, {column} FROM reading WHERE device_id = :d{{i}} "
              f"AND ts >= :low{{i}} AND ts <= :now AND {column} IS NOT NULL")
    ids = sorted(cursors)
    found: dict[int, list[tuple[int, float]]] = {d: [] for d in ids}
    with engine.connect() as conn:
        for first in range(0, len(ids), READ_DEVICES_PER_STATEMENT):
            chunk = ids[first:first + READ_DEVICES_PER_STATEMENT]
            sql = " UNION ALL ".join(branch.format(i=i) for i in range(len(chunk)))
            params = {"now": now_ms}
            for i, device_id in enumerate(chunk):
                params[f"d{i}"], params[f"low{i}"] = device_id, max(cursors[device_id] + 1, start_ms)
            for device_id, ts, value in conn.execute(sa.text(sql), params):
                found[device_id].append((ts, value))
    for rows in found.values():
        rows.sort()
    return found


def last_reading_ms(engine: Engine, device_ids: Iterable[int]) -> dict[int, int | None]:
    """Newest reading time per device (None when it has none)."""
    ids = sorted(device_ids)
    if not ids:
        return {}
    # A correlated MAX per device uses the primary key on both databases (one index probe
    # each), where MAX ... GROUP BY would scan every reading on SQLite.
    newest = (sa.select(sa.func.max(Reading.ts)).where(Reading.device_id == Device.id)
              .correlate(Device).scalar_subquery())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Device.id, newest).where(Device.id.in_(ids))).all()
    return {device_id: ts for device_id, ts in rows}


# ---- events and notifications --------------------------------------------------------

def _event_query() -> sa.Select:
    e, r = AlertEvent.__table__, AlertRule.__table__
    return (sa.select(e, r.c.name.label("rule_name"), r.c.kind, r.c.metric, r.c.threshold,
                      r.c.hysteresis, r.c.duration_s, Device.name.label("device_name"))
            .join(r, r.c.id == e.c.rule_id).join(Device, Device.id == e.c.device_id))


def _as_event(row: Mapping) -> Event:
    return Event(row["id"], row["rule_id"], row["rule_name"], row["kind"], row["metric"],
                 row["threshold"], float(row["hysteresis"] or 0), int(row["duration_s"]) * 1000,
                 row["device_id"], row["device_name"], row["state"], row["value"], row["since_ms"],
                 row["fired_ms"], row["resolved_ms"], row["fire_sent_ms"], row["resolve_sent_ms"],
                 row["resolved_value"])


def get_event(engine: Engine, event_id: int) -> Event | None:
    """One event with its rule and device, or None."""
    with engine.connect() as conn:
        row = conn.execute(_event_query().where(AlertEvent.id == event_id)).mappings().first()
    return _as_event(row) if row else None


def list_events(engine: Engine, limit: int = 50, state: str | None = None,
                device_id: int | None = None) -> list[Event]:
    """The most recently fired events (only those in `state`, of `device_id`, when given), newest first."""
    query = _event_query().order_by(AlertEvent.fired_ms.desc(), AlertEvent.id.desc()).limit(limit)
    if state is not None:
        query = query.where(AlertEvent.state == state)
    if device_id is not None:
        query = query.where(AlertEvent.device_id == device_id)
    with engine.connect() as conn:
        return [_as_event(r) for r in conn.execute(query).mappings()]


def _sent_column(notification: str) -> sa.Column:
    if notification not in NOTIFICATIONS:
        raise ValueError(f"notification must be firing or resolved, got {notification!r}")
    return AlertEvent.__table__.c["fire_sent_ms" if notification == "firing" else "resolve_sent_ms"]


def mark_sent(engine: Engine, event_id: int, notification: str, at_ms: int) -> bool:
    """Record a delivered notification; False when it was recorded already."""
    column = _sent_column(notification)
    with engine.begin() as conn:
        done = conn.execute(sa.update(AlertEvent).where(AlertEvent.id == event_id, column.is_(None))
                            .values({column: at_ms}))
    return done.rowcount == 1


def _due_in(due: sa.Column, legacy: sa.Column, start_ms: int, end_ms: int) -> sa.ColumnElement:
    """due in [start, end), or for rows from before the due columns, their transition time.

    Those rows were stamped with the evaluation time (threshold readings are at most minutes
    older), so the old rule still holds for them; both branches use an index.
    """
    return sa.or_(sa.and_(due >= start_ms, due < end_ms),
                  sa.and_(due.is_(None), legacy >= start_ms, legacy < end_ms))


def unsent(engine: Engine, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
    """Undelivered notifications that became due in [start_ms, end_ms), in that order."""
    e = AlertEvent.__table__
    fire_due = sa.func.coalesce(e.c.fire_due_ms, e.c.fired_ms)
    resolve_due = sa.func.coalesce(e.c.resolve_due_ms, e.c.resolved_ms)
    fired = sa.select(e.c.id, fire_due).where(
        _due_in(e.c.fire_due_ms, e.c.fired_ms, start_ms, end_ms), e.c.fire_sent_ms.is_(None))
    resolved = sa.select(e.c.id, resolve_due).where(
        e.c.state == "resolved", _due_in(e.c.resolve_due_ms, e.c.resolved_ms, start_ms, end_ms),
        e.c.resolve_sent_ms.is_(None))
    with engine.connect() as conn:
        found = [(ts, 0, i, "firing") for i, ts in conn.execute(fired)]
        found += [(ts, 1, i, "resolved") for i, ts in conn.execute(resolved)]
    return [(i, kind) for _, _, i, kind in sorted(found)]

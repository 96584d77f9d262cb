"""Database models, declared once and shared by the ingest server, Celery and Flask.

A change here needs a revision under lib/migrations (tests/test_migrations.py compares the
two) and a regenerated data.sql (python -m lib.storage.schema_sql > data.sql).
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lib.catalogue import BUILTIN_METRICS

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# MySQL defaults vary by server; pin the engine and charset (lib/migrations pins the same).
TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so constraint names are stable."""

    metadata = sa.MetaData(naming_convention=NAMING)


class Device(Base):
    """A sensor device; only a SHA-256 hash of its token is kept; a revoked device keeps its readings."""

    __tablename__ = "device"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(sa.BigInteger)  # NULL while the token works


class MetricRow(Base):
    """A catalogue entry; each metric is also a nullable column of `reading`."""

    __tablename__ = "metric"
    __table_args__ = TABLE_ARGS

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    unit: Mapped[str] = mapped_column(sa.String(16))
    min_value: Mapped[float] = mapped_column(sa.Double)
    max_value: Mapped[float] = mapped_column(sa.Double)
    label: Mapped[str] = mapped_column(sa.String(64), default="")


class Reading(Base):
    """One reading of one device at one UTC millisecond, a column per metric.

    A row per reading (not per value) is what makes ingest fast: one multi-row
    INSERT stores a whole batch, and (device_id, ts) makes replays idempotent.
    Metrics added at run time get extra columns beyond the built-in ones below.
    """

    __tablename__ = "reading"
    __table_args__ = TABLE_ARGS

    device_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    ts: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    co2: Mapped[float | None] = mapped_column(sa.Double)
    temperature: Mapped[float | None] = mapped_column(sa.Double)
    humidity: Mapped[float | None] = mapped_column(sa.Double)



# ---- rollups --------------------------------------------------------------------

ROLLUP_SUFFIXES = ("n", "sum", "min", "max")  # none is a suffix of another, so names never clash


def rollup_column_names(metric: str) -> tuple[str, ...]:
    """Names of a metric's aggregate columns in the rollup tables: co2_n, co2_sum, ..."""
    return tuple(f"{metric}_{suffix}" for suffix in ROLLUP_SUFFIXES)


def rollup_columns(metric: str) -> list[sa.Column]:
    """Count, sum, min and max of one metric over a bucket; mean is sum / n."""
    n, total, low, high = rollup_column_names(metric)
    return [sa.Column(n, sa.Integer, nullable=False, server_default="0"),
            sa.Column(total, sa.Double), sa.Column(low, sa.Double), sa.Column(high, sa.Double)]


def _rollup_table(name: str, doc: str) -> sa.Table:
    """A rollup table: one row per device and bucket, four columns per metric."""
    columns = [sa.Column("device_id", sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"),
                         primary_key=True, autoincrement=False),
               sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False)]
    for metric in BUILTIN_METRICS:
        columns += rollup_columns(metric.name)
    return sa.Table(name, Base.metadata, *columns, comment=doc, **TABLE_ARGS)


# bucket is the UTC epoch millisecond the minute or hour starts at.
rollup_1m = _rollup_table("rollup_1m", "1-minute aggregates of reading")
rollup_1h = _rollup_table("rollup_1h", "1-hour aggregates of reading")
ROLLUP_TABLES = (rollup_1m, rollup_1h)


class RollupPending(Base):
    """An hour of a device whose readings changed since its rollups were computed.

    The ingest marks hours in the same transaction as the readings, so late data
    is rolled up too; gen grows on every mark, so a rollup only clears the mark
    it saw, never one made while it ran. lo_ms and hi_ms are the smallest and largest
    ts written into the hour since a rollup run took the mark; the run moves them to
    taken_lo_ms and taken_hi_ms, recomputes only the minutes between those, then empties them.
    """

    __tablename__ = "rollup_pending"
    __table_args__ = TABLE_ARGS

    device_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    hour: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    gen: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    # After a take they hold an empty range (lo > hi) until the next write; 0 (not inside
    # the hour) is read as the whole hour: see lib.rollup.Mark.span.
    lo_ms: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    hi_ms: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    taken_lo_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    taken_hi_ms: Mapped[int | None] = mapped_column(sa.BigInteger)


class RetentionState(Base):
    """The cutoffs retention last applied to a device, only ever moved forward.

    Raw readings now in an hour before raw_before_ms arrived after retention deleted that
    hour, so a rollup merges them into the kept rollups instead of recomputing the hour; its
    minute rows are merged too unless the hour is before minute_before_ms.
    """

    __tablename__ = "retention_state"
    __table_args__ = TABLE_ARGS

    device_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    raw_before_ms: Mapped[int] = mapped_column(sa.BigInteger)
    minute_before_ms: Mapped[int] = mapped_column(sa.BigInteger)


# ---- charts ---------------------------------------------------------------------

class ChartPath(Base):
    """A rendered chart file (the original's `path` table), recorded once its render is complete."""

    __tablename__ = "path"
    __table_args__ = (sa.Index("ix_path_lookup", "device_id", "metric", "span", "rendered_ms"),
                      sa.Index("ix_path_rendered_ms", "rendered_ms"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    render: Mapped[str] = mapped_column(sa.String(64))  # folder of one render under [other] flask_path
    device_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(sa.String(32))
    span: Mapped[str] = mapped_column(sa.String(8))  # "24h", "7d", "30d"
    file: Mapped[str] = mapped_column(sa.String(255))  # relative to [other] flask_path
    rendered_ms: Mapped[int] = mapped_column(sa.BigInteger)


# ---- alerts ---------------------------------------------------------------------

class AlertRule(Base):
    """Fire when a metric stays above/below a threshold for duration_s, or a device is silent."""

    __tablename__ = "alert_rule"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    device_id: Mapped[int | None] = mapped_column(  # NULL: every device
        sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"))
    metric: Mapped[str | None] = mapped_column(sa.String(32))  # NULL for "nodata" rules
    kind: Mapped[str] = mapped_column(sa.String(8))  # "above", "below" or "nodata"
    threshold: Mapped[float | None] = mapped_column(sa.Double)
    duration_s: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    hysteresis: Mapped[float] = mapped_column(sa.Double, server_default="0")
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)


class AlertState(Base):
    """Where a rule stands for one device: ok, pending (condition seen since since_ms) or firing."""

    __tablename__ = "alert_state"
    __table_args__ = TABLE_ARGS

    rule_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("alert_rule.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    device_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    state: Mapped[str] = mapped_column(sa.String(8))
    since_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    cursor_ms: Mapped[int] = mapped_column(sa.BigInteger)  # newest reading already evaluated
    event_id: Mapped[int | None] = mapped_column(sa.Integer)  # the open event while firing
    version: Mapped[int] = mapped_column(sa.Integer, server_default="0")  # optimistic locking


class AlertEvent(Base):
    """One firing of a rule for a device, resolved later; *_sent_ms record delivered webhooks.

    Times are UTC epoch ms. since/fired/resolved are times of readings (or, for no-data rules,
    of the silence); *_due_ms are the evaluations that recorded them, which the re-send of
    lost notifications goes by.
    """

    __tablename__ = "alert_event"
    __table_args__ = (sa.Index("ix_alert_event_fired_ms", "fired_ms"),
                      sa.Index("ix_alert_event_fire_due_ms", "fire_due_ms"),
                      sa.Index("ix_alert_event_resolve_due_ms", "resolve_due_ms"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("alert_rule.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("device.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(sa.String(8))  # "firing" or "resolved"
    value: Mapped[float | None] = mapped_column(sa.Double)  # the reading that fired it
    since_ms: Mapped[int] = mapped_column(sa.BigInteger)  # when the condition began
    fired_ms: Mapped[int] = mapped_column(sa.BigInteger)  # the reading/instant that completed it
    resolved_ms: Mapped[int | None] = mapped_column(sa.BigInteger)  # the reading that ended it
    fire_sent_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    resolve_sent_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Added later, so nullable and last: migration 0002 appends them to an older table in this order.
    resolved_value: Mapped[float | None] = mapped_column(sa.Double)  # the reading that resolved it
    fire_due_ms: Mapped[int | None] = mapped_column(sa.BigInteger)  # NULL in rows from before
    resolve_due_ms: Mapped[int | None] = mapped_column(sa.BigInteger)


# ---- people ---------------------------------------------------------------------

class User(Base):
    """Someone who logs in to the web app; only a bcrypt hash of the password is kept."""

    __tablename__ = "users"  # plural, as the original's design notes name it
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(72))
    is_admin: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)


class ApiToken(Base):
    """A user's token for scripts (Authorization: Bearer); stored as a SHA-256 hash, as device tokens."""

    __tablename__ = "api_token"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    label: Mapped[str] = mapped_column(sa.String(64), default="")
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)
    last_used_ms: Mapped[int | None] = mapped_column(sa.BigInteger)

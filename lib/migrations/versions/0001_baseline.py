"""Baseline: the schema of release 7894db5, before revocation, retention state and alert due times.

Revision ID: 0001_baseline
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies, not imports from lib: a revision must keep creating the schema it describes.
TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
BUILTIN = ("co2", "temperature", "humidity")
ROLLUPS = {"rollup_1m": "1-minute aggregates of reading", "rollup_1h": "1-hour aggregates of reading"}


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    """A cascading foreign key named by the models' naming convention."""
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], ondelete="CASCADE",
                                   name=f"fk_{table}_{column}_{target}")


def _device_fk_column(table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    """A NOT NULL device_id key column with its foreign key."""
    return (sa.Column("device_id", sa.Integer, nullable=False, autoincrement=False),
            _fk(table, "device_id", "device"))


def upgrade() -> None:
    """Create the baseline tables."""
    op.create_table(
        "device",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device"),
        sa.UniqueConstraint("name", name="uq_device_name"),
        sa.UniqueConstraint("token_hash", name="uq_device_token_hash"), **TABLE_ARGS)
    op.create_table(
        "metric",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("min_value", sa.Double, nullable=False),
        sa.Column("max_value", sa.Double, nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_metric"), **TABLE_ARGS)
    device_id, fk = _device_fk_column("reading")
    op.create_table(
        "reading", device_id,
        sa.Column("ts", sa.BigInteger, nullable=False, autoincrement=False),
        *(sa.Column(name, sa.Double) for name in BUILTIN),
        sa.PrimaryKeyConstraint("device_id", "ts", name="pk_reading"), fk, **TABLE_ARGS)
    for table, comment in ROLLUPS.items():
        device_id, fk = _device_fk_column(table)
        columns = [device_id, sa.Column("bucket", sa.BigInteger, nullable=False, autoincrement=False)]
        for name in BUILTIN:
            columns += [sa.Column(f"{name}_n", sa.Integer, nullable=False, server_default="0"),
                        sa.Column(f"{name}_sum", sa.Double), sa.Column(f"{name}_min", sa.Double),
                        sa.Column(f"{name}_max", sa.Double)]
        op.create_table(table, *columns, sa.PrimaryKeyConstraint("device_id", "bucket", name=f"pk_{table}"),
                        fk, comment=comment, **TABLE_ARGS)
    device_id, fk = _device_fk_column("rollup_pending")
    op.create_table(
        "rollup_pending", device_id,
        sa.Column("hour", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("gen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lo_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("hi_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("taken_lo_ms", sa.BigInteger),
        sa.Column("taken_hi_ms", sa.BigInteger),
        sa.PrimaryKeyConstraint("device_id", "hour", name="pk_rollup_pending"), fk, **TABLE_ARGS)
    op.create_table(
        "path",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("render", sa.String(64), nullable=False),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("span", sa.String(8), nullable=False),
        sa.Column("file", sa.String(255), nullable=False),
        sa.Column("rendered_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_path"), _fk("path", "device_id", "device"), **TABLE_ARGS)
    op.create_index("ix_path_lookup", "path", ["device_id", "metric", "span", "rendered_ms"])
    op.create_index("ix_path_rendered_ms", "path", ["rendered_ms"])
    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("device_id", sa.Integer),
        sa.Column("metric", sa.String(32)),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("threshold", sa.Double),
        sa.Column("duration_s", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hysteresis", sa.Double, nullable=False, server_default="0"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rule"), _fk("alert_rule", "device_id", "device"),
        **TABLE_ARGS)
    op.create_table(
        "alert_state",
        sa.Column("rule_id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("device_id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("since_ms", sa.BigInteger),
        sa.Column("cursor_ms", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.Integer),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("rule_id", "device_id", name="pk_alert_state"),
        _fk("alert_state", "rule_id", "alert_rule"), _fk("alert_state", "device_id", "device"),
        **TABLE_ARGS)
    op.create_table(
        "alert_event",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("since_ms", sa.BigInteger, nullable=False),
        sa.Column("fired_ms", sa.BigInteger, nullable=False),
        sa.Column("resolved_ms", sa.BigInteger),
        sa.Column("fire_sent_ms", sa.BigInteger),
        sa.Column("resolve_sent_ms", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_alert_event"),
        _fk("alert_event", "rule_id", "alert_rule"), _fk("alert_event", "device_id", "device"),
        **TABLE_ARGS)
    op.create_index("ix_alert_event_fired_ms", "alert_event", ["fired_ms"])


def downgrade() -> None:
    """Drop every baseline table, dependents first."""
    for table in ("alert_event", "alert_state", "alert_rule", "path", "rollup_pending",
                  *ROLLUPS, "reading", "metric", "device"):
        op.drop_table(table)

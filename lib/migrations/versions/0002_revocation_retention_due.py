"""device.revoked_ms, retention_state, and alert_event's resolved_value and due times.

Revision ID: 0002_revocation_retention_due
Revises: 0001_baseline

Installations made between the baseline release and migrations may hold some of these
already (create_all and a stopgap added them), so each step is skipped when its object exists.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002_revocation_retention_due"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
EVENT_COLUMNS = (("resolved_value", sa.Double), ("fire_due_ms", sa.BigInteger),
                 ("resolve_due_ms", sa.BigInteger))
EVENT_INDEXES = ("fire_due_ms", "resolve_due_ms")


class _Present:
    """What the database already holds; offline (SQL output) it is assumed to hold nothing."""

    def __init__(self) -> None:
        self.inspector = None if context.is_offline_mode() else sa.inspect(op.get_bind())

    def table(self, name: str) -> bool:
        """Whether the table exists."""
        return self.inspector is not None and self.inspector.has_table(name)

    def column(self, table: str, name: str) -> bool:
        """Whether the table has the column."""
        return self.inspector is not None and any(
            c["name"] == name for c in self.inspector.get_columns(table))

    def index(self, table: str, name: str) -> bool:
        """Whether the table has the index."""
        return self.inspector is not None and any(
            i["name"] == name for i in self.inspector.get_indexes(table))


def upgrade() -> None:
    """Add the new nullable columns last, the new table and the due-time indexes."""
    present = _Present()
    if not present.column("device", "revoked_ms"):
        op.add_column("device", sa.Column("revoked_ms", sa.BigInteger))
    if not present.table("retention_state"):
        op.create_table(
            "retention_state",
            sa.Column("device_id", sa.Integer, nullable=False, autoincrement=False),
            sa.Column("raw_before_ms", sa.BigInteger, nullable=False),
            sa.Column("minute_before_ms", sa.BigInteger, nullable=False),
            sa.PrimaryKeyConstraint("device_id", name="pk_retention_state"),
            sa.ForeignKeyConstraint(["device_id"], ["device.id"], ondelete="CASCADE",
                                    name="fk_retention_state_device_id_device"), **TABLE_ARGS)
    for name, kind in EVENT_COLUMNS:
        if not present.column("alert_event", name):
            op.add_column("alert_event", sa.Column(name, kind))
    for column in EVENT_INDEXES:
        if not present.index("alert_event", f"ix_alert_event_{column}"):
            op.create_index(f"ix_alert_event_{column}", "alert_event", [column])


def downgrade() -> None:
    """Back to the baseline (the revoked and retention data are lost)."""
    for column in EVENT_INDEXES:
        op.drop_index(f"ix_alert_event_{column}", "alert_event")
    for name, _ in reversed(EVENT_COLUMNS):
        op.drop_column("alert_event", name)
    op.drop_table("retention_state")
    op.drop_column("device", "revoked_ms")

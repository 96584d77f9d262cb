"""users (web logins with bcrypt hashes) and api_token (per-user tokens for scripts).

Revision ID: 0003_users_api_tokens
Revises: 0002_revocation_retention_due
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_users_api_tokens"
down_revision = "0002_revocation_retention_due"
branch_labels = None
depends_on = None

TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    """Create both tables."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(72), nullable=False),
        sa.Column("is_admin", sa.Boolean, server_default=sa.false(), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"), **TABLE_ARGS)
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_used_ms", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_api_token"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_api_token_user_id_users"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"), **TABLE_ARGS)
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])


def downgrade() -> None:
    """Drop both tables (the logins are lost); the index goes with its table (MySQL's FK needs it)."""
    op.drop_table("api_token")
    op.drop_table("users")

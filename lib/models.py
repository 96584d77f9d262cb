"""Database models, declared once and shared by the ingest server, Celery and Flask."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# MySQL defaults vary by server; pin the engine and charset so data.sql and create_all agree.
TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so constraint names are stable."""

    metadata = sa.MetaData(naming_convention=NAMING)


class Device(Base):
    """A sensor device; only a SHA-256 hash of its token is kept."""

    __tablename__ = "device"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger)


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


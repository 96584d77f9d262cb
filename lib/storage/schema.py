"""The fixed schema under Alembic: create, adopt or upgrade a database to the newest revision."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from lib.migrations import BASELINE, MIGRATIONS_DIR
from lib.models import Base

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version"
# What the revision after the baseline adds: its presence tells a pre-migration installation's revision.
AFTER_BASELINE = {"device": {"revoked_ms"},
                  "alert_event": {"resolved_value", "fire_due_ms", "resolve_due_ms"}}
AFTER_BASELINE_INDEXES = {"alert_event": {"ix_alert_event_fire_due_ms", "ix_alert_event_resolve_due_ms"}}
# The newest schema an installation from before migrations can have; later tables come by revision.
LAST_UNVERSIONED = "0002_revocation_retention_due"
ADDED_BY_REVISIONS = {"users", "api_token"}


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for lib/migrations, running on `connection`; no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision of lib/migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is stamped with; None before migrations."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def legacy_revision(conn: Connection) -> str:
    """The revision a database made by create_all before migrations existed matches."""
    inspector = sa.inspect(conn)
    for table, wanted in AFTER_BASELINE.items():
        if not wanted <= {c["name"] for c in inspector.get_columns(table)}:
            return BASELINE
    for table, wanted in AFTER_BASELINE_INDEXES.items():
        if not wanted <= {i["name"] for i in inspector.get_indexes(table)}:
            return BASELINE
    return LAST_UNVERSIONED


def migrate(engine: Engine) -> None:
    """Bring the fixed schema to the head revision: create it, or adopt an older installation first.

    A database with the project's tables but no version table was made by create_all before
    migrations: its missing tables are created the way init_db always did, it is stamped with
    the revision it matches, and upgraded from there, its rows kept.
    """
    with engine.begin() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        cfg = alembic_config(conn)
        if VERSION_TABLE not in tables and tables & set(Base.metadata.tables):
            # Tables newer than the installation, as before migrations; later ones come by revision.
            old = [t for t in Base.metadata.sorted_tables if t.name not in ADDED_BY_REVISIONS]
            Base.metadata.create_all(conn, tables=old)
            revision = legacy_revision(conn)
            log.info("database made before migrations: stamping it %s", revision)
            command.stamp(cfg, revision)
        command.upgrade(cfg, "head")

"""init_db under Alembic: fresh databases, installations from before migrations, idempotence."""
from __future__ import annotations

import subprocess

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pymysql.constants import CLIENT

from lib import storage
from lib.config import REPO_ROOT
from lib.migrations import BASELINE
from lib.models import Base
from lib.storage import schema
from tests.conftest import mysql_settings
from tests.test_data_sql import connect, schema_diff

OLD_RELEASE = "7894db5"  # the last release before migrations: the baseline revision
T = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "mysql"])
def blank(request, tmp_path) -> sa.Engine:
    """An engine on an empty database, without init_db."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = mysql_settings(request.getfixturevalue("make_database")("mig")).database_url
    eng = storage.make_engine(url)
    yield eng
    eng.dispose()


def model_drift(engine: sa.Engine) -> list:
    """Differences between the database and lib/models.py, as Alembic's autogenerate sees them."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def snapshot(engine: sa.Engine) -> dict:
    """Every table's columns, indexes and rows, to tell whether anything changed."""
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        return {t: ([c["name"] for c in inspector.get_columns(t)],
                    sorted(i["name"] for i in inspector.get_indexes(t)),
                    sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}")))))
                for t in sorted(inspector.get_table_names())}


def make_legacy(engine: sa.Engine, state: str) -> None:
    """A database as create_all left it before migrations: `state` says which release's schema."""
    if state == "head":  # the newest release before migrations: no tables added by later revisions
        Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables
                                                 if t.name not in schema.ADDED_BY_REVISIONS])
        return
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), BASELINE)
        conn.execute(sa.text(f"DROP TABLE {schema.VERSION_TABLE}"))
        if state == "partial":  # a commit between the release and migrations had revoked_ms only
            conn.execute(sa.text("ALTER TABLE device ADD COLUMN revoked_ms BIGINT"))


def add_old_rows(engine: sa.Engine) -> None:
    """A device, a reading, a rule and an event, using only the baseline's columns."""
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO device (id, name, token_hash, created_ms) "
                             "VALUES (1, 'pi', 'h', :t)"), {"t": T})
        conn.execute(sa.text("INSERT INTO reading (device_id, ts, co2) VALUES (1, :t, 612.5)"), {"t": T})
        conn.execute(sa.text("INSERT INTO alert_rule (id, name, kind, threshold, created_ms) "
                             "VALUES (1, 'high', 'above', 1000, :t)"), {"t": T})
        conn.execute(sa.text("INSERT INTO alert_event (id, rule_id, device_id, state, value, since_ms, "
                             "fired_ms) VALUES (1, 1, 1, 'firing', 1100, :t, :t)"), {"t": T})


def test_empty_database_gets_head_and_the_models_schema(blank):
    """init_db on an empty database creates the version table at head and exactly the models' tables."""
    storage.init_db(blank)
    assert schema.current_revision(blank) == schema.head_revision()
    assert set(sa.inspect(blank).get_table_names()) == {*Base.metadata.tables, schema.VERSION_TABLE}
    assert model_drift(blank) == []


@pytest.mark.parametrize("state", ["baseline", "partial", "head"])
def test_init_db_upgrades_an_installation_from_before_migrations(blank, state):
    """Its rows are kept, it ends at head with the models' schema, and a second init_db is a no-op."""
    make_legacy(blank, state)
    add_old_rows(blank)
    assert schema.current_revision(blank) is None
    storage.init_db(blank)
    assert schema.current_revision(blank) == schema.head_revision()
    assert model_drift(blank) == []
    with blank.connect() as conn:
        assert conn.execute(sa.text("SELECT id, name, revoked_ms FROM device")).all() == [(1, "pi", None)]
        assert conn.execute(sa.text("SELECT device_id, ts, co2 FROM reading")).all() == [(1, T, 612.5)]
        assert conn.execute(sa.text("SELECT id, value, resolved_value, fire_due_ms FROM alert_event")
                            ).all() == [(1, 1100.0, None, None)]
    before = snapshot(blank)
    storage.init_db(blank)
    assert snapshot(blank) == before


def test_baseline_is_detected_and_stamped_before_the_upgrade(blank):
    """A create_all database of the last release matches the baseline; a newer one, the last before migrations."""
    make_legacy(blank, "baseline")
    with blank.connect() as conn:
        assert schema.legacy_revision(conn) == BASELINE
    blank.dispose()
    with blank.begin() as conn:
        conn.execute(sa.text("DROP TABLE alert_event"))  # recreated by create_all as today's
        conn.execute(sa.text("ALTER TABLE device ADD COLUMN revoked_ms BIGINT"))
    Base.metadata.create_all(blank)
    with blank.connect() as conn:
        assert schema.legacy_revision(conn) == schema.LAST_UNVERSIONED


def test_downgrade_to_baseline_and_upgrade_again(blank):
    """The second revision can be undone and redone on both backends."""
    storage.init_db(blank)
    with blank.begin() as conn:
        command.downgrade(schema.alembic_config(conn), BASELINE)
    assert schema.current_revision(blank) == BASELINE
    assert "revoked_ms" not in {c["name"] for c in sa.inspect(blank).get_columns("device")}
    storage.init_db(blank)
    assert model_drift(blank) == []


def old_release_sql() -> str:
    """data.sql of the last release before migrations, from git."""
    try:
        return subprocess.run(["git", "show", f"{OLD_RELEASE}:data.sql"], cwd=REPO_ROOT, check=True,
                              capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"release {OLD_RELEASE} is not in this checkout: {exc}")


def test_a_database_loaded_from_the_old_data_sql_upgrades_to_what_init_db_creates(make_database):
    """On MariaDB: the 7894db5 data.sql, with rows, becomes exactly a fresh init_db database."""
    old, fresh = make_database("old"), make_database("fresh")
    conn = connect(old, client_flag=CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute(old_release_sql())
        while cur.nextset():
            pass
    conn.close()
    engines = [storage.make_engine(mysql_settings(name).database_url) for name in (old, fresh)]
    try:
        add_old_rows(engines[0])
        for engine in engines:
            storage.init_db(engine)
        assert schema_diff(fresh, old) == ""
        with engines[0].connect() as c:
            assert c.execute(sa.text("SELECT device_id, ts, co2 FROM reading")).all() == [(1, T, 612.5)]
        assert schema.current_revision(engines[0]) == schema.head_revision()
    finally:
        for engine in engines:
            engine.dispose()

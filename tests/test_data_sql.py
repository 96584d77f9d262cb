"""data.sql, loaded by hand, must build the same MariaDB schema and rows as storage.init_db."""
from __future__ import annotations

import difflib
import re
import shutil
import subprocess

import pymysql
import pytest
from pymysql.constants import CLIENT

from lib import storage
from lib.catalogue import BUILTIN_METRICS, Metric
from lib.config import REPO_ROOT
from lib.models import Base
from lib.storage.schema import VERSION_TABLE, head_revision
from lib.storage.schema_sql import schema_sql
from tests.conftest import MYSQL, mysql_settings

DATA_SQL = REPO_ROOT / "data.sql"
TABLES = tuple(Base.metadata.tables)


def connect(database: str | None = None, **kwargs) -> pymysql.Connection:
    """A pymysql connection to the test server."""
    return pymysql.connect(**MYSQL, database=database, charset="utf8mb4", connect_timeout=5,
                           autocommit=True, **kwargs)


def load_data_sql(database: str) -> None:
    """Run every statement of data.sql in `database`, raising on the first error."""
    conn = connect(database, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(DATA_SQL.read_text(encoding="utf-8"))
            while cur.nextset():
                pass
    finally:
        conn.close()


def init_db(database: str) -> None:
    """Create the schema the way the application does."""
    engine = storage.make_engine(mysql_settings(database).database_url)
    try:
        storage.init_db(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def from_sql(make_database) -> str:
    """A database built by loading data.sql."""
    name = make_database("file")
    load_data_sql(name)
    return name


@pytest.fixture(scope="module")
def from_orm(make_database) -> str:
    """A database built by storage.init_db."""
    name = make_database("orm")
    init_db(name)
    return name


def query(database: str, sql: str) -> list[tuple]:
    """Rows of `sql`, with %s bound to `database`."""
    conn = connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, (database,) * sql.count("%s"))
            return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.close()


def describe(database: str) -> dict[str, list[str]]:
    """The schema of `database` as comparable text lines, one aspect per key."""
    aspects = {
        "tables": "SELECT table_name, engine, table_collation, row_format FROM information_schema.tables"
                  " WHERE table_schema = %s ORDER BY table_name",
        "columns": "SELECT table_name, ordinal_position, column_name, column_type, is_nullable,"
                   " column_default, extra, character_set_name, collation_name"
                   " FROM information_schema.columns WHERE table_schema = %s"
                   " ORDER BY table_name, ordinal_position",
        "indexes": "SELECT table_name, index_name, non_unique, seq_in_index, column_name, index_type"
                   " FROM information_schema.statistics WHERE table_schema = %s"
                   " ORDER BY table_name, index_name, seq_in_index",
        "constraints": "SELECT table_name, constraint_name, constraint_type"
                       " FROM information_schema.table_constraints WHERE constraint_schema = %s"
                       " ORDER BY table_name, constraint_name",
        "foreign_keys": "SELECT r.table_name, r.constraint_name, k.column_name, k.referenced_table_name,"
                        " k.referenced_column_name, r.update_rule, r.delete_rule"
                        " FROM information_schema.referential_constraints r"
                        " JOIN information_schema.key_column_usage k"
                        "  ON k.constraint_schema = r.constraint_schema"
                        "  AND k.constraint_name = r.constraint_name AND k.table_name = r.table_name"
                        " WHERE r.constraint_schema = %s ORDER BY r.table_name, r.constraint_name,"
                        " k.ordinal_position",
        "version": f"SELECT version_num FROM {VERSION_TABLE}",
    }
    schema = {key: [" | ".join(map(str, row)) for row in query(database, sql)]
              for key, sql in aspects.items()}
    schema["show_create"] = [line for table in TABLES for line in show_create(database, table)]
    return schema


def show_create(database: str, table: str) -> list[str]:
    """SHOW CREATE TABLE without the AUTO_INCREMENT counter, which depends on the data."""
    (_, text), = query(database, f"SHOW CREATE TABLE `{table}`")
    lines = re.sub(r" AUTO_INCREMENT=\d+", "", text).splitlines()
    # Secondary keys are listed in creation order, which create_all does not fix (a set).
    keys = sorted(line.rstrip(",") for line in lines if line.lstrip().startswith("KEY "))
    return [line for line in lines if not line.lstrip().startswith("KEY ")] + keys


def schema_diff(expected: str, actual: str) -> str:
    """A unified diff of two databases' schemas; empty when they are the same."""
    left, right = describe(expected), describe(actual)
    lines = []
    for key in left:
        lines += difflib.unified_diff(left[key], right[key], f"{key} (init_db)",
                                      f"{key} (data.sql)", lineterm="", n=1)
    return "\n".join(lines)


def metric_rows(database: str) -> list[tuple]:
    """The metric table, row by row."""
    return query(database, "SELECT name, unit, min_value, max_value, label FROM metric ORDER BY name")


def test_committed_data_sql_is_what_the_generator_prints():
    """data.sql is regenerated whenever the models or migrations change (see its header)."""
    committed = DATA_SQL.read_text(encoding="utf-8")
    diff = "\n".join(difflib.unified_diff(committed.splitlines(), schema_sql().splitlines(),
                                          "data.sql", "python -m lib.storage.schema_sql", lineterm=""))
    assert not diff, f"data.sql is stale; run: .venv/bin/python -m lib.storage.schema_sql > data.sql\n{diff}"


@pytest.mark.parametrize("aspect", ["tables", "columns", "indexes", "constraints",
                                    "foreign_keys", "show_create", "version"])
def test_schema_aspect_matches_init_db(from_orm, from_sql, aspect):
    """Each aspect of the data.sql schema equals what init_db creates."""
    expected, actual = describe(from_orm)[aspect], describe(from_sql)[aspect]
    assert expected, f"init_db produced no {aspect}: the query is wrong"
    diff = "\n".join(difflib.unified_diff(expected, actual, "init_db", "data.sql", lineterm=""))
    assert not diff, f"data.sql differs from init_db in {aspect}:\n{diff}"


def test_expected_schema_details(from_sql):
    """data.sql has the pinned engine, charset, constraint names and ON DELETE CASCADE."""
    schema = describe(from_sql)
    assert [line.split(" | ")[:2] for line in schema["tables"]] == [
        [name, "InnoDB"] for name in sorted([*TABLES, VERSION_TABLE])]
    assert schema["version"] == [head_revision()]
    assert all(line.split(" | ")[2].startswith("utf8mb4_") for line in schema["tables"])
    names = {line.split(" | ")[1] for line in schema["constraints"]}
    assert {"uq_device_name", "uq_device_token_hash", "fk_reading_device_id_device"} <= names
    assert "reading | fk_reading_device_id_device | device_id | device | id | RESTRICT | CASCADE" \
        in schema["foreign_keys"]
    assert all(line.endswith("| CASCADE") for line in schema["foreign_keys"])
    reading = [line.split(" | ") for line in schema["columns"] if line.startswith("reading ")]
    assert [(c[2], c[3].split("(")[0], c[4]) for c in reading] == [
        ("device_id", "int", "NO"), ("ts", "bigint", "NO"), ("co2", "double", "YES"),
        ("temperature", "double", "YES"), ("humidity", "double", "YES")]


def test_metric_rows_match_init_db_and_builtins(from_orm, from_sql):
    """data.sql seeds exactly the built-in metrics, byte for byte like init_db."""
    assert metric_rows(from_sql) == metric_rows(from_orm)
    builtins = sorted((m.name, m.unit, float(m.min_value), float(m.max_value), m.label)
                      for m in BUILTIN_METRICS)
    assert metric_rows(from_sql) == builtins
    assert ("temperature", "°C", -40.0, 125.0, "Temperature") in metric_rows(from_sql)


def test_diff_reports_a_difference_readably(make_database, from_orm):
    """The comparison catches a changed column type and names it in the diff."""
    altered = make_database("altered")
    load_data_sql(altered)
    conn = connect(altered)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE reading MODIFY co2 FLOAT NULL")
        cur.execute("ALTER TABLE device DROP INDEX uq_device_name")
    conn.close()
    diff = schema_diff(from_orm, altered)
    assert "-reading | 3 | co2 | double" in diff
    assert "+reading | 3 | co2 | float" in diff
    assert "-device | uq_device_name | 0 | 1 | name" in diff


def test_loading_twice_is_harmless(make_database, from_orm):
    """A second load neither fails nor duplicates metrics nor touches existing data."""
    name = make_database("twice")
    load_data_sql(name)
    engine = storage.make_engine(mysql_settings(name).database_url)
    try:
        info, token = storage.add_device(engine, "pi-kitchen")
        storage.write_readings(engine, ["co2"], [(info.id, 1_700_000_000_000, 612.5)])
        conn = connect(name)
        with conn.cursor() as cur:
            cur.execute("UPDATE metric SET label = 'CO2 (edited)' WHERE name = 'co2'")
        conn.close()
        load_data_sql(name)
        assert storage.authenticate(engine, token) == info.id
        assert storage.count_readings(engine) == 1
        rows = metric_rows(name)
        assert len(rows) == len(BUILTIN_METRICS)
        assert ("co2", "ppm", 0.0, 40000.0, "CO2 (edited)") in rows
    finally:
        engine.dispose()
    assert schema_diff(from_orm, name) == ""


def test_init_db_on_data_sql_database_changes_nothing(make_database, from_orm):
    """The application accepts a hand-made database as complete and can add metrics to it."""
    name = make_database("then_orm")
    load_data_sql(name)
    before = describe(name)
    init_db(name)
    assert describe(name) == before
    assert schema_diff(from_orm, name) == ""
    engine = storage.make_engine(mysql_settings(name).database_url)
    try:
        storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100, "Air pressure"))
        assert storage.load_catalogue(engine).names == ("co2", "temperature", "humidity", "pressure")
    finally:
        engine.dispose()
    pressure = [c for c in describe(name)["columns"] if " | pressure | " in c]
    assert pressure == ["reading | 6 | pressure | double | YES | NULL |  | None | None"]


def test_mysql_client_loads_the_file(make_database, from_orm):
    """The documented `mysql DBNAME < data.sql` works (when the client is installed)."""
    client = shutil.which("mysql") or shutil.which("mariadb")
    if client is None:
        pytest.skip("no mysql command-line client installed; the pymysql loads cover the SQL")
    name = make_database("cli")
    for _ in range(2):
        with open(DATA_SQL, "rb") as sql:
            subprocess.run([client, "-h", MYSQL["host"], "-P", str(MYSQL["port"]),
                            "-u", MYSQL["user"], name], stdin=sql, check=True,
                           capture_output=True, timeout=60)
    assert schema_diff(from_orm, name) == ""
    assert metric_rows(name) == metric_rows(from_orm)

"""Print data.sql, the MySQL/MariaDB schema at the head revision: python -m lib.storage.schema_sql > data.sql.

The tables are rendered from lib/models.py, which tests/test_migrations.py proves equal to
what lib/migrations builds, with their indexes inline and IF NOT EXISTS so the file can be
loaded twice; the version row makes init_db treat the database as already at head.
"""
from __future__ import annotations

import sys

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.schema import CreateTable

from lib.catalogue import BUILTIN_METRICS
from lib.models import Base, MetricRow
from lib.storage.schema import VERSION_TABLE, head_revision

HEADER = """\
-- Schema of the sensor monitoring database for MySQL / MariaDB, at migration {revision}.
--
-- GENERATED, do not edit: change lib/models.py and add a revision under lib/migrations/,
-- then regenerate with
--     .venv/bin/python -m lib.storage.schema_sql > data.sql
-- (tests/test_data_sql.py fails while this file and the generator disagree).
--
-- Load it into an empty database (or one made by this file) with
--     mysql -u USER -p DBNAME < data.sql
-- `flask --app flask_front init-db` creates exactly the same tables and rows, and also
-- upgrades an older installation; use either one on an empty database. Loading it again
-- is harmless: existing tables, the version row and metric rows are left as they are.
--
-- reading.ts and device.created_ms are UTC epoch milliseconds (BIGINT).
-- reading has one DOUBLE column per metric of the catalogue (table `metric`); metrics
-- added with `flask --app flask_front add-metric` become extra nullable DOUBLE columns
-- of `reading` (and four columns of each rollup table), outside the migrations.
-- Constraint names follow the naming convention of lib/models.py.

SET NAMES utf8mb4;
"""
DIALECT = mysql.dialect(paramstyle="named")  # "format" would double the % of %RH


def create_table(table: sa.Table) -> str:
    """CREATE TABLE IF NOT EXISTS with the table's indexes inline, so a second load skips it whole."""
    text = str(CreateTable(table, if_not_exists=True).compile(dialect=DIALECT)).strip()
    head, close, options = text.rpartition("\n)")
    quote = DIALECT.identifier_preparer.quote
    for index in sorted(table.indexes, key=lambda i: i.name):
        columns = ", ".join(quote(c.name) for c in index.columns)
        head += f", \n\tINDEX {quote(index.name)} ({columns})"
    return head + close + options + ";"


def version_rows(revision: str) -> str:
    """The version table as Alembic makes it, and its one row unless it has one already."""
    return (f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\n\tversion_num VARCHAR(32) NOT NULL, "
            f"\n\tCONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num)\n);\n"
            f"INSERT INTO {VERSION_TABLE} (version_num) SELECT '{revision}' FROM DUAL\n"
            f"    WHERE NOT EXISTS (SELECT * FROM {VERSION_TABLE});")


def metric_rows() -> str:
    """INSERT IGNORE of the built-in metrics (lib/catalogue.BUILTIN_METRICS)."""
    rows = [{"name": m.name, "unit": m.unit, "min_value": m.min_value, "max_value": m.max_value,
             "label": m.label} for m in BUILTIN_METRICS]
    insert = sa.insert(MetricRow).prefix_with("IGNORE").values(rows)
    text = str(insert.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))
    return text.replace(" VALUES (", " VALUES\n    (").replace("), (", "),\n    (") + ";"


def schema_sql() -> str:
    """The whole of data.sql."""
    revision = head_revision()
    parts = [HEADER.format(revision=revision).rstrip()]
    parts += [create_table(table) for table in Base.metadata.sorted_tables]
    parts += ["-- The migration the schema is at (see lib/migrations).\n" + version_rows(revision),
              "-- The built-in metrics.\n" + metric_rows()]
    text = "\n\n".join(parts)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"  # SQLAlchemy's trailing blanks


if __name__ == "__main__":
    sys.stdout.write(schema_sql())

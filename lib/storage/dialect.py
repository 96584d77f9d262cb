"""Every SQL difference between MySQL/MariaDB and SQLite, one small function per difference.

The rest of lib/storage writes common SQL and asks here for the parts that differ. Each
function takes the dialect's name (engine.dialect.name); anything but "mysql" gets SQLite's
form. Results are cached, so hot paths pay a dictionary lookup, not a rebuild.
"""
from __future__ import annotations

from functools import cache
from typing import Sequence

MYSQL = "mysql"
# Rows per INSERT statement: large enough to amortise parsing, small enough for
# MySQL's max_allowed_packet; SQLite parses long statements slower, so it gets fewer.
CHUNK_ROWS = {MYSQL: 3000, "sqlite": 500}


def is_mysql(dialect: str) -> bool:
    """Whether the dialect is MySQL/MariaDB."""
    return dialect == MYSQL


def insert_ignore(dialect: str) -> str:
    """The verb of an INSERT that skips rows whose key exists."""
    return "INSERT IGNORE INTO" if dialect == MYSQL else "INSERT OR IGNORE INTO"


def quote_char(dialect: str) -> str:
    """The identifier quote, for names (such as `signal`) that may be keywords."""
    return "`" if dialect == MYSQL else '"'


def int_div(dialect: str) -> str:
    """The integer division operator (SQLite's / on integers truncates)."""
    return "DIV" if dialect == MYSQL else "/"


def least(dialect: str) -> str:
    """The smaller-of-two-values function."""
    return "LEAST" if dialect == MYSQL else "MIN"


def greatest(dialect: str) -> str:
    """The larger-of-two-values function."""
    return "GREATEST" if dialect == MYSQL else "MAX"


def excluded(dialect: str, column: str) -> str:
    """The value an upsert tried to insert into `column`."""
    return f"VALUES({column})" if dialect == MYSQL else f"excluded.{column}"


def upsert_tail(dialect: str, key_columns: Sequence[str], assignments: Sequence[str]) -> str:
    """The clause turning an INSERT into an upsert on the key: ON DUPLICATE KEY / ON CONFLICT."""
    if dialect == MYSQL:
        return "ON DUPLICATE KEY UPDATE " + ", ".join(assignments)
    return f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET " + ", ".join(assignments)


def for_update(dialect: str) -> str:
    """A locking-read suffix; SQLite's single writer needs none."""
    return " FOR UPDATE" if dialect == MYSQL else ""


def has_named_locks(dialect: str) -> bool:
    """Whether GET_LOCK/RELEASE_LOCK exist; SQLite serialises writers by itself."""
    return dialect == MYSQL


def get_lock_sql(name: str) -> str:
    """MySQL: take the named lock `name` of this database (a server may hold several), waiting :wait s."""
    return f"SELECT GET_LOCK(CONCAT(DATABASE(), '.{name}'), :wait)"


def release_lock_sql(name: str) -> str:
    """MySQL: release the named lock taken by get_lock_sql(name)."""
    return f"SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.{name}'))"


def sets_isolation(dialect: str) -> bool:
    """Whether per-connection isolation levels are chosen; SQLite is serialisable anyway."""
    return dialect == MYSQL


def has_lock_wait_timeout(dialect: str) -> bool:
    """Whether DDL waits for metadata locks bounded by SET SESSION lock_wait_timeout."""
    return dialect == MYSQL


def lock_wait_sql(seconds: int | None) -> str:
    """MySQL: bound this session's metadata-lock waits to `seconds` (None: the server's default)."""
    return f"SET SESSION lock_wait_timeout = {'DEFAULT' if seconds is None else int(seconds)}"


@cache
def reading_insert_head(dialect: str) -> tuple[str, str]:
    """(verb, quote) of the ingest's INSERT of readings, computed once per dialect."""
    return insert_ignore(dialect), quote_char(dialect)


@cache
def pending_upsert_tail(dialect: str) -> str:
    """The ingest's rollup_pending upsert clause: gen + 1 and a wider written range, once per dialect."""
    return " " + upsert_tail(dialect, ("device_id", "hour"), (
        "gen = gen + 1",
        f"lo_ms = {least(dialect)}(lo_ms, {excluded(dialect, 'lo_ms')})",
        f"hi_ms = {greatest(dialect)}(hi_ms, {excluded(dialect, 'hi_ms')})"))

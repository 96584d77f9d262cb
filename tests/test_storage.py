"""lib.storage on SQLite and MariaDB: schema, devices, metrics, readings and SQL formatting."""
from __future__ import annotations

import errno
import hashlib
import math
import sqlite3
import time
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction

import orjson
import pymysql
import pytest
import sqlalchemy as sa

from lib import storage
from lib.storage import dialect as dialects, schema
from lib.catalogue import BUILTIN_METRICS, Metric
from lib.models import Base
from lib.validation import FrameError, parse_frame
from tests.conftest import stored

TS = 1_700_000_000_000
INJECTION = "1); DROP TABLE reading; --"


def columns(engine, table: str = "reading") -> list[str]:
    """Column names of `table` in order."""
    return [c["name"] for c in sa.inspect(engine).get_columns(table)]


def all_rows(engine, table: str) -> list[tuple]:
    """Every row of `table`."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]


def test_init_db_is_idempotent(engine, device):
    """Running init_db again changes neither schema nor data."""
    storage.write_readings(engine, ["co2"], [(device.id, TS, 500.0)])
    before = (columns(engine), all_rows(engine, "metric"), all_rows(engine, "device"))
    storage.init_db(engine)
    storage.init_db(engine)
    assert (columns(engine), all_rows(engine, "metric"), all_rows(engine, "device")) == before
    assert columns(engine) == ["device_id", "ts", "co2", "temperature", "humidity"]
    # Celery's result tables (celery_*) may share the test session's MariaDB database.
    tables = [t for t in sa.inspect(engine).get_table_names() if not t.startswith("celery_")]
    assert sorted(tables) == sorted([*Base.metadata.tables, schema.VERSION_TABLE])
    assert schema.current_revision(engine) == schema.head_revision()
    assert stored(engine, device.id) == [(TS, 500.0, None, None)]


def test_init_db_seeds_the_builtin_metrics(engine):
    """The catalogue starts as the built-ins, in their order."""
    assert list(storage.load_catalogue(engine)) == list(BUILTIN_METRICS)


def test_add_device_token_authenticates_and_only_its_hash_is_stored(engine):
    """The token works, its SHA-256 is stored and the token itself appears nowhere."""
    info, token = storage.add_device(engine, "  pi-kitchen  ")
    assert info.name == "pi-kitchen" and len(token) >= 43
    assert storage.authenticate(engine, token) == info.id
    rows = all_rows(engine, "device")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (info.id, "pi-kitchen", hashlib.sha256(token.encode()).hexdigest())]
    assert not any(token in str(value) for row in rows for value in row)
    assert storage.authenticate(engine, rows[0][2]) is None  # the hash is not a token
    assert storage.list_devices(engine) == [info]


def test_tokens_are_distinct(engine):
    """Each device gets its own token and authenticates as itself."""
    devices = [storage.add_device(engine, f"pi-{i}") for i in range(3)]
    assert len({token for _, token in devices}) == 3
    assert [storage.authenticate(engine, t) for _, t in devices] == [d.id for d, _ in devices]


@pytest.mark.parametrize("name", ["pi-1", " pi-1 "])
def test_duplicate_device_names_are_refused(engine, name):
    """A name already taken (after trimming) is refused and nothing is added."""
    storage.add_device(engine, "pi-1")
    with pytest.raises(ValueError, match="device 'pi-1' already exists"):
        storage.add_device(engine, name)
    assert len(storage.list_devices(engine)) == 1


@pytest.mark.parametrize("name", ["", "   ", "x" * 65])
def test_device_name_length(engine, name):
    """Names must have 1 to 64 characters."""
    with pytest.raises(ValueError, match="1 to 64 characters"):
        storage.add_device(engine, name)


@pytest.mark.parametrize("token", ["", "no-such-token", "' OR '1'='1", "x" * 1000])
def test_unknown_or_empty_token(engine, device, token):
    """Anything but a device's token authenticates as nobody."""
    assert storage.authenticate(engine, token) is None


def test_add_metric_adds_column_and_catalogue_entry(engine, device):
    """New metrics become DOUBLE columns and catalogue entries, built-ins listed first."""
    storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100, "Air pressure"))
    storage.add_metric(engine, Metric("aqi", "", 0, 500))
    assert columns(engine)[-2:] == ["pressure", "aqi"]
    cat = storage.load_catalogue(engine)
    assert cat.names == ("co2", "temperature", "humidity", "aqi", "pressure")
    assert cat["pressure"] == Metric("pressure", "hPa", 300, 1100, "Air pressure")
    storage.write_readings(engine, ["co2", "pressure"], [(device.id, TS, 450.0, 1013.25)])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT co2, pressure, aqi FROM reading")).one() == (
            450.0, 1013.25, None)


@pytest.mark.parametrize("name", ["co2", "pressure"])
def test_duplicate_metric_is_refused(engine, name):
    """Adding a metric that exists fails and leaves the catalogue as it was."""
    storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))
    before = storage.load_catalogue(engine).names
    with pytest.raises(ValueError, match=f"metric '{name}' already exists"):
        storage.add_metric(engine, Metric(name, "x", 0, 1))
    assert storage.load_catalogue(engine).names == before


@pytest.mark.parametrize("name", ["index", "signal"])
def test_metric_named_like_an_sql_keyword_is_refused_or_works(engine, device, name):
    """A metric add_metric accepts can also be written, even if its name is an SQL keyword."""
    try:
        storage.add_metric(engine, Metric(name, "u", 0, 100))
    except ValueError:
        return  # refused up front: fine
    storage.write_readings(engine, [name], [(device.id, TS, 42.0)])
    with engine.connect() as conn:
        table = sa.table("reading", sa.column("device_id"), sa.column("ts"), sa.column(name))
        assert conn.execute(table.select()).one() == (device.id, TS, 42.0)


def test_write_readings_stores_rows_and_keeps_the_first_duplicate(engine, device):
    """Rows are stored with NULL for missing values; a (device, ts) taken by other values is reported."""
    names = ["co2", "temperature", "humidity"]
    failed = storage.write_readings(engine, names, [(device.id, TS, 400.0, 21.5, None),
                                                    (device.id, TS + 1, 401.0, None, 40.0),
                                                    (device.id, TS, 999.0, 99.0, 99.0)])
    assert failed == {2: storage.DUPLICATE_TS}
    assert storage.write_readings(engine, names, [(device.id, TS + 1, 1.0, 1.0, 1.0)]) == {
        0: storage.DUPLICATE_TS}
    assert stored(engine, device.id) == [(TS, 400.0, 21.5, None), (TS + 1, 401.0, None, 40.0)]
    assert storage.count_readings(engine, device.id) == 2
    assert storage.write_readings(engine, names, []) == {}  # nothing to do


def test_a_replay_with_the_same_values_counts_as_stored(engine, device):
    """Re-sending a stored reading (its ack was lost) is no failure, in one call or in two."""
    names = ["co2", "temperature", "humidity"]
    rows = [(device.id, TS, 400.0, 21.5, None), (device.id, TS + 1, 0.1 + 0.2, -3e-7, 1e300)]
    assert storage.write_readings(engine, names, rows) == {}
    assert storage.write_readings(engine, names, rows + [(device.id, TS + 2, 1.0, None, None)]) == {}
    assert storage.write_readings(engine, names, [rows[0], rows[0]]) == {}
    assert storage.count_readings(engine, device.id) == 3


def test_rows_of_a_deleted_device_are_reported_not_stored(engine, device):
    """A device deleted mid-flight: its rows fail (SQLite raises, MariaDB's IGNORE drops them)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM device WHERE id = {int(device.id)}")
    try:
        failed = storage.write_readings(engine, ["co2"], [(device.id, TS, 1.0)])
    except sa.exc.IntegrityError:
        failed = {0: "raised"}
    assert failed and storage.count_readings(engine, device.id) == 0


def test_the_fast_path_reads_nothing_back(engine, device, monkeypatch):
    """The comparison with stored rows runs only when the insert stored fewer rows than given."""
    calls = []
    monkeypatch.setattr(storage, "_unstored", lambda *a: calls.append(a) or {})
    storage.write_readings(engine, ["co2"], [(device.id, TS + i, 1.0) for i in range(10)])
    assert calls == []
    storage.write_readings(engine, ["co2"], [(device.id, TS, 1.0)])
    assert len(calls) == 1


def test_revoke_device_stops_its_token_and_keeps_its_readings(engine, device):
    storage.write_readings(engine, ["co2"], [(device.id, TS, 1.0)])
    assert storage.authenticate(engine, device.token) == device.id
    info = storage.revoke_device(engine, device.name)
    assert info.id == device.id and info.revoked_ms is not None
    assert storage.authenticate(engine, device.token) is None
    assert storage.active_device_ids(engine, [device.id]) == set()
    assert storage.count_readings(engine, device.id) == 1
    assert storage.revoke_device(engine, device.name).revoked_ms == info.revoked_ms  # idempotent
    with pytest.raises(ValueError, match="revoked"):
        storage.add_device(engine, device.name)


def test_revoke_device_with_delete_readings_frees_the_name(engine, device):
    other, _ = storage.add_device(engine, "pi-other")
    storage.write_readings(engine, ["co2"], [(device.id, TS + i, 1.0) for i in range(25)]
                           + [(other.id, TS, 2.0)])
    storage.revoke_device(engine, device.name, delete_readings=True, batch=10)
    assert storage.count_readings(engine, device.id) == 0
    assert storage.count_readings(engine, other.id) == 1
    assert [d.name for d in storage.list_devices(engine)] == ["pi-other"]
    storage.add_device(engine, device.name)
    with pytest.raises(ValueError, match="no device named"):
        storage.revoke_device(engine, "nobody")


def test_a_bad_catalogue_row_is_skipped_and_the_rest_work(engine, device):
    """A hand-made row with min = max, or one whose column is missing, stops nothing else."""
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO metric (name, unit, min_value, max_value, label) "
                             "VALUES ('flat', 'x', 5, 5, ''), ('ghost', 'x', 0, 1, ''), "
                             "('Bad Name', 'x', 0, 1, '')")
    assert storage.load_catalogue(engine).names == ("co2", "temperature", "humidity")
    storage.write_readings(engine, ["co2", "temperature", "humidity"], [(device.id, TS, 1.0, 2.0, 3.0)])
    storage.init_db(engine)  # works with the bad rows present, and gives 'ghost' its columns
    assert storage.load_catalogue(engine).names == ("co2", "temperature", "humidity", "ghost")


def test_add_metric_interrupted_after_its_columns_can_be_repeated(engine, device, monkeypatch):
    """Columns come before the row: an interrupted add-metric leaves nothing ingest would use."""
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt
    real_insert = storage.sa.insert
    monkeypatch.setattr(storage.sa, "insert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))
    monkeypatch.setattr(storage.sa, "insert", real_insert)
    assert "pressure" in columns(engine) and "pressure" not in storage.load_catalogue(engine)
    storage.write_readings(engine, storage.load_catalogue(engine).names, [(device.id, TS, 1.0, 2.0, 3.0)])
    storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))
    assert "pressure" in storage.load_catalogue(engine)
    with pytest.raises(ValueError, match="already exists"):
        storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))


def test_a_catalogue_row_without_its_column_is_skipped(engine, device):
    """The old order (row first) interrupted: the row names a missing column; ingest goes on."""
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO metric (name, unit, min_value, max_value, label) "
                             "VALUES ('pressure', 'hPa', 300, 1100, '')")
    assert "pressure" not in storage.load_catalogue(engine)
    storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))  # finishes the job
    assert "pressure" in storage.load_catalogue(engine)


def test_add_metric_gives_up_on_a_busy_table_instead_of_stalling_ingest(settings, engine):
    """On MariaDB a long reader holds the table's metadata lock: add-metric waits at most briefly."""
    if engine.dialect.name != "mysql":
        pytest.skip("metadata locks are MariaDB's")
    reader = engine.connect()
    reader.begin()
    reader.exec_driver_sql("SELECT COUNT(*) FROM reading").all()  # holds the lock until rollback
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match="busy.*again"):
            storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))
        assert time.monotonic() - started < storage.DDL_LOCK_WAIT_S + 3
    finally:
        reader.rollback()
        reader.close()
    storage.add_metric(engine, Metric("pressure", "hPa", 300, 1100))
    assert "pressure" in storage.load_catalogue(engine)


def test_same_ts_for_two_devices_is_two_rows(engine, device):
    """The key is (device, ts), not ts alone."""
    other, _ = storage.add_device(engine, "pi-other")
    storage.write_readings(engine, ["co2"], [(device.id, TS, 1.0), (other.id, TS, 2.0)])
    assert storage.count_readings(engine) == 2 and storage.count_readings(engine, other.id) == 1


def test_more_rows_than_one_chunk(engine, device):
    """A call larger than CHUNK_ROWS is split into several INSERTs and stores everything."""
    n = storage.CHUNK_ROWS[engine.dialect.name] * 2 + 7
    rows = [(device.id, TS + i, 400.0 + i % 100, -40.0 + i % 165, float(i % 101)) for i in range(n)]
    storage.write_readings(engine, ["co2", "temperature", "humidity"], rows)
    assert storage.count_readings(engine, device.id) == n
    assert stored(engine, device.id)[-1] == (TS + n - 1, *rows[-1][2:])


def test_a_bad_row_in_a_later_chunk_rolls_back_the_whole_call(engine, device):
    """write_readings is one transaction: nothing from earlier chunks remains."""
    n = storage.CHUNK_ROWS[engine.dialect.name] + 5
    rows = [(device.id, TS + i, 400.0) for i in range(n)]
    rows[-1] = (device.id, TS + n, INJECTION)
    with pytest.raises(TypeError, match="refusing"):
        storage.write_readings(engine, ["co2"], rows)
    assert storage.count_readings(engine) == 0


class EvilFloat(float):
    """A float whose text is SQL."""

    def __repr__(self):
        return INJECTION

    __str__ = __repr__


class EvilInt(int):
    """An int whose text is SQL."""

    def __repr__(self):
        return INJECTION

    __str__ = __repr__


class Color(IntEnum):
    RED = 1


class Stringy:
    """Any object whose text is SQL."""

    def __repr__(self):
        return INJECTION

    __str__ = __repr__


def one_value_sql(value) -> str:
    """The INSERT for one reading whose co2 is `value`."""
    return storage.insert_readings_sql("mysql", ["co2"], [(1, TS, value)])


@pytest.mark.parametrize("value", [
    "1.5", INJECTION, b"1.5", bytearray(b"1"), True, False, Decimal("1.5"), Fraction(1, 2),
    1 + 2j, EvilFloat(1.5), Stringy(), [1.0], (1.0,), {"v": 1.0},
], ids=lambda v: type(v).__name__)
def test_insert_sql_refuses_everything_but_numbers(value):
    """Strings, bytes, booleans, decimals, containers and float look-alikes never reach SQL."""
    with pytest.raises(TypeError, match="refusing"):
        one_value_sql(value)


@pytest.mark.parametrize(("value", "text"), [(EvilInt(2), "2"), (Color.RED, "1")])
def test_int_subclasses_render_as_their_value_not_their_text(value, text):
    """An int subclass is written as its integer value, never through its __repr__."""
    sql = one_value_sql(value)
    assert INJECTION not in sql and sql.endswith(f"VALUES (1,{TS},{text})")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("-nan")])
def test_insert_sql_refuses_non_finite_floats(value):
    """NaN and infinities are not numbers SQL can store (and must not turn into NULL)."""
    with pytest.raises(ValueError, match="refusing a non-finite number"):
        storage.insert_readings_sql("mysql", ["co2", "humidity"], [(1, TS, value, None)])


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (-7, "-7"), (2 ** 63 - 1, "9223372036854775807"), (1.5, "1.5"), (0.1, "0.1"),
    (-0.0, "-0.0"), (1e300, "1e+300"), (5e-324, "5e-324"), (None, "null"),
])
def test_insert_sql_formats_numbers_exactly(value, text):
    """Numbers are rendered so that they read back as the same value."""
    assert one_value_sql(value).endswith(f"VALUES (1,{TS},{text})")


@pytest.mark.parametrize("name", [
    "co2; DROP TABLE reading", "co2) VALUES (1,1,1); DROP TABLE reading; --", "co2`", "CO2",
    "ts", "device_id", "", "co2,humidity",
])
def test_insert_readings_sql_refuses_bad_metric_names(name):
    """Column names must pass check_name before they are written into SQL."""
    with pytest.raises(ValueError, match="metric name"):
        storage.insert_readings_sql("mysql", [name], [(1, TS, 1.0)])


@pytest.mark.parametrize(("dialect", "verb", "q"), [("mysql", "INSERT IGNORE INTO", "`"),
                                                    ("sqlite", "INSERT OR IGNORE INTO", '"')])
def test_insert_readings_sql_text(dialect, verb, q):
    """The statement is exactly the expected multi-row INSERT; empty input is refused."""
    sql = storage.insert_readings_sql(dialect, ["co2", "humidity"], [(1, TS, 400.5, None), (1, TS + 1, 1.0, 2.0)])
    assert sql == (f"{verb} reading (device_id,ts,{q}co2{q},{q}humidity{q}) "
                   f"VALUES (1,{TS},400.5,null),(1,{TS + 1},1.0,2.0)")
    with pytest.raises(ValueError, match="no rows to insert"):
        storage.insert_readings_sql(dialect, ["co2"], [])


def ingest(engine, device_id: int, frame: str | bytes):
    """What the server does with a frame: parse, then store the valid readings."""
    cat = storage.load_catalogue(engine)
    parsed = parse_frame(frame, cat, storage.now_ms())
    rows = [(device_id, r.ts_ms, *[r.values.get(n) for n in cat.names]) for r in parsed.readings]
    storage.write_readings(engine, cat.names, rows)
    return parsed


def test_injection_through_a_reading_never_reaches_sql(engine, device):
    """Hostile metric names and string values are rejected by parse_frame; the table survives."""
    ts = storage.now_ms()
    frame = orjson.dumps({"readings": [
        {"seq": 1, "ts": ts / 1000, "values": {"co2) VALUES (1,1,1); DROP TABLE reading; --": 1.0}},
        {"seq": 2, "ts": ts / 1000, "values": {"co2": INJECTION}},
        {"seq": 3, "ts": ts / 1000, "values": {"co2": 415.0}},
        {"seq": "1); DROP TABLE reading; --", "values": {"co2": 1.0}},
        {"seq": 5, "ts": "2023-11-14T22:13:20Z'); DROP TABLE reading; --", "values": {"co2": 1.0}},
    ]})
    parsed = ingest(engine, device.id, frame)
    assert [r["seq"] for r in parsed.rejected] == [1, 2, None, 5]  # only integer seqs are echoed
    assert "unknown metric" in parsed.rejected[0]["error"]
    assert "co2 must be a number" in parsed.rejected[1]["error"]
    with pytest.raises(FrameError):
        ingest(engine, device.id, INJECTION + ",1,1")
    assert "reading" in sa.inspect(engine).get_table_names()
    assert storage.count_readings(engine) == 1
    assert [row[1] for row in stored(engine, device.id)] == [415.0]


def pending(engine) -> list[tuple]:
    """(device_id, hour, gen, lo_ms, hi_ms) marks, in key order."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT device_id, hour, gen, lo_ms, hi_ms FROM rollup_pending ORDER BY device_id, hour"))]


HOUR = TS - TS % storage.HOUR_MS


def test_writes_mark_their_hours_for_rollup(engine, device):
    """Every write marks the (device, hour) it touched with its ts range; a later write bumps gen."""
    storage.write_readings(engine, ["co2"], [(device.id, HOUR + 9, 2.0), (device.id, HOUR + 5, 1.0)])
    assert pending(engine) == [(device.id, HOUR, 0, HOUR + 5, HOUR + 9)]
    late = HOUR - storage.HOUR_MS  # a Pi catching up after an outage
    storage.write_readings(engine, ["co2"], [(device.id, HOUR + 7, 3.0), (device.id, late, 4.0)])
    assert pending(engine) == [(device.id, late, 0, late, late), (device.id, HOUR, 1, HOUR + 5, HOUR + 9)]


def test_repeated_marks_widen_the_range(engine, device):
    """A mark's range grows to cover every write since the rollup, never shrinks."""
    for lo, hi in [(5000, 6000), (5500, 5600), (1000, 2000), (9000, 9500)]:
        with engine.begin() as conn:
            storage.mark_pending(conn, {(device.id, HOUR): (HOUR + lo, HOUR + hi)})
    assert pending(engine) == [(device.id, HOUR, 3, HOUR + 1000, HOUR + 9500)]


@pytest.mark.parametrize("order", [1, -1])
def test_hour_spans_of_unordered_rows(order):
    """One pass finds each (device, hour)'s smallest and largest ts, whatever the row order."""
    rows = [(1, HOUR + 50, 1.0), (2, HOUR + 7, 1.0), (1, HOUR + 3, 1.0), (1, HOUR + 99, None),
            (1, HOUR - 1, 1.0), (1, HOUR + 60, 1.0), (2, HOUR + storage.HOUR_MS, 1.0)]
    assert storage.hour_spans(rows[::order]) == {
        (1, HOUR - storage.HOUR_MS): [HOUR - 1, HOUR - 1], (1, HOUR): [HOUR + 3, HOUR + 99],
        (2, HOUR): [HOUR + 7, HOUR + 7], (2, HOUR + storage.HOUR_MS): [HOUR + storage.HOUR_MS] * 2}


@pytest.mark.parametrize("bad", ["1); DROP TABLE reading; --", "0x10", None, [1]])
@pytest.mark.parametrize("at", range(4))
def test_mark_pending_formats_integers_only(engine, bad, at):
    """The formatted mark statement accepts nothing but integers, in any of its four values."""
    values = [1, 0, 0, 0]
    values[at] = bad
    device_id, hour, lo, hi = values
    with engine.begin() as conn, pytest.raises((ValueError, TypeError)):
        storage.mark_pending(conn, {(device_id, hour): (lo, hi)})
    assert pending(engine) == []


def test_mark_pending_ignores_an_ints_own_text(engine):
    """An int subclass whose str() is SQL is written as its number."""
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO device (id, name, token_hash, created_ms) VALUES (2, 'x', 'h', 0)")
        evil = EvilInt(2), EvilInt(7_200_000), EvilInt(7_200_001), EvilInt(7_200_002)
        storage.mark_pending(conn, {evil[:2]: evil[2:]})
    assert pending(engine) == [(2, 7_200_000, 0, 7_200_001, 7_200_002)]


# ---- dialect differences (lib/storage/dialect.py) ---------------------------------

@pytest.mark.parametrize("dialect, expected", [
    ("mysql", " ON DUPLICATE KEY UPDATE gen = gen + 1, lo_ms = LEAST(lo_ms, VALUES(lo_ms)),"
              " hi_ms = GREATEST(hi_ms, VALUES(hi_ms))"),
    ("sqlite", " ON CONFLICT (device_id, hour) DO UPDATE SET gen = gen + 1,"
               " lo_ms = MIN(lo_ms, excluded.lo_ms), hi_ms = MAX(hi_ms, excluded.hi_ms)"),
])
def test_pending_upsert_tail_is_the_statement_mark_pending_always_ran(dialect, expected):
    """The ingest's rollup_pending upsert is unchanged by moving it into the dialect module."""
    assert dialects.pending_upsert_tail(dialect) == expected


@pytest.mark.parametrize("dialect, head", [
    ("mysql", "INSERT IGNORE INTO reading (device_id,ts,`co2`,`signal`) VALUES (1,2,3.5,null)"),
    ("sqlite", 'INSERT OR IGNORE INTO reading (device_id,ts,"co2","signal") VALUES (1,2,3.5,null)'),
])
def test_insert_readings_sql_per_dialect(dialect, head):
    """Each dialect gets its own ignore verb and identifier quotes."""
    assert storage.insert_readings_sql(dialect, ["co2", "signal"], [(1, 2, 3.5, None)]) == head


@pytest.mark.parametrize("dialect, expected", [
    ("mysql", ("DIV", "LEAST", "GREATEST", "VALUES(c)", " FOR UPDATE",
               "ON DUPLICATE KEY UPDATE c = 1, d = 2")),
    ("sqlite", ("/", "MIN", "MAX", "excluded.c", "",
                "ON CONFLICT (a, b) DO UPDATE SET c = 1, d = 2")),
])
def test_dialect_fragments(dialect, expected):
    """The SQL fragments that differ between MariaDB and SQLite."""
    assert (dialects.int_div(dialect), dialects.least(dialect), dialects.greatest(dialect),
            dialects.excluded(dialect, "c"), dialects.for_update(dialect),
            dialects.upsert_tail(dialect, ["a", "b"], ["c = 1", "d = 2"])) == expected


def test_dialect_fragments_run_on_each_backend(engine):
    """The fragments chosen for the engine's dialect are valid SQL there and do what they say."""
    d = engine.dialect.name
    with engine.connect() as conn:
        assert conn.scalar(sa.text(f"SELECT 7 {dialects.int_div(d)} 2")) == 3
        assert conn.scalar(sa.text(f"SELECT {dialects.least(d)}(3, 1) + {dialects.greatest(d)}(3, 1)")) == 4


def _dbapi_error(orig: Exception) -> sa.exc.DBAPIError:
    """A driver error as SQLAlchemy wraps it."""
    return sa.exc.OperationalError("INSERT ...", {}, orig)


@pytest.mark.parametrize("exc, full, unavailable", [
    (_dbapi_error(sqlite3.OperationalError("database or disk is full")), True, True),
    (_dbapi_error(pymysql.err.OperationalError(1021, "Disk full (/var/lib/mysql/#sql); waiting")), True, True),
    (_dbapi_error(pymysql.err.OperationalError(1114, "The table 'reading' is full")), True, True),
    (OSError(errno.ENOSPC, "No space left on device"), True, True),
    (_dbapi_error(pymysql.err.OperationalError(2006, "MySQL server has gone away")), False, True),
    (_dbapi_error(sqlite3.OperationalError("database is locked")), False, True),
    (_dbapi_error(pymysql.err.IntegrityError(1452, "foreign key constraint fails")), False, False),
])
def test_a_full_disk_is_told_apart(exc, full, unavailable):
    """Devices are told "disk full" rather than "unavailable"; both are the database's fault, not the rows'."""
    assert storage.is_disk_full(exc) is full
    assert storage.is_unavailable(exc) is unavailable

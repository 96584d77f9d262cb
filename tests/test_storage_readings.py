"""lib.storage.readings: devices_with_latest and device_name on SQLite and MariaDB."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from lib import storage
from lib.catalogue import Metric
from lib.csvformat import CsvFormatter
from lib.resolution import plan_for
from lib.storage.readings import DeviceRow, _prefetched, device_name, devices_with_latest, export_pages
from tests.test_csvformat import old_line

BUILTIN = ("co2", "temperature", "humidity")


def write(engine, device_id: int, ts_ms: int, co2=None, temperature=None, humidity=None) -> None:
    assert storage.write_readings(engine, BUILTIN, [(device_id, ts_ms, co2, temperature, humidity)]) == {}


def rows(engine, metrics=BUILTIN, device_id=None, active_only=False) -> list[DeviceRow]:
    with engine.connect() as conn:
        return devices_with_latest(conn, metrics, device_id, active_only)


def test_no_devices_gives_an_empty_list(engine):
    assert rows(engine) == []


def test_a_device_without_readings_has_nulls(engine, device):
    """last_ms None and every asked metric None."""
    [row] = rows(engine)
    assert (row.id, row.name, row.revoked_ms, row.last_ms) == (device.id, device.name, None, None)
    assert row.values == {m: None for m in BUILTIN}
    assert isinstance(row.created_ms, int) and row.created_ms > 0


def test_the_newest_reading_wins_whatever_the_insert_order(engine, device):
    """Rows written out of order: the one with the largest ts, with its own nulls."""
    write(engine, device.id, 3_000, 300.0, None, 30.0)
    write(engine, device.id, 1_000, 100.0, 10.0, 10.0)
    write(engine, device.id, 2_000, 200.0, 20.0, 20.0)
    [row] = rows(engine)
    assert row.last_ms == 3_000 and row.values == {"co2": 300.0, "temperature": None, "humidity": 30.0}


def test_each_device_gets_its_own_newest_reading(engine):
    """Devices by name, each with its newest reading; one without readings stays null."""
    ids = {n: storage.add_device(engine, n)[0].id for n in ("c", "a", "b")}
    write(engine, ids["a"], 5_000, 1.0)
    write(engine, ids["a"], 9_000, 2.0)
    write(engine, ids["c"], 7_000, 3.0)
    found = rows(engine)
    assert [r.name for r in found] == ["a", "b", "c"]
    assert [(r.last_ms, r.values["co2"]) for r in found] == [(9_000, 2.0), (None, None), (7_000, 3.0)]


def test_one_device_by_id(engine, devices):
    """device_id: that device only; an unknown id: []."""
    write(engine, devices[1], 1_000, 5.0)
    [row] = rows(engine, device_id=devices[1])
    assert row.id == devices[1] and row.values["co2"] == 5.0
    assert rows(engine, device_id=max(devices) + 100) == []


def test_active_only_leaves_out_revoked_devices(engine):
    """Revoked devices are listed with revoked_ms, unless active_only."""
    kept = storage.add_device(engine, "kept")[0]
    storage.add_device(engine, "gone")
    revoked = storage.revoke_device(engine, "gone")
    assert {r.name: r.revoked_ms for r in rows(engine)} == {"gone": revoked.revoked_ms, "kept": None}
    assert [r.id for r in rows(engine, active_only=True)] == [kept.id]
    assert rows(engine, device_id=revoked.id, active_only=True) == []


@pytest.mark.parametrize("metrics", [("humidity",), ("humidity", "co2"), ()])
def test_only_the_asked_metrics_in_the_asked_order(engine, device, metrics):
    """values holds exactly the metrics asked for."""
    write(engine, device.id, 1_000, 400.0, 20.0, 50.0)
    [row] = rows(engine, metrics)
    expected = {"co2": 400.0, "temperature": 20.0, "humidity": 50.0}
    assert list(row.values) == list(metrics) and row.values == {m: expected[m] for m in metrics}


def test_an_added_metric_column_is_read(engine, device):
    """A metric added at run time (a new column) is read like the built-in ones."""
    storage.add_metric(engine, Metric("pm2_5", "ug/m3", 0, 1000))
    assert storage.write_readings(engine, ("co2", "pm2_5"), [(device.id, 1_000, 400.0, 7.5)]) == {}
    [row] = rows(engine, ("co2", "temperature", "pm2_5"))
    assert row.values == {"co2": 400.0, "temperature": None, "pm2_5": 7.5}


@pytest.mark.parametrize("metric", ["co2; DROP TABLE device", "CO2", "ts", "", "a b", "`co2`"])
def test_a_bad_metric_name_never_reaches_sql(engine, device, metric):
    """Names that are not metrics raise ValueError before any SQL; the device table survives."""
    with pytest.raises(ValueError):
        rows(engine, ("co2", metric))
    assert [r.id for r in rows(engine)] == [device.id]


def test_many_devices_in_one_statement(engine):
    """200 devices are read by one statement, not one per device."""
    now = storage.now_ms()
    for i in range(200):
        info = storage.add_device(engine, f"d{i:03d}")[0]
        write(engine, info.id, now - i, float(i))
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        found = rows(engine)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert len(seen) == 1 and len(found) == 200
    assert found[5].name == "d005" and found[5].values["co2"] == 5.0 and found[5].last_ms == now - 5


def test_device_name(engine, device):
    """The name by id, revoked devices included; None for an unknown id; deleted devices are gone."""
    with engine.connect() as conn:
        assert device_name(conn, device.id) == device.name
        assert device_name(conn, device.id + 1000) is None
    storage.revoke_device(engine, device.name)
    with engine.connect() as conn:
        assert device_name(conn, device.id) == device.name
    storage.revoke_device(engine, device.name, delete_readings=True)
    with engine.connect() as conn:
        assert device_name(conn, device.id) is None


# Doubles whose text (MariaDB's) and repr differ in form, or that test the last digit.
EDGE = [1e16, 1e-7, 420.0, -1.5, 0.1 + 0.2, 1 / 3, 123456789012345678.0, 5e-324, 1.7976931348623157e308,
        -0.0, 2.5e-5, 1e21, None]


def edge_rows(device_id: int) -> list[tuple]:
    """Readings with edge values in every column and some NULLs, one second apart from 1 s."""
    return [(device_id, 1_000 * (i + 1), EDGE[i % len(EDGE)], EDGE[(i * 5) % len(EDGE)],
             None if i % 3 else EDGE[(i * 7) % len(EDGE)]) for i in range(60)]


def driver_lines(engine, device_id: int) -> str:
    """The reference lines of a device's readings as the driver reads them (MariaDB stores -0.0 as 0)."""
    with engine.connect() as conn:
        read = conn.execute(sa.text("SELECT ts, co2, temperature, humidity FROM reading "
                                    "WHERE device_id = :d ORDER BY ts"), {"d": device_id}).all()
    return "".join(old_line(r) for r in read)


def export_csv(engine, device_id: int, start: int, end: int, page_rows: int) -> tuple[str, list[int]]:
    """The CSV lines of a raw export and the sizes of its pages."""
    formatter, sizes, text = CsvFormatter(), [], []
    for page in export_pages(engine, plan_for(0), device_id, BUILTIN, [], start, end, page_rows):
        sizes.append(len(page))
        text.append(formatter.page(page))
    return "".join(text), sizes


@pytest.mark.parametrize("page_rows", [1, 7, 60, 10_000])
def test_raw_export_is_byte_identical_to_the_driver_floats(engine, device, page_rows):
    """Pages (packed texts on MySQL) give the lines of the floats the driver reads, across page borders."""
    assert storage.write_readings(engine, BUILTIN, edge_rows(device.id)) == {}
    text, sizes = export_csv(engine, device.id, 0, 10**12, page_rows)
    assert text == driver_lines(engine, device.id)
    assert sum(sizes) == 60 and max(sizes) <= page_rows


def test_raw_export_keeps_to_the_range_and_skips_empty_rows(engine, device):
    """Only [start, end]; rows with every asked metric NULL are left out; other devices' never appear."""
    other = storage.add_device(engine, "other")[0].id
    write(engine, device.id, 1_000, 1.0)
    write(engine, device.id, 2_000)  # all NULL
    write(engine, device.id, 3_000, None, 3.0)
    write(engine, device.id, 4_000, 4.0)
    write(engine, other, 2_500, 9.0)
    text, _ = export_csv(engine, device.id, 1_001, 4_000, 1)
    assert text == "".join(map(old_line, [(3_000, None, 3.0, None), (4_000, 4.0, None, None)]))


def test_a_cut_packed_page_is_read_row_by_row(settings, device):
    """MySQL: a group_concat_max_len too small for a page still gives every row, row by row."""
    if not settings.database_url.startswith("mysql"):
        pytest.skip("GROUP_CONCAT pages are MySQL's")
    engine = storage.make_engine(settings.database_url)
    sa.event.listen(engine, "connect", lambda dbapi_conn, record: dbapi_conn.cursor().execute(
        "SET SESSION group_concat_max_len = 64"))
    try:
        assert storage.write_readings(engine, BUILTIN, edge_rows(device.id)) == {}
        text, sizes = export_csv(engine, device.id, 0, 10**12, 25)
        expected = driver_lines(engine, device.id)
    finally:
        engine.dispose()
    assert sizes == [25, 25, 10] and text == expected


def counted_pages(fetched: list[int], count: int = 100, fail_at: int | None = None):
    """Pages [i], noting each fetch; raises at page `fail_at`."""
    try:
        for i in range(count):
            if i == fail_at:
                raise RuntimeError("database gone")
            fetched.append(i)
            yield [(i,)]
    finally:
        fetched.append(-1)  # closed


def wait_for(condition, seconds: float = 5) -> bool:
    """Poll until `condition()` or the time is up."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_prefetch_keeps_order_and_reads_at_most_two_pages_ahead():
    """A slow reader: the thread waits with one page queued and one in hand, never more."""
    fetched: list[int] = []
    pages = _prefetched(counted_pages(fetched, 10))
    assert next(pages) == [(0,)]
    time.sleep(0.3)
    assert fetched == [0, 1, 2]
    assert list(pages) == [[(i,)] for i in range(1, 10)] and fetched[-1] == -1


def test_prefetch_stops_its_thread_when_the_client_goes():
    """Closing the export (a client that hung up) ends the thread and closes the page source."""
    fetched: list[int] = []
    before = threading.active_count()
    pages = _prefetched(counted_pages(fetched))
    next(pages)
    pages.close()
    assert wait_for(lambda: threading.active_count() == before) and fetched[-1] == -1
    assert len(fetched) <= 4


def test_prefetch_raises_the_fetch_error_in_the_reader():
    fetched: list[int] = []
    pages = _prefetched(counted_pages(fetched, fail_at=3))
    assert [next(pages) for _ in range(3)] == [[(0,)], [(1,)], [(2,)]]
    with pytest.raises(RuntimeError, match="database gone"):
        next(pages)


# ---- buckets newer than the rollups -------------------------------------------------------------

def _bucketed(engine, device_id, source: str, bucket_ms: int, start_ms: int, end_ms: int) -> list[list]:
    """The co2 [t, avg, min, max] buckets of a series from `source` (1m or 1h)."""
    from lib.resolution import Plan
    from lib.storage.readings import series

    with engine.connect() as conn:
        return series(conn, Plan(source, bucket_ms), device_id, ["co2"], ["avg", "min", "max"],
                      start_ms, end_ms)["co2"]


@pytest.mark.parametrize("source, bucket_ms", [("1m", 60_000), ("1m", 600_000), ("1h", 3_600_000)])
def test_buckets_not_yet_rolled_up_come_from_raw_readings(engine, device, source, bucket_ms):
    """Rollups lag the newest readings: a chart must not lose its newest buckets until the next run."""
    from lib.storage.rollups import run_rollup

    hour = 3_600_000
    base = (storage.now_ms() // hour - 5) * hour
    early = [(device.id, base + i * 30_000, 400.0 + i, None, None) for i in range(4 * 120)]  # 4 hours
    storage.write_readings(engine, ("co2", "temperature", "humidity"), early)
    run_rollup(engine)
    late = [(device.id, base + 4 * hour + i * 30_000, 900.0 + i, None, None) for i in range(60)]  # 30 min
    storage.write_readings(engine, ("co2", "temperature", "humidity"), late)  # not rolled up yet
    points = _bucketed(engine, device.id, source, bucket_ms, base, base + 5 * hour - 1)
    starts = [p[0] for p in points]
    assert starts == sorted(set(starts)), "a bucket appears once"
    rows = early + late
    expected = {}
    for _, ts, co2, _t, _h in rows:
        expected.setdefault(ts - ts % bucket_ms, []).append(co2)
    assert starts == sorted(expected)
    for t, avg, low, high in points:
        values = expected[t]
        assert (low, high) == (min(values), max(values))
        assert avg == pytest.approx(sum(values) / len(values))


def test_exported_buckets_not_yet_rolled_up_come_from_raw_readings(engine, device):
    """The CSV of buckets has the same newest buckets as the JSON series."""
    from lib.resolution import Plan
    from lib.storage.rollups import run_rollup

    hour = 3_600_000
    base = (storage.now_ms() // hour - 5) * hour
    names = ("co2", "temperature", "humidity")
    storage.write_readings(engine, names, [(device.id, base + i * 60_000, 400.0 + i, None, None)
                                           for i in range(240)])
    run_rollup(engine)
    storage.write_readings(engine, names, [(device.id, base + 4 * hour + i * 60_000, 900.0, None, None)
                                           for i in range(30)])
    pages = export_pages(engine, Plan("1h", hour), device.id, ["co2"], ["avg"], base, base + 5 * hour - 1,
                         page_rows=2)
    rows = [tuple(r) for page in pages for r in page]
    assert [int(r[0]) for r in rows] == [base + i * hour for i in range(5)]
    assert float(rows[-1][1]) == 900.0
    assert rows == [tuple(p[:2]) for p in _bucketed_avg(engine, device.id, base, base + 5 * hour - 1)]


def _bucketed_avg(engine, device_id, start_ms, end_ms) -> list[list]:
    """The co2 [t, avg] hourly buckets of the JSON series."""
    return [p[:2] for p in _bucketed(engine, device_id, "1h", 3_600_000, start_ms, end_ms)]

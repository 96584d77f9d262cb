"""lib.storage.readings: devices_with_latest and device_name on SQLite and MariaDB."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from lib import storage
from lib.catalogue import Metric
from lib.storage.readings import DeviceRow, device_name, devices_with_latest

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

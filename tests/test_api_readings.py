"""GET /api/v1/devices/<id>/readings and readings.csv: ranges, resolutions, aggregates, streaming."""
from __future__ import annotations

import csv
import io

import pytest

from dataclasses import dataclass

from flask.testing import FlaskClient

from lib import storage
from lib.storage import readings as reading_store
from lib.storage.rollups import run_rollup
from lib.validation import ms_to_iso
from tests.conftest import Device, module_settings
from tests.web_fixtures import make_app

NAMES = ["co2", "temperature", "humidity"]
STEP = 5000
COUNT = 17_280  # a day at one reading per 5 s


@dataclass
class Day:
    """A device with a day of readings, and a client of the web app on its database."""

    client: FlaskClient
    device: Device
    end: int
    rows: list[tuple]


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def day(request, tmp_path_factory) -> Day:
    """A day of readings every 5 s ending at a whole minute a little before now, rolled up.

    One database per backend for the module: the tests only read it.
    """
    cfg = module_settings(request, tmp_path_factory.mktemp("readings"), "readings")
    engine = storage.make_engine(cfg.database_url)
    info, token = storage.add_device(engine, "lab-pi")
    end = storage.now_ms() - 120_000
    end -= end % 60_000
    rows = [(info.id, end - i * STEP, 400.0 + i % 97, 20.0 + (i % 7) / 10, None if i % 2 else 40.0)
            for i in range(COUNT)]
    storage.write_readings(engine, NAMES, rows)
    run_rollup(engine)
    engine.dispose()
    app = make_app(cfg)
    return Day(app.test_client(), Device(info.id, info.name, token), end, sorted(rows, key=lambda r: r[1]))


def get(client, device_id, query="", csv_=False):
    """GET the readings (or their CSV) of a device."""
    return client.get(f"/api/v1/devices/{device_id}/readings{'.csv' if csv_ else ''}{query}")


def test_auto_over_a_day_gives_minute_buckets_with_avg_min_max(day):
    web_client, device = day.client, day.device
    end, rows = day.end, day.rows
    body = get(web_client, device.id).json
    assert (body["resolution"], body["source"], body["bucket_ms"]) == ("1m", "1m", 60_000)
    assert body["columns"] == ["ts", "avg", "min", "max"]
    assert body["units"] == {"co2": "ppm", "temperature": "°C", "humidity": "%RH"}
    co2 = body["series"]["co2"]
    assert 1400 <= len(co2) <= 1441
    t, avg, low, high = co2[len(co2) // 2]
    inside = [r[2] for r in rows if t <= r[1] < t + 60_000]
    assert (avg, low, high) == (pytest.approx(sum(inside) / len(inside)), min(inside), max(inside))
    assert body["to_ms"] - body["from_ms"] == 86_400_000 and body["to"].endswith("Z")


def test_raw_and_explicit_ranges(day):
    web_client, device = day.client, day.device
    end, rows = day.end, day.rows
    start = end - 10 * STEP
    body = get(web_client, device.id, f"?from={ms_to_iso(start)}&to={end}&metrics=humidity,co2").json
    assert body["resolution"] == "raw" and body["columns"] == ["ts", "value"]
    assert list(body["series"]) == ["humidity", "co2"]
    assert body["series"]["co2"] == [[r[1], r[2]] for r in rows if start <= r[1] <= end]
    assert body["series"]["humidity"] == [[r[1], r[4]] for r in rows if start <= r[1] <= end and r[4] is not None]


@pytest.mark.parametrize("resolution,source,width", [
    ("1h", "1h", 3_600_000), ("300", "1m", 300_000), ("30", "raw", 30_000), ("1m", "1m", 60_000),
])
def test_explicit_bucket_widths(day, resolution, source, width):
    web_client, device = day.client, day.device
    body = get(web_client, device.id, f"?resolution={resolution}&agg=max,avg&metrics=co2").json
    assert (body["source"], body["bucket_ms"], body["columns"]) == (source, width, ["ts", "max", "avg"])
    stamps = [p[0] for p in body["series"]["co2"]]
    assert stamps == sorted(stamps) and all(t % width == 0 for t in stamps)
    assert all(p[1] >= p[2] for p in body["series"]["co2"])


def test_a_bucket_without_a_metric_is_left_out(day):
    web_client, device = day.client, day.device
    """humidity is measured every other reading: buckets still have it; a metric never sent has none."""
    body = get(web_client, device.id, "?resolution=1h").json
    assert len(body["series"]["humidity"]) == len(body["series"]["co2"]) > 0


@pytest.mark.parametrize("query,status,detail", [
    ("?from=yesterday", 400, "neither ISO 8601"),
    ("?to=2026-02-30T00:00:00Z", 400, "neither ISO 8601"),
    ("?from=2026-02-02T00:00:00Z&to=2026-02-01T00:00:00Z", 400, "must not be after"),
    ("?resolution=5min", 400, "resolution must be"),
    ("?resolution=0", 400, "resolution must be"),
    ("?metrics=co2,pressure", 400, "unknown metric 'pressure'"),
    ("?metrics=co2;DROP TABLE reading", 400, "unknown metric"),
    ("?agg=median", 400, "unknown aggregate 'median'"),
    ("?resolution=%C2%B2", 400, "resolution must be"),  # '²' passes str.isdigit() but is no number
    ("?resolution=1&from=0", 422, "more than"),
    ("?download=maybe", 422, "download"),
])
def test_bad_parameters_are_refused_with_a_reason(web_client, device, query, status, detail):
    for csv_ in (False, True):
        response = get(web_client, device.id, query, csv_)
        if "from=0" in query and csv_:
            assert response.status_code == 200  # an export has no point limit
            continue
        if query.startswith("?download") and not csv_:
            assert response.status_code == 200  # unknown query parameters are ignored
            continue
        assert response.status_code == status, response.data
        assert set(response.json) == {"error", "detail"} and detail in str(response.json["detail"])


@pytest.mark.parametrize("query", ["?metrics=,", "?metrics=%20,%20,", "?agg=,&resolution=1h",
                                   "?metrics=,&agg=,&resolution=raw"])
def test_a_list_of_only_commas_means_all_like_an_empty_one(web_client, device, query):
    """Found by schemathesis: `metrics=,` named no metric and the query failed with a 500."""
    for csv_ in (False, True):
        response = get(web_client, device.id, query, csv_)
        assert response.status_code == 200, response.data
        if not csv_:
            assert set(response.json["series"]) == set(NAMES)
            assert response.json["columns"] in (["ts", "value"], ["ts", "avg", "min", "max"])


def test_an_unknown_device_is_404(web_client):
    assert get(web_client, 999).status_code == 404
    assert get(web_client, 999, csv_=True).json["detail"] == "no device with id 999"


def test_too_many_raw_points_need_the_csv(day, monkeypatch):
    web_client, device = day.client, day.device
    from flask_front.api import readings
    monkeypatch.setattr(readings, "MAX_EXPLICIT_POINTS", 2000)
    assert get(web_client, device.id, "?resolution=raw").status_code == 422
    assert get(web_client, device.id, "?resolution=raw", csv_=True).status_code == 200


def test_csv_streams_every_raw_reading_page_by_page(day, monkeypatch):
    web_client, device = day.client, day.device
    end, rows = day.end, day.rows
    monkeypatch.setattr(reading_store, "PAGE_ROWS", 1000)  # many pages, crossing their borders
    start = end - 86_400_000
    response = get(web_client, device.id, f"?resolution=raw&download=1&from={start}&to={end}", csv_=True)
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="{device.name}_')
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["time", "ts_ms", "co2", "temperature", "humidity"]
    expected = [[ms_to_iso(r[1]), str(r[1]), repr(r[2]), repr(r[3]), "" if r[4] is None else repr(r[4])]
                for r in rows if r[1] >= start]
    assert table[1:] == expected


def test_csv_of_buckets_has_a_column_per_metric_and_aggregate(day, monkeypatch):
    web_client, device = day.client, day.device
    monkeypatch.setattr(reading_store, "PAGE_ROWS", 7)
    text = get(web_client, device.id, "?resolution=1h&metrics=co2&agg=min,max", csv_=True).get_data(as_text=True)
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["time", "ts_ms", "co2_min", "co2_max"]
    assert 24 <= len(table) - 1 <= 25
    stamps = [int(r[1]) for r in table[1:]]
    assert stamps == sorted(set(stamps)) and all(t % 3_600_000 == 0 for t in stamps)
    assert table[1][0] == ms_to_iso(stamps[0])
    plain = get(web_client, device.id, "?resolution=1h&metrics=co2&agg=min,max", csv_=True)
    assert "Content-Disposition" not in plain.headers


def test_no_readings_give_empty_series(web_client, device):
    body = get(web_client, device.id).json
    assert body["resolution"] == "raw" and body["series"] == {m: [] for m in NAMES}
    assert get(web_client, device.id, csv_=True).get_data(as_text=True) == "time,ts_ms,co2,temperature,humidity\r\n"


def test_csv_body_is_byte_identical_to_the_driver_floats(web_client, engine, device, monkeypatch):
    """Edge values (1e16, 1e-07, integers, NULLs) over pages of 7: the lines of the pre-formatter export."""
    from tests.test_storage_readings import driver_lines, edge_rows
    monkeypatch.setattr(reading_store, "PAGE_ROWS", 7)
    assert storage.write_readings(engine, NAMES, edge_rows(device.id)) == {}
    body = get(web_client, device.id, "?resolution=raw&from=0&to=1000000", csv_=True).get_data()
    assert body == ("time,ts_ms,co2,temperature,humidity\r\n" + driver_lines(engine, device.id)).encode()

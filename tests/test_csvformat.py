"""lib.csvformat: byte for byte the CSV lines the export wrote before the formatter (csv_lines of 2025)."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from lib import csvformat
from lib.csvformat import CsvFormatter, header
from lib.validation import ms_to_iso

EDGE_VALUES = [0, 1, 420, -7, 2**53 + 1, 420.0, 420.3, 0.1 + 0.2, 1 / 3, 1e15, 1e16, 9999999999999998.0,
               1e21, 1e-4, 1e-5, 1e-7, 2.5e-5, -1.5, -1e-300, 5e-324, 1.7976931348623157e308, 0.0, -0.0,
               None, Decimal("12.50"), Decimal("0.1")]
# The texts MariaDB sends for doubles (its shortest round-trip digits), and '' for NULL.
EDGE_TEXTS = ["420", "420.3", "1e16", "1e-7", "0.0000001", "0.0001", "-0", "0", "1e21", "-1.5",
              "0.30000000000000004", "123456789012345680", "5e-324", "1.7976931348623157e308", ""]
EDGE_TIMES = [0, 1, 999, 1000, 59_999, 60_000, 86_399_999, -1, -60_001, 951_782_400_000,
              1_795_299_205_123, 253_402_300_799_999]


def old_line(row) -> str:
    """The export's line before lib.csvformat: the reference."""
    return (f"{ms_to_iso(row[0])},{row[0]},"
            + ",".join("" if v is None else repr(float(v)) for v in row[1:]) + "\r\n")


def text_value(text: str):
    """What PyMySQL made of a double's text: a float, None for NULL."""
    return None if text == "" else float(text)


@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
def test_a_value_is_the_repr_of_its_float(value):
    rows = [(1_795_299_205_000, value, value, None)]
    assert CsvFormatter().page(rows) == old_line(rows[0])


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_a_text_gives_what_its_float_gave(text):
    """MySQL pages carry the texts: the line is the one of the float PyMySQL decoded."""
    assert CsvFormatter().page([(5_000, text)]) == old_line((5_000, text_value(text)))


@pytest.mark.parametrize("ts", EDGE_TIMES)
def test_times_before_and_after_minute_and_day_borders(ts):
    assert CsvFormatter().page([(ts, 1.0)]) == old_line((ts, 1.0))


def test_a_page_of_mixed_rows_matches_line_by_line():
    """Rows of many widths, times and values, including cache hits and zeros of both signs."""
    rng = random.Random(7)
    pool = EDGE_VALUES + [round(rng.uniform(-50, 2000), rng.randint(0, 3)) for _ in range(200)]
    rows = []
    ts = 1_700_000_000_000
    for _ in range(5_000):
        ts += rng.choice([1, 999, 1000, 5000, 60_000, 86_400_000])
        rows.append((ts, *(rng.choice(pool) for _ in range(rng.randint(1, 9)))))
    formatter = CsvFormatter()
    assert formatter.page(rows[:2500]) + formatter.page(rows[2500:]) == "".join(map(old_line, rows))


def test_zero_after_minus_zero_keeps_each_sign():
    """0.0 == -0.0 as dict keys: the cache must not answer one with the other's text."""
    formatter = CsvFormatter()
    assert formatter.page([(0, 0.0, -0.0, "-0", "0"), (1, -0.0, 0.0, "0", "-0")]) == \
        "1970-01-01T00:00:00.000Z,0,0.0,-0.0,-0.0,0.0\r\n1970-01-01T00:00:00.001Z,1,-0.0,0.0,0.0,-0.0\r\n"


def test_caches_stay_bounded(monkeypatch):
    """More distinct values and minutes than the caches hold: still right, and capped."""
    monkeypatch.setattr(csvformat, "MAX_CACHED_VALUES", 50)
    monkeypatch.setattr(csvformat, "MAX_CACHED_MINUTES", 10)
    rows = [(i * 61_000, i / 7, str(i + 0.5)) for i in range(1_000)]
    formatter = CsvFormatter()
    assert formatter.page(rows) == "".join(old_line((r[0], r[1], float(r[2]))) for r in rows)
    assert len(formatter._values) <= 50 and len(formatter._minutes) <= 10


def test_header_is_one_crlf_line():
    assert header(["time", "ts_ms", "co2"]) == "time,ts_ms,co2\r\n"

"""lib.resolution: the meaning of the readings API's from, to, resolution, metrics and agg."""
from __future__ import annotations

import pytest

from lib.charts import DAY_MS, HOUR, HOUR_MS, MINUTE, MINUTE_MS, RAW
from lib.resolution import (Plan, auto_plan, bucket_count, parse_instant, parse_list,
                            parse_resolution, plan_for, time_range)

TS = 1_790_000_000_000  # 2026-09-21T14:13:20Z


@pytest.mark.parametrize("text,expected", [
    ("1790000000000", TS),
    ("2026-09-21T14:13:20Z", TS),
    ("2026-09-21T14:13:20.000z", TS),
    ("2026-09-21T16:13:20+02:00", TS),
    ("2026-09-21T14:13:20", TS),  # no zone: UTC
    ("2026-09-21T14:13:20.0004Z", TS),  # rounded to the millisecond
    (" 0 ", 0),
])
def test_instants_are_iso_or_epoch_ms(text, expected):
    assert parse_instant(text) == expected


@pytest.mark.parametrize("text,reason", [
    ("yesterday", "neither ISO 8601"),
    ("", "neither ISO 8601"),
    ("-5", "outside 1970..9999"),
    ("99999999999999999", "neither ISO 8601"),
    ("1969-12-31T23:59:59Z", "outside"),
    ("2026-13-01T00:00:00Z", "neither"),
    ("1' OR '1'='1", "neither"),
])
def test_bad_instants_say_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_instant(text)


def test_the_range_defaults_to_the_last_day():
    assert time_range(None, None, TS) == (TS - DAY_MS, TS)
    assert time_range(None, str(TS - 5), TS) == (TS - 5 - DAY_MS, TS - 5)
    assert time_range(str(TS - 10), None, TS) == (TS - 10, TS)
    with pytest.raises(ValueError, match="'from' must not be after 'to'"):
        time_range(str(TS), str(TS - 1), TS)


@pytest.mark.parametrize("text,expected", [
    (None, None), ("auto", None), ("AUTO", None), ("raw", 0), ("1m", MINUTE_MS), ("1h", HOUR_MS),
    ("300", 300_000), ("1", 1000),
])
def test_resolutions(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text", ["0", "-60", "1.5", "5min", "31622401", "1d", "raw;drop"])
def test_bad_resolutions_are_refused(text):
    with pytest.raises(ValueError, match="resolution must be"):
        parse_resolution(text)


def test_lists_keep_order_drop_duplicates_and_refuse_strangers():
    names = ("co2", "temperature", "humidity")
    assert parse_list(None, names, "metric") == list(names)
    assert parse_list(" humidity, co2,co2 ", names, "metric") == ["humidity", "co2"]
    with pytest.raises(ValueError, match="unknown metric 'pressure'"):
        parse_list("co2,pressure", names, "metric")


@pytest.mark.parametrize("bucket,plan", [
    (0, Plan(RAW, 0)), (5000, Plan(RAW, 5000)), (MINUTE_MS, Plan(MINUTE, MINUTE_MS)),
    (30 * MINUTE_MS, Plan(MINUTE, 30 * MINUTE_MS)), (90_000, Plan(RAW, 90_000)),
    (HOUR_MS, Plan(HOUR, HOUR_MS)), (6 * HOUR_MS, Plan(HOUR, 6 * HOUR_MS)),
])
def test_each_bucket_width_reads_the_cheapest_table(bucket, plan):
    assert plan_for(bucket) == plan


@pytest.mark.parametrize("span,raw,covers,plan", [
    (DAY_MS, 1500, True, Plan(RAW, 0)),  # raw fits
    (DAY_MS, 17_281, True, Plan(MINUTE, MINUTE_MS)),  # 24 h at 5 s: 1,440 minutes
    (HOUR_MS, 3601, True, Plan(RAW, 2000)),  # an hour at 1 Hz: 2 s buckets from raw
    (30 * DAY_MS, 2001, True, Plan(MINUTE, 30 * MINUTE_MS)),  # a month: 1,440 half hours
    (365 * DAY_MS, 2001, True, Plan(HOUR, 6 * HOUR_MS)),  # a year: 1,460 quarter days
    (HOUR_MS, 10, False, Plan(MINUTE, MINUTE_MS)),  # raw deleted by retention: rollups
    (50 * 365 * DAY_MS, 2001, True, Plan(HOUR, 2 * 168 * HOUR_MS)),  # decades: whole weeks
])
def test_auto_keeps_within_max_points(span, raw, covers, plan):
    chosen = auto_plan(span, raw, 2000, covers)
    assert chosen == plan
    assert chosen.bucket_ms == 0 or bucket_count(span, chosen.bucket_ms) <= 2002


def test_plan_names():
    assert [Plan(RAW, 0).name, Plan(MINUTE, MINUTE_MS).name, Plan(HOUR, HOUR_MS).name,
            Plan(MINUTE, 300_000).name] == ["raw", "1m", "1h", "300"]

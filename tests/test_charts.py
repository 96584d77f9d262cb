"""Chart choices in lib.charts: windows, sources, themes, precision, gaps and names."""
from __future__ import annotations

import pytest

from lib.catalogue import BUILTIN_METRICS, Metric
from lib.charts import (DAY_MS, HOUR, MINUTE, RAW, WINDOWS, chart_file_name, choose_source,
                        decimals_for, gap_breaks, is_render_name, render_name, theme_for, FILE_NAME)


def test_windows_are_24h_7d_30d():
    assert [(w.name, w.ms) for w in WINDOWS] == [("24h", DAY_MS), ("7d", 7 * DAY_MS), ("30d", 30 * DAY_MS)]
    assert WINDOWS[0].start(10 * DAY_MS) == 9 * DAY_MS


@pytest.mark.parametrize("raw,minute,expected", [
    (0, 0, RAW),
    (2000, 5000, RAW),          # exactly max_points still fits
    (2001, 2000, MINUTE),
    (17280, 1440, MINUTE),      # a day at one reading per 5 s
    (120960, 10080, HOUR),      # a week of the same
    (2001, 2001, HOUR),
])
def test_source_is_raw_then_minute_then_hour(raw, minute, expected):
    assert choose_source(raw, minute, 2000) == expected


def test_raw_is_skipped_when_retention_keeps_less_than_the_window():
    month = WINDOWS[2]
    assert choose_source(10, 10, 2000, month.ms, raw_kept_ms=7 * DAY_MS) == MINUTE
    assert choose_source(10, 10, 2000, month.ms, raw_kept_ms=30 * DAY_MS) == RAW


def test_max_points_must_be_positive():
    with pytest.raises(ValueError, match="max_points"):
        choose_source(0, 0, 0)


@pytest.mark.parametrize("metric,title,top,bottom", [
    ("temperature", "Temperature Monitoring", "#e28744", "#cede9f"),
    ("co2", "Carbon Dioxide Monitoring", "#13547a", "#80d0c7"),
    ("humidity", "Humidity Monitoring", "#5d6c81", "#afc9fa"),
])
def test_builtin_themes_keep_the_original_look(metric, title, top, bottom):
    theme = theme_for(metric)
    assert (theme.title, theme.top, theme.bottom) == (title, top, bottom)
    assert theme_for(next(m for m in BUILTIN_METRICS if m.name == metric)) == theme


@pytest.mark.parametrize("metric,title", [
    (Metric("pm2_5", "µg/m³", 0, 1000, "Fine dust"), "Fine dust Monitoring"),
    (Metric("air_pressure", "hPa", 300, 1100), "Air pressure Monitoring"),
    ("air_pressure", "Air pressure Monitoring"),
])
def test_other_metrics_get_their_label_and_a_default_gradient(metric, title):
    theme = theme_for(metric)
    assert theme.title == title
    assert theme.top.startswith("#") and theme.bottom.startswith("#") and theme.top != theme.bottom
    builtin = {(t.top, t.bottom) for t in map(theme_for, ("co2", "humidity", "temperature"))}
    assert (theme.top, theme.bottom) not in builtin


@pytest.mark.parametrize("low,high,digits", [
    (-40, 125, 2), (0, 40000, 0), (0, 100, 2), (0, 1000, 1), (0, 0.5, 5), (0, 1e-9, 6), (0, 1e9, 0),
])
def test_decimals_keep_five_significant_digits_of_the_range(low, high, digits):
    assert decimals_for(Metric("x", "u", low, high)) == digits


@pytest.mark.parametrize("times,floor,breaks", [
    ([], 10, set()),
    ([0, 5], 10, set()),
    ([0, 5, 10, 15, 20], 10, set()),
    ([0, 5, 10, 15, 100, 105], 10, {4}),        # 85 > max(10, 3 × 5)
    ([0, 5, 10, 15, 25, 30], 20, set()),        # 10 is a gap of the median but under the floor
    ([0, 60, 120, 180, 900, 960, 5000], 60, {4, 6}),
])
def test_gap_breaks(times, floor, breaks):
    assert gap_breaks(times, floor) == breaks


def test_render_names_sort_by_time_and_are_recognised():
    first, second = render_name(1_700_000_000_000), render_name(1_700_000_001_000)
    assert first.startswith("20231114T221320Z-") and first < second
    assert is_render_name(first) and is_render_name(render_name(0, "abc123"))
    assert render_name(1_700_000_000_000) != first  # a random id each time
    for bad in ("", "charts", "20231114T221320Z", "20231114T221320Z-../x", "20231114T221320Z-ABCDEF"):
        assert not is_render_name(bad)
    with pytest.raises(ValueError):
        render_name(0, "../../etc")


def test_chart_file_names():
    assert chart_file_name(7, "co2", "24h") == "device-7_co2_24h.html"
    assert FILE_NAME.fullmatch(chart_file_name(12, "pm2_5", "30d")).groups() == ("12", "pm2_5", "30d")

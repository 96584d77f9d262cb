"""lib.catalogue: built-in metrics, metric name rules, ranges and the Catalogue container."""
from __future__ import annotations

import dataclasses
import math

import pytest

from lib.catalogue import BUILTIN_METRICS, NAME_PATTERN, RESERVED_NAMES, Catalogue, Metric, check_name


def test_builtin_metrics():
    """The three built-ins, in order, with their units, ranges and labels."""
    assert [(m.name, m.unit, m.min_value, m.max_value, m.title) for m in BUILTIN_METRICS] == [
        ("co2", "ppm", 0, 40000, "Carbon dioxide"),
        ("temperature", "°C", -40, 125, "Temperature"),
        ("humidity", "%RH", 0, 100, "Humidity"),
    ]


def test_default_catalogue_is_the_builtins():
    """Catalogue() holds the built-ins in declaration order."""
    cat = Catalogue()
    assert cat.names == ("co2", "temperature", "humidity")
    assert len(cat) == 3 and list(cat) == list(BUILTIN_METRICS)
    assert cat["co2"].unit == "ppm" and cat.get("pressure") is None


@pytest.mark.parametrize("name", [
    "co2", "temperature", "pm2_5", "a", "x1", "a_", "a" * 32, "voc_index", "select", "drop",
])
def test_valid_names(name):
    """Lowercase identifiers of 1 to 32 characters starting with a letter are accepted."""
    assert check_name(name) == name
    assert Metric(name, "u", 0, 1).name == name


@pytest.mark.parametrize("name", [
    "co2; DROP TABLE reading",
    "co2); DROP TABLE reading; --",
    "co2`",
    "co2 -- comment",
    "co2'",
    'co2"',
    "co2/**/",
    "co2,ts",
    "CO2",
    "Temperature",
    "2co2",
    "_co2",
    "",
    " co2",
    "co2 ",
    "co2\n",
    "co2\nDROP",
    "pm2.5",
    "pm-25",
    "température",
    "a" * 33,
    "co2\x00",
])
def test_invalid_names(name):
    """Anything that is not a plain lowercase identifier is refused with the rule spelled out."""
    with pytest.raises(ValueError, match="must be lowercase letters, digits and _"):
        check_name(name)
    with pytest.raises(ValueError):
        Metric(name, "u", 0, 1)


@pytest.mark.parametrize("name", [None, 2, b"co2", ["co2"]])
def test_non_string_names(name):
    """Names that are not strings are refused with ValueError, not TypeError."""
    with pytest.raises(ValueError, match="must be lowercase letters"):
        check_name(name)


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names(name):
    """Columns of `reading` itself and protocol keys cannot be metrics."""
    assert NAME_PATTERN.match(name)
    with pytest.raises(ValueError, match=f"metric name '{name}' is reserved"):
        check_name(name)


def test_invalid_name_message_quotes_the_name():
    """The error shows the offending name with repr quoting, escapes included."""
    with pytest.raises(ValueError) as info:
        check_name("co2; DROP TABLE reading")
    assert str(info.value) == ("metric name 'co2; DROP TABLE reading' must be lowercase letters, "
                               "digits and _, starting with a letter, at most 32 characters")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("humidity", 140.0, "humidity 140.0 is outside 0..100"),
    ("humidity", -0.5, "humidity -0.5 is outside 0..100"),
    ("temperature", -40.01, "temperature -40.01 is outside -40..125"),
    ("temperature", 125.5, "temperature 125.5 is outside -40..125"),
    ("co2", 40001.0, "co2 40001.0 is outside 0..40000"),
    ("co2", 1e300, "co2 1e+300 is outside 0..40000"),
])
def test_range_errors(name, value, message):
    """Out-of-range values get a message with the metric, the value and the range."""
    assert Catalogue()[name].range_error(value) == message


@pytest.mark.parametrize(("name", "value"), [
    ("humidity", 0.0), ("humidity", 100.0), ("temperature", -40.0), ("temperature", 125.0),
    ("co2", 0.0), ("co2", 40000.0), ("temperature", 21.5), ("humidity", 0),
])
def test_in_range_values_including_bounds(name, value):
    """Both bounds belong to the valid range."""
    assert Catalogue()[name].range_error(value) is None


def test_range_error_formats_fractional_bounds():
    """Bounds that are not whole numbers keep their decimals."""
    metric = Metric("ph", "pH", 0.5, 14.25)
    assert metric.range_error(15.0) == "ph 15.0 is outside 0.5..14.25"
    assert metric.range_error(float("nan")) is not None


@pytest.mark.parametrize(("low", "high", "message"), [
    (1, 1, "metric m: min 1 must be below max 1"),
    (5, 0, "metric m: min 5 must be below max 0"),
    (math.nan, 1, "metric m: range must be finite numbers"),
    (0, math.nan, "metric m: range must be finite numbers"),
    (-math.inf, 0, "metric m: range must be finite numbers"),
    (0, math.inf, "metric m: range must be finite numbers"),
])
def test_metric_range_invariants(low, high, message):
    """A metric needs a finite range with min strictly below max."""
    with pytest.raises(ValueError) as info:
        Metric("m", "u", low, high)
    assert str(info.value) == message


def test_metric_is_immutable_and_slotted():
    """Metrics cannot be changed after validation."""
    metric = Metric("pressure", "hPa", 300, 1100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.max_value = 1e9
    assert not hasattr(metric, "__dict__")


@pytest.mark.parametrize(("name", "label", "title"), [
    ("pm2_5", "", "Pm2 5"), ("pressure", "", "Pressure"), ("pm2_5", "Fine dust", "Fine dust"),
])
def test_title(name, label, title):
    """The title is the label, or the name made readable."""
    assert Metric(name, "u", 0, 1, label).title == title


def test_catalogue_lookup_helpers():
    """contains, get, unknown and as_dicts agree with the metrics given."""
    pressure = Metric("pressure", "hPa", 300, 1100, "Air pressure")
    cat = Catalogue([*BUILTIN_METRICS, pressure])
    assert "pressure" in cat and "co2" in cat and "wind" not in cat and None not in cat
    assert cat.names == ("co2", "temperature", "humidity", "pressure")
    assert cat.unknown(["co2", "wind", "pressure", "rain"]) == ["wind", "rain"]
    assert cat.as_dicts()[-1] == {"name": "pressure", "unit": "hPa", "min": 300, "max": 1100,
                                  "label": "Air pressure"}
    assert [d["label"] for d in cat.as_dicts()[:3]] == ["Carbon dioxide", "Temperature", "Humidity"]
    with pytest.raises(KeyError):
        cat["wind"]


def test_empty_catalogue():
    """A catalogue may be empty; it then knows no metric."""
    cat = Catalogue([])
    assert len(cat) == 0 and cat.names == () and "co2" not in cat and cat.as_dicts() == []

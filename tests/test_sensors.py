"""Sensor readers: the SCD-30 against a fake I2C device, the simulator, the factory."""
from __future__ import annotations

import importlib.util
import logging
import math
import statistics

import pytest

from lib.catalogue import BUILTIN_METRICS
from Pi_Sensor.sensors import SENSORS, Scd30Sensor, SensorError, SimulatedSensor, make_sensor

MIDNIGHT = 1_790_035_200  # 2026-09-22 00:00:00 UTC, in epoch seconds


class FakeScd30:
    """Stands in for scd30_i2c.SCD30: queued (ready, measurement) pairs, calls recorded."""

    def __init__(self, *samples) -> None:
        self.samples = list(samples)
        self.calls: list[tuple] = []
        self._next = None

    def set_measurement_interval(self, seconds) -> None:
        self.calls.append(("set_measurement_interval", seconds))

    def start_periodic_measurement(self) -> None:
        self.calls.append(("start_periodic_measurement",))

    def get_data_ready(self) -> bool:
        ready, self._next = self.samples.pop(0)
        self.calls.append(("get_data_ready",))
        return ready

    def read_measurement(self):
        self.calls.append(("read_measurement",))
        measurement, self._next = self._next, None
        return measurement


def test_ready_measurement_is_returned():
    """A ready measurement comes back as co2/temperature/humidity."""
    sensor = Scd30Sensor(FakeScd30((True, (612.4567, 21.2341, 40.5))), interval_s=5)
    assert sensor.read() == {"co2": 612.457, "temperature": 21.234, "humidity": 40.5}


def test_sensor_is_configured_then_started():
    """The interval is set before periodic measurement starts."""
    device = FakeScd30()
    Scd30Sensor(device, interval_s=5)
    assert device.calls == [("set_measurement_interval", 5), ("start_periodic_measurement",)]


def test_not_ready_gives_none_never_a_stale_value(caplog):
    """A not-ready call after a ready one returns None, without reading the device."""
    caplog.set_level(logging.INFO, logger="Pi_Sensor.sensors")
    device = FakeScd30((True, (600.0, 21.0, 40.0)), (False, None), (False, None),
                       (True, (650.0, 22.0, 41.0)))
    sensor = Scd30Sensor(device, interval_s=2)
    assert sensor.read() == {"co2": 600.0, "temperature": 21.0, "humidity": 40.0}
    assert sensor.read() is None
    assert sensor.read() is None
    assert sensor.read() == {"co2": 650.0, "temperature": 22.0, "humidity": 41.0}
    assert device.calls.count(("read_measurement",)) == 2
    assert "no measurement ready" in caplog.text


def test_unreadable_measurement_gives_none(caplog):
    """read_measurement() returning None (I2C/CRC error) gives None and a warning."""
    sensor = Scd30Sensor(FakeScd30((True, None)))
    assert sensor.read() is None
    assert "could not be read" in caplog.text


@pytest.mark.parametrize("measurement", [
    (math.nan, 21.0, 40.0),
    (600.0, math.nan, 40.0),
    (600.0, 21.0, math.nan),
    (math.inf, 21.0, 40.0),
    (600.0, -math.inf, 40.0),
])
def test_non_finite_measurement_gives_none(measurement, caplog):
    """NaN or infinity anywhere discards the whole measurement."""
    sensor = Scd30Sensor(FakeScd30((True, measurement)))
    assert sensor.read() is None
    assert "non-finite" in caplog.text


@pytest.mark.parametrize("interval,expected", [(0.1, 2), (1, 2), (1.99, 2), (2, 2), (2.5, 2),
                                               (5, 5), (60.0, 60)])
def test_interval_clamped_to_two_seconds(interval, expected):
    """The SCD-30 measures at least every 2 s, in whole seconds."""
    device = FakeScd30()
    Scd30Sensor(device, interval_s=interval)
    assert device.calls[0] == ("set_measurement_interval", expected)


def test_device_errors_propagate():
    """An OSError from the bus reaches the caller (the client logs and skips it)."""
    class Broken(FakeScd30):
        def get_data_ready(self):
            raise OSError(121, "Remote I/O error")

    with pytest.raises(OSError):
        Scd30Sensor(Broken()).read()


@pytest.mark.skipif(importlib.util.find_spec("scd30_i2c") is not None,
                    reason="scd30_i2c is installed here")
def test_missing_driver_gives_install_hint():
    """Without the scd30_i2c package, make_sensor('scd30') says what to install."""
    with pytest.raises(SensorError, match="scd30_i2c") as info:
        make_sensor("scd30", interval_s=5)
    assert "pip install scd30-i2c" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_unknown_sensor_lists_choices():
    """An unknown name is refused, naming the sensors that exist."""
    with pytest.raises(SensorError, match="unknown sensor 'nope'") as info:
        make_sensor("nope")
    for name in SENSORS:
        assert name in str(info.value)


def test_make_sensor_builds_simulator():
    """make_sensor('simulate') passes its options on."""
    sensor = make_sensor("simulate", seed=3, clock=lambda: MIDNIGHT)
    assert isinstance(sensor, SimulatedSensor)
    assert sensor.read() == SimulatedSensor(seed=3, clock=lambda: MIDNIGHT).read()


def simulated_day(seed: int, step_s: int = 60) -> list[tuple[int, dict[str, float]]]:
    """(second of day, values) for a whole simulated day."""
    now = [MIDNIGHT]
    sensor = SimulatedSensor(seed=seed, clock=lambda: now[0])
    day = []
    for second in range(0, 86400, step_s):
        now[0] = MIDNIGHT + second
        day.append((second, sensor.read()))
    return day


@pytest.mark.parametrize("seed", [0, 1, 2, 99])
def test_simulated_values_within_catalogue(seed):
    """Every value over a whole day is inside the metric's valid range."""
    for _, values in simulated_day(seed):
        assert set(values) == {m.name for m in BUILTIN_METRICS}
        for metric in BUILTIN_METRICS:
            assert metric.range_error(values[metric.name]) is None, values
            assert isinstance(values[metric.name], float)


def test_simulated_seed_is_reproducible():
    """The same seed and clock give the same values; another seed does not."""
    assert simulated_day(5) == simulated_day(5)
    assert simulated_day(5) != simulated_day(6)


def test_simulated_unseeded_sensors_differ():
    """Without a seed, two simulators draw different noise."""
    a = SimulatedSensor(clock=lambda: MIDNIGHT)
    b = SimulatedSensor(clock=lambda: MIDNIGHT)
    assert [a.read() for _ in range(5)] != [b.read() for _ in range(5)]


def test_simulated_daily_cycle():
    """CO₂ and temperature are higher around noon than around midnight; humidity lower."""
    day = simulated_day(seed=7, step_s=30)

    def mean(metric, hours):
        return statistics.mean(v[metric] for s, v in day if s // 3600 in hours)

    noon, night = {11, 12}, {23, 0}
    assert mean("co2", noon) > mean("co2", night) + 500
    assert mean("temperature", noon) > mean("temperature", night) + 2
    assert mean("humidity", noon) < mean("humidity", night) - 5


def test_simulated_night_is_flat():
    """Between 18:00 and 06:00 (no occupancy) CO₂ hovers around its baseline."""
    night = [v["co2"] for s, v in simulated_day(seed=4) if s < 6 * 3600 or s >= 18 * 3600]
    assert 440 < statistics.mean(night) < 460

"""Sensor readers: each returns a dict of metric values, or None when not ready."""
from __future__ import annotations

import logging
import math
import random
import time
from typing import Callable, Protocol

log = logging.getLogger(__name__)


class SensorError(RuntimeError):
    """The sensor cannot be used at all (missing driver, no device on the bus)."""


class Sensor(Protocol):
    """A sensor: `read()` blocks briefly and returns metric values or None."""

    def read(self) -> dict[str, float] | None: ...


class Scd30Sensor:
    """Sensirion SCD-30 (CO₂, temperature, humidity) over I2C via the `scd30_i2c` package."""

    def __init__(self, device=None, interval_s: float = 2) -> None:
        if device is None:
            device = _open_scd30()
        self._device = device
        self._device.set_measurement_interval(max(2, int(interval_s)))
        self._device.start_periodic_measurement()

    def read(self) -> dict[str, float] | None:
        """Return a fresh measurement, or None when the sensor has none ready (never a stale one)."""
        if not self._device.get_data_ready():
            log.info("scd30: no measurement ready, skipping this interval")
            return None
        measurement = self._device.read_measurement()
        if measurement is None:
            log.warning("scd30: measurement could not be read (I2C error), skipping")
            return None
        co2, temperature, humidity = measurement
        values = {"co2": co2, "temperature": temperature, "humidity": humidity}
        if not all(math.isfinite(v) for v in values.values()):
            log.warning("scd30: discarding a non-finite measurement %r", values)
            return None
        return {k: round(v, 3) for k, v in values.items()}


def _open_scd30():
    """Import the driver only when the SCD-30 is chosen, with a clear message if absent."""
    try:
        from scd30_i2c import SCD30
    except ImportError as exc:
        raise SensorError("the scd30 sensor needs the scd30_i2c package: "
                          ".venv/bin/pip install scd30-i2c (and enable I2C with raspi-config)") from exc
    try:
        return SCD30()
    except OSError as exc:
        raise SensorError(f"no SCD-30 found on the I2C bus: {exc}") from exc


class SimulatedSensor:
    """Plausible indoor air: a daily cycle plus noise, for demos and tests."""

    def __init__(self, seed: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self._random = random.Random(seed)
        self._clock = clock

    def read(self) -> dict[str, float]:
        """Return values that follow the time of day (people in the room by day)."""
        day = 2 * math.pi * ((self._clock() % 86400) / 86400)
        occupied = max(0.0, math.sin(day - math.pi / 2))  # peaks at noon UTC
        noise = self._random.gauss
        return {
            "co2": round(450 + 700 * occupied + noise(0, 15), 1),
            "temperature": round(19.5 + 3 * occupied + noise(0, 0.15), 2),
            "humidity": round(min(100.0, max(0.0, 45 - 8 * occupied + noise(0, 1))), 1),
        }


SENSORS: dict[str, Callable[..., Sensor]] = {"scd30": Scd30Sensor, "simulate": SimulatedSensor}


def make_sensor(name: str, **options) -> Sensor:
    """Build the sensor called `name`; adding a sensor is one class and one entry above."""
    try:
        factory = SENSORS[name]
    except KeyError:
        raise SensorError(f"unknown sensor {name!r}; choose from {', '.join(SENSORS)}") from None
    return factory(**options)

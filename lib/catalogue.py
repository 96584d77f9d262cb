"""The metric catalogue: what a device may report, in which unit, within which range."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

# Metric names become column names, so they are restricted to safe SQL identifiers.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED_NAMES = frozenset({"device_id", "ts", "seq", "id"})


def check_name(name: str) -> str:
    """Return `name` if it can be a metric (and column) name, else raise ValueError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"metric name {name!r} must be lowercase letters, digits and _, "
                         "starting with a letter, at most 32 characters")
    if name in RESERVED_NAMES:
        raise ValueError(f"metric name {name!r} is reserved")
    return name


@dataclass(frozen=True, slots=True)
class Metric:
    """One measurable quantity with its unit and the range of physically valid values."""

    name: str
    unit: str
    min_value: float
    max_value: float
    label: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        if not (math.isfinite(self.min_value) and math.isfinite(self.max_value)):
            raise ValueError(f"metric {self.name}: range must be finite numbers")
        if self.min_value >= self.max_value:
            raise ValueError(f"metric {self.name}: min {self.min_value} must be below max {self.max_value}")

    @property
    def title(self) -> str:
        """Human name for charts and tables."""
        return self.label or self.name.replace("_", " ").capitalize()

    def range_error(self, value: float) -> str | None:
        """Return why `value` is outside the valid range, or None when it is inside."""
        if self.min_value <= value <= self.max_value:
            return None
        return f"{self.name} {value!r} is outside {_fmt(self.min_value)}..{_fmt(self.max_value)}"


BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric("co2", "ppm", 0, 40000, "Carbon dioxide"),
    Metric("temperature", "°C", -40, 125, "Temperature"),
    Metric("humidity", "%RH", 0, 100, "Humidity"),
)


class Catalogue:
    """An ordered, immutable set of metrics looked up by name."""

    __slots__ = ("_metrics", "names")

    def __init__(self, metrics: Iterable[Metric] = BUILTIN_METRICS) -> None:
        self._metrics: dict[str, Metric] = {m.name: m for m in metrics}
        self.names: tuple[str, ...] = tuple(self._metrics)

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __getitem__(self, name: str) -> Metric:
        return self._metrics[name]

    def __iter__(self):
        return iter(self._metrics.values())

    def __len__(self) -> int:
        return len(self._metrics)

    def get(self, name: str) -> Metric | None:
        """Return the metric called `name`, or None."""
        return self._metrics.get(name)

    def unknown(self, names: Iterable[str]) -> list[str]:
        """Return the names in `names` that the catalogue does not know."""
        return [n for n in names if n not in self._metrics]

    def as_dicts(self) -> list[Mapping[str, object]]:
        """Return the catalogue as JSON-ready dicts."""
        return [{"name": m.name, "unit": m.unit, "min": m.min_value, "max": m.max_value,
                 "label": m.title} for m in self]


def _fmt(x: float) -> str:
    """Format a range bound without a needless .0."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))

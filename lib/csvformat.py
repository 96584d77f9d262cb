"""CSV text of exported readings: ISO 8601 UTC time, epoch ms, then each value as repr of its float.

The export formats a page at a time. Per row it looks up, rather than computes, what repeats:
the 'YYYY-MM-DDTHH:MM:' prefix of the row's minute, the 'SS.mmmZ' of its millisecond in that
minute, and the text of each value (sensor values repeat a lot). Both caches are bounded.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

from lib.validation import ms_to_iso

MINUTE_MS = 60_000
# Bounds of the per-export caches: a few MB at most, whatever the data.
MAX_CACHED_VALUES = 20_000
MAX_CACHED_MINUTES = 4_096


@lru_cache(maxsize=1)
def _minute_tails() -> tuple[str, ...]:
    """'SS.mmmZ,' of each millisecond of a minute (60,000 strings, built once per process)."""
    return tuple(f"{s:02d}.{ms:03d}Z," for s in range(60) for ms in range(1000))


class _Values(dict):
    """Cell text of a value, by value: '' for None or '' (a NULL), else repr of the float."""

    def __init__(self) -> None:
        super().__init__({None: "", "": ""})

    def __missing__(self, value) -> str:
        text = repr(float(value))
        # 0.0 == -0.0 as keys, but their reprs differ: zeros (other than texts) stay out.
        if type(value) is str or value:
            if len(self) >= MAX_CACHED_VALUES:
                self.clear()
                self.update({None: "", "": ""})
            self[value] = text
        return text


class CsvFormatter:
    """Formats pages of (ts_ms, *values) rows into CSV lines; one per export (its caches)."""

    def __init__(self) -> None:
        self._values = _Values()
        self._minutes: dict[int, str] = {}
        self._tails = _minute_tails()

    def _minute(self, minute: int) -> str:
        """'YYYY-MM-DDTHH:MM:' of a minute since the epoch."""
        if len(self._minutes) >= MAX_CACHED_MINUTES:
            self._minutes.clear()
        prefix = self._minutes[minute] = ms_to_iso(minute * MINUTE_MS)[:-7]
        return prefix

    def page(self, rows: Iterable[Sequence]) -> str:
        """CSV lines ('\\r\\n' ends) of rows whose values are numbers, None, or their decimal texts."""
        minutes, tails = self._minutes, self._tails
        cell = self._values.__getitem__  # map over a C method: no Python frame per value
        out = []
        append = out.append
        for row in rows:
            ts = row[0]
            minute, rest = divmod(ts, MINUTE_MS)
            prefix = minutes.get(minute) or self._minute(minute)
            append(f"{prefix}{tails[rest]}{ts},{','.join(map(cell, row[1:]))}\r\n")
        return "".join(out)


def header(columns: Sequence[str]) -> str:
    """The header line of an export."""
    return ",".join(columns) + "\r\n"

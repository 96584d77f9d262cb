"""A full disk under var/ (a small tmpfs): no ack with a reason, no half chart files, recovery."""
from __future__ import annotations

import pytest

from bench.fault_crashes import MountRefused, disk_full
from lib.ingest import DB_FULL
from tests.conftest import IN_CI


def test_disk_full(tmp_path):
    """The SQLite database and the charts on a 4 MiB tmpfs that is filled, then emptied."""
    try:
        result = disk_full(tmp_path)
    except MountRefused as exc:
        if IN_CI:
            pytest.fail(f"{exc} (CI=true: run the tests as root, or where mount is permitted)")
        pytest.skip(str(exc))
    print(result)
    assert result.problems == []
    assert result.figures["refusal"] == DB_FULL  # the device is told why, not just "unavailable"
    assert result.stored == result.sent > 0

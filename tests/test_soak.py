"""bench.soak: its histogram percentiles, and a few seconds of the whole soak with tiny sizes."""
import re
import subprocess
import sys
from collections import Counter

import pymysql
import pytest

from bench import soak_report
from lib.config import REPO_ROOT
from tests.conftest import MYSQL, require_rabbitmq, require_service


@pytest.mark.parametrize("hist, fraction, expected", [
    (Counter(), 0.99, None),  # nothing measured: nan
    (Counter({7: 1}), 0.5, 7),
    (Counter({7: 1}), 0.99, 7),
    (Counter({1: 99, 50: 1}), 0.99, 1),  # the 99th of 100 values
    (Counter({1: 98, 50: 2}), 0.99, 50),
    (Counter({3: 10, 1: 10, 2: 10}), 0.5, 2),  # buckets come in any order
    (Counter({0: 5, 10: 5}), 1.0, 10),
])
def test_percentile_of_histogram(hist, fraction, expected):
    value = soak_report.percentile(hist, fraction)
    assert value != value if expected is None else value == expected


def test_ack_latency_buckets_are_tenths_of_a_millisecond():
    assert soak_report.ack_ms(Counter({123: 1}), 0.99) == pytest.approx(12.3)


def test_soak_quick_run():
    """20 devices, 2 viewers, the worker with beat, RabbitMQ: nothing lost, the tables printed."""
    try:
        pymysql.connect(**MYSQL, connect_timeout=5).close()
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    require_rabbitmq()
    out = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0.05", "--devices", "20", "--rate", "100",
         "--viewers", "2", "--rollup-seconds", "1", "--retention-seconds", "1", "--broker", "rabbitmq",
         "--no-plot"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.split()[:1] == ["t"] and "p99 ack" in line for line in lines)
    for check, value in [("lost (acked, not in the database)", "0"),
                         ("duplicated (acked twice, unexpected ack)", "0"),
                         ("unanswered, not sent, bad replies, errors", "0, 0, 0, 0"),
                         ("worker tasks failed", "0")]:
        [cells] = [re.split(r"\s{2,}", line.strip()) for line in lines if line.strip().startswith(check)]
        assert cells[1] == value and cells[-1] == "PASS", cells
    [rolled] = [re.split(r"\s{2,}", line.strip()) for line in lines
                if line.strip().startswith("rollups hold every reading")]
    assert rolled[-1] == "PASS", rolled
    assert "live readings received / expected" in out.stdout

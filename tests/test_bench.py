"""The benchmarks still run end to end (tiny sizes; their figures are not judged here)."""
import subprocess
import sys

from lib.config import REPO_ROOT
from tests.conftest import MYSQL, require_service

import pymysql
import pytest


def test_bench_ingest_quick_run():
    try:
        pymysql.connect(**MYSQL, connect_timeout=5).close()
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    out = subprocess.run([sys.executable, "-m", "bench.ingest", "--quick"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for figure in ("batched:", "single closed loop:", "open loop p99 ack latency:", "idle RSS"):
        assert figure in out.stdout


@pytest.mark.parametrize("bench, figures", [
    ("rollup", ("rollup of all pending:", "rollup throughput:", "insert with marks / without:")),
    ("charts", ("draw_all first run:", "per chart:", "files per run: 18", "bytes per run:")),
    ("keepup", ("ingest alone:", "ingest with rollups:", "rollup check:")),
    ("web", ("readings 30 days auto median:", "readings 1 year 1h p95:", "devices list (12 devices) median:",
             "csv export:", "csv worker peak RSS during:", "http ingest:", "http / websocket:",
             "page 30 days first chart cold median:", "page 30 days first chart warm p95:")),
])
def test_bench_quick_run(bench, figures):
    """The background-task and web benches run and print their figures."""
    try:
        pymysql.connect(**MYSQL, connect_timeout=5).close()
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    out = subprocess.run([sys.executable, "-m", f"bench.{bench}", "--quick"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for figure in figures:
        assert figure in out.stdout

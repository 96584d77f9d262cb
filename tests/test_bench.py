"""The ingest benchmark still runs end to end (tiny sizes; its figures are not judged here)."""
import subprocess
import sys

from lib.config import REPO_ROOT
from tests.conftest import MYSQL, require_service

import pymysql


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


def test_bench_rollup_quick_run():
    try:
        pymysql.connect(**MYSQL, connect_timeout=5).close()
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    out = subprocess.run([sys.executable, "-m", "bench.rollup", "--quick"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for figure in ("rollup of all pending:", "rollup throughput:", "insert with marks / without:"):
        assert figure in out.stdout


def test_bench_charts_quick_run():
    try:
        pymysql.connect(**MYSQL, connect_timeout=5).close()
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    out = subprocess.run([sys.executable, "-m", "bench.charts", "--quick"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for figure in ("draw_all first run:", "per chart:", "files per run: 18", "bytes per run:"):
        assert figure in out.stdout

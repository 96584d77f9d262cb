"""A gunicorn worker SIGKILLed mid-request: the client sees an error, never a whole-looking answer."""
from __future__ import annotations

from bench.fault_crashes import web_worker_killed
from tests.conftest import mysql_settings


def test_web_worker_killed_mid_request(make_database, tmp_path):
    """An HTTP ingest request held on a table lock, then a streamed CSV export, each lose their worker."""
    result = web_worker_killed(mysql_settings(make_database("faults")), tmp_path)
    print(result)
    assert result.problems == []
    assert result.stored == result.sent == 50
    assert result.figures["killed CSV"] in ("IncompleteRead", "ProtocolError", "ConnectionResetError")

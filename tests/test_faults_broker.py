"""RabbitMQ going away (its proxy cut): ingest acks, browsers get live values, the worker catches up."""
from __future__ import annotations

from bench.fault_scenarios import broker_outage
from tests.conftest import mysql_settings, require_rabbitmq


def test_broker_outage(make_database, tmp_path):
    """A 4 s outage: a device sending 20 readings/s, a /live viewer, a worker, beat and an alert rule."""
    require_rabbitmq()
    result = broker_outage(mysql_settings(make_database("faults")), tmp_path, outage_s=4.0)
    print(result)
    assert result.problems == []
    assert result.lost == result.duplicated == 0 and result.stored == result.sent > 0
    assert result.figures["live during outage"] == result.figures["acked during outage"] > 0

"""lib/livebus.py against the real RabbitMQ: returned messages pause a publisher."""
from __future__ import annotations

import os
import resource
import time
import uuid

import pytest

from lib import livebus
from tests.conftest import RABBITMQ, require_rabbitmq

URL = f"amqp://guest:guest@{RABBITMQ['host']}:{RABBITMQ['port']}//"


@pytest.fixture
def many_descriptors():
    """Hold descriptors until new ones are numbered above 1024 (an ingest server with 1,000 devices)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    read, write = os.pipe()
    held = [os.dup(read) for _ in range(1100)]
    yield
    for fd in held + [read, write]:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("high_fds", [False, True], ids=["few-descriptors", "over-1024-descriptors"])
def test_a_message_nobody_takes_pauses_the_sink(request, high_fds):
    require_rabbitmq()
    if high_fds:
        request.getfixturevalue("many_descriptors")
    sink = livebus.AmqpSink(URL, f"test-{uuid.uuid4().hex[:10]}.live")
    try:
        assert sink.wanted() and sink(b'{"readings":[]}')  # published: no queue is bound to take it
        deadline = time.monotonic() + 5
        while sink.poll():  # the return arrives and is read
            assert time.monotonic() < deadline, "RabbitMQ's return never paused the sink"
            time.sleep(0.02)
        assert not sink.wanted() and sink.connected  # read through the connection, not by losing it
        time.sleep(livebus.PROBE_S)
        assert sink.wanted()  # time to try again
    finally:
        sink.close()

"""The embedded broker's transport: every message is read whole, by exactly one consumer."""
from __future__ import annotations

import threading

import kombu
import pytest

from lib import fs_transport

MESSAGES = 150
PAD = 2_000_000  # large enough that kombu's plain channel is caught reading a partial file


def connection(folder) -> kombu.Connection:
    """A connection to the embedded broker in `folder`."""
    (folder / "broker").mkdir(exist_ok=True)
    (folder / "control").mkdir(exist_ok=True)
    return kombu.Connection(f"{fs_transport.SCHEME}://", transport_options={
        "data_folder_in": str(folder / "broker"), "data_folder_out": str(folder / "broker"),
        "control_folder": str(folder / "control"), "polling_interval": 0.01})


def test_scheme_resolves_to_the_atomic_transport(tmp_path):
    """sensorsfs:// is this module's transport, not kombu's plain filesystem one."""
    with connection(tmp_path) as conn:
        assert isinstance(conn.transport, fs_transport.Transport)
        assert conn.default_channel.__class__ is fs_transport.Channel


def test_concurrent_producers_and_consumers_lose_and_repeat_nothing(tmp_path):
    """Large messages written and taken by several threads at once arrive whole, each once."""
    queue = kombu.Queue("q", routing_key="q")
    received: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Event()

    def produce(start: int) -> None:
        with connection(tmp_path) as conn:
            producer = conn.Producer()
            for i in range(start, MESSAGES, 3):
                producer.publish({"i": i, "pad": "x" * PAD}, routing_key="q", declare=[queue],
                                 serializer="json")

    def consume() -> None:
        try:
            with connection(tmp_path) as conn:
                simple = conn.SimpleQueue(queue)
                while not done.is_set():
                    try:
                        message = simple.get(timeout=0.05)
                    except simple.Empty:
                        continue
                    assert len(message.payload["pad"]) == PAD
                    with lock:
                        received.append(message.payload["i"])
                        if len(received) >= MESSAGES:
                            done.set()
                    message.ack()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
            done.set()

    consumers = [threading.Thread(target=consume) for _ in range(3)]
    producers = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    for thread in consumers + producers:
        thread.start()
    for thread in producers:
        thread.join(60)
    done.wait(60)
    done.set()
    for thread in consumers:
        thread.join(10)
    assert not errors, errors
    assert sorted(received) == list(range(MESSAGES))
    assert not [p for p in (tmp_path / "broker").rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", ["1_a.q.msg.part", "1_b.other.msg", "notes.txt"])
def test_consumer_ignores_other_files(tmp_path, name):
    """Partial writes and other queues' messages are left alone."""
    with connection(tmp_path) as conn:
        (tmp_path / "broker" / name).write_text("{")
        simple = conn.SimpleQueue(kombu.Queue("q", routing_key="q"))
        with pytest.raises(simple.Empty):
            simple.get(timeout=0.2)
    assert (tmp_path / "broker" / name).exists()

"""The live bus: carries committed readings from the ingest paths to every server of /live.

With RabbitMQ ([rabbitmq] host set) messages go to the fanout exchange "<[celery] queue>.live",
and every /live server consumes it through its own exclusive, auto-delete queue, so a browser
sees every device whichever ingest server its Pi uses. A server binds its queue only while
browsers watch it, and publishers send with the `mandatory` flag: RabbitMQ returns a message
that no queue takes, and the publisher then skips encoding and sending for PROBE_S seconds, so
an installation nobody watches pays almost nothing for live data. With the embedded defaults
the ingest server listens on the unix datagram socket var_dir/live.sock, and gunicorn's workers
send to it, fire-and-forget. Either way a message is lost rather than ever holding up an ingest path.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import select
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from lib import live, storage
from lib.config import Config
from lib.ratelimit import LogLimiter

log = logging.getLogger(__name__)

SOCKET_FILE = "live.sock"
NAMES_RETRY_S = 5.0  # an unknown device id re-reads the names at most this often
MAX_PENDING = 10_000  # batches waiting for the publisher thread; more are dropped
RECONNECT_S = (0.5, 10.0)  # first and longest wait between broker connection attempts
# While nobody watches, a publisher sends one message this often to find out whether someone
# does now; a server tells its browsers it is ready (they fetch what they missed) this long
# after binding its queue, when every publisher has found out.
PROBE_S = 1.0
SETTLE_S = PROBE_S + 0.5
SENT_HEADER = "sent"  # monotonic time of publishing, so a late return does not silence new messages
# A /live server's queue keeps at most this many messages, each at most this old, when the
# server falls behind (or hangs): live data that old is of no use to anyone.
QUEUE_ARGUMENTS = {"x-max-length": 10_000, "x-overflow": "drop-head", "x-message-ttl": 30_000}

Sink = Callable[[bytes], None]
RawRows = Callable[[], Iterable[tuple]]  # (device_id, ts_ms, {metric: value}) of committed readings
_log_limit = LogLimiter(burst=1, interval=60.0)


def _warn(key: str, message: str, *args) -> None:
    """A warning, at most one a minute per kind (a broker that is down says so once)."""
    if _log_limit.allow(key) is not None:
        log.warning(message, *args)


def exchange_name(settings: Config) -> str:
    """The fanout exchange of this installation (two installations may share one RabbitMQ)."""
    return f"{settings.celery.queue}.live"


def socket_path(settings: Config) -> Path:
    """The unix datagram socket of the embedded bus."""
    return settings.var_dir / SOCKET_FILE


def committed_rows(batch: Sequence[tuple[Sequence[str], Sequence]], outcomes: Sequence) -> Iterable[tuple]:
    """(device_id, ts_ms, {metric: value}) of the rows of a group commit batch that the
    database stored (outcome {row index: reason} of failures)."""
    for (names, rows), failed in zip(batch, outcomes):
        if isinstance(failed, BaseException):
            continue
        for i, row in enumerate(rows):
            if not failed or i not in failed:
                yield row[0], row[1], dict(zip(names, row[2:]))


def parsed_rows(device_id: int, readings: Sequence) -> Iterable[tuple]:
    """(device_id, ts_ms, {metric: value}) of validated readings (lib.validation.Reading)."""
    return ((device_id, r.ts_ms, r.values) for r in readings)


class DeviceNames:
    """Device id -> name, re-read from the database when an id is unknown (not more often than
    every NAMES_RETRY_S)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._names: dict[int, str] = {}
        self._read_at = -NAMES_RETRY_S

    def lookup(self, device_ids: Iterable[int]) -> dict[int, str]:
        """The names known for the ids; re-read first when one is missing."""
        if any(d not in self._names for d in device_ids) and time.monotonic() - self._read_at >= NAMES_RETRY_S:
            self._read_at = time.monotonic()
            try:
                self._names = {d.id: d.name for d in storage.list_devices(self.engine)}
            except SQLAlchemyError as exc:
                _warn("names", "live: cannot read device names: %s", storage.describe_error(exc))
        return self._names


class Publisher:
    """A thread that turns committed rows into messages and hands them to a sink.

    put() only appends to a queue, so the ingest paths never wait for encoding, name look-ups
    or the broker; batches that arrive while a message is being sent go into the next one.
    """

    def __init__(self, sink: Sink, names: DeviceNames, batch_readings: int) -> None:
        self._sink = sink
        self._names = names
        self._batch = batch_readings
        self._queue: queue.SimpleQueue[RawRows | None] = queue.SimpleQueue()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="live-publisher", daemon=True)
        self._thread.start()

    @property
    def wanted(self) -> bool:
        """False while the sink knows nobody watches: put() may then be skipped altogether."""
        wanted = getattr(self._sink, "wanted", None)
        return wanted is None or wanted()

    def put(self, rows: RawRows) -> None:
        """Queue rows for publishing (a callable, evaluated in the publisher thread)."""
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            _warn("pending", "live: publisher behind, readings not published (%d batches so far)",
                  self.dropped)
            return
        self._queue.put(rows)

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while not self._queue.empty() and len(items) < 1000:
                items.append(self._queue.get_nowait())
            rows = [row for item in items if item is not None for row in item()]
            if rows:
                self._send(rows)
            if None in items:
                return

    def _send(self, rows: list[tuple]) -> None:
        poll = getattr(self._sink, "poll", None)
        if poll is not None and not poll():
            return  # nobody watches: not worth encoding
        names = self._names.lookup({r[0] for r in rows})
        readings = [live.reading(d, names.get(d, ""), ts, values) for d, ts, values in rows]
        for part in live.chunks(readings, self._batch):
            try:
                self._sink(live.encode(part))
            except Exception as exc:  # a sink that fails loses the message, never the thread
                _warn("sink", "live: message not published: %s", exc)


class AmqpSink:
    """Publishes messages to the fanout exchange (used by one thread: the publisher's).

    Messages go out `mandatory`: one that no queue takes comes back, telling this sink that
    nobody watches; it then claims not to be wanted for PROBE_S seconds.
    """

    def __init__(self, url: str, exchange: str) -> None:
        from kombu import Exchange
        self._url = url
        self._exchange = Exchange(exchange, type="fanout", durable=False, delivery_mode="transient")
        self._conn = self._producer = None
        self._retry_at = 0.0
        self._unwatched_until = 0.0

    @property
    def connected(self) -> bool:
        """True while the connection to RabbitMQ is open."""
        return self._producer is not None

    def wanted(self) -> bool:
        """False for PROBE_S after a message came back for want of a queue."""
        return time.monotonic() >= self._unwatched_until

    def poll(self) -> bool:
        """Take in the messages RabbitMQ returned so far; then whether publishing is wanted."""
        sock = getattr(getattr(self._conn, "connection", None), "sock", None) if self._producer else None
        try:
            if sock is not None:
                readable = select.poll()  # not select(): an ingest server's descriptors pass 1024
                readable.register(sock, select.POLLIN)
                while readable.poll(0):
                    self._conn.drain_events(timeout=1)
        except Exception as exc:  # kombu raises several types for a lost broker
            self.close()
            _warn("amqp-publish", "live: connection to RabbitMQ lost: %s", exc)
        return self.wanted()

    def __call__(self, body: bytes) -> bool:
        """Publish one message; False when the broker is down (retried once on a new connection)."""
        for attempt in (1, 2):
            if self._producer is None and not self._connect():
                return False
            try:
                self._producer.publish(body, exchange=self._exchange, routing_key="", mandatory=True,
                                       headers={SENT_HEADER: time.monotonic()},
                                       content_type="application/json", content_encoding="binary")
                return True
            except Exception as exc:  # kombu raises several types for a lost broker
                self.close()
                if attempt == 2:
                    _warn("amqp-publish", "live: cannot publish to RabbitMQ: %s", exc)
        return False

    def _returned(self, exc, exchange, routing_key, message) -> None:
        """A message no queue took: nobody watches, as of when it was sent."""
        sent = (message.headers or {}).get(SENT_HEADER)
        if isinstance(sent, (int, float)):
            self._unwatched_until = max(self._unwatched_until, sent + PROBE_S)

    def _connect(self) -> bool:
        from kombu import Connection, Producer
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._conn = Connection(self._url, connect_timeout=2)
            self._producer = Producer(self._conn.channel(), exchange=self._exchange,
                                      on_return=self._returned)
            self._exchange(self._producer.channel).declare()
            return True
        except Exception as exc:
            self.close()
            self._retry_at = time.monotonic() + RECONNECT_S[1]
            _warn("amqp-connect", "live: RabbitMQ unreachable, live readings dropped: %s", exc)
            return False

    def close(self) -> None:
        """Drop the connection; the next message opens a new one."""
        if self._conn is not None:
            try:
                self._conn.release()
            except Exception:  # closing a broken connection may fail again: it is gone anyway
                pass
        self._conn = self._producer = None


class DatagramSink:
    """Sends messages to the ingest server's unix datagram socket, never waiting."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def __call__(self, body: bytes) -> None:
        """Send one message; no ingest server listening, or one that is behind, loses it."""
        try:
            self._sock.sendto(body, self._path)
        except (FileNotFoundError, ConnectionRefusedError):
            _warn("dgram-absent", "live: no ingest server listens on %s: live readings dropped", self._path)
        except BlockingIOError:
            _warn("dgram-full", "live: the ingest server is behind: live readings dropped")


class AmqpConsumer:
    """A thread consuming the fanout exchange through an exclusive, auto-delete queue of its own."""

    def __init__(self, url: str, exchange: str, on_message: Sink) -> None:
        self._url = url
        self._exchange_name = exchange
        self._on_message = on_message
        self._stop = threading.Event()
        self.ready = threading.Event()  # set while the queue is bound: messages from now on arrive
        self.bound_at = 0.0  # monotonic time the queue was last bound
        self._thread = threading.Thread(target=self._run, name="live-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (its queue goes with its connection)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        wait = RECONNECT_S[0]
        while not self._stop.is_set():
            try:
                self._consume()
                wait = RECONNECT_S[0]
            except Exception as exc:  # kombu raises several types for a lost broker
                self.ready.clear()
                _warn("amqp-consume", "live: cannot consume from RabbitMQ (retrying): %s", exc)
                self._stop.wait(wait)
                wait = min(wait * 2, RECONNECT_S[1])

    def _consume(self) -> None:
        from kombu import Connection, Consumer, Exchange, Queue
        exchange = Exchange(self._exchange_name, type="fanout", durable=False, delivery_mode="transient")
        name = f"{self._exchange_name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        with Connection(self._url, connect_timeout=5, heartbeat=10) as conn:
            channel = conn.channel()
            own = Queue(name, exchange=exchange, exclusive=True, auto_delete=True, durable=False,
                        queue_arguments=QUEUE_ARGUMENTS)
            with Consumer(channel, queues=[own], on_message=self._deliver, no_ack=True):
                self.bound_at = time.monotonic()
                self.ready.set()
                log.info("live: consuming %s through queue %s", self._exchange_name, name)
                while not self._stop.is_set():
                    try:
                        conn.drain_events(timeout=1)
                    except socket.timeout:
                        pass
                    conn.heartbeat_check()  # under steady traffic too, or RabbitMQ drops us after 30 s
        self.ready.clear()

    def _deliver(self, message) -> None:
        self._on_message(message.body)


class DatagramListener:
    """The embedded bus's receiving end: a unix datagram socket read on the event loop.

    Read through add_reader rather than create_datagram_endpoint, which uvloop supports for
    IP sockets only.
    """

    def __init__(self, sock: socket.socket, path: Path, on_message: Sink) -> None:
        self._sock = sock
        self._path = path
        self._inode = os.stat(path).st_ino  # of the socket file this server made
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(1000):  # then let the loop breathe; the reader is called again
            try:
                data = self._sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                return
            self._on_message(data)

    def close(self) -> None:
        """Stop listening and remove the socket file, unless another server has made it anew since."""
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        try:
            if os.stat(self._path).st_ino == self._inode:
                self._path.unlink()
        except FileNotFoundError:
            pass


async def listen_datagrams(path: Path, on_message: Sink) -> DatagramListener | None:
    """Receive the embedded bus's messages on the running loop; None when another server has it."""
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(str(path))
            log.warning("live: %s is in use by another ingest server: HTTP ingest reaches that one",
                        path)
            return None
        except ConnectionRefusedError:
            path.unlink()  # left by a server that died
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sock.bind(str(path))
    except OSError as exc:  # taken by a server starting at the same moment, or var/ not writable
        sock.close()
        log.warning("live: cannot listen on %s: %s; HTTP ingest does not reach this server's "
                    "browsers", path, exc)
        return None
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # bursts from several workers
    return DatagramListener(sock, path, on_message)


def make_sink(settings: Config) -> Sink:
    """Where this process's publisher sends: RabbitMQ, else the embedded bus's socket."""
    if settings.uses_rabbitmq:
        return AmqpSink(settings.broker_url, exchange_name(settings))
    return DatagramSink(socket_path(settings))


_publishers: dict[tuple, Publisher] = {}
_publishers_lock = threading.Lock()


def publish(settings: Config, engine: Engine, device_id: int, readings: Sequence) -> None:
    """Publish a device's committed readings (lib.validation.Reading) from any process; never waits."""
    if not readings:
        return
    key = (os.getpid(), settings.broker_url, str(socket_path(settings)), exchange_name(settings),
           settings.database_url)  # a process forked by gunicorn makes its own publisher
    publisher = _publishers.get(key)
    if publisher is None:
        with _publishers_lock:
            publisher = _publishers.get(key)
            if publisher is None:
                publisher = _publishers[key] = Publisher(make_sink(settings), DeviceNames(engine),
                                                         settings.live.batch_readings)
    if not publisher.wanted:
        return
    publisher.put(functools.partial(parsed_rows, device_id, list(readings)))

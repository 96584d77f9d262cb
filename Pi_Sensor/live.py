"""The ingest server's /live side: browsers authorised by a token get committed readings pushed.

The server hands each committed batch to `LiveHub.committed` from its writer thread; a
publisher thread encodes it for the bus (lib/livebus.py), and messages from the bus are sent
to every browser at once. A browser that reads too slowly is disconnected (it reconnects and
fetches what it missed from the API), so it never holds up the others or the ingest.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Callable, Sequence
from urllib.parse import parse_qs

from sqlalchemy.engine import Engine
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from lib import live, livebus
from lib.config import Config

log = logging.getLogger("Pi_Sensor.server")

TOO_SLOW = "too slow: reconnect and fetch what you missed"
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


LINGER_S = 60.0  # a server keeps its queue this long after its last browser left (page reloads)
READY_WAIT_S = 5.0  # READY goes to browsers after this long past settling even if the broker is down


class LiveHub:
    """Browsers on /live, and the bus that brings them the readings of every ingest path.

    With RabbitMQ the hub consumes the exchange only while browsers watch it; its own readings
    go straight to its browsers while its queue is not bound (the broker may be down).
    """

    def __init__(self, settings: Config, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.viewers: set[ServerConnection] = set()
        self.slow_dropped = 0
        self._secret = ""
        self._publisher: livebus.Publisher | None = None
        self._amqp: livebus.AmqpSink | None = None
        self._consumer: livebus.AmqpConsumer | None = None
        self._datagrams: livebus.DatagramListener | None = None
        self._heartbeat: asyncio.Task | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._to_loop: Callable[[bytes], object] = lambda body: None
        self._tasks: set[asyncio.Task] = set()  # closes and ready notices, referenced until done

    async def start(self) -> None:
        """Connect to the bus (RabbitMQ, else the datagram socket) and start the publisher."""
        loop = asyncio.get_running_loop()
        self._to_loop = functools.partial(loop.call_soon_threadsafe, self.deliver)
        cfg = self.settings
        if cfg.uses_rabbitmq:
            self._amqp = livebus.AmqpSink(cfg.broker_url, livebus.exchange_name(cfg))
            sink: livebus.Sink = _HubSink(self, self._amqp)
        else:
            sink = self._to_loop  # this server is the only one: straight to its browsers
            self._datagrams = await livebus.listen_datagrams(livebus.socket_path(cfg), self.deliver)
        self._publisher = livebus.Publisher(sink, livebus.DeviceNames(self.engine),
                                            cfg.live.batch_readings)
        self._heartbeat = asyncio.create_task(self._heartbeat_forever())

    @property
    def consuming(self) -> bool:
        """True while this hub's queue on the exchange is bound (never without RabbitMQ)."""
        return self._consumer is not None and self._consumer.ready.is_set()

    def settled(self) -> bool:
        """True once readings committed from now on, on any ingest path, reach this hub's browsers."""
        if self._amqp is None:
            return True
        return self.consuming and time.monotonic() >= self._consumer.bound_at + livebus.SETTLE_S

    async def stop(self) -> None:
        """Publish what is queued, then leave the bus."""
        if self._heartbeat:
            self._heartbeat.cancel()
        if self._linger:
            self._linger.cancel()
        if self._publisher:
            await asyncio.to_thread(self._publisher.stop)
        if self._consumer:
            await asyncio.to_thread(self._consumer.stop)
        if self._tasks:  # a lingering queue being unbound, closes of slow browsers
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._datagrams:
            self._datagrams.close()

    # ---- the ingest side (writer threads) ----------------------------------------

    @property
    def watched(self) -> bool:
        """False while nobody watches: no browser here and, with RabbitMQ, none anywhere."""
        return bool(self.viewers) or (self._amqp is not None and self._amqp.wanted())

    def committed(self, batch: Sequence, outcomes: Sequence) -> None:
        """Queue a committed batch for publishing; a quick no-op when nobody is watching."""
        if self._publisher is not None and self.watched:
            self._publisher.put(functools.partial(livebus.committed_rows, batch, outcomes))

    # ---- browsers (the event loop) ------------------------------------------------

    async def refusal(self, query: str) -> str | None:
        """Why a /live request with this query string is not authorised (None: it is)."""
        tokens = parse_qs(query).get("token", [])
        if len(tokens) > 1:
            return "more than one token parameter"
        if not self._secret:  # read on first use: a server nobody watches leaves var/ alone
            try:
                self._secret = await asyncio.to_thread(live.shared_secret, self.settings)
            except (OSError, ValueError) as exc:
                log.error("live: no token secret: %s", exc)
                return "live data unavailable: the server has no token secret"
        try:
            live.verify_token(self._secret, tokens[0] if tokens else "", self.settings.live.token_seconds)
        except live.TokenError as exc:
            return str(exc)
        return None

    async def serve(self, conn: ServerConnection, refusal: str | None) -> None:
        """Close a refused browser saying why; keep an authorised one until it leaves."""
        if refusal:
            await conn.close(POLICY_VIOLATION, refusal)
            return
        self._watch(conn)
        ready = self._spawn(self._tell_ready(conn))
        try:
            async for _ in conn:  # browsers have nothing to say; pings are answered below us
                pass
        except ConnectionClosed:
            pass
        finally:
            ready.cancel()
            self._unwatch(conn)

    def _watch(self, conn: ServerConnection) -> None:
        """Count a browser in; with RabbitMQ, bind this hub's queue if it is not bound."""
        self.viewers.add(conn)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._amqp is not None and self._consumer is None:
            cfg = self.settings
            self._consumer = livebus.AmqpConsumer(cfg.broker_url, livebus.exchange_name(cfg), self._to_loop)

    def _unwatch(self, conn: ServerConnection) -> None:
        """Count a browser out; the queue goes LINGER_S after the last one."""
        self.viewers.discard(conn)
        if not self.viewers and self._consumer is not None and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._leave)

    def _leave(self) -> None:
        """Unbind the queue when still nobody watches (the thread's join goes to a thread)."""
        self._linger = None
        if not self.viewers and self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            self._spawn(asyncio.to_thread(consumer.stop))

    async def _tell_ready(self, conn: ServerConnection) -> None:
        """Send READY once settled, so the browser fetches what came before from the API.

        When the broker is down it never settles: READY then goes anyway after a while, as
        this server's own readings reach its browsers without the broker.
        """
        deadline = time.monotonic() + livebus.SETTLE_S + READY_WAIT_S
        while not self.settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        try:
            await conn.send(live.READY, text=True)
        except ConnectionClosed:
            pass

    def _spawn(self, coro) -> asyncio.Task:
        """A task kept referenced until it is done."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def deliver_threadsafe(self, body: bytes) -> None:
        """deliver() from another thread."""
        self._to_loop(body)

    def deliver(self, body: bytes) -> None:
        """Send one message to every browser; disconnect those with too much unread data."""
        limit = self.settings.live.max_unsent_bytes
        for conn in [c for c in self.viewers if c.transport.get_write_buffer_size() > limit]:
            self.viewers.discard(conn)
            self.slow_dropped += 1
            log.info("live: a browser at %s read too slowly: disconnected", conn.remote_address)
            self._spawn(_close(conn, TRY_AGAIN_LATER, TOO_SLOW))
        broadcast(self.viewers, body, text=True)

    async def _heartbeat_forever(self) -> None:
        """Tell browsers the link is alive even when no device sends (they cannot see pings)."""
        while True:
            await asyncio.sleep(live.HEARTBEAT_S)
            self.deliver(live.HEARTBEAT)


class _HubSink:
    """The hub's publisher sink: RabbitMQ for every server's browsers, and this server's own
    browsers directly while its queue is not bound (nobody else watches, or the broker is down)."""

    def __init__(self, hub: LiveHub, amqp: livebus.AmqpSink) -> None:
        self._hub = hub
        self._amqp = amqp

    def wanted(self) -> bool:
        return self._hub.watched

    def poll(self) -> bool:
        return self._amqp.poll() or bool(self._hub.viewers)

    def __call__(self, body: bytes) -> None:
        published = self._amqp.wanted() and self._amqp(body)
        if self._hub.viewers and not (published and self._hub.consuming):
            self._hub.deliver_threadsafe(body)


async def _close(conn: ServerConnection, code: int, reason: str) -> None:
    """Close, and cut the connection when the close frame cannot get through either."""
    try:
        await asyncio.wait_for(conn.close(code, reason), 2.0)
    except (asyncio.TimeoutError, ConnectionClosed):
        pass
    conn.transport.abort()


def publishing(write: Callable[[Sequence], Sequence], hub: LiveHub) -> Callable[[Sequence], Sequence]:
    """The group commit's write function, telling the hub what each batch committed."""
    @functools.wraps(write)
    def write_and_publish(batch: Sequence) -> Sequence:
        outcomes = write(batch)
        hub.committed(batch, outcomes)
        return outcomes
    return write_and_publish

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


class LiveHub:
    """Browsers on /live, and the bus that brings them the readings of every ingest path."""

    def __init__(self, settings: Config, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.viewers: set[ServerConnection] = set()
        self.slow_dropped = 0
        self._secret = ""
        self._publisher: livebus.Publisher | None = None
        self._consumer: livebus.AmqpConsumer | None = None
        self._datagrams: livebus.DatagramListener | None = None
        self._heartbeat: asyncio.Task | None = None
        self._closing: set[asyncio.Task] = set()  # closes of slow browsers, referenced until done

    async def start(self) -> None:
        """Read the token secret and connect to the bus (RabbitMQ, else the datagram socket)."""
        loop = asyncio.get_running_loop()
        to_loop = functools.partial(loop.call_soon_threadsafe, self.deliver)
        cfg = self.settings
        if cfg.uses_rabbitmq:
            sink = livebus.AmqpSink(cfg.broker_url, livebus.exchange_name(cfg))
            self._consumer = livebus.AmqpConsumer(cfg.broker_url, livebus.exchange_name(cfg), to_loop)
        else:
            sink = to_loop  # this server is the only one: straight to its browsers
            self._datagrams = await livebus.listen_datagrams(livebus.socket_path(cfg), self.deliver)
        self._publisher = livebus.Publisher(sink, livebus.DeviceNames(self.engine),
                                            cfg.live.batch_readings)
        self._heartbeat = asyncio.create_task(self._heartbeat_forever())

    @property
    def ready(self) -> bool:
        """True once readings published from now on reach this server's browsers."""
        return self._consumer is None or self._consumer.ready.is_set()

    async def stop(self) -> None:
        """Publish what is queued, then leave the bus."""
        if self._heartbeat:
            self._heartbeat.cancel()
        if self._publisher:
            await asyncio.to_thread(self._publisher.stop)
        if self._consumer:
            await asyncio.to_thread(self._consumer.stop)
        if self._datagrams:
            self._datagrams.close()

    # ---- the ingest side (writer threads) ----------------------------------------

    def committed(self, batch: Sequence, outcomes: Sequence) -> None:
        """Queue a committed batch for publishing; a quick no-op when nobody can be watching."""
        if self._publisher is not None and (self._consumer is not None or self.viewers):
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
        self.viewers.add(conn)
        try:
            async for _ in conn:  # browsers have nothing to say; pings are answered below us
                pass
        except ConnectionClosed:
            pass
        finally:
            self.viewers.discard(conn)

    def deliver(self, body: bytes) -> None:
        """Send one message to every browser; disconnect those with too much unread data."""
        limit = self.settings.live.max_unsent_bytes
        for conn in [c for c in self.viewers if c.transport.get_write_buffer_size() > limit]:
            self.viewers.discard(conn)
            self.slow_dropped += 1
            log.info("live: a browser at %s read too slowly: disconnected", conn.remote_address)
            task = asyncio.create_task(_close(conn, TRY_AGAIN_LATER, TOO_SLOW))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        broadcast(self.viewers, body, text=True)

    async def _heartbeat_forever(self) -> None:
        """Tell browsers the link is alive even when no device sends (they cannot see pings)."""
        while True:
            await asyncio.sleep(live.HEARTBEAT_S)
            self.deliver(live.HEARTBEAT)


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

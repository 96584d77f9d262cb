"""Connections of the ingest server: a cap with eviction of idle handshakes, open files, TLS."""
from __future__ import annotations

import logging
import resource
import ssl

from websockets.asyncio.server import ServerConnection

from lib.settings import IngestSettings

log = logging.getLogger("Pi_Sensor.server")


class ConnectionCap:
    """Keep at most `limit` connections; when full, drop the oldest one still in its handshake.

    Silent sockets (never sending a request) stay in their handshake until the handshake
    timeout; evicting the oldest of them for each new arrival keeps room for devices, which
    authenticate within milliseconds. Only when every slot holds an open device connection
    is a newcomer refused.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:  # [ingest] max_connections is checked at load; this guards direct use
            raise ValueError(f"connection limit must be at least 1, got {limit}")
        self.limit = limit
        self.handshaking: dict[ServerConnection, None] = {}  # insertion order: oldest first
        self.live: set[ServerConnection] = set()  # counted from TCP accept until closed or evicted
        self.evicted = 0
        self.refused = 0

    def factory(self):
        """A `create_connection` for websockets' serve() whose connections report to this cap."""
        cap = self

        class CappedConnection(ServerConnection):
            """A server connection counted by the cap from TCP accept to close."""

            def connection_made(self, transport) -> None:
                cap.live.add(self)
                cap.handshaking[self] = None
                super().connection_made(transport)
                cap.admit(self)

            def connection_lost(self, exc) -> None:
                cap.live.discard(self)
                cap.handshaking.pop(self, None)
                super().connection_lost(exc)

        return CappedConnection

    def admit(self, newcomer: ServerConnection) -> None:
        """Make room for `newcomer` when over the limit, or drop it when nothing can go."""
        if len(self.live) <= self.limit:
            return
        victim = next((c for c in self.handshaking if c is not newcomer), None)
        if victim is None:
            self.refused += 1
            victim = newcomer
        else:
            self.evicted += 1
        self.handshaking.pop(victim, None)
        self.live.discard(victim)
        victim.transport.abort()

    def opened(self, conn: ServerConnection) -> None:
        """The connection authenticated: it is no longer a candidate for eviction."""
        self.handshaking.pop(conn, None)


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard limit; return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d: %s", soft, exc)
    return soft


def tls_context(ingest: IngestSettings) -> ssl.SSLContext | None:
    """A server TLS context from [ingest] tls_cert and tls_key, or None for plain ws://."""
    if not ingest.tls:  # the settings guarantee both or neither
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ingest.tls_cert, ingest.tls_key)
    return context

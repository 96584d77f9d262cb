"""WebSocket ingest server (protocol v1): devices push readings, the server acks commits.

Browsers holding a token from /api/v1/live/token get committed readings pushed on /live.

Run it with `python -m Pi_Sensor.server`; see README.md for the protocol.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from http import HTTPStatus
from urllib.parse import parse_qs

import orjson
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from lib import config as config_mod, storage
from lib.catalogue import Catalogue
from lib.ingest import DB_DOWN, hold_back, reply, rows_of, settle, store_error
from lib.live import PATH as LIVE_PATH
from lib.ratelimit import LogLimiter, TokenBuckets
from lib.validation import (UNKNOWN_METRIC, FrameError, LegacyFrameError, Limits, Parsed,
                            parse_frame)
from Pi_Sensor.batcher import GroupCommitter
from Pi_Sensor.connections import ConnectionCap, raise_open_files_limit, tls_context
from Pi_Sensor.live import LiveHub, publishing
from Pi_Sensor.writer import ReadingWriter

log = logging.getLogger("Pi_Sensor.server")

INGEST_PATHS = ("/", "/ingest")
CATALOGUE_REFRESH_S = 60.0
REVOKED = "device revoked"


class CatalogueUnavailable(Exception):
    """The catalogue could not be re-read, so unknown metrics cannot be judged."""


class IngestServer:
    """The ingest server: authenticates devices, validates frames, group-commits readings."""

    def __init__(self, config: config_mod.Config, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine or storage.make_engine(config.database_url, pre_ping=False)
        self.limits = Limits(config.ingest.max_readings, int(config.ingest.max_future_seconds * 1000))
        self.catalogue = Catalogue()
        self._catalogue_loaded = 0.0  # monotonic time the last successful read started
        self._reload: asyncio.Task | None = None
        self.live = LiveHub(config, self.engine)
        self.committer = GroupCommitter(publishing(ReadingWriter(self.engine), self.live),
                                        max_rows=config.ingest.commit_rows,
                                        writers=config.ingest.writers)
        self.cap = ConnectionCap(config.ingest.max_connections)
        self._last_stamp: dict[int, int] = {}  # device id -> last ts the server gave a reading
        self._log_limit = LogLimiter()
        # Per device, over all its connections ([ingest] device_max_rate, device_burst).
        self.rate = TokenBuckets(config.ingest.device_max_rate, config.ingest.device_burst)
        self._server: Server | None = None
        self._refresher: asyncio.Task | None = None
        self._housekeeper: asyncio.Task | None = None
        self._stalled_since: dict[ServerConnection, float] = {}
        self._draining = False
        self._inflight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    # ---- life cycle ----------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Load the catalogue and start listening (port 0 picks a free port)."""
        if not await self._reload_catalogue():
            log.warning("starting with the built-in metrics until the database answers")
        self.committer.start()
        await self.live.start()
        self._refresher = asyncio.create_task(self._refresh_catalogue_forever())
        self._housekeeper = asyncio.create_task(self._housekeeping_forever())
        cfg, ingest = self.config, self.config.ingest
        tls = tls_context(ingest)
        self._server = await serve(
            self._handle, host or cfg.bind_host, cfg.ports.ingest if port is None else port,
            process_request=self._process_request,
            create_connection=self.cap.factory(),
            ssl=tls,
            open_timeout=ingest.handshake_timeout,
            close_timeout=ingest.close_timeout,
            max_size=ingest.max_frame_bytes,
            max_queue=ingest.max_queued_frames,
            write_limit=ingest.max_unsent_bytes,
            ping_interval=ingest.ping_interval,
            ping_timeout=ingest.ping_timeout,
            compression="deflate" if ingest.compression else None,
        )
        log.info("ingest server listening on %s:%d%s (database %s)", *self.address,
                 " with TLS" if tls else "", self.engine.url.render_as_string(hide_password=True))

    @property
    def address(self) -> tuple[str, int]:
        """Host and port actually bound."""
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let messages in flight commit and be acked, then close.

        Bounded: at most [ingest] drain_seconds for commits in flight, then close_timeout (+1 s)
        for the clients' close handshakes, whatever the clients do.
        """
        if self._server is None:
            return
        drain = self.config.ingest.drain_seconds if timeout is None else timeout
        self._server.server.close()  # the listening socket only; open connections stay
        self._draining = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), drain)
        self._server.close(code=1001, reason="server shutting down")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(),
                                   self.config.ingest.close_timeout + 1)
        await self.committer.close()
        await self.live.stop()
        for task in (self._refresher, self._housekeeper):
            if task:
                task.cancel()
        self.engine.dispose()
        self._server = None
        log.info("ingest server stopped")

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("signal received: finishing commits in flight")
        await self.stop()

    # ---- handshake -----------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request):
        """Answer /healthz, let browsers into /live, refuse other paths, authenticate devices."""
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return conn.respond(HTTPStatus.OK, "ok\n")
        if path == LIVE_PATH:
            # Refused browsers are let in and closed with the reason: a browser sees a close
            # reason, but never the body of a refused handshake.
            conn.live_refusal = await self.live.refusal(query)
            if conn.live_refusal is None:
                self.cap.opened(conn)
            return None
        if path not in INGEST_PATHS:
            return conn.respond(HTTPStatus.NOT_FOUND, "unknown path: connect to /ingest\n")
        headers = request.headers.get_all("Authorization")
        if len(headers) > 1:
            return conn.respond(HTTPStatus.BAD_REQUEST, "more than one Authorization header\n")
        tokens = parse_qs(query).get("token", [])
        if len(tokens) > 1:
            return conn.respond(HTTPStatus.BAD_REQUEST, "more than one token parameter\n")
        token = _bearer(headers[0] if headers else "") or (tokens[0] if tokens else "")
        if not token:
            return conn.respond(HTTPStatus.UNAUTHORIZED, "missing device token\n")
        try:
            device_id = await asyncio.to_thread(storage.authenticate, self.engine, token)
        except SQLAlchemyError as exc:
            log.warning("cannot authenticate, database unavailable: %s", exc)
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "database unavailable, retry later\n")
        if device_id is None:
            return conn.respond(HTTPStatus.UNAUTHORIZED, "unknown device token\n")
        conn.device_id = device_id
        self.cap.opened(conn)
        return None

    # ---- messages ------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        """Process frames one at a time: validate, commit, then ack (browsers: see LiveHub.serve)."""
        if hasattr(conn, "live_refusal"):
            await self.live.serve(conn, conn.live_refusal)
            return
        try:
            async for frame in conn:
                if self._draining:
                    await conn.close(1001, "server shutting down")
                    return
                self._inflight += 1
                self._quiet.clear()
                try:
                    reply = await self._process(conn, frame)
                    if reply is not None:
                        await conn.send(reply, text=True)
                finally:
                    self._inflight -= 1
                    if not self._inflight:
                        self._quiet.set()
        except ConnectionClosed:
            pass

    async def _process(self, conn: ServerConnection, frame: str | bytes) -> bytes | None:
        """Return the reply to one frame (None for legacy frames, which get none)."""
        device_id = conn.device_id
        try:
            parsed = await self._parse(device_id, frame)
        except LegacyFrameError as exc:
            self._warn(conn, "device %d: %s", device_id, exc)
            return None
        except FrameError as exc:
            return orjson.dumps({"error": str(exc)})
        except CatalogueUnavailable as exc:
            return orjson.dumps({"ack": [], "rejected": [], "error": str(exc)})
        error = None
        retry, retry_after = hold_back(parsed, self.rate, device_id)
        if retry:
            self._warn(conn, "device %d: %d readings held back: %s", device_id, len(retry),
                       retry[0]["error"])
        if parsed.readings:
            names = self.catalogue.names
            rows = rows_of(parsed, device_id, names)
            try:
                failed = await self.committer.submit(names, rows)
            except (SQLAlchemyError, OSError) as exc:
                self._warn(conn, "device %d: %d readings not stored: %s", device_id, len(rows),
                           storage.describe_error(exc))
                error = store_error(storage.is_disk_full(exc))
            else:
                settle(parsed, failed)
        if parsed.legacy:  # no reply: a held-back legacy reading is lost (logged above)
            if parsed.rejected:
                self._warn(conn, "device %d: legacy frame not stored: %s", device_id,
                           parsed.rejected[0]["error"])
            return None
        return orjson.dumps(reply(parsed, error, retry, retry_after))

    async def _parse(self, device_id: int, frame: str | bytes) -> Parsed:
        """Parse a frame; on an unknown metric, re-read the catalogue and parse again."""
        received = time.monotonic()
        parsed = self._parse_now(device_id, frame)
        if any(r["error"].startswith(UNKNOWN_METRIC) for r in parsed.rejected):
            # The metric may have been added since the last load: rejections are final.
            if not await self._catalogue_loaded_since(received):
                raise CatalogueUnavailable(DB_DOWN)
            parsed = self._parse_now(device_id, frame)
        return parsed

    def _parse_now(self, device_id: int, frame: str | bytes) -> Parsed:
        """Parse with the current catalogue; readings stamped here get distinct, rising stamps."""
        parsed = parse_frame(frame, self.catalogue, storage.now_ms(), self.limits,
                             last_stamp_ms=self._last_stamp.get(device_id, 0))
        if parsed.last_stamp_ms:
            self._last_stamp[device_id] = parsed.last_stamp_ms
        return parsed

    def _warn(self, conn: ServerConnection, message: str, *args) -> None:
        """Log a warning about a connection, at most a few per device in 10 s."""
        suppressed = self._log_limit.allow(getattr(conn, "device_id", None))
        if suppressed is None:
            return
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        log.warning(message, *args)

    # ---- housekeeping --------------------------------------------------------

    async def _housekeeping_forever(self) -> None:
        """Every second: drop clients that read no replies; now and then, close revoked devices."""
        revoke_every = self.config.ingest.revoke_check_seconds
        last_revoke_check = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, revoke_every))
            if self._server is None:
                continue
            self._drop_stalled(time.monotonic())
            if time.monotonic() - last_revoke_check >= revoke_every:
                last_revoke_check = time.monotonic()
                await self._close_revoked()

    def _drop_stalled(self, now: float) -> None:
        """Abort connections whose unread replies stayed over max_unsent_bytes for ping_timeout.

        Such a client blocks its handler in send() (and with it the frames it keeps sending),
        and keepalive pings queue behind the same buffer, so nothing else would ever end it.
        Closing ones count too: a close frame (a keepalive timeout sends one) waits behind the
        same buffer, with no timeout, and `connections` lists only open ones.
        """
        limit = self.config.ingest.max_unsent_bytes
        patience = self.config.ingest.ping_timeout
        for conn in list(self._server.all_connections):
            if not hasattr(conn, "device_id"):
                continue  # a browser: LiveHub.deliver drops slow ones
            if conn.transport.get_write_buffer_size() <= limit:
                self._stalled_since.pop(conn, None)
                continue
            since = self._stalled_since.setdefault(conn, now)
            if now - since >= patience:
                self._stalled_since.pop(conn, None)
                self._warn(conn, "device %d: client read no replies for %.0f s, connection dropped",
                           conn.device_id, now - since)
                conn.transport.abort()
        for conn in [c for c in self._stalled_since if c not in self._server.all_connections]:
            del self._stalled_since[conn]

    async def _close_revoked(self) -> None:
        """Close the connections of devices revoked (or deleted) since they connected."""
        conns = [c for c in self._server.connections if hasattr(c, "device_id")]
        if not conns:
            return
        try:
            active = await asyncio.to_thread(storage.active_device_ids, self.engine,
                                             {c.device_id for c in conns})
        except SQLAlchemyError as exc:
            log.warning("cannot check for revoked devices: %s", storage.describe_error(exc))
            return
        for conn in conns:
            if conn.device_id not in active:
                log.info("device %d revoked: closing its connection", conn.device_id)
                asyncio.create_task(conn.close(1008, REVOKED))

    # ---- catalogue -----------------------------------------------------------

    async def _catalogue_loaded_since(self, moment: float) -> bool:
        """Make sure the catalogue was read after `moment`; one reload at a time."""
        while self._catalogue_loaded < moment:
            if self._reload is None or self._reload.done():
                self._reload = asyncio.create_task(self._reload_catalogue())
            if not await asyncio.shield(self._reload):
                return False
        return True

    async def _reload_catalogue(self) -> bool:
        """Read the metric catalogue; return False when the database is unavailable."""
        started = time.monotonic()
        try:
            self.catalogue = await asyncio.to_thread(storage.load_catalogue, self.engine)
        except SQLAlchemyError as exc:
            log.warning("cannot read the metric catalogue: %s", exc)
            return False
        self._catalogue_loaded = max(self._catalogue_loaded, started)
        return True

    async def _refresh_catalogue_forever(self) -> None:
        """Pick up metrics added by administrators while the server runs."""
        while True:
            await asyncio.sleep(CATALOGUE_REFRESH_S)
            await self._reload_catalogue()


def _bearer(header: str) -> str:
    """Return the token of an `Authorization: Bearer <token>` header, or ""."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to bind (default: [ecs] intranet_ip, else all)")
    parser.add_argument("--port", type=int, help="port to bind (default: [ports] ingest)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    log.info("open files limit: %d", raise_open_files_limit())

    async def run() -> None:
        server = IngestServer(config_mod.load())
        await server.start(args.host, args.port)
        await server.run_until_signalled()

    try:
        import uvloop  # a faster event loop where it is installed
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())


if __name__ == "__main__":
    main()

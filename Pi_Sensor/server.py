"""WebSocket ingest server (protocol v1): devices push readings, the server acks commits.

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
from lib.validation import (UNKNOWN_METRIC, FrameError, LegacyFrameError, Limits, Parsed,
                            parse_frame)
from Pi_Sensor.batcher import Batch, GroupCommitter

log = logging.getLogger("Pi_Sensor.server")

INGEST_PATHS = ("/", "/ingest")
CATALOGUE_REFRESH_S = 60.0
DB_DOWN = "database unavailable: readings not stored, send them again later"


class CatalogueUnavailable(Exception):
    """The catalogue could not be re-read, so unknown metrics cannot be judged."""


class IngestServer:
    """The ingest server: authenticates devices, validates frames, group-commits readings."""

    def __init__(self, config: config_mod.Config, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine or storage.make_engine(config.database_url, pre_ping=False)
        self.limits = Limits(config.getint("ingest", "max_readings"),
                             int(config.getfloat("ingest", "max_future_seconds") * 1000))
        self.catalogue = Catalogue()
        self._catalogue_loaded = 0.0  # monotonic time the last successful read started
        self._reload: asyncio.Task | None = None
        self.committer = GroupCommitter(self._write, max_rows=config.getint("ingest", "commit_rows"),
                                        writers=config.getint("ingest", "writers"))
        self._server: Server | None = None
        self._refresher: asyncio.Task | None = None
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
        self._refresher = asyncio.create_task(self._refresh_catalogue_forever())
        cfg = self.config
        self._server = await serve(
            self._handle, host or cfg.bind_host, cfg.getint("ports", "ingest") if port is None else port,
            process_request=self._process_request,
            max_size=cfg.getint("ingest", "max_frame_bytes"),
            ping_interval=cfg.getfloat("ingest", "ping_interval"),
            ping_timeout=cfg.getfloat("ingest", "ping_timeout"),
            compression="deflate" if cfg.getbool("ingest", "compression") else None,
        )
        log.info("ingest server listening on %s:%d (database %s)", *self.address,
                 self.engine.url.render_as_string(hide_password=True))

    @property
    def address(self) -> tuple[str, int]:
        """Host and port actually bound."""
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop accepting, let messages in flight commit and be acked, then close."""
        if self._server is None:
            return
        self._server.server.close()  # the listening socket only; open connections stay
        self._draining = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), timeout)
        self._server.close(code=1001, reason="server shutting down")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout)
        await self.committer.close()
        if self._refresher:
            self._refresher.cancel()
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
        """Answer /healthz, refuse other paths, authenticate the device token."""
        path, _, query = request.path.partition("?")
        if path == "/healthz":
            return conn.respond(HTTPStatus.OK, "ok\n")
        if path not in INGEST_PATHS:
            return conn.respond(HTTPStatus.NOT_FOUND, "unknown path: connect to /ingest\n")
        token = _bearer(request.headers.get("Authorization", "")) or \
            parse_qs(query).get("token", [""])[0]
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
        return None

    # ---- messages ------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        """Process frames one at a time: validate, commit, then ack."""
        try:
            async for frame in conn:
                if self._draining:
                    await conn.close(1001, "server shutting down")
                    return
                self._inflight += 1
                self._quiet.clear()
                try:
                    reply = await self._process(conn.device_id, frame)
                    if reply is not None:
                        await conn.send(reply, text=True)
                finally:
                    self._inflight -= 1
                    if not self._inflight:
                        self._quiet.set()
        except ConnectionClosed:
            pass

    async def _process(self, device_id: int, frame: str | bytes) -> bytes | None:
        """Return the reply to one frame (None for legacy frames, which get none)."""
        try:
            parsed = await self._parse(frame)
        except LegacyFrameError as exc:
            log.warning("device %d: %s", device_id, exc)
            return None
        except FrameError as exc:
            return orjson.dumps({"error": str(exc)})
        except CatalogueUnavailable as exc:
            return orjson.dumps({"ack": [], "rejected": [], "error": str(exc)})
        error = None
        if parsed.readings:
            names = self.catalogue.names
            rows = [(device_id, r.ts_ms, *[r.values.get(n) for n in names]) for r in parsed.readings]
            try:
                await self.committer.submit(names, rows)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("device %d: %d readings not stored: %s", device_id, len(rows), exc)
                error = DB_DOWN
        if parsed.legacy:
            return None
        return _reply(parsed, error)

    async def _parse(self, frame: str | bytes) -> Parsed:
        """Parse a frame; on an unknown metric, re-read the catalogue and parse again."""
        received = time.monotonic()
        parsed = parse_frame(frame, self.catalogue, storage.now_ms(), self.limits)
        if any(r["error"].startswith(UNKNOWN_METRIC) for r in parsed.rejected):
            # The metric may have been added since the last load: rejections are final.
            if not await self._catalogue_loaded_since(received):
                raise CatalogueUnavailable(DB_DOWN)
            parsed = parse_frame(frame, self.catalogue, storage.now_ms(), self.limits)
        return parsed

    def _write(self, batch: Batch) -> None:
        """Commit a batch (runs in a writer thread); rows are grouped by column layout."""
        by_names: dict[tuple[str, ...], list] = {}
        for names, rows in batch:
            by_names.setdefault(names, []).extend(rows)
        for names, rows in by_names.items():
            storage.write_readings(self.engine, names, rows)

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


def _reply(parsed: Parsed, error: str | None) -> bytes:
    """The JSON reply: acks of committed readings, final rejections, and any error."""
    body: dict = {"ack": [] if error else [r.seq for r in parsed.readings if r.seq is not None],
                  "rejected": parsed.rejected}
    if error:
        body["error"] = error
    return orjson.dumps(body)


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

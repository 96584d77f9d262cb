"""Raspberry Pi client: read a sensor every interval, spool to disk, send until acked.

Run `python -m Pi_Sensor.client --help` for the options.
"""
from __future__ import annotations

import argparse
import asyncio
import configparser
import contextlib
import json
import logging
import math
import os
import signal
import sqlite3
import ssl
import time
from dataclasses import dataclass, fields

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from lib.config import REPO_ROOT
from Pi_Sensor.backoff import Backoff
from Pi_Sensor.sensors import Sensor, SensorError, make_sensor
from Pi_Sensor.spool import Spool, Spooled

log = logging.getLogger("Pi_Sensor.client")

CLOCK_UNSET_BEFORE_MS = 1_577_836_800_000  # 2020-01-01: a Pi without RTC boots in 1970
CLOCK_SLEW_MS = 300_000  # a step back smaller than this is an NTP correction, bigger a reset
MAX_BATCH = 1000  # readings per message the server accepts


@dataclass
class ClientSettings:
    """Everything the client needs; see `--help` for each option."""

    url: str = ""
    token: str = ""
    sensor: str = "simulate"
    interval: float = 5.0
    spool: str = str(REPO_ROOT / "var" / "spool.db")
    spool_max_readings: int = 2_000_000
    spool_max_mb: float = 256.0
    batch: int = 500
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    ack_timeout: float = 30.0
    journal: str = ""
    ca_file: str = ""

    def check(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if not self.url or not self.token:
            raise ValueError("--url and --token are required (or url/token in --config, "
                             "or SENSORS_CLIENT_URL / SENSORS_CLIENT_TOKEN)")
        if _scheme(self.url) not in ("ws", "wss"):
            raise ValueError(f"--url must start with ws:// or wss://, got {self.url!r}")
        if self.ca_file and _scheme(self.url) != "wss":
            raise ValueError("--ca-file needs a wss:// URL (a ws:// link has no certificate to check)")
        tls_context(self)  # a CA file that cannot be loaded is a usage error, not a retry loop
        positive = ("interval", "spool_max_mb", "backoff_min", "backoff_max", "ping_interval",
                     "ping_timeout", "ack_timeout")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if self.backoff_max < self.backoff_min:
            raise ValueError("--backoff-max must not be below --backoff-min")
        if self.spool_max_readings < 1:
            raise ValueError("--spool-max-readings must be at least 1")
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"--batch must be 1..{MAX_BATCH} (the server's limit per message)")


def _scheme(url: str) -> str:
    """The URL's scheme in lower case ("" when it has none)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def tls_context(settings: ClientSettings) -> ssl.SSLContext | None:
    """None for ws://; for wss:// a context verifying the server against --ca-file or the system CAs."""
    if _scheme(settings.url) != "wss":
        return None
    try:
        # create_default_context verifies chain and host name; a cafile replaces the system store.
        return ssl.create_default_context(cafile=settings.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --ca-file {settings.ca_file}: {exc}") from None


class ServerError(Exception):
    """The server answered with an error (for example its database is down)."""


class Client:
    """The reading loop and the sending loop, sharing the spool."""

    def __init__(self, settings: ClientSettings, sensor: Sensor) -> None:
        self.settings = settings
        self.sensor = sensor
        self.spool = Spool(settings.spool, settings.spool_max_readings,
                           int(settings.spool_max_mb * 1024 * 1024))
        self._journal = open(settings.journal, "a", buffering=1) if settings.journal else None
        self._stop = asyncio.Event()
        self._new_reading = asyncio.Event()
        self._last_ts = self.spool.counter("last_ts")
        self.backoff = Backoff(settings.backoff_min, settings.backoff_max)

    async def run(self) -> None:
        """Run until stop() is called, then close the spool."""
        log.info("client started: %s, every %s s, spool %s (%d waiting)", self.settings.url,
                 self.settings.interval, self.settings.spool, len(self.spool))
        tasks = [asyncio.create_task(self._read_forever()), asyncio.create_task(self._send_forever())]
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
        for task in (stop, *tasks):
            task.cancel()
        _, stuck = await asyncio.wait([stop, *tasks], timeout=10)
        if stuck:
            log.error("%d tasks did not stop in 10 s; exiting anyway", len(stuck))
        log.info("client stopped; %d readings wait in the spool", len(self.spool))
        self.spool.close()
        if self._journal:
            with contextlib.suppress(OSError):
                self._journal.close()
        if failed:  # exit non-zero so that systemd restarts the client
            raise failed[0].exception()

    def stop(self) -> None:
        """Ask the loops to finish; unsent readings stay in the spool."""
        self._stop.set()

    # ---- reading ---------------------------------------------------------------

    async def _read_forever(self) -> None:
        """Take a reading every interval, keeping the cadence whatever the network does."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not self._stop.is_set():
            await self._take_reading()
            tick += self.settings.interval
            tick = max(tick, loop.time())  # a slow sensor skips ticks rather than bunching them
            await asyncio.sleep(tick - loop.time())

    async def _take_reading(self) -> None:
        """Read the sensor and spool the values with a strictly increasing UTC stamp."""
        try:
            values = await asyncio.to_thread(self.sensor.read)
        except Exception:  # a flaky bus must not end the loop
            log.exception("sensor read failed; skipping this interval")
            return
        values = _finite(values or {})
        if not values:
            return
        now_ms = time.time_ns() // 1_000_000
        if now_ms < CLOCK_UNSET_BEFORE_MS:
            log.warning("system clock is not set (%d); skipping the reading", now_ms)
            return
        ts_ms = self._stamp(now_ms)
        try:
            await asyncio.to_thread(self._spool_reading, ts_ms, values)
        except (OSError, sqlite3.Error) as exc:  # a full SD card: keep trying next interval
            log.error("cannot spool the reading (%s); it is lost", exc)
            return
        self._last_ts = ts_ms
        self._new_reading.set()

    def _stamp(self, now_ms: int) -> int:
        """A UTC stamp that never repeats: (device, ts) identifies a reading."""
        if self._last_ts - CLOCK_SLEW_MS < now_ms <= self._last_ts:
            return self._last_ts + 1  # NTP stepped back a little: keep stamps increasing
        return now_ms  # normal, or the clock was reset far back and the old stamps were wrong

    def _spool_reading(self, ts_ms: int, values: dict[str, float]) -> None:
        """Append to the spool, then to the journal if one is kept."""
        seq = self.spool.append(ts_ms, values)
        if self._journal:
            try:
                self._journal.write(json.dumps({"seq": seq, "ts": ts_ms, "values": values}) + "\n")
            except OSError as exc:  # the audit copy failing must not cost the reading
                log.error("cannot write the journal: %s", exc)

    # ---- sending ---------------------------------------------------------------

    async def _send_forever(self) -> None:
        """Connect, drain the spool, and reconnect with backoff after any failure."""
        s = self.settings
        headers = {"Authorization": f"Bearer {s.token}"}
        tls = {"ssl": tls_context(s)} if _scheme(s.url) == "wss" else {}  # ssl= is refused on ws://
        while not self._stop.is_set():
            try:
                async with connect(s.url, additional_headers=headers, open_timeout=s.ack_timeout, **tls,
                                   ping_interval=s.ping_interval, ping_timeout=s.ping_timeout,
                                   close_timeout=5, max_size=2 ** 22) as ws:
                    log.info("connected to %s", s.url)
                    await self._drain(ws)
            except ssl.SSLCertVerificationError as exc:
                delay = self.backoff.next()
                log.error("certificate verify failed: %s (server %s; trusted: %s); retrying in %.1f s, "
                          "%d readings spooled", exc.verify_message, s.url,
                          s.ca_file or "the system CA store", delay, len(self.spool))
                await asyncio.sleep(delay)
            except (OSError, WebSocketException, TimeoutError, ServerError, ValueError) as exc:
                delay = self.backoff.next()
                log.warning("link down (%s: %s); retrying in %.1f s, %d readings spooled",
                            type(exc).__name__, exc, delay, len(self.spool))
                await asyncio.sleep(delay)

    async def _drain(self, ws) -> None:
        """Send spooled readings in batches, each after the previous one is acked."""
        while True:
            self._new_reading.clear()
            batch = await asyncio.to_thread(self.spool.oldest, self.settings.batch)
            if not batch:
                await self._new_reading.wait()
                continue
            await ws.send(json.dumps({"readings": [_wire(r) for r in batch]}))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(self.settings.ack_timeout):
                reply = json.loads(await ws.recv())
            await asyncio.to_thread(self.spool.remove, _finished(reply))
            if reply.get("error"):
                raise ServerError(reply["error"])
            self.backoff.reset()
            if reply.get("retry"):  # held back by the server's rate limit: still spooled, sent again
                delay = _retry_after(reply, self.settings.backoff_min, self.settings.backoff_max)
                log.warning("server held back %d readings (%s); sending again in %.1f s",
                            len(reply["retry"]), _reason(reply["retry"]), delay)
                await asyncio.sleep(delay)


def _finite(values: dict) -> dict[str, float]:
    """Keep finite numbers only: JSON cannot carry NaN, and a sensor must not block the spool."""
    kept = {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if len(kept) != len(values):
        log.warning("sensor returned unusable values %r; keeping %r", values, kept)
    return kept


def _wire(reading: Spooled) -> dict:
    """A spooled reading in protocol v1 form (ts as epoch seconds, exact to the ms)."""
    return {"seq": reading.seq, "ts": reading.ts_ms / 1000, "values": reading.values}


def _retry_after(reply: dict, low: float, high: float) -> float:
    """The reply's retry_after in seconds, kept within low..high (`low` when missing or not a number)."""
    value = reply.get("retry_after")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return low
    return min(max(float(value), 0.05), high)


def _reason(entries: list) -> str:
    """The reason of the first retry entry, for the log."""
    first = entries[0] if entries else None
    return str(first.get("error", "")) if isinstance(first, dict) else ""


def _finished(reply: dict) -> list[int]:
    """Seqs the server is done with: acked (stored) or rejected (final, logged); never those in "retry"."""
    for rejection in reply.get("rejected", []):
        log.error("server rejected reading %s: %s", rejection.get("seq"), rejection.get("error"))
    rejected = [r["seq"] for r in reply.get("rejected", []) if isinstance(r.get("seq"), int)]
    return list(reply.get("ack", [])) + rejected


HELP = {
    "url": "ingest server URL, e.g. wss://sensors.example.org/ingest or ws://192.168.1.10:8080/ingest",
    "token": "device token from `flask --app flask_front add-device NAME`",
    "sensor": "scd30 (Sensirion SCD-30 on I2C) or simulate",
    "interval": "seconds between readings (fractions allowed)",
    "spool": "SQLite file holding readings until the server acks them",
    "spool_max_readings": "spool bound in readings; the oldest are dropped (and counted) beyond it",
    "spool_max_mb": "spool bound in megabytes",
    "batch": "readings per message when catching up",
    "backoff_min": "first reconnect delay in seconds",
    "backoff_max": "longest reconnect delay in seconds",
    "ping_interval": "seconds between keepalive pings",
    "ping_timeout": "seconds without a pong before the link counts as dead",
    "ack_timeout": "seconds to wait for the server (handshake or ack) before reconnecting",
    "journal": "optional JSON-lines file recording every reading taken (for audits)",
    "ca_file": "wss:// only: PEM file of the CA (or self-signed certificate) to trust instead of "
               "the system CA store",
}


def load_settings(argv: list[str] | None = None,
                  environ: dict[str, str] | None = None) -> ClientSettings:
    """Defaults, then a [client] section of --config, then SENSORS_CLIENT_*, then options."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="ini file with a [client] section using these option names")
    parser.add_argument("--log-level", default="INFO")
    for f in fields(ClientSettings):
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(f.default),
                            help=f"{HELP[f.name]} (default: {f.default or 'none'})")
    args = parser.parse_args(argv)
    values: dict[str, object] = {}
    if args.config:
        ini = configparser.ConfigParser(interpolation=None)
        if not ini.read(args.config):
            parser.error(f"cannot read {args.config}")
        values.update(ini["client"] if ini.has_section("client") else {})
    for f in fields(ClientSettings):
        env = environ.get(f"SENSORS_CLIENT_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
        if getattr(args, f.name) is not None:
            values[f.name] = getattr(args, f.name)
    try:
        settings = ClientSettings(**{f.name: type(f.default)(values[f.name])
                                     for f in fields(ClientSettings) if f.name in values})
        settings.check()
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


async def run(settings: ClientSettings) -> None:
    """Build the sensor and client, and run until SIGTERM or SIGINT."""
    sensor = make_sensor(settings.sensor, **({"interval_s": settings.interval}
                                             if settings.sensor == "scd30" else {}))
    client = Client(settings, sensor)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, client.stop)
    await client.run()


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    settings = load_settings(argv)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(run(settings))
    except SensorError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

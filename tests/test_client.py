"""The Pi client: settings, stamps, and end-to-end delivery through a real ingest server."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import ssl
import time
import types

import pytest
import trustme

from lib import storage
from Pi_Sensor import client as client_mod
from Pi_Sensor.client import CLOCK_UNSET_BEFORE_MS, Client, ClientSettings, load_settings
from Pi_Sensor.sensors import SimulatedSensor
from Pi_Sensor.spool import Spool
from tests.conftest import stored

AUTH = ["--url", "ws://pi.example/ingest", "--token", "tok"]
WSS = ["--url", "wss://pi.example/ingest", "--token", "tok"]
GOOD = {"co2": 500.0, "temperature": 20.0, "humidity": 40.0}
LAYERS = {  # interval, batch, sensor as set by each layer
    "config": ("7.5", "70", "config-sensor"),
    "env": ("0.25", "25", "env-sensor"),
    "cli": ("12", "12", "cli-sensor"),
}


@pytest.mark.parametrize("layers", [(), ("config",), ("env",), ("cli",), ("config", "env"),
                                    ("config", "cli"), ("env", "cli"), ("config", "env", "cli")])
def test_settings_precedence(tmp_path, layers):
    """defaults < --config [client] < SENSORS_CLIENT_* < command-line options."""
    argv, env = [], {"SENSORS_CLIENT_URL": "ws://pi/ingest", "SENSORS_CLIENT_TOKEN": "tok"}
    for layer in layers:
        named = dict(zip(("interval", "batch", "sensor"), LAYERS[layer]))
        if layer == "config":
            (tmp_path / "c.ini").write_text("[client]\n" + "".join(f"{k} = {v}\n" for k, v in named.items()))
            argv += ["--config", str(tmp_path / "c.ini")]
        elif layer == "env":
            env |= {f"SENSORS_CLIENT_{k.upper()}": v for k, v in named.items()}
        else:
            argv += [x for k, v in named.items() for x in (f"--{k}", v)]
    settings = load_settings(argv, environ=env)
    interval, batch, sensor = LAYERS[layers[-1]] if layers else ("5", "500", "simulate")
    assert (settings.interval, settings.batch, settings.sensor) == (float(interval), int(batch), sensor)
    assert (settings.url, settings.token, settings.spool_max_mb) == ("ws://pi/ingest", "tok", 256.0)


@pytest.mark.parametrize("argv,env", [(["--interval", "0.5"], {}), ([], {"SENSORS_CLIENT_INTERVAL": "0.5"}),
                                      (["--interval", ".5"], {"SENSORS_CLIENT_INTERVAL": "9"})])
def test_fractional_interval(argv, env):
    """Intervals below a second are accepted from options and the environment."""
    assert load_settings(AUTH + argv, environ=env).interval == 0.5


MISSING = "--url and --token are required"


@pytest.mark.parametrize("argv,env,message", [
    (["--url", "ws://x"], {}, MISSING),
    (["--token", "t"], {}, MISSING),
    ([], {}, MISSING),
    ([], {"SENSORS_CLIENT_TOKEN": "t"}, MISSING),
    (["--url", "", "--token", "t"], {"SENSORS_CLIENT_URL": "ws://x"}, MISSING),
    (AUTH + ["--interval", "0"], {}, "--interval must be a positive number"),
    (AUTH + ["--interval", "-1"], {}, "--interval must be a positive number"),
    (AUTH + ["--batch", "0"], {}, "--batch must be 1..1000"),
    (AUTH + ["--batch", "1001"], {}, "--batch must be 1..1000"),
    (AUTH + ["--backoff-min", "0"], {}, "--backoff-min must be a positive number"),
    (AUTH + ["--backoff-min", "5", "--backoff-max", "1"], {}, "--backoff-max must not be below"),
    (AUTH + ["--spool-max-readings", "0"], {}, "--spool-max-readings must be at least 1"),
    (AUTH + ["--ack-timeout", "-1"], {}, "--ack-timeout must be a positive number"),
    (AUTH + ["--batch", "x"], {}, "invalid int value"),
    (AUTH, {"SENSORS_CLIENT_BATCH": "1.5"}, "invalid literal"),
    (AUTH + ["--config", "/nonexistent/client.ini"], {}, "cannot read"),
    (["--url", "http://x/ingest", "--token", "t"], {}, "--url must start with ws:// or wss://"),
    (["--url", "x:8080/ingest", "--token", "t"], {}, "--url must start with ws:// or wss://"),
    (AUTH + ["--ca-file", "/etc/hostname"], {}, "--ca-file needs a wss:// URL"),
    (AUTH, {"SENSORS_CLIENT_CA_FILE": "/etc/hostname"}, "--ca-file needs a wss:// URL"),
    (WSS + ["--ca-file", "/nonexistent/ca.pem"], {}, "cannot load --ca-file /nonexistent/ca.pem"),
    (WSS + ["--ca-file", "/etc/hostname"], {}, "cannot load --ca-file /etc/hostname"),
    pytest.param(AUTH + ["--interval", "nan"], {}, "--interval", id="interval-nan"),
    pytest.param(AUTH + ["--interval", "inf"], {}, "--interval", id="interval-inf"),
])
def test_unusable_settings_refused(argv, env, message, capsys):
    """Missing url/token and values the client cannot run with exit with a usage message."""
    with pytest.raises(SystemExit) as info:
        load_settings(argv, environ=env)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory) -> str:
    """A PEM file holding a freshly made CA certificate."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.parametrize("layer", ["config", "env", "cli"])
def test_ca_file_from_every_layer(tmp_path, ca_pem, layer):
    """ca_file comes from [client], SENSORS_CLIENT_CA_FILE or --ca-file, like the other options."""
    argv, env = ["--url", "wss://pi.example/ingest", "--token", "t"], {}
    if layer == "config":
        (tmp_path / "c.ini").write_text(f"[client]\nca_file = {ca_pem}\n")
        argv += ["--config", str(tmp_path / "c.ini")]
    elif layer == "env":
        env["SENSORS_CLIENT_CA_FILE"] = ca_pem
    else:
        argv += ["--ca-file", ca_pem]
    assert load_settings(argv, environ=env).ca_file == ca_pem


@pytest.mark.parametrize("url,ca,context", [
    ("ws://pi.example/ingest", False, None),
    ("wss://pi.example/ingest", False, "system"),
    ("WSS://pi.example/ingest", False, "system"),
    ("wss://pi.example/ingest", True, "ca-file"),
])
def test_tls_context(ca_pem, url, ca, context):
    """ws:// gets no TLS; wss:// verifies the certificate and host name against the CAs chosen."""
    ctx = client_mod.tls_context(ClientSettings(url=url, token="t", ca_file=ca_pem if ca else ""))
    if context is None:
        assert ctx is None
        return
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    subjects = [dict(x[0] for x in c["subject"]).get("organizationName", "") for c in ctx.get_ca_certs()]
    # --ca-file replaces the system store rather than adding to it.
    assert (len(subjects) == 1 and subjects[0].startswith("trustme")) is (context == "ca-file")


def test_help_mentions_every_option(capsys):
    """--help lists every setting, plus --config and --log-level."""
    with pytest.raises(SystemExit) as info:
        load_settings(["--help"], environ={})
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in [f.replace("_", "-") for f in ClientSettings.__dataclass_fields__] + ["config", "log-level"]:
        assert f"--{name}" in out


# ---- stamps (no server needed) ---------------------------------------------------------

def client_settings(tmp_path, url="ws://127.0.0.1:9/ingest", token="t", **options) -> ClientSettings:
    """Settings (a closed port by default) with the spool in tmp_path and short backoff."""
    return ClientSettings(url=url, token=token, spool=str(tmp_path / "spool.db"),
                          backoff_min=0.05, backoff_max=0.2, **options)


def fake_clock(monkeypatch, *ms: int) -> None:
    """Make the client's time.time_ns() return these epoch ms, the last one repeated."""
    stamps, last = iter(ms), [ms[-1]]

    def time_ns() -> int:
        last[0] = next(stamps, last[0])
        return last[0] * 1_000_000 + 999_999  # sub-ms digits must be truncated

    monkeypatch.setattr(client_mod, "time", types.SimpleNamespace(time_ns=time_ns))


def take(client: Client, n: int) -> list[int]:
    """Take n readings and return the spool's stamps."""
    for _ in range(n):
        asyncio.run(client._take_reading())
    return [r.ts_ms for r in client.spool.oldest(1000)]


def test_stamps_strictly_increase_when_clock_steps_back(tmp_path, monkeypatch):
    """A clock stepping back yields last stamp + 1 ms, also after a restart."""
    now = storage.now_ms()
    fake_clock(monkeypatch, now, now - 5000, now - 4000, now + 1000)
    client = Client(client_settings(tmp_path), SimulatedSensor(seed=1))
    assert take(client, 4) == [now, now + 1, now + 2, now + 1000]
    client.spool.close()
    fake_clock(monkeypatch, now - 60_000)
    client = Client(client_settings(tmp_path), SimulatedSensor(seed=1))
    assert take(client, 1)[-1] == now + 1001
    client.spool.close()


@pytest.mark.parametrize("clock_ms,kept", [(0, False), (1_000_000_000_000, False),
                                           (CLOCK_UNSET_BEFORE_MS - 1, False), (CLOCK_UNSET_BEFORE_MS, True)])
def test_unset_clock_skips_reading(tmp_path, monkeypatch, caplog, clock_ms, kept):
    """A clock before 2020 (a Pi without RTC) skips the reading with a warning."""
    fake_clock(monkeypatch, clock_ms)
    client = Client(client_settings(tmp_path), SimulatedSensor(seed=1))
    assert take(client, 1) == ([clock_ms] if kept else [])
    assert ("system clock is not set" in caplog.text) is not kept
    client.spool.close()


class Scripted:
    """A sensor replaying a script: dicts are returned, exceptions raised, None after the end."""

    def __init__(self, *script) -> None:
        self.script = list(script)

    def read(self):
        item = self.script.pop(0) if self.script else None
        if isinstance(item, Exception):
            raise item
        return item


def test_failed_or_empty_reads_are_skipped(tmp_path, caplog):
    """None and sensor exceptions spool nothing; the next good value is spooled."""
    client = Client(client_settings(tmp_path), Scripted(None, OSError("I2C bus error"), {}, GOOD))
    assert len(take(client, 4)) == 1
    assert client.spool.oldest(1)[0].values == GOOD
    assert "sensor read failed" in caplog.text
    client.spool.close()


# ---- end to end through the ingest server ---------------------------------------------

def spool_len(path) -> int:
    """Readings waiting in a spool file (read through a separate connection)."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0]


def spooled(tmp_path, *readings: tuple[int, dict]) -> list[int]:
    """Put (ts_ms, values) readings straight into the spool, as if left over; return their seqs."""
    spool = Spool(tmp_path / "spool.db")
    seqs = [spool.append(ts, values) for ts, values in readings]
    spool.close()
    return seqs


def run_until(client: Client, done, timeout: float = 20.0) -> bool:
    """Run the client until done() is true (checked every 50 ms) or the timeout."""
    async def go() -> bool:
        task = asyncio.create_task(client.run())
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if await asyncio.to_thread(done):
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            client.stop()
            await task
    return asyncio.run(go())


@pytest.mark.parametrize("batch,backlog", [(500, 1200), (7, 60)])
def test_backlog_arrives_in_batches(ingest, device, engine, tmp_path, batch, backlog):
    """A backlog is sent oldest first, at most `batch` per message, stamps exact to the ms."""
    frames: list[int] = []
    process = ingest.server._process

    async def counting(device_id, frame):  # records each frame, then lets the server work
        frames.append(len(json.loads(frame)["readings"]))
        return await process(device_id, frame)

    ingest.server._process = counting
    stamps = [storage.now_ms() - 3_600_000 + i for i in range(backlog)]  # 1 ms apart, an hour ago
    spooled(tmp_path, *[(ts, GOOD | {"co2": 400.0 + i * 0.5}) for i, ts in enumerate(stamps)])
    settings = client_settings(tmp_path, ingest.url, device.token, batch=batch, interval=3600)
    client = Client(settings, SimulatedSensor(seed=1))
    assert run_until(client, lambda: storage.count_readings(engine, device.id) == backlog + 1
                     and spool_len(tmp_path / "spool.db") == 0)
    rows = stored(engine, device.id)
    assert [r[0] for r in rows[:backlog]] == stamps
    assert [r[1] for r in rows[:backlog]] == [400.0 + i * 0.5 for i in range(backlog)]
    assert max(frames) <= batch and sum(frames) == backlog + 1
    assert frames[:backlog // batch] == [batch] * (backlog // batch)


@pytest.mark.parametrize("bad", [{"humidity": 150.0}, {"co2": -5.0}, {"pressure": 1013.0}],
                         ids=["humidity-150", "co2-negative", "unknown-metric"])
def test_rejected_readings_leave_the_spool(ingest, device, engine, tmp_path, caplog, bad):
    """A reading the server rejects is logged and removed; the others are stored."""
    base = storage.now_ms() - 60_000
    bad_seq = spooled(tmp_path, (base, GOOD), (base + 1, GOOD | bad), (base + 2, GOOD))[1]
    settings = client_settings(tmp_path, ingest.url, device.token, interval=3600)
    client = Client(settings, SimulatedSensor(seed=1))
    assert run_until(client, lambda: storage.count_readings(engine, device.id) == 3
                     and spool_len(tmp_path / "spool.db") == 0, timeout=5)
    assert [r[0] for r in stored(engine, device.id)][:2] == [base, base + 2]
    assert f"server rejected reading {bad_seq}" in caplog.text


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_values_never_enter_the_spool(tmp_path, value):
    """JSON cannot carry NaN, so the spool refuses it rather than block every later batch."""
    with pytest.raises(ValueError):
        spooled(tmp_path, (storage.now_ms(), GOOD | {"humidity": value}))


def test_non_finite_sensor_values_are_dropped(ingest, device, engine, tmp_path):
    """A sensor returning NaN for one metric still gets its other values stored."""
    settings = client_settings(tmp_path, ingest.url, device.token, interval=0.02)
    client = Client(settings, Scripted({"co2": 500.0, "humidity": math.nan}))
    assert run_until(client, lambda: storage.count_readings(engine, device.id) >= 1)
    assert stored(engine, device.id)[0][1:] == (500.0, None, None)


def test_journal_and_stepped_back_clock_end_to_end(ingest, device, engine, tmp_path, monkeypatch):
    """One journal line per reading taken; stored stamps still increase when the clock steps back."""
    now = storage.now_ms()
    fake_clock(monkeypatch, now, now - 5000, now - 4000, now + 1000)
    taken = [SimulatedSensor(seed=s).read() for s in range(5)]
    journal = tmp_path / "journal.jsonl"
    settings = client_settings(tmp_path, ingest.url, device.token, interval=0.02, journal=str(journal))
    client = Client(settings, Scripted(*taken))
    assert run_until(client, lambda: storage.count_readings(engine, device.id) == 5
                     and spool_len(tmp_path / "spool.db") == 0)
    stamps = [now, now + 1, now + 2, now + 1000, now + 1001]
    assert [r[0] for r in stored(engine, device.id)] == stamps
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines == [{"seq": i + 1, "ts": ts, "values": v} for i, (ts, v) in enumerate(zip(stamps, taken))]


def test_reading_loop_survives_a_full_disk(tmp_path):
    """A journal write failing (disk full) must not stop the readings for good."""
    client = Client(client_settings(tmp_path, interval=0.02, journal="/dev/full"), SimulatedSensor(seed=1))
    assert run_until(client, lambda: spool_len(tmp_path / "spool.db") >= 3, timeout=2)


def test_bad_token_keeps_readings_spooled(ingest, engine, tmp_path, caplog):
    """A refused handshake is retried with backoff; readings wait in the spool."""
    caplog.set_level(logging.WARNING, logger="Pi_Sensor.client")
    client = Client(client_settings(tmp_path, ingest.url, "wrong", interval=0.05), SimulatedSensor(seed=1))
    assert run_until(client, lambda: spool_len(tmp_path / "spool.db") >= 5
                     and caplog.text.count("link down") >= 2)
    assert storage.count_readings(engine) == 0
    assert "InvalidStatus" in caplog.text

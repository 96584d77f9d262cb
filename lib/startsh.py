"""Helpers for start.sh: its settings in one call, and watching the processes it started.

    python -m lib.startsh settings        # shell assignments, for eval
    python -m lib.startsh watch [--seconds S] [--timeout T] NAME=PID[=URL] ...

`watch` prints one line "NAME ok|died|no-answer" per process and exits 1 unless all are ok.
A process is ok once it has stayed alive S seconds and, when it has a URL, that URL has
answered HTTP 200 (or 503, see `answers`); it has died when it exits before that;
no-answer after T seconds.
"""
from __future__ import annotations

import argparse
import os
import shlex
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lib import config as config_mod
from lib.logpipe import backups, max_bytes

WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def probe_host(settings: config_mod.Config, address: str | None = None) -> str:
    """Where this machine reaches its own servers: the bind address, or loopback for 'all'."""
    host = settings.ecs.intranet_ip if address is None else address
    if host in WILDCARDS:
        return "127.0.0.1"
    return config_mod.url_host(host)


def flower_address(settings: config_mod.Config) -> str:
    """Where Flower listens: [auth] flower_address (loopback by default), else like the others."""
    return settings.auth.flower_address or settings.ecs.intranet_ip


def flower_url(settings: config_mod.Config) -> str:
    """Flower's URL for a person: its address, or the public host when it listens on all of them."""
    address = flower_address(settings)
    host = (settings.ecs.public_ip or "localhost") if address in WILDCARDS else address
    return f"http://{config_mod.url_host(host)}:{settings.ports.flower}/"


def shell_settings(settings: config_mod.Config) -> dict[str, str]:
    """Every value start.sh needs, by shell variable name."""
    host = probe_host(settings)
    tls = settings.ingest.tls
    ingest, flower, web = settings.ports.ingest, settings.ports.flower, settings.ports.flask
    if settings.uses_rabbitmq:
        broker = f"RabbitMQ {settings.rabbitmq.host}:{settings.rabbitmq.port}"
    else:
        broker = f"embedded in {settings.celery.embedded_dir}"
    return {
        "VAR_DIR": str(settings.var_dir),
        "INGEST_PORT": str(ingest),
        "FLOWER_PORT": str(flower),
        "INGEST_SCHEME": "wss" if tls else "ws",
        "INGEST_HEALTH": f"{'https' if tls else 'http'}://{host}:{ingest}/healthz",
        "FLOWER_HEALTH": f"http://{probe_host(settings, flower_address(settings))}:{flower}/healthcheck",
        "FLOWER_URL": flower_url(settings),
        "WEB_PORT": str(web),
        "WEB_HEALTH": f"http://{host}:{web}/api/v1/healthz",
        "PUBLIC_HOST": settings.ecs.public_ip or "localhost",
        "CHART_DIR": str(settings.other.flask_path),
        "DATABASE": _hide_password(settings.database_url),
        "BROKER": broker,
        "LOG_MAX_BYTES": str(max_bytes(settings)),
        "LOG_BACKUPS": str(backups(settings)),
    }


def _hide_password(url: str) -> str:
    """A database URL fit to print."""
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def assignments(values: dict[str, str]) -> str:
    """Shell assignments of `values`, quoted for eval."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


@dataclass
class Watched:
    """A process start.sh started, and the URL that proves it serves (if any)."""

    name: str
    pid: int
    url: str = ""
    answered: bool = False


def parse_spec(spec: str) -> Watched:
    """NAME=PID or NAME=PID=URL."""
    parts = spec.split("=", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"expected NAME=PID[=URL], got {spec!r}")
    return Watched(parts[0], int(parts[1]), parts[2] if len(parts) == 3 else "")


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by start.sh's shell) has died."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill -0 is all we can know
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# 503 counts too: the web app's /api/v1/healthz answers 503 while the database or the broker
# is down. The app itself then serves (and recovers by itself when they return), so start
# must not stop it; the health URL (and log/web.log) tells what is down.
ANSWERED = frozenset({200, 503})


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when a GET of `url` gets HTTP 200, or 503 (the server runs, a dependency is down)."""
    # Only whether our own server answers matters here, so its certificate is not checked
    # (it is often self-signed, or names the public address rather than loopback).
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status in ANSWERED
    except urllib.error.HTTPError as error:  # urlopen raises for 4xx and 5xx
        error.close()
        return error.code in ANSWERED
    except (OSError, ValueError):  # refused, reset, timed out
        return False


def watch(processes: list[Watched], seconds: float, timeout: float,
          poll: float = 0.2) -> dict[str, str]:
    """Watch all processes together; the state of each: ok, died or no-answer."""
    start = time.monotonic()
    states: dict[str, str] = {}
    while True:
        elapsed = time.monotonic() - start
        for proc in processes:
            if proc.name in states:
                continue
            if not alive(proc.pid):
                states[proc.name] = "died"
                continue
            if proc.url and not proc.answered:
                proc.answered = answers(proc.url)
            # Alive for `seconds` even after answering: when another program holds the port,
            # that program answers while ours dies of the failed bind, which this catches.
            if elapsed >= seconds and (proc.answered or not proc.url):
                states[proc.name] = "ok"
            elif elapsed >= timeout:
                states[proc.name] = "no-answer"
        if len(states) == len(processes):
            return states
        time.sleep(poll)


def main(argv: list[str] | None = None) -> None:
    """Print the settings, or watch processes."""
    parser = argparse.ArgumentParser(description="Helpers for start.sh.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("settings", help="print start.sh's settings as shell assignments")
    watching = commands.add_parser("watch", help="check freshly started processes")
    watching.add_argument("--seconds", type=float, default=3.0, help="each must stay alive this long")
    watching.add_argument("--timeout", type=float, default=60.0, help="give up waiting for URLs after this")
    watching.add_argument("process", nargs="+", metavar="NAME=PID[=URL]")
    args = parser.parse_args(argv)
    if args.command == "settings":
        sys.stdout.write(assignments(shell_settings(config_mod.load())))
        return
    states = watch([parse_spec(spec) for spec in args.process], args.seconds, args.timeout)
    sys.stdout.write("".join(f"{name} {state}\n" for name, state in states.items()))
    sys.exit(0 if all(state == "ok" for state in states.values()) else 1)


if __name__ == "__main__":
    main()

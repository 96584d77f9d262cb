"""Start Flower with basic auth: `python -m celery_tasks.flower [--show]`.

The password is [auth] flower_password, or one generated on first start into
flower_password in [other] var_dir (readable by this user only). It reaches Flower through the
environment, so it never shows in the process list. Flower listens on [auth] flower_address,
the loopback address unless configured otherwise: it shows task arguments and can stop workers.
"""
from __future__ import annotations

import argparse
import os
import sys

from lib import config as config_mod
from lib.secretfile import read_or_create

PASSWORD_FILE = "flower_password"


def credentials(settings: config_mod.Config) -> tuple[str, str]:
    """Flower's user and password, generating and storing a password when none is set."""
    user, password = settings.auth.flower_user, settings.auth.flower_password
    if password:
        return user, password
    # Written whole before it appears (lib.secretfile): a start reading it at the same moment
    # never sees an empty password, and an empty file is an error, not Flower without one.
    return user, read_or_create(settings.var_dir / PASSWORD_FILE, nbytes=18)


def address(settings: config_mod.Config) -> str:
    """[auth] flower_address (127.0.0.1 by default); empty: where the other servers listen."""
    return settings.auth.flower_address or settings.bind_host


def flower_command(settings: config_mod.Config) -> list[str]:
    """The celery command line starting Flower on [auth] flower_address, [ports] flower."""
    return ["celery", "-A", "celery_tasks", "flower",
            f"--port={settings.ports.flower}", f"--address={address(settings)}"]


def protect_metrics() -> None:
    """Put Flower's /metrics behind its basic auth like every other page (Flower leaves it open)."""
    from flower.views import monitor
    from tornado import web

    if not getattr(monitor.Metrics.get, "sensors_protected", False):
        monitor.Metrics.get = web.authenticated(monitor.Metrics.get)
        monitor.Metrics.get.sensors_protected = True


def main(argv: list[str] | None = None) -> None:
    """Print the credentials (--show) or run Flower in this process."""
    parser = argparse.ArgumentParser(description="Flower for the sensor backend's Celery tasks.")
    parser.add_argument("--show", action="store_true", help="print user and password, then exit")
    args = parser.parse_args(argv)
    settings = config_mod.load()
    user, password = credentials(settings)
    if args.show:
        sys.stdout.write(f"{user} {password}\n")
        return
    os.environ["FLOWER_BASIC_AUTH"] = f"{user}:{password}"
    protect_metrics()
    from celery.bin.celery import main as celery_main

    sys.argv = flower_command(settings)
    sys.exit(celery_main())


if __name__ == "__main__":
    main()

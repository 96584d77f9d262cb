"""Start Flower with basic auth: `python -m celery_tasks.flower [--show]`.

The password is [auth] flower_password, or one generated on first start into
flower_password in [other] var_dir (readable by this user only). It reaches Flower through the
environment, so it never shows in the process list.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from lib import config as config_mod

PASSWORD_FILE = "flower_password"


def credentials(settings: config_mod.Config) -> tuple[str, str]:
    """Flower's user and password, generating and storing a password when none is set."""
    user, password = settings.auth.flower_user, settings.auth.flower_password
    if password:
        return user, password
    path = settings.var_dir / PASSWORD_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two starts at once cannot overwrite each other's password.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(18) + "\n")
    return user, Path(path).read_text().strip()


def flower_command(settings: config_mod.Config) -> list[str]:
    """The command line starting Flower on [ports] flower."""
    return [sys.executable, "-m", "celery", "-A", "celery_tasks", "flower",
            f"--port={settings.ports.flower}", f"--address={settings.bind_host}"]


def main(argv: list[str] | None = None) -> None:
    """Print the credentials (--show) or replace this process with Flower."""
    parser = argparse.ArgumentParser(description="Flower for the sensor backend's Celery tasks.")
    parser.add_argument("--show", action="store_true", help="print user and password, then exit")
    args = parser.parse_args(argv)
    settings = config_mod.load()
    user, password = credentials(settings)
    if args.show:
        sys.stdout.write(f"{user} {password}\n")
        return
    env = dict(os.environ, FLOWER_BASIC_AUTH=f"{user}:{password}")
    command = flower_command(settings)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()

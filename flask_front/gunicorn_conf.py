"""gunicorn settings of the web app, from db_config.ini and SENSORS_* variables.

    python -m gunicorn -c flask_front/gunicorn_conf.py 'flask_front:create_app()'

(what `sh start.sh` runs). gunicorn reads the module-level names below.
"""
from __future__ import annotations

from lib import config as config_mod

GRACEFUL_SECONDS = 10  # below start.sh's STOP_SECONDS (20), after which it kills


def bind_address(settings: config_mod.Config) -> str:
    """HOST:PORT as gunicorn's --bind takes it: [ecs] intranet_ip (all when empty) and [ports] flask."""
    host = settings.bind_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    return f"{host}:{settings.ports.flask}"


def options(settings: config_mod.Config) -> dict:
    """gunicorn's settings for `settings`."""
    return {
        "bind": [bind_address(settings)],
        "workers": settings.web.workers,
        "threads": settings.web.threads,
        "worker_class": "gthread",
        # The app is built once in the master, then forked: every worker has the same secret
        # key (generated into var/ on first start) and the same settings, and a broken
        # configuration stops the master at once rather than each worker in a loop.
        "preload_app": True,
        "graceful_timeout": GRACEFUL_SECONDS,
        "errorlog": "-",  # stderr, which start.sh sends to var/log/web.log
        "loglevel": "info",
        # The app's own loggers (lib, flask_front) write there too, in gunicorn's format. No
        # access log: health polls alone would fill it (a logging config would turn it on).
        "logconfig_dict": {"root": {"level": "INFO", "handlers": ["error_console"]}, "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False}}},
        # gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl),
        # which two stacks on one machine would fight over; start.sh does not need it.
        "control_socket_disable": True,
        "proc_name": "sensors-web",
    }


def post_fork(server, worker) -> None:
    """In each new worker: drop database connections inherited from the master."""
    from flask_front.extensions import db

    app = server.app.callable  # the preloaded Flask app
    if app is None:
        return
    with app.app_context():
        ingest = app.extensions.get("sensors_ingest_engine")  # made on first use: none unless the master posted
        for engine in [*db.engines.values(), *([ingest] if ingest is not None else [])]:
            # close=False: the master's sockets are not this worker's to close (SQLAlchemy's
            # advice for forked processes); the worker opens its own on first use.
            engine.dispose(close=False)


globals().update(options(config_mod.load()))

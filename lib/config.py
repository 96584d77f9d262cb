"""Configuration: db_config.ini beside the repository, overridden by SENSORS_<SECTION>_<KEY>."""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT / "db_config.ini"
ENV_PREFIX = "SENSORS_"

# Fallbacks for keys a user's db_config.ini may lack; the shipped file lists them all.
DEFAULTS: dict[str, dict[str, str]] = {
    "mysql": {"host": "localhost", "port": "3306", "user": "", "password": "",
              "database": "", "charset": "utf8mb4"},
    "sqlite": {"path": "var/sensors.db"},
    "ecs": {"public_ip": "", "intranet_ip": ""},
    "rabbitmq": {"user": "", "password": "", "host": "", "port": "5672", "v_host": ""},
    "ports": {"flask": "4350", "ingest": "8080", "flower": "5555"},
    "ingest": {"max_readings": "1000", "max_frame_bytes": "1048576", "ping_interval": "20",
               "ping_timeout": "20", "commit_rows": "5000", "writers": "2",
               "max_future_seconds": "300", "compression": "off", "max_connections": "10000",
               "handshake_timeout": "5", "max_unsent_bytes": "65536", "max_queued_frames": "4",
               "drain_seconds": "8", "close_timeout": "2", "revoke_check_seconds": "2",
               "tls_cert": "", "tls_key": ""},
    "other": {"flask_path": "var/charts", "var_dir": "var", "log_max_mb": "10", "log_backups": "5"},
    "celery": {"queue": "sensors", "concurrency": "2", "embedded_dir": "var/celery", "result_backend": "",
               "rollup_seconds": "60",
               "alert_seconds": "30", "retention_seconds": "86400"},
    "charts": {"interval_seconds": "3600", "keep_days": "1", "max_points": "2000",
               "echarts_url": "/static/vendor/echarts/"},
    "retention": {"raw_days": "30", "minute_days": "365", "batch_rows": "5000"},
    "alerts": {"webhook_url": "", "webhook_timeout": "10", "webhook_retries": "8"},
    "auth": {"flower_user": "admin", "flower_password": ""},
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """Resolved settings: a section -> key -> string mapping with typed accessors."""

    values: Mapping[str, Mapping[str, str]]
    base_dir: Path = REPO_ROOT
    source: Path | None = field(default=None, compare=False)

    def get(self, section: str, key: str) -> str:
        """Return a setting as a stripped string."""
        try:
            return self.values[section][key].strip()
        except KeyError:
            raise KeyError(f"no setting [{section}] {key}") from None

    def getint(self, section: str, key: str) -> int:
        """Return a setting as an integer, naming the key when it is not one."""
        raw = self.get(section, key)
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"[{section}] {key} must be an integer, got {raw!r}") from None

    def getfloat(self, section: str, key: str) -> float:
        """Return a setting as a float, naming the key when it is not one."""
        raw = self.get(section, key)
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"[{section}] {key} must be a number, got {raw!r}") from None

    def getbool(self, section: str, key: str) -> bool:
        """Return a setting as a boolean (on/off, true/false, yes/no, 1/0)."""
        raw = self.get(section, key).lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ValueError(f"[{section}] {key} must be on or off, got {raw!r}")

    def path(self, section: str, key: str) -> Path:
        """Return a setting as a path, relative paths taken from the repository root."""
        return (self.base_dir / self.get(section, key)).resolve()

    @property
    def var_dir(self) -> Path:
        """Directory for runtime state (pids, logs, secrets): [other] var_dir."""
        return self.path("other", "var_dir")

    @property
    def uses_mysql(self) -> bool:
        """True when [mysql] names a database; otherwise the embedded SQLite is used."""
        return bool(self.get("mysql", "database"))

    @property
    def uses_rabbitmq(self) -> bool:
        """True when [rabbitmq] names a host; otherwise Celery uses an embedded transport."""
        return bool(self.get("rabbitmq", "host"))

    @property
    def broker_url(self) -> str:
        """Celery broker: RabbitMQ over AMQP, or the embedded filesystem transport."""
        if not self.uses_rabbitmq:
            return "sensorsfs://"  # celery_tasks/fs_transport.py
        user = quote(self.get("rabbitmq", "user") or "guest", safe="")
        password = quote(self.get("rabbitmq", "password") or "guest", safe="")
        host, port = _url_host(self.get("rabbitmq", "host")), self.getint("rabbitmq", "port")
        return f"amqp://{user}:{password}@{host}:{port}/{quote(self.get('rabbitmq', 'v_host'), safe='')}"

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the configured database."""
        if not self.uses_mysql:
            return f"sqlite:///{self.path('sqlite', 'path')}"
        user = quote(self.get("mysql", "user"), safe="")
        password = quote(self.get("mysql", "password"), safe="")
        auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
        host, port = _url_host(self.get("mysql", "host") or "localhost"), self.getint("mysql", "port")
        database, charset = self.get("mysql", "database"), self.get("mysql", "charset")
        return f"mysql+pymysql://{auth}{host}:{port}/{quote(database, safe='')}?charset={charset}"

    @property
    def bind_host(self) -> str:
        """Address the servers listen on."""
        return self.get("ecs", "intranet_ip") or "0.0.0.0"

    def with_overrides(self, overrides: Mapping[str, Mapping[str, str]]) -> "Config":
        """Return a copy with some keys replaced (used by tests and app factories)."""
        merged = {s: dict(keys) for s, keys in self.values.items()}
        for section, keys in overrides.items():
            merged.setdefault(section, {}).update({k: str(v) for k, v in keys.items()})
        return Config(merged, self.base_dir, self.source)


def load(path: str | os.PathLike | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read db_config.ini (or `path`), then apply SENSORS_<SECTION>_<KEY> overrides."""
    environ = os.environ if environ is None else environ
    source = Path(path or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_PATH).resolve()
    parser = configparser.ConfigParser(interpolation=None)
    if source.exists():
        parser.read(source, encoding="utf-8")
    elif source != DEFAULT_PATH.resolve():  # a file named explicitly must exist
        raise FileNotFoundError(f"configuration file {source} does not exist")
    values = {section: dict(keys) for section, keys in DEFAULTS.items()}
    for section in parser.sections():
        values.setdefault(section, {}).update(parser[section])
    for name, value in environ.items():
        section_key = _env_target(name, values)
        if section_key:
            values[section_key[0]][section_key[1]] = value
    return Config(values, REPO_ROOT, source)


def _url_host(host: str) -> str:
    """A host as written in a URL: IPv6 addresses go in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _env_target(name: str, values: Mapping[str, Mapping[str, str]]) -> tuple[str, str] | None:
    """Map SENSORS_MYSQL_HOST to ("mysql", "host") when that section exists."""
    if not name.startswith(ENV_PREFIX):
        return None
    rest = name[len(ENV_PREFIX):].lower()
    # Longest section first, so a section named "a_b" wins over "a".
    for section in sorted(values, key=len, reverse=True):
        if rest.startswith(section + "_") and len(rest) > len(section) + 1:
            return section, rest[len(section) + 1:]
    return None

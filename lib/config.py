"""Configuration: db_config.ini beside the repository, overridden by SENSORS_<SECTION>_<KEY>."""
from __future__ import annotations

import configparser
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

from lib import settings as settings_mod
from lib.settings import SettingsError  # noqa: F401  re-exported: what a bad value raises

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT / "db_config.ini"
ENV_PREFIX = "SENSORS_"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    """Resolved settings: the raw section -> key -> strings, and typed sections parsed from them once.

    The typed sections (`cfg.ingest.max_readings`, `cfg.other.flask_path` …) are built when the
    Config is made, so a bad value fails `load()` or `with_overrides()` with a message naming it.
    """

    values: Mapping[str, Mapping[str, str]]
    base_dir: Path = REPO_ROOT
    source: Path | None = field(default=None, compare=False)
    typed: settings_mod.Settings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "typed", settings_mod.parse(self.values, self.base_dir))

    @property
    def mysql(self) -> settings_mod.MysqlSettings:
        """[mysql], typed."""
        return self.typed.mysql

    @property
    def sqlite(self) -> settings_mod.SqliteSettings:
        """[sqlite], typed."""
        return self.typed.sqlite

    @property
    def ecs(self) -> settings_mod.EcsSettings:
        """[ecs], typed."""
        return self.typed.ecs

    @property
    def rabbitmq(self) -> settings_mod.RabbitmqSettings:
        """[rabbitmq], typed."""
        return self.typed.rabbitmq

    @property
    def ports(self) -> settings_mod.PortsSettings:
        """[ports], typed."""
        return self.typed.ports

    @property
    def ingest(self) -> settings_mod.IngestSettings:
        """[ingest], typed."""
        return self.typed.ingest

    @property
    def other(self) -> settings_mod.OtherSettings:
        """[other], typed."""
        return self.typed.other

    @property
    def celery(self) -> settings_mod.CelerySettings:
        """[celery], typed."""
        return self.typed.celery

    @property
    def charts(self) -> settings_mod.ChartsSettings:
        """[charts], typed."""
        return self.typed.charts

    @property
    def retention(self) -> settings_mod.RetentionSettings:
        """[retention], typed."""
        return self.typed.retention

    @property
    def alerts(self) -> settings_mod.AlertsSettings:
        """[alerts], typed."""
        return self.typed.alerts

    @property
    def web(self) -> settings_mod.WebSettings:
        """[web], typed."""
        return self.typed.web

    @property
    def auth(self) -> settings_mod.AuthSettings:
        """[auth], typed."""
        return self.typed.auth

    @property
    def live(self) -> settings_mod.LiveSettings:
        """[live], typed."""
        return self.typed.live

    def get(self, section: str, key: str) -> str:
        """Return a raw setting as a stripped string (for sections the typed settings lack)."""
        try:
            return self.values[section][key].strip()
        except KeyError:
            raise KeyError(f"no setting [{section}] {key}") from None

    @property
    def var_dir(self) -> Path:
        """Directory for runtime state (pids, logs, secrets): [other] var_dir."""
        return self.other.var_dir

    @property
    def uses_mysql(self) -> bool:
        """True when [mysql] names a database; otherwise the embedded SQLite is used."""
        return bool(self.mysql.database)

    @property
    def uses_rabbitmq(self) -> bool:
        """True when [rabbitmq] names a host; otherwise Celery uses an embedded transport."""
        return bool(self.rabbitmq.host)

    @property
    def broker_url(self) -> str:
        """Celery broker: RabbitMQ over AMQP, or the embedded filesystem transport."""
        mq = self.rabbitmq
        if not self.uses_rabbitmq:
            return "sensorsfs://"  # lib/fs_transport.py
        user = quote(mq.user or "guest", safe="")
        password = quote(mq.password or "guest", safe="")
        return f"amqp://{user}:{password}@{url_host(mq.host)}:{mq.port}/{quote(mq.v_host, safe='')}"

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the configured database."""
        db = self.mysql
        if not self.uses_mysql:
            return f"sqlite:///{self.sqlite.path}"
        user, password = quote(db.user, safe=""), quote(db.password, safe="")
        auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
        host = url_host(db.host or "localhost")
        return f"mysql+pymysql://{auth}{host}:{db.port}/{quote(db.database, safe='')}?charset={db.charset}"

    @property
    def bind_host(self) -> str:
        """Address the servers listen on."""
        return self.ecs.intranet_ip or "0.0.0.0"

    def with_overrides(self, overrides: Mapping[str, Mapping[str, object]]) -> "Config":
        """Return a copy with some keys replaced (used by tests and app factories)."""
        merged = {s: dict(keys) for s, keys in self.values.items()}
        for section, keys in overrides.items():
            merged.setdefault(section, {}).update({k: str(v) for k, v in keys.items()})
        return Config(merged, self.base_dir, self.source)

    def environ(self) -> dict[str, str]:
        """Every setting as SENSORS_<SECTION>_<KEY>, so a child process loads exactly these."""
        return {f"{ENV_PREFIX}{section.upper()}_{key.upper()}": value
                for section, keys in self.values.items() for key, value in keys.items()}


def load(path: str | os.PathLike | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read db_config.ini (or `path`), apply SENSORS_<SECTION>_<KEY> overrides, then parse and check."""
    environ = os.environ if environ is None else environ
    source = Path(path or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_PATH).resolve()
    parser = configparser.ConfigParser(interpolation=None)
    if source.exists():
        parser.read(source, encoding="utf-8")
    elif source != DEFAULT_PATH.resolve():  # a file named explicitly must exist
        raise FileNotFoundError(f"configuration file {source} does not exist")
    values = settings_mod.defaults()
    for section in parser.sections():
        if section not in settings_mod.SECTIONS:
            log.warning("%s: [%s] is not a known section", source, section)
        values.setdefault(section, {}).update(parser[section])
    for section, key in settings_mod.unknown_keys({s: parser[s] for s in parser.sections()}):
        log.warning("%s: [%s] %s is not a known setting", source, section, key)
    for name, value in environ.items():
        section_key = _env_target(name, values)
        if section_key:
            section, key = section_key
            if settings_mod.unknown_keys({section: {key: value}}):
                log.warning("%s sets [%s] %s, which is not a known setting", name, section, key)
            values[section][key] = value
    return Config(values, REPO_ROOT, source)


def url_host(host: str) -> str:
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

"""Typed settings: one frozen dataclass per db_config.ini section, parsed and checked once.

Each field's type, default and allowed range live here and nowhere else; lib.config reads the
ini file and the SENSORS_* environment into strings and hands them to `parse`.
"""
from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping
from urllib.parse import urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting with a bad value; the message names the section and key."""


def setting(default: Any, *, minimum: float | None = None, maximum: float | None = None,
            positive: bool = False, required: bool = False) -> Any:
    """A section field with its default and the range its value must fall in."""
    checks = {"minimum": minimum, "maximum": maximum, "positive": positive, "required": required}
    return field(default=default, metadata=checks)


class Section:
    """Base of the section dataclasses: checks each field against its declared range."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            _check_range(self.SECTION, f.name, getattr(self, f.name), f.metadata)
        self.check()

    def check(self) -> None:
        """Rules that tie several keys of the section together (none by default)."""

    def fail(self, key: str, message: str) -> SettingsError:
        """An error about `key` of this section."""
        return SettingsError(f"[{self.SECTION}] {key} {message}")


def _check_range(section: str, key: str, value: Any, rules: Mapping[str, Any]) -> None:
    """Raise SettingsError when `value` breaks the field's declared range."""
    where = f"[{section}] {key}"
    if rules.get("required") and not value:
        raise SettingsError(f"{where} must not be empty")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if rules.get("positive") and not value > 0:
        raise SettingsError(f"{where} must be positive, got {value!r}")
    if rules.get("minimum") is not None and value < rules["minimum"]:
        raise SettingsError(f"{where} must be at least {rules['minimum']}, got {value!r}")
    if rules.get("maximum") is not None and value > rules["maximum"]:
        raise SettingsError(f"{where} must be at most {rules['maximum']}, got {value!r}")


@dataclass(frozen=True)
class MysqlSettings(Section):
    """[mysql]: the MySQL/MariaDB server; an empty database selects the embedded SQLite."""

    SECTION: ClassVar[str] = "mysql"
    host: str = "localhost"
    port: int = setting(3306, minimum=1, maximum=65535)
    user: str = ""
    password: str = ""
    database: str = ""
    charset: str = setting("utf8mb4", required=True)


@dataclass(frozen=True)
class SqliteSettings(Section):
    """[sqlite]: the embedded database used when [mysql] database is empty."""

    SECTION: ClassVar[str] = "sqlite"
    path: Path = Path("var/sensors.db")


@dataclass(frozen=True)
class EcsSettings(Section):
    """[ecs]: the address devices use and the address servers bind (empty: all)."""

    SECTION: ClassVar[str] = "ecs"
    public_ip: str = ""
    intranet_ip: str = ""


@dataclass(frozen=True)
class RabbitmqSettings(Section):
    """[rabbitmq]: Celery's broker; an empty host selects the embedded transport."""

    SECTION: ClassVar[str] = "rabbitmq"
    user: str = ""
    password: str = ""
    host: str = ""
    port: int = setting(5672, minimum=1, maximum=65535)
    v_host: str = ""


@dataclass(frozen=True)
class PortsSettings(Section):
    """[ports]: where each server listens (0: any free port)."""

    SECTION: ClassVar[str] = "ports"
    flask: int = setting(4350, minimum=0, maximum=65535)
    ingest: int = setting(8080, minimum=0, maximum=65535)
    flower: int = setting(5555, minimum=0, maximum=65535)


@dataclass(frozen=True)
class IngestSettings(Section):
    """[ingest]: limits, timeouts and TLS of the WebSocket ingest server."""

    SECTION: ClassVar[str] = "ingest"
    max_readings: int = setting(1000, minimum=1)
    max_frame_bytes: int = setting(1048576, minimum=1)
    ping_interval: float = setting(20.0, positive=True)
    ping_timeout: float = setting(20.0, positive=True)
    commit_rows: int = setting(5000, minimum=1)
    writers: int = setting(2, minimum=1)
    max_future_seconds: float = setting(300.0, minimum=0)
    compression: bool = False
    max_connections: int = setting(10000, minimum=1)
    handshake_timeout: float = setting(5.0, positive=True)
    max_unsent_bytes: int = setting(65536, minimum=1)
    max_queued_frames: int = setting(4, minimum=1)
    drain_seconds: float = setting(8.0, minimum=0)
    close_timeout: float = setting(2.0, minimum=0)
    revoke_check_seconds: float = setting(2.0, positive=True)
    device_max_rate: float = setting(1000.0, minimum=0)
    device_burst: int = setting(10000, minimum=1)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def check(self) -> None:
        """A certificate without its key (or the reverse) is a mistake, not plain ws://."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise self.fail("tls_cert", "and tls_key must be given together")
        # HTTP ingest admits a request whole or not at all: a full frame must fit in the burst.
        if self.device_max_rate and self.device_burst < self.max_readings:
            raise self.fail("device_burst", f"must be at least max_readings ({self.max_readings}), "
                                            f"got {self.device_burst}")

    @property
    def tls(self) -> bool:
        """True when the server speaks wss://."""
        return self.tls_cert is not None


@dataclass(frozen=True)
class OtherSettings(Section):
    """[other]: rendered charts, runtime state and log rotation."""

    SECTION: ClassVar[str] = "other"
    flask_path: Path = Path("var/charts")
    var_dir: Path = Path("var")
    log_max_mb: float = setting(10.0, positive=True)
    log_backups: int = setting(5, minimum=1)


@dataclass(frozen=True)
class CelerySettings(Section):
    """[celery]: queue, workers, embedded files and beat intervals in seconds."""

    SECTION: ClassVar[str] = "celery"
    queue: str = setting("sensors", required=True)
    concurrency: int = setting(2, minimum=1)
    embedded_dir: Path = Path("var/celery")
    result_backend: str = ""
    rollup_seconds: float = setting(60.0, positive=True)
    alert_seconds: float = setting(30.0, positive=True)
    retention_seconds: float = setting(86400.0, positive=True)


@dataclass(frozen=True)
class ChartsSettings(Section):
    """[charts]: how often trend charts are drawn, how long kept, and how detailed."""

    SECTION: ClassVar[str] = "charts"
    interval_seconds: float = setting(3600.0, positive=True)
    keep_days: float = setting(1.0, positive=True)
    max_points: int = setting(2000, minimum=1)
    echarts_url: str = setting("/static/vendor/echarts/", required=True)


@dataclass(frozen=True)
class RetentionSettings(Section):
    """[retention]: days raw readings and minute rollups are kept; rows per delete."""

    SECTION: ClassVar[str] = "retention"
    raw_days: float = setting(30.0, positive=True)
    minute_days: float = setting(365.0, positive=True)
    batch_rows: int = setting(5000, minimum=1)

    def check(self) -> None:
        """Hour rows are recomputed from minute rows while an hour's raw readings are kept."""
        if self.minute_days < self.raw_days:
            raise self.fail("minute_days", f"must be at least raw_days ({self.raw_days!r}), "
                                           f"got {self.minute_days!r}")


@dataclass(frozen=True)
class AlertsSettings(Section):
    """[alerts]: the webhook notified when alerts fire and resolve."""

    SECTION: ClassVar[str] = "alerts"
    webhook_url: str = ""
    webhook_timeout: float = setting(10.0, positive=True)
    webhook_retries: int = setting(8, minimum=0)

    def check(self) -> None:
        """Only http(s): urllib would also open file:// and ftp:// URLs."""
        if self.webhook_url and urlsplit(self.webhook_url).scheme not in ("http", "https"):
            raise self.fail("webhook_url", f"must be an http or https URL, got {self.webhook_url!r}")


@dataclass(frozen=True)
class WebSettings(Section):
    """[web]: the Flask app served by gunicorn: workers, who may read, cookies, CORS, logins."""

    SECTION: ClassVar[str] = "web"
    workers: int = setting(2, minimum=1)
    threads: int = setting(4, minimum=1)
    public: bool = True
    secret_key: str = ""
    secure_cookies: bool = False
    cors_origins: str = ""
    offline_seconds: float = setting(300.0, positive=True)
    max_points: int = setting(2000, minimum=10)
    login_limit: str = setting("10 per minute", required=True)
    limiter_storage: str = setting("memory://", required=True)
    max_body_bytes: int = setting(1048576, minimum=1024)

    def check(self) -> None:
        """CORS origins are scheme://host[:port]; the login limit must parse as Flask-Limiter's."""
        from limits import parse_many  # Flask-Limiter's own parser of "10 per minute"

        for origin in self.origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise self.fail("cors_origins", f"must list origins like https://host:port, got {origin!r}")
        try:
            parse_many(self.login_limit)
        except ValueError:
            raise self.fail("login_limit", f"must be a limit like '10 per minute', got "
                                           f"{self.login_limit!r}") from None

    @property
    def origins(self) -> list[str]:
        """The allowed CORS origins, from the comma- or space-separated cors_origins."""
        return [o for o in re.split(r"[\s,]+", self.cors_origins) if o]


@dataclass(frozen=True)
class AuthSettings(Section):
    """[auth]: Flower's basic auth (an empty password is generated on first start) and its address."""

    SECTION: ClassVar[str] = "auth"
    flower_user: str = setting("admin", required=True)
    flower_password: str = ""
    flower_address: str = "127.0.0.1"


@dataclass(frozen=True)
class LiveSettings(Section):
    """[live]: readings pushed to browsers over the ingest server's /live WebSocket."""

    SECTION: ClassVar[str] = "live"
    secret: str = ""
    token_seconds: float = setting(60.0, positive=True)
    browser_url: str = ""
    max_unsent_bytes: int = setting(1048576, minimum=1024)
    batch_readings: int = setting(500, minimum=1)

    def check(self) -> None:
        """browser_url, when given, is where browsers open the WebSocket: ws:// or wss://."""
        if self.browser_url and urlsplit(self.browser_url).scheme not in ("ws", "wss"):
            raise self.fail("browser_url", f"must be a ws:// or wss:// URL, got {self.browser_url!r}")


SECTIONS: dict[str, type[Section]] = {cls.SECTION: cls for cls in (
    MysqlSettings, SqliteSettings, EcsSettings, RabbitmqSettings, PortsSettings, IngestSettings,
    OtherSettings, CelerySettings, ChartsSettings, RetentionSettings, AlertsSettings, WebSettings, AuthSettings, LiveSettings)}


@dataclass(frozen=True)
class Settings:
    """Every section, typed and checked."""

    mysql: MysqlSettings
    sqlite: SqliteSettings
    ecs: EcsSettings
    rabbitmq: RabbitmqSettings
    ports: PortsSettings
    ingest: IngestSettings
    other: OtherSettings
    celery: CelerySettings
    charts: ChartsSettings
    retention: RetentionSettings
    alerts: AlertsSettings
    web: WebSettings
    auth: AuthSettings
    live: LiveSettings


def defaults() -> dict[str, dict[str, str]]:
    """Every known key's default as the string an ini file would hold."""
    return {name: {f.name: _format(f.default) for f in fields(cls)} for name, cls in SECTIONS.items()}


def parse(values: Mapping[str, Mapping[str, str]], base_dir: Path) -> Settings:
    """Typed, checked settings from section -> key -> string; missing keys take their defaults."""
    sections, fallback = {}, defaults()
    for name, cls in SECTIONS.items():
        raw, hints = {**fallback[name], **values.get(name, {})}, typing.get_type_hints(cls)
        sections[name] = cls(**{f.name: _convert(name, f.name, raw[f.name], hints[f.name], base_dir)
                                for f in fields(cls)})
    return Settings(**sections)


def unknown_keys(values: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    """(section, key) pairs in known sections that no section declares: typos, usually."""
    known = {name: {f.name for f in fields(cls)} for name, cls in SECTIONS.items()}
    return [(section, key) for section, keys in values.items() if section in known
            for key in keys if key not in known[section]]


def _convert(section: str, key: str, raw: str, kind: Any, base_dir: Path) -> Any:
    """One raw string as `kind`, or SettingsError naming the key."""
    text = raw.strip()
    where = f"[{section}] {key}"
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SettingsError(f"{where} must be on or off, got {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{where} must be an integer, got {text!r}") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise SettingsError(f"{where} must be a number, got {text!r}") from None
        if not math.isfinite(number):
            raise SettingsError(f"{where} must be a finite number, got {text!r}")
        return number
    if kind is Path or kind == (Path | None):
        if not text:
            if kind is Path:
                raise SettingsError(f"{where} must be a path, got ''")
            return None
        return (base_dir / text).resolve()
    return text


def _format(value: Any) -> str:
    """A default as ini text: on/off, integral floats without '.0', empty for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

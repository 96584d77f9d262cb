"""lib.settings through lib.config.load: typed sections, defaults, overrides, checks and warnings."""
from __future__ import annotations

import configparser
import dataclasses
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from lib import config, settings
from lib.config import DEFAULT_PATH, REPO_ROOT
from lib.settings import SettingsError


def load(**env: str) -> config.Config:
    """Settings from the shipped file and `env` only."""
    return config.load(environ=env)


def test_defaults_are_typed():
    """Every section is a frozen dataclass whose values have their declared types."""
    cfg = load()
    assert cfg.ingest.max_readings == 1000 and type(cfg.ingest.max_readings) is int
    assert cfg.ingest.ping_interval == 20.0 and type(cfg.ingest.ping_interval) is float
    assert cfg.ingest.compression is False
    assert cfg.ingest.tls_cert is None and cfg.ingest.tls_key is None and not cfg.ingest.tls
    assert cfg.mysql.port == 3306 and cfg.mysql.charset == "utf8mb4" and cfg.mysql.database == ""
    assert cfg.celery.queue == "sensors" and cfg.celery.rollup_seconds == 60.0
    assert cfg.retention.batch_rows == 5000 and cfg.charts.keep_days == 1.0
    assert cfg.auth.flower_user == "admin" and cfg.alerts.webhook_retries == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ingest.max_readings = 5  # type: ignore[misc]


def test_shipped_file_values_equal_the_defaults():
    """db_config.ini documents every key, with the defaults the dataclasses declare."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEFAULT_PATH, encoding="utf-8")
    for section, keys in settings.defaults().items():
        assert section in parser, f"db_config.ini lacks [{section}]"
        assert dict(parser[section]) == keys, f"[{section}] differs from lib/settings.py"


def test_paths_are_resolved_against_the_repository():
    """Path settings are absolute, relative ones taken from the repository root."""
    cfg = load(SENSORS_INGEST_TLS_CERT="c.pem", SENSORS_INGEST_TLS_KEY="/etc/k.pem")
    assert cfg.sqlite.path == REPO_ROOT / "var" / "sensors.db"
    assert cfg.other.flask_path == REPO_ROOT / "var" / "charts"
    assert cfg.celery.embedded_dir == REPO_ROOT / "var" / "celery"
    assert (cfg.ingest.tls_cert, cfg.ingest.tls_key) == (REPO_ROOT / "c.pem", Path("/etc/k.pem"))
    assert cfg.ingest.tls


@pytest.mark.parametrize(("name", "raw", "section", "key", "expected"), [
    ("SENSORS_INGEST_MAX_READINGS", " 50 ", "ingest", "max_readings", 50),
    ("SENSORS_INGEST_PING_TIMEOUT", "0.25", "ingest", "ping_timeout", 0.25),
    ("SENSORS_INGEST_COMPRESSION", "On", "ingest", "compression", True),
    ("SENSORS_INGEST_COMPRESSION", "", "ingest", "compression", False),
    ("SENSORS_CELERY_QUEUE", " lab ", "celery", "queue", "lab"),
    ("SENSORS_CHARTS_KEEP_DAYS", "0.5", "charts", "keep_days", 0.5),
    ("SENSORS_PORTS_INGEST", "0", "ports", "ingest", 0),
    ("SENSORS_ALERTS_WEBHOOK_RETRIES", "0", "alerts", "webhook_retries", 0),
    ("SENSORS_WEB_PUBLIC", "off", "web", "public", False),
    ("SENSORS_WEB_WORKERS", "4", "web", "workers", 4),
    ("SENSORS_WEB_OFFLINE_SECONDS", "90", "web", "offline_seconds", 90.0),
    ("SENSORS_WEB_CORS_ORIGINS", "https://a.example, http://b:8000", "web", "origins",
     ["https://a.example", "http://b:8000"]),
])
def test_environment_overrides_are_typed(name, raw, section, key, expected):
    """A SENSORS_* variable replaces the file's value and is converted to the field's type."""
    value = getattr(getattr(load(**{name: raw}), section), key)
    assert value == expected and type(value) is type(expected)


def test_with_overrides_reparses():
    """with_overrides gives new typed sections and leaves the original's alone."""
    cfg = load()
    changed = cfg.with_overrides({"ingest": {"writers": 4, "compression": "yes"}})
    assert (changed.ingest.writers, changed.ingest.compression) == (4, True)
    assert (cfg.ingest.writers, cfg.ingest.compression) == (2, False)


@pytest.mark.parametrize(("section", "key", "raw", "message"), [
    ("ingest", "max_readings", "lots", "[ingest] max_readings must be an integer, got 'lots'"),
    ("ingest", "max_readings", "1.5", "[ingest] max_readings must be an integer, got '1.5'"),
    ("ingest", "max_readings", "", "[ingest] max_readings must be an integer, got ''"),
    ("ingest", "ping_interval", "fast", "[ingest] ping_interval must be a number, got 'fast'"),
    ("ingest", "ping_interval", "inf", "[ingest] ping_interval must be a finite number, got 'inf'"),
    ("ingest", "ping_interval", "nan", "[ingest] ping_interval must be a finite number, got 'nan'"),
    ("ingest", "compression", "maybe", "[ingest] compression must be on or off, got 'maybe'"),
    ("ingest", "compression", "2", "[ingest] compression must be on or off, got '2'"),
    ("ingest", "max_connections", "0", "[ingest] max_connections must be at least 1, got 0"),
    ("ingest", "handshake_timeout", "0", "[ingest] handshake_timeout must be positive, got 0.0"),
    ("ingest", "drain_seconds", "-1", "[ingest] drain_seconds must be at least 0, got -1.0"),
    ("ingest", "tls_cert", "c.pem", "[ingest] tls_cert and tls_key must be given together"),
    ("ingest", "tls_key", "k.pem", "[ingest] tls_cert and tls_key must be given together"),
    ("celery", "rollup_seconds", "-5", "[celery] rollup_seconds must be positive, got -5.0"),
    ("celery", "queue", " ", "[celery] queue must not be empty"),
    ("celery", "concurrency", "0", "[celery] concurrency must be at least 1, got 0"),
    ("charts", "interval_seconds", "0", "[charts] interval_seconds must be positive, got 0.0"),
    ("retention", "minute_days", "7",
     "[retention] minute_days must be at least raw_days (30.0), got 7.0"),
    ("retention", "batch_rows", "0", "[retention] batch_rows must be at least 1, got 0"),
    ("mysql", "port", "70000", "[mysql] port must be at most 65535, got 70000"),
    ("ports", "flower", "-1", "[ports] flower must be at least 0, got -1"),
    ("other", "log_max_mb", "0", "[other] log_max_mb must be positive, got 0.0"),
    ("other", "log_backups", "0", "[other] log_backups must be at least 1, got 0"),
    ("other", "var_dir", "", "[other] var_dir must be a path, got ''"),
    ("alerts", "webhook_retries", "-1", "[alerts] webhook_retries must be at least 0, got -1"),
    ("alerts", "webhook_url", "file:///etc/passwd",
     "[alerts] webhook_url must be an http or https URL, got 'file:///etc/passwd'"),
    ("auth", "flower_user", "", "[auth] flower_user must not be empty"),
    ("web", "workers", "0", "[web] workers must be at least 1, got 0"),
    ("web", "public", "sometimes", "[web] public must be on or off, got 'sometimes'"),
    ("web", "cors_origins", "*", "[web] cors_origins must list origins like https://host:port, got '*'"),
    ("web", "cors_origins", "https://a.example/path",
     "[web] cors_origins must list origins like https://host:port, got 'https://a.example/path'"),
    ("web", "login_limit", "often", "[web] login_limit must be a limit like '10 per minute', got 'often'"),
    ("web", "max_body_bytes", "10", "[web] max_body_bytes must be at least 1024, got 10"),
])
def test_bad_value_fails_at_load_naming_its_key(section, key, raw, message):
    """Each kind of bad value raises SettingsError (a ValueError) from load(), naming the key."""
    name = f"SENSORS_{section.upper()}_{key.upper()}"
    with pytest.raises(SettingsError) as info:
        load(**{name: raw})
    assert str(info.value) == message and isinstance(info.value, ValueError)
    with pytest.raises(SettingsError, match=key):  # with_overrides checks the same way
        load().with_overrides({section: {key: raw}})


def test_bad_value_in_the_file_fails_at_load(tmp_path):
    """A bad value in the ini file is refused at load like one from the environment."""
    ini = tmp_path / "bad.ini"
    ini.write_text("[ingest]\nmax_readings = lots\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"^\[ingest\] max_readings must be an integer, got 'lots'$"):
        config.load(ini, environ={})


def test_process_fails_at_start_with_the_message(tmp_path):
    """A service started with a bad value exits at once and prints the message naming the key."""
    env = {"SENSORS_INGEST_MAX_READINGS": "lots", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "lib.startsh", "settings"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "[ingest] max_readings must be an integer, got 'lots'" in result.stderr


def test_unknown_key_in_the_file_is_warned(tmp_path, caplog):
    """A typo in db_config.ini is logged with its name; loading still succeeds."""
    ini = tmp_path / "typo.ini"
    ini.write_text("[ingest]\nmax_reading = 5\n\n[ingset]\nwriters = 3\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="lib.config"):
        cfg = config.load(ini, environ={})
    assert cfg.ingest.max_readings == 1000
    assert "[ingest] max_reading is not a known setting" in caplog.text
    assert "[ingset] is not a known section" in caplog.text


def test_unknown_environment_key_of_a_known_section_is_warned(caplog):
    """SENSORS_INGEST_MAX_READING (a typo) is logged; unknown sections stay silent."""
    with caplog.at_level(logging.WARNING, logger="lib.config"):
        cfg = load(SENSORS_INGEST_MAX_READING="5", SENSORS_CLIENT_URL="ws://pi", SENSORS_CONFIG_X="1")
    assert cfg.ingest.max_readings == 1000
    assert "SENSORS_INGEST_MAX_READING sets [ingest] max_reading, which is not a known setting" in caplog.text
    assert "CLIENT" not in caplog.text and "CONFIG" not in caplog.text


def test_known_keys_are_not_warned(caplog):
    """The shipped file and valid overrides log nothing."""
    with caplog.at_level(logging.WARNING, logger="lib.config"):
        load(SENSORS_INGEST_WRITERS="3", SENSORS_MYSQL_HOST="db")
    assert caplog.text == ""


def test_environ_export_round_trips():
    """Config.environ() makes a child's load() equal to the parent's settings."""
    cfg = load(SENSORS_INGEST_WRITERS="3", SENSORS_SQLITE_PATH="/tmp/x.db")
    child = config.load(environ=cfg.environ())
    assert child == cfg and child.typed == cfg.typed
    assert cfg.environ()["SENSORS_INGEST_WRITERS"] == "3"


def test_sections_can_be_built_directly_and_are_checked():
    """The section dataclasses check their ranges when built in code too."""
    assert settings.IngestSettings(writers=4).writers == 4
    with pytest.raises(SettingsError, match=r"\[ingest\] writers must be at least 1, got 0"):
        settings.IngestSettings(writers=0)
    with pytest.raises(SettingsError, match="minute_days"):
        settings.RetentionSettings(raw_days=10, minute_days=5)

"""lib.config: the ini file, its defaults, SENSORS_* overrides, raw values and URLs (typed ones: test_settings)."""
from __future__ import annotations

import configparser
import os
import uuid
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lib import config, settings
from lib.config import DEFAULT_PATH, REPO_ROOT
from tests.conftest import MYSQL, require_service


def write_ini(path: Path, text: str) -> Path:
    """Write an ini file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def ini(tmp_path) -> Path:
    """A small user ini that sets a few keys and adds a section with an underscore."""
    return write_ini(tmp_path / "site.ini", "[mysql]\nhost = db.example.org\n\n"
                     "[ingest]\nmax_readings = 50\n\n[air_quality]\nalarm = 900\n\n"
                     "[air]\nalarm = 1\n")


def test_loads_the_given_path(ini):
    """Keys from the given file win over the defaults and the file is remembered."""
    cfg = config.load(ini, environ={})
    assert cfg.source == ini.resolve()
    assert cfg.get("mysql", "host") == "db.example.org"
    assert cfg.ingest.max_readings == 50
    assert cfg.get("air_quality", "alarm") == "900"


def test_missing_keys_fall_back_to_defaults(ini):
    """Keys and whole sections the file lacks take the built-in defaults."""
    cfg = config.load(ini, environ={})
    assert cfg.mysql.port == 3306
    assert cfg.mysql.charset == "utf8mb4"
    assert cfg.ingest.commit_rows == 5000
    assert cfg.get("rabbitmq", "host") == "" and not cfg.uses_rabbitmq
    assert cfg.get("sqlite", "path") == "var/sensors.db"


def test_missing_named_file_is_an_error(tmp_path):
    """A file named explicitly (argument or SENSORS_CONFIG) must exist."""
    with pytest.raises(FileNotFoundError, match="absent.ini"):
        config.load(tmp_path / "absent.ini", environ={})
    with pytest.raises(FileNotFoundError, match="absent.ini"):
        config.load(environ={"SENSORS_CONFIG": str(tmp_path / "absent.ini")})


def test_shipped_file_lists_every_default_key():
    """db_config.ini documents every key that has a default."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEFAULT_PATH, encoding="utf-8")
    for section, keys in settings.defaults().items():
        assert section in parser, f"db_config.ini lacks [{section}]"
        assert set(keys) <= set(parser[section]), f"[{section}] lacks {set(keys) - set(parser[section])}"


@pytest.mark.parametrize(("name", "section", "key"), [
    ("SENSORS_MYSQL_HOST", "mysql", "host"),
    ("SENSORS_INGEST_MAX_READINGS", "ingest", "max_readings"),
    ("SENSORS_AIR_QUALITY_ALARM", "air_quality", "alarm"),  # longest section wins over [air]
    ("SENSORS_AIR_ALARM", "air", "alarm"),
    ("SENSORS_MYSQL_NEW_KEY", "mysql", "new_key"),
])
def test_environment_overrides(ini, name, section, key):
    """SENSORS_<SECTION>_<KEY> replaces the file's value, underscores in sections included."""
    cfg = config.load(ini, environ={name: "77"})  # a value every one of these keys accepts
    assert cfg.get(section, key) == "77"


def test_underscore_section_override_leaves_shorter_section_alone(ini):
    """SENSORS_AIR_QUALITY_ALARM does not become [air] quality_alarm."""
    cfg = config.load(ini, environ={"SENSORS_AIR_QUALITY_ALARM": "1200"})
    assert cfg.get("air_quality", "alarm") == "1200"
    assert cfg.get("air", "alarm") == "1"
    assert "quality_alarm" not in cfg.values["air"]


@pytest.mark.parametrize("name", [
    "SENSORS_NOSUCH_KEY", "SENSORS_MYSQL_", "SENSORS_MYSQL", "sensors_mysql_host",
    "OTHER_MYSQL_HOST", "SENSORS_CONFIG",
])
def test_ignored_environment_names(ini, name):
    """Unknown sections, empty keys, other prefixes and lowercase names change nothing."""
    assert config.load(ini, environ={name: "x"}).values == config.load(ini, environ={}).values


def test_os_environ_is_used_by_default(ini, monkeypatch):
    """Without an explicit environ, os.environ supplies the overrides."""
    monkeypatch.setenv("SENSORS_MYSQL_PORT", "3307")
    assert config.load(ini).mysql.port == 3307


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_booleans(raw, expected):
    """Booleans accept on/off, true/false, yes/no, 1/0 in any case, empty meaning off."""
    cfg = config.load(environ={}).with_overrides({"ingest": {"compression": raw}})
    assert cfg.ingest.compression is expected


@pytest.mark.parametrize(("section", "key"), [("mysql", "nope"), ("nope", "host")])
def test_unknown_setting_is_a_clear_key_error(section, key):
    """Asking for a setting that does not exist names it."""
    with pytest.raises(KeyError, match=rf"no setting \[{section}\] {key}"):
        config.load(environ={}).get(section, key)


def test_sqlite_url_when_mysql_database_is_empty():
    """An empty [mysql] database selects SQLite at the repository's var/sensors.db."""
    cfg = config.load(environ={"SENSORS_MYSQL_HOST": "db", "SENSORS_MYSQL_DATABASE": "  "})
    assert not cfg.uses_mysql
    assert cfg.database_url == f"sqlite:///{REPO_ROOT / 'var' / 'sensors.db'}"


@pytest.mark.parametrize("password", [
    "p@ss:w/rd", "a+b c", "%41", "#?&=;'\"", "ü€", "back\\slash",
])
def test_mysql_url_quotes_special_characters(password):
    """User, password and database survive the URL exactly, whatever characters they hold."""
    cfg = config.load(environ={"SENSORS_MYSQL_DATABASE": "sens/ors", "SENSORS_MYSQL_USER": "me@site",
                               "SENSORS_MYSQL_PASSWORD": password, "SENSORS_MYSQL_HOST": "db.local",
                               "SENSORS_MYSQL_PORT": "3307"})
    url = make_url(cfg.database_url)
    assert cfg.uses_mysql and url.drivername == "mysql+pymysql"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "me@site", password, "db.local", 3307, "sens/ors")
    assert url.query == {"charset": "utf8mb4"}
    assert password not in cfg.database_url or password.isalnum()


@pytest.mark.parametrize(("user", "password", "auth"), [
    ("", "", ""), ("root", "", "root@"), ("root", "pw", "root:pw@"),
])
def test_mysql_url_auth_part(user, password, auth):
    """Empty user and password are left out of the URL."""
    cfg = config.load(environ={"SENSORS_MYSQL_DATABASE": "s", "SENSORS_MYSQL_USER": user,
                               "SENSORS_MYSQL_PASSWORD": password})
    assert cfg.database_url == f"mysql+pymysql://{auth}localhost:3306/s?charset=utf8mb4"


@pytest.mark.parametrize("host", ["db.example.org", "10.0.0.5", "::1"])
def test_mysql_url_host_round_trips(host):
    """Host names, IPv4 and IPv6 addresses all parse back out of the URL."""
    cfg = config.load(environ={"SENSORS_MYSQL_DATABASE": "s", "SENSORS_MYSQL_HOST": host})
    try:
        url = make_url(cfg.database_url)
    except ValueError as exc:
        pytest.fail(f"[mysql] host = {host} gives an unparsable URL {cfg.database_url!r}: {exc}")
    assert (url.host, url.port) == (host, 3306)


def test_mysql_url_with_special_password_connects():
    """A real MariaDB account whose password needs quoting logs in through database_url."""
    try:
        admin = pymysql.connect(**MYSQL, connect_timeout=5, autocommit=True)
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    # ASCII only: non-ASCII passwords are covered by the URL round trip above.
    user, password = f"cfg_{uuid.uuid4().hex[:8]}", "p@ss:w/rd#?%20+ &=;'"
    with admin.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
    try:
        cfg = config.load(environ={"SENSORS_MYSQL_HOST": MYSQL["host"], "SENSORS_MYSQL_USER": user,
                                   "SENSORS_MYSQL_PORT": str(MYSQL["port"]),
                                   "SENSORS_MYSQL_PASSWORD": password,
                                   "SENSORS_MYSQL_DATABASE": "information_schema"})
        engine = sa.create_engine(cfg.database_url)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT CURRENT_USER()")).startswith(user + "@")
        engine.dispose()
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP USER %s@'%%'", (user,))
        admin.close()


def test_paths_are_relative_to_the_repository_not_the_cwd(tmp_path, monkeypatch):
    """Relative paths and the default ini are found from the repository in any directory."""
    write_ini(tmp_path / "db_config.ini", "[sqlite]\npath = elsewhere.db\n")
    monkeypatch.chdir(tmp_path)
    cfg = config.load(environ={})
    assert cfg.source == DEFAULT_PATH
    assert cfg.sqlite.path == (REPO_ROOT / "var" / "sensors.db").resolve()
    assert cfg.database_url == f"sqlite:///{(REPO_ROOT / 'var' / 'sensors.db').resolve()}"
    assert cfg.other.flask_path == (REPO_ROOT / "var" / "charts").resolve()
    assert cfg.var_dir == REPO_ROOT / "var"
    assert not str(cfg.sqlite.path).startswith(str(tmp_path))


def test_relative_paths_in_another_ini_are_still_repository_relative(tmp_path, monkeypatch):
    """As db_config.ini documents, relative paths are taken from the repository."""
    other = write_ini(tmp_path / "other.ini", "[sqlite]\npath = data/x.db\n")
    monkeypatch.chdir(tmp_path)
    assert config.load(other, environ={}).sqlite.path == REPO_ROOT / "data" / "x.db"


@pytest.mark.parametrize("value", ["/srv/sensors/s.db", "../outside.db"])
def test_path_values(value):
    """Absolute paths are kept and relative ones are normalised against the repository."""
    cfg = config.load(environ={"SENSORS_SQLITE_PATH": value})
    assert cfg.sqlite.path == (REPO_ROOT / value).resolve()
    assert cfg.sqlite.path.is_absolute()


def test_sensors_config_points_at_another_file(ini, tmp_path, monkeypatch):
    """SENSORS_CONFIG selects the ini file; an explicit path still wins over it."""
    cfg = config.load(environ={"SENSORS_CONFIG": str(ini)})
    assert cfg.source == ini.resolve()
    assert cfg.get("mysql", "host") == "db.example.org"
    monkeypatch.setenv("SENSORS_CONFIG", str(ini))
    assert config.load().get("mysql", "host") == "db.example.org"
    explicit = write_ini(tmp_path / "explicit.ini", "[mysql]\nhost = explicit\n")
    assert config.load(explicit).get("mysql", "host") == "explicit"


def test_with_overrides_copies(ini):
    """with_overrides returns a new Config, stringifies values and leaves the original alone."""
    cfg = config.load(ini, environ={})
    changed = cfg.with_overrides({"ingest": {"writers": 4}, "extra": {"k": "v"}})
    assert changed.ingest.writers == 4 and changed.get("extra", "k") == "v"
    assert cfg.ingest.writers == 2 and "extra" not in cfg.values
    assert changed.source == cfg.source and changed.base_dir == cfg.base_dir


@pytest.mark.parametrize(("intranet", "expected"), [("", "0.0.0.0"), ("10.1.2.3", "10.1.2.3")])
def test_bind_host(intranet, expected):
    """Servers bind to intranet_ip, or to all interfaces when it is empty."""
    assert config.load(environ={"SENSORS_ECS_INTRANET_IP": intranet}).bind_host == expected


def test_interpolation_is_off(tmp_path):
    """A % in a value (common in passwords) is kept literally."""
    ini = write_ini(tmp_path / "pct.ini", "[mysql]\npassword = 100%(sure)s\n")
    assert config.load(ini, environ={}).get("mysql", "password") == "100%(sure)s"


def test_loading_does_not_touch_os_environ(ini):
    """load() only reads the environment."""
    before = dict(os.environ)
    config.load(ini, environ={"SENSORS_MYSQL_HOST": "x"})
    assert dict(os.environ) == before


@pytest.mark.parametrize("env, url", [
    ({}, "sensorsfs://"),
    ({"SENSORS_RABBITMQ_HOST": "127.0.0.1"}, "amqp://guest:guest@127.0.0.1:5672/"),
    ({"SENSORS_RABBITMQ_HOST": "mq", "SENSORS_RABBITMQ_USER": "u@x", "SENSORS_RABBITMQ_PASSWORD": "p/w:1",
      "SENSORS_RABBITMQ_V_HOST": "/", "SENSORS_RABBITMQ_PORT": "5673"},
     "amqp://u%40x:p%2Fw%3A1@mq:5673/%2F"),
    ({"SENSORS_RABBITMQ_HOST": "::1"}, "amqp://guest:guest@[::1]:5672/"),
])
def test_broker_url(env, url):
    """An empty [rabbitmq] host means the embedded transport; otherwise AMQP with quoted parts."""
    cfg = config.load(environ=env)
    assert cfg.broker_url == url
    assert cfg.uses_rabbitmq == bool(env)

-- Schema of the sensor monitoring database for MySQL / MariaDB, at migration 0003_users_api_tokens.
--
-- GENERATED, do not edit: change lib/models.py and add a revision under lib/migrations/,
-- then regenerate with
--     .venv/bin/python -m lib.storage.schema_sql > data.sql
-- (tests/test_data_sql.py fails while this file and the generator disagree).
--
-- Load it into an empty database (or one made by this file) with
--     mysql -u USER -p DBNAME < data.sql
-- `flask --app flask_front init-db` creates exactly the same tables and rows, and also
-- upgrades an older installation; use either one on an empty database. Loading it again
-- is harmless: existing tables, the version row and metric rows are left as they are.
--
-- reading.ts and device.created_ms are UTC epoch milliseconds (BIGINT).
-- reading has one DOUBLE column per metric of the catalogue (table `metric`); metrics
-- added with `flask --app flask_front add-metric` become extra nullable DOUBLE columns
-- of `reading` (and four columns of each rollup table), outside the migrations.
-- Constraint names follow the naming convention of lib/models.py.

SET NAMES utf8mb4;

CREATE TABLE IF NOT EXISTS device (
	id INTEGER NOT NULL AUTO_INCREMENT,
	name VARCHAR(64) NOT NULL,
	token_hash VARCHAR(64) NOT NULL,
	created_ms BIGINT NOT NULL,
	revoked_ms BIGINT,
	CONSTRAINT pk_device PRIMARY KEY (id),
	CONSTRAINT uq_device_name UNIQUE (name),
	CONSTRAINT uq_device_token_hash UNIQUE (token_hash)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS metric (
	name VARCHAR(32) NOT NULL,
	unit VARCHAR(16) NOT NULL,
	min_value DOUBLE NOT NULL,
	max_value DOUBLE NOT NULL,
	label VARCHAR(64) NOT NULL,
	CONSTRAINT pk_metric PRIMARY KEY (name)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS users (
	id INTEGER NOT NULL AUTO_INCREMENT,
	name VARCHAR(64) NOT NULL,
	password_hash VARCHAR(72) NOT NULL,
	is_admin BOOL NOT NULL DEFAULT false,
	created_ms BIGINT NOT NULL,
	CONSTRAINT pk_users PRIMARY KEY (id),
	CONSTRAINT uq_users_name UNIQUE (name)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS alert_rule (
	id INTEGER NOT NULL AUTO_INCREMENT,
	name VARCHAR(64) NOT NULL,
	device_id INTEGER,
	metric VARCHAR(32),
	kind VARCHAR(8) NOT NULL,
	threshold DOUBLE,
	duration_s INTEGER NOT NULL DEFAULT '0',
	hysteresis DOUBLE NOT NULL DEFAULT '0',
	enabled BOOL NOT NULL DEFAULT true,
	created_ms BIGINT NOT NULL,
	CONSTRAINT pk_alert_rule PRIMARY KEY (id),
	CONSTRAINT fk_alert_rule_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS api_token (
	id INTEGER NOT NULL AUTO_INCREMENT,
	user_id INTEGER NOT NULL,
	token_hash VARCHAR(64) NOT NULL,
	label VARCHAR(64) NOT NULL,
	created_ms BIGINT NOT NULL,
	last_used_ms BIGINT,
	CONSTRAINT pk_api_token PRIMARY KEY (id),
	CONSTRAINT fk_api_token_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
	CONSTRAINT uq_api_token_token_hash UNIQUE (token_hash),
	INDEX ix_api_token_user_id (user_id)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS path (
	id INTEGER NOT NULL AUTO_INCREMENT,
	render VARCHAR(64) NOT NULL,
	device_id INTEGER NOT NULL,
	metric VARCHAR(32) NOT NULL,
	span VARCHAR(8) NOT NULL,
	file VARCHAR(255) NOT NULL,
	rendered_ms BIGINT NOT NULL,
	CONSTRAINT pk_path PRIMARY KEY (id),
	CONSTRAINT fk_path_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE,
	INDEX ix_path_lookup (device_id, metric, span, rendered_ms),
	INDEX ix_path_rendered_ms (rendered_ms)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS reading (
	device_id INTEGER NOT NULL,
	ts BIGINT NOT NULL,
	co2 DOUBLE,
	temperature DOUBLE,
	humidity DOUBLE,
	CONSTRAINT pk_reading PRIMARY KEY (device_id, ts),
	CONSTRAINT fk_reading_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS retention_state (
	device_id INTEGER NOT NULL,
	raw_before_ms BIGINT NOT NULL,
	minute_before_ms BIGINT NOT NULL,
	CONSTRAINT pk_retention_state PRIMARY KEY (device_id),
	CONSTRAINT fk_retention_state_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS rollup_1h (
	device_id INTEGER NOT NULL,
	bucket BIGINT NOT NULL,
	co2_n INTEGER NOT NULL DEFAULT '0',
	co2_sum DOUBLE,
	co2_min DOUBLE,
	co2_max DOUBLE,
	temperature_n INTEGER NOT NULL DEFAULT '0',
	temperature_sum DOUBLE,
	temperature_min DOUBLE,
	temperature_max DOUBLE,
	humidity_n INTEGER NOT NULL DEFAULT '0',
	humidity_sum DOUBLE,
	humidity_min DOUBLE,
	humidity_max DOUBLE,
	CONSTRAINT pk_rollup_1h PRIMARY KEY (device_id, bucket),
	CONSTRAINT fk_rollup_1h_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COMMENT='1-hour aggregates of reading';

CREATE TABLE IF NOT EXISTS rollup_1m (
	device_id INTEGER NOT NULL,
	bucket BIGINT NOT NULL,
	co2_n INTEGER NOT NULL DEFAULT '0',
	co2_sum DOUBLE,
	co2_min DOUBLE,
	co2_max DOUBLE,
	temperature_n INTEGER NOT NULL DEFAULT '0',
	temperature_sum DOUBLE,
	temperature_min DOUBLE,
	temperature_max DOUBLE,
	humidity_n INTEGER NOT NULL DEFAULT '0',
	humidity_sum DOUBLE,
	humidity_min DOUBLE,
	humidity_max DOUBLE,
	CONSTRAINT pk_rollup_1m PRIMARY KEY (device_id, bucket),
	CONSTRAINT fk_rollup_1m_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4 COMMENT='1-minute aggregates of reading';

CREATE TABLE IF NOT EXISTS rollup_pending (
	device_id INTEGER NOT NULL,
	hour BIGINT NOT NULL,
	gen INTEGER NOT NULL DEFAULT '0',
	lo_ms BIGINT NOT NULL DEFAULT '0',
	hi_ms BIGINT NOT NULL DEFAULT '0',
	taken_lo_ms BIGINT,
	taken_hi_ms BIGINT,
	CONSTRAINT pk_rollup_pending PRIMARY KEY (device_id, hour),
	CONSTRAINT fk_rollup_pending_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS alert_event (
	id INTEGER NOT NULL AUTO_INCREMENT,
	rule_id INTEGER NOT NULL,
	device_id INTEGER NOT NULL,
	state VARCHAR(8) NOT NULL,
	value DOUBLE,
	since_ms BIGINT NOT NULL,
	fired_ms BIGINT NOT NULL,
	resolved_ms BIGINT,
	fire_sent_ms BIGINT,
	resolve_sent_ms BIGINT,
	resolved_value DOUBLE,
	fire_due_ms BIGINT,
	resolve_due_ms BIGINT,
	CONSTRAINT pk_alert_event PRIMARY KEY (id),
	CONSTRAINT fk_alert_event_rule_id_alert_rule FOREIGN KEY(rule_id) REFERENCES alert_rule (id) ON DELETE CASCADE,
	CONSTRAINT fk_alert_event_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE,
	INDEX ix_alert_event_fire_due_ms (fire_due_ms),
	INDEX ix_alert_event_fired_ms (fired_ms),
	INDEX ix_alert_event_resolve_due_ms (resolve_due_ms)
)ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS alert_state (
	rule_id INTEGER NOT NULL,
	device_id INTEGER NOT NULL,
	state VARCHAR(8) NOT NULL,
	since_ms BIGINT,
	cursor_ms BIGINT NOT NULL,
	event_id INTEGER,
	version INTEGER NOT NULL DEFAULT '0',
	CONSTRAINT pk_alert_state PRIMARY KEY (rule_id, device_id),
	CONSTRAINT fk_alert_state_rule_id_alert_rule FOREIGN KEY(rule_id) REFERENCES alert_rule (id) ON DELETE CASCADE,
	CONSTRAINT fk_alert_state_device_id_device FOREIGN KEY(device_id) REFERENCES device (id) ON DELETE CASCADE
)ENGINE=InnoDB CHARSET=utf8mb4;

-- The migration the schema is at (see lib/migrations).
CREATE TABLE IF NOT EXISTS alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) SELECT '0003_users_api_tokens' FROM DUAL
    WHERE NOT EXISTS (SELECT * FROM alembic_version);

-- The built-in metrics.
INSERT IGNORE INTO metric (name, unit, min_value, max_value, label) VALUES
    ('co2', 'ppm', 0, 40000, 'Carbon dioxide'),
    ('temperature', '°C', -40, 125, 'Temperature'),
    ('humidity', '%RH', 0, 100, 'Humidity');

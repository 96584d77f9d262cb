-- Schema of the sensor monitoring database for MySQL / MariaDB.
--
-- Load it into an existing, empty or already initialised database with
--     mysql -u USER -p DBNAME < data.sql
-- `flask --app flask_front init-db` creates exactly the same tables and rows
-- (lib/models.py and lib/storage.init_db); use either one. Both are safe to run
-- again: existing tables and metric rows are left as they are.
--
-- reading.ts and device.created_ms are UTC epoch milliseconds (BIGINT).
-- reading has one DOUBLE column per metric of the catalogue (table `metric`);
-- metrics added with `flask --app flask_front add-metric` become extra nullable
-- DOUBLE columns of `reading`, after the three built-in ones below.
-- Constraint names follow the naming convention of lib/models.py.

SET NAMES utf8mb4;

CREATE TABLE IF NOT EXISTS device (
    id INTEGER NOT NULL AUTO_INCREMENT,
    name VARCHAR(64) NOT NULL,
    token_hash VARCHAR(64) NOT NULL,  -- SHA-256 of the device token, hex; the token itself is never stored
    created_ms BIGINT NOT NULL,
    CONSTRAINT pk_device PRIMARY KEY (id),
    CONSTRAINT uq_device_name UNIQUE (name),
    CONSTRAINT uq_device_token_hash UNIQUE (token_hash)
) ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS metric (
    name VARCHAR(32) NOT NULL,
    unit VARCHAR(16) NOT NULL,
    min_value DOUBLE NOT NULL,
    max_value DOUBLE NOT NULL,
    label VARCHAR(64) NOT NULL,
    CONSTRAINT pk_metric PRIMARY KEY (name)
) ENGINE=InnoDB CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS reading (
    device_id INTEGER NOT NULL,
    ts BIGINT NOT NULL,
    co2 DOUBLE,
    temperature DOUBLE,
    humidity DOUBLE,
    CONSTRAINT pk_reading PRIMARY KEY (device_id, ts),
    CONSTRAINT fk_reading_device_id_device FOREIGN KEY (device_id)
        REFERENCES device (id) ON DELETE CASCADE
) ENGINE=InnoDB CHARSET=utf8mb4;

-- The built-in metrics (lib/catalogue.BUILTIN_METRICS).
INSERT IGNORE INTO metric (name, unit, min_value, max_value, label) VALUES
    ('co2', 'ppm', 0, 40000, 'Carbon dioxide'),
    ('temperature', '°C', -40, 125, 'Temperature'),
    ('humidity', '%RH', 0, 100, 'Humidity');

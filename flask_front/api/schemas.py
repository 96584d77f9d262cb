"""Marshmallow schemas of the API's requests and responses: the OpenAPI document is made from them."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

ISO = "ISO 8601 UTC time with Z"
MS = "the same time in epoch milliseconds"


class FullMatch(validate.Regexp):
    """Regexp on the whole value (with match, Python's $ lets a final newline through)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


# Names, units and labels are shown in pages and logs: no newline, tab, NUL or other control character.
PRINTABLE = FullMatch(r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters (newline, tab, NUL…)")


def timestamp(what: str) -> tuple[fields.Field, fields.Field]:
    """The two fields of one time, `name` in ISO 8601 and `name_ms` in epoch ms."""
    return (fields.String(required=True, allow_none=True, metadata={"description": f"{what}: {ISO}"}),
            fields.Integer(required=True, allow_none=True, metadata={"description": MS}))


class MetricSchema(Schema):
    """A metric of the catalogue."""

    name = fields.String(required=True)
    unit = fields.String(required=True)
    min = fields.Float(required=True, metadata={"description": "lowest valid value"})
    max = fields.Float(required=True, metadata={"description": "highest valid value"})
    label = fields.String(required=True, metadata={"description": "name shown to people"})


class NewMetricSchema(Schema):
    """A metric to add."""

    name = fields.String(required=True, validate=validate.Length(1, 32),
                         metadata={"description": "lowercase letters, digits and _",
                                   "pattern": "^[a-z][a-z0-9_]{0,31}$"})  # lib.catalogue.NAME_PATTERN
    unit = fields.String(required=True, validate=[validate.Length(0, 16), PRINTABLE])
    min = fields.Float(required=True, allow_nan=False)
    max = fields.Float(required=True, allow_nan=False)
    label = fields.String(load_default="", validate=[validate.Length(0, 64), PRINTABLE])


Values = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True),
                     metadata={"description": "metric name → value (null: not in this reading)"})


class LatestSchema(Schema):
    """A device's newest reading."""

    device_id = fields.Integer(required=True)
    device = fields.String(required=True, metadata={"description": "the device's name"})
    values = Values
    time, time_ms = timestamp("when it was measured (null: no reading yet)")


class DeviceSchema(Schema):
    """A registered device."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    online = fields.Boolean(required=True, metadata={"description": "a reading arrived within [web] offline_seconds"})
    revoked = fields.Boolean(required=True)
    latest = Values
    last_seen, last_seen_ms = timestamp("time of its newest reading (null: none yet)")
    created, created_ms = timestamp("when it was registered")


class NewDeviceSchema(Schema):
    """A device to register."""

    name = fields.String(required=True, validate=validate.Length(1, 64), metadata={
        "description": "1 to 64 characters once leading and trailing spaces are removed; no control characters"})


class CreatedDeviceSchema(DeviceSchema):
    """A device just registered, with its token (shown once, stored hashed)."""

    token = fields.String(required=True, metadata={"description": "the device's secret token: shown only now"})


class RevokeQuerySchema(Schema):
    """Options of a revocation."""

    delete_readings = fields.Boolean(load_default=False, metadata={
        "description": "also delete the device with all its readings, rollups and alerts"})


class ReadingsQuerySchema(Schema):
    """Which readings: metrics, time range, resolution and aggregates."""

    metrics = fields.String(metadata={"description": "comma-separated metric names (default: all)",
                                      "example": "co2,temperature"})
    from_ = fields.String(data_key="from", metadata={"description": "start: ISO 8601 or epoch ms (default: 24 h before `to`)"})
    to = fields.String(metadata={"description": "end: ISO 8601 or epoch ms (default: now)"})
    resolution = fields.String(load_default="auto", metadata={
        "description": "auto (raw, or buckets so that at most [web] max_points come back), raw, 1m, 1h, "
                       "or a bucket width in seconds"})
    agg = fields.String(metadata={"description": "aggregates per bucket: avg,min,max (default: all)"})


class CsvQuerySchema(ReadingsQuerySchema):
    """Readings as CSV."""

    download = fields.Boolean(load_default=False, metadata={"description": "send as a file to save"})


class ReadingsSchema(Schema):
    """Readings of one device: per metric, points in time order."""

    device_id = fields.Integer(required=True)
    device = fields.String(required=True)
    resolution = fields.String(required=True, metadata={"description": "raw, 1m, 1h or bucket seconds"})
    source = fields.String(required=True, metadata={"description": "the table read: raw, 1m or 1h"})
    bucket_ms = fields.Integer(required=True, metadata={"description": "bucket width (0: raw readings)"})
    columns = fields.List(fields.String(), required=True, metadata={
        "description": "what each point holds: [ts, value] raw, else [ts, avg, min, max] (as asked in agg)"})
    series = fields.Dict(keys=fields.String(), values=fields.List(fields.List(fields.Float(allow_none=True))),
                         required=True, metadata={"description": "metric → points; ts in epoch ms (bucket start)"})
    units = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    from_, from_ms = timestamp("start of the range")
    from_.data_key = "from"
    to, to_ms = timestamp("end of the range")

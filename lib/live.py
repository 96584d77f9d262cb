"""Live readings for browsers, the pure parts: message format, /live tokens, the browser's URL.

A message is UTF-8 JSON `{"readings": [{"device_id", "device", "ts", "values"}, ...]}` with `ts`
in epoch ms UTC and `values` {metric: number}. The same bytes travel on the bus (RabbitMQ or the
unix datagram socket) and to every browser, so a message is encoded once.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Sequence

import orjson
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from lib.config import Config
from lib.secretfile import read_or_create

PATH = "/live"
SECRET_FILE = "live_secret"
TOKEN_SALT = "sensors-live-v1"
HEARTBEAT_S = 15.0  # an empty message this often tells browsers the link is alive (live.js)
HEARTBEAT = b'{"readings":[]}'
# Sent to a browser once the readings committed from then on reach it: it fetches what came
# before from the API, and only then shows "live" (live.js).
READY = b'{"readings":[],"ready":true}'
CLOCK_SKEW_S = 5  # a token stamped this far in the future (another host's clock) still counts
MISSING = "missing live token: get one from /api/v1/live/token"
INVALID = "invalid live token: get a new one from /api/v1/live/token"
EXPIRED = "live token expired: get a new one from /api/v1/live/token"


class TokenError(ValueError):
    """A /live token that does not authorise; the message is the close reason browsers see."""


class _Signer(TimestampSigner):
    """itsdangerous' timestamp signer with an optional fixed clock (tests sign old tokens)."""

    def __init__(self, *args, issued_at: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.issued_at = issued_at

    def get_timestamp(self) -> int:
        return int(time.time() if self.issued_at is None else self.issued_at)


def _serializer(secret: str, issued_at: float | None = None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT, signer=_Signer,
                                  signer_kwargs={"issued_at": issued_at})


def shared_secret(settings: Config) -> str:
    """[live] secret, else the one generated into var_dir (both processes read the same file)."""
    return settings.live.secret or read_or_create(settings.var_dir / SECRET_FILE)


def sign_token(secret: str, issued_at: float | None = None) -> str:
    """A token that lets a browser open /live for [live] token_seconds from `issued_at` (now)."""
    return _serializer(secret, issued_at).dumps({"live": 1})


def verify_token(secret: str, token: str, max_age: float, now: float | None = None) -> None:
    """Raise TokenError (saying why) unless `token` was signed with `secret` at most max_age ago."""
    if not token:
        raise TokenError(MISSING)
    try:
        payload, signed = _serializer(secret).loads(token, return_timestamp=True)
    except BadSignature:
        raise TokenError(INVALID) from None
    if not isinstance(payload, dict) or payload.get("live") != 1:
        raise TokenError(INVALID)
    age = (time.time() if now is None else now) - signed.timestamp()
    if age > max_age:
        raise TokenError(EXPIRED)
    if age < -CLOCK_SKEW_S:
        raise TokenError(INVALID)


def browser_url(settings: Config, request_host: str, secure: bool) -> str:
    """Where a page served at `request_host` opens the live WebSocket: [live] browser_url, else
    the same host on [ports] ingest (wss:// when the ingest server has TLS or the page is https)."""
    if settings.live.browser_url:
        return settings.live.browser_url
    scheme = "wss" if secure or settings.ingest.tls else "ws"
    return f"{scheme}://{_hostname(request_host)}:{settings.ports.ingest}{PATH}"


def _hostname(host: str) -> str:
    """`host` without its port: "example.org:4350" -> "example.org", "[::1]:4350" -> "[::1]"."""
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]"
    return host.partition(":")[0]


def reading(device_id: int, device: str, ts_ms: int, values: dict[str, float | None]) -> dict:
    """One reading as browsers get it: metrics without a value are left out (`values` may be reused)."""
    if None in values.values():  # the exception: most readings carry every metric
        values = {k: v for k, v in values.items() if v is not None}
    return {"device_id": device_id, "device": device, "ts": ts_ms, "values": values}


def encode(readings: Sequence[dict]) -> bytes:
    """One message of readings."""
    return orjson.dumps({"readings": readings})


def decode(body: bytes | str) -> list[dict]:
    """The readings of a message (ValueError when it is not one)."""
    message = orjson.loads(body)
    if not isinstance(message, dict) or not isinstance(message.get("readings"), list):
        raise ValueError("not a live message: expected {\"readings\": [...]}")
    return message["readings"]


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]

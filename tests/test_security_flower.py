"""Flower: on the loopback address unless [auth] flower_address says otherwise, every page behind its basic auth.

The checks against a running Flower (started as start.sh starts it) are in tests/test_security_logs.py,
on the full stack that test runs anyway.
"""
from __future__ import annotations

import base64
import re
import socket
import urllib.error
import urllib.request

import pytest

from celery_tasks.flower import address, flower_command
from lib import config as config_mod
from lib.startsh import shell_settings

# Flower's routes that need no login: its health check, its own static files, the OAuth login
# page (not used: 404 with basic auth), logout (only clears a cookie) and the catch-all 404.
OPEN = {r"/healthcheck", r"/static/(.*)", r"/login/?", r"/logout", r".*"}


@pytest.mark.parametrize("flower_address, intranet_ip, bound, health, url", [
    (None, "", "127.0.0.1", "127.0.0.1", "http://127.0.0.1:5555/"),
    (None, "10.0.0.7", "127.0.0.1", "127.0.0.1", "http://127.0.0.1:5555/"),
    ("", "", "0.0.0.0", "127.0.0.1", "http://localhost:5555/"),
    ("", "10.0.0.7", "10.0.0.7", "10.0.0.7", "http://10.0.0.7:5555/"),
    ("0.0.0.0", "", "0.0.0.0", "127.0.0.1", "http://localhost:5555/"),
    ("::1", "", "::1", "[::1]", "http://[::1]:5555/"),
], ids=["default", "default-beside-intranet-ip", "empty-all", "empty-intranet-ip", "all", "ipv6-loopback"])
def test_flower_address(flower_address, intranet_ip, bound, health, url):
    """Loopback by default whatever [ecs] intranet_ip; empty follows the other servers; start.sh probes it."""
    env = {"SENSORS_ECS_INTRANET_IP": intranet_ip, "SENSORS_PORTS_FLOWER": "5555"}
    if flower_address is not None:
        env["SENSORS_AUTH_FLOWER_ADDRESS"] = flower_address
    cfg = config_mod.load(environ=env)
    assert address(cfg) == bound and f"--address={bound}" in flower_command(cfg)
    values = shell_settings(cfg)
    assert values["FLOWER_HEALTH"] == f"http://{health}:5555/healthcheck"
    assert values["FLOWER_URL"] == url


def listening_addresses(port: int) -> set[str]:
    """The local addresses of IPv4 sockets listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        ip, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(ip)[::-1]))
    return found


def request(url: str, method: str = "GET", auth: tuple[str, str] | None = None) -> int:
    """The status of one request."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def concrete(pattern: str) -> str:
    """A path matching one of Flower's route patterns."""
    return re.sub(r"\(\.[+*]\)", "x", pattern).replace("/?", "")


def flower_routes() -> list[str]:
    """Every route pattern Flower serves."""
    from flower.urls import handlers

    return [getattr(h, "regex", None) and h.regex.pattern.rstrip("$") or h[0] for h in handlers]


def unprotected_routes(base: str, wrong_password: str) -> dict[str, int]:
    """Flower's routes (but the open ones) that answer other than 401 without the password or with a wrong one."""
    found = {}
    for route in [r for r in flower_routes() if r not in OPEN]:
        for method in ("GET", "POST"):
            for auth in (None, ("admin", wrong_password)):
                status = request(base + concrete(route), method, auth)
                if status not in (401, 405):  # 405: the route has no such method at all
                    found[f"{method} {route} {'wrong password' if auth else 'no password'}"] = status
    return found


def test_the_route_list_is_flowers_own():
    """The enumeration reads Flower's url handlers, so a route added by a Flower upgrade is checked too."""
    routes = flower_routes()
    assert {"/metrics", "/api/tasks", "/api/worker/shutdown/(.+)", "/healthcheck"} <= set(routes)
    assert OPEN <= set(routes) and len(routes) > 25

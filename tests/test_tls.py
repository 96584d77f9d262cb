"""TLS end to end: a real ingest server on wss://, clients that verify it, /healthz over https."""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from lib import storage
from lib.config import REPO_ROOT
from Pi_Sensor.client import ClientSettings, tls_context
from tests.conftest import ServerThread, stored

NAMES = ("127.0.0.1", "localhost")
READING = {"seq": 7, "values": {"co2": 612.5, "temperature": 21.25, "humidity": 40.5}}


@dataclass
class Pki:
    """PEM files in tmp_path: the CA to trust, and the server's chain and key."""

    ca: Path
    cert: Path
    key: Path


def trustme_pki(tmp_path: Path) -> Pki:
    """A fresh CA and a server certificate it issued for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    leaf = ca.issue_cert(*NAMES)
    pki = Pki(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    ca.cert_pem.write_to_path(str(pki.ca))
    leaf.private_key_pem.write_to_path(str(pki.key))
    with open(pki.cert, "wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    return pki


def self_signed_pki(tmp_path: Path) -> Pki:
    """A self-signed server certificate (no CA at all), trusted as itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensors self-signed")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    pki = Pki(tmp_path / "self.pem", tmp_path / "self.pem", tmp_path / "self.key")
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pki


@pytest.fixture
def pki(tmp_path) -> Pki:
    """The test's own CA and server certificate."""
    return trustme_pki(tmp_path)


def start_tls(settings, pki: Pki) -> ServerThread:
    """A real ingest server on port 0 serving pki's certificate."""
    return ServerThread(settings.with_overrides(
        {"ingest": {"tls_cert": str(pki.cert), "tls_key": str(pki.key)}}))


@pytest.fixture
def tls_ingest(settings, pki):
    """A running ingest server with TLS; its wss:// URL is `.wss`."""
    srv = start_tls(settings, pki)
    srv.wss = f"wss://127.0.0.1:{srv.port}/ingest"
    yield srv
    srv.stop()


def client_context(cafile: Path | None) -> ssl.SSLContext:
    """A verifying client context, exactly as the Pi client builds it."""
    return tls_context(ClientSettings(url="wss://x/", token="t", ca_file=str(cafile or "")))


async def send_one(url: str, token: str, ctx: ssl.SSLContext | None, **kwargs) -> dict:
    """Connect, send READING, return the server's reply."""
    options = {"ssl": ctx} if ctx else {}
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=5, **options, **kwargs) as ws:
        await ws.send(json.dumps(READING))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


# ---- a plain websockets client -----------------------------------------------------------

def test_wss_reading_acked_and_stored(tls_ingest, device, engine, pki):
    """Over wss:// with the CA trusted, a reading is acked and stored."""
    assert tls_ingest.url.startswith("ws://")  # the thread helper's URL; the server speaks TLS only
    reply = asyncio.run(send_one(tls_ingest.wss, device.token, client_context(pki.ca)))
    assert reply == {"ack": [7], "rejected": []}
    assert [r[1:] for r in stored(engine, device.id)] == [(612.5, 21.25, 40.5)]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize("trust,reason", [
    ("system", "unable to get local issuer certificate"),
    ("other-ca", "unable to get local issuer certificate"),
    ("wrong-name", "Hostname mismatch"),
])
def test_untrusted_server_refused(tls_ingest, device, engine, pki, tmp_path, trust, reason):
    """Without the right CA, or under another name, the handshake fails: certificate verify failed."""
    cafile, kwargs = pki.ca, {}
    if trust == "system":
        cafile = None
    elif trust == "other-ca":
        cafile = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(cafile))
    else:
        kwargs = {"server_hostname": "sensors.example.org"}
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        asyncio.run(send_one(tls_ingest.wss, device.token, client_context(cafile), **kwargs))
    assert "certificate verify failed" in str(info.value) and reason in info.value.verify_message
    assert stored(engine, device.id) == []
    # Refused handshakes leave the server serving trusted clients.
    assert asyncio.run(send_one(tls_ingest.wss, device.token, client_context(pki.ca)))["ack"] == [7]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_plain_ws_cannot_talk_to_tls_port(tls_ingest, device, engine):
    """A ws:// client gets no WebSocket (and its token no hearing) on the TLS port."""
    with pytest.raises((WebSocketException, OSError)):
        asyncio.run(send_one(f"ws://127.0.0.1:{tls_ingest.port}/ingest", device.token, None))
    assert stored(engine, device.id) == []


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_self_signed_certificate_trusted_as_ca_file(settings, device, engine, tmp_path):
    """--ca-file may name the server's own self-signed certificate instead of a CA."""
    pki = self_signed_pki(tmp_path)
    srv = start_tls(settings, pki)
    try:
        url = f"wss://localhost:{srv.port}/ingest"
        assert asyncio.run(send_one(url, device.token, client_context(pki.cert)))["ack"] == [7]
        with pytest.raises(ssl.SSLCertVerificationError):
            asyncio.run(send_one(url, device.token, client_context(None)))
    finally:
        srv.stop()
    assert len(stored(engine, device.id)) == 1


# ---- /healthz -------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_healthz_over_https(tls_ingest, pki):
    """/healthz answers over https with the CA; plain http gets no answer from the TLS port."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with urllib.request.urlopen(f"https://localhost:{tls_ingest.port}/healthz", context=ctx,
                                timeout=5) as resp:
        assert (resp.status, resp.read()) == (200, b"ok\n")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"https://localhost:{tls_ingest.port}/healthz", timeout=5,
                               context=ssl.create_default_context())
    with pytest.raises((urllib.error.URLError, OSError)):  # reset or empty reply, never a 200
        urllib.request.urlopen(f"http://localhost:{tls_ingest.port}/healthz", timeout=5)


# ---- the real Pi client as a process ---------------------------------------------------------

class PiClient:
    """`python -m Pi_Sensor.client` with the simulated sensor, its log in workdir."""

    def __init__(self, url: str, token: str, workdir: Path, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.spool, self.log_path = workdir / "spool.db", workdir / "client.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "Pi_Sensor.client", "--url", url, f"--token={token}",
             "--sensor", "simulate", "--interval", "0.05", "--spool", str(self.spool),
             "--backoff-min", "0.2", "--backoff-max", "0.5", "--ack-timeout", "5", *extra],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def spooled(self) -> int:
        with sqlite3.connect(self.spool) as conn:
            return conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def stop(self) -> int:
        """SIGTERM (kill after 20 s) and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            self._log.close()


def wait_for(condition, timeout: float = 30) -> bool:
    """Poll condition() every 50 ms until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without SSL_CERT_* or SENSORS_CLIENT_* leaking in, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SSL_CERT_", "SENSORS_CLIENT_"))}
    return env | extra


@pytest.mark.parametrize("trust", ["ca-file", "default-store"])
def test_pi_client_delivers_over_wss(tls_ingest, device, engine, pki, tmp_path, trust):
    """The Pi client sends readings over wss://, trusting --ca-file or the default CA store."""
    if trust == "ca-file":
        args, env = ["--ca-file", str(pki.ca)], clean_env()
    else:  # OpenSSL's default verify paths honour SSL_CERT_FILE: the store used without --ca-file
        args, env = [], clean_env(SSL_CERT_FILE=str(pki.ca))
    client = PiClient(tls_ingest.wss, device.token, tmp_path, *args, env=env)
    try:
        assert wait_for(lambda: storage.count_readings(engine, device.id) >= 10), \
            client.log()[-4000:]
    finally:
        assert client.stop() == 0, client.log()[-4000:]
    assert f"connected to {tls_ingest.wss}" in client.log()
    assert "certificate verify failed" not in client.log()
    # Whatever was taken is stored or still waits in the spool, and the stored ones left it.
    assert storage.count_readings(engine, device.id) + client.spooled() >= 10


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_pi_client_refuses_untrusted_server_and_retries(tls_ingest, device, engine, tmp_path):
    """Without the CA the Pi client logs `certificate verify failed`, backs off and keeps spooling."""
    client = PiClient(tls_ingest.wss, device.token, tmp_path, env=clean_env())
    try:
        assert wait_for(lambda: client.log().count("certificate verify failed: ") >= 3
                        and client.spooled() >= 5), client.log()[-4000:]
    finally:
        assert client.stop() == 0, client.log()[-4000:]
    assert "unable to get local issuer certificate" in client.log()
    assert "trusted: the system CA store" in client.log()
    assert storage.count_readings(engine, device.id) == 0


@pytest.mark.parametrize("url,message", [("ws://127.0.0.1:9/ingest", "--ca-file needs a wss:// URL"),
                                         ("https://127.0.0.1:9/ingest", "--url must start with")])
def test_pi_client_ca_file_needs_wss(pki, tmp_path, url, message):
    """--ca-file with a ws:// URL (or a URL that is no WebSocket) is a usage error, exit 2."""
    client = PiClient(url, "t", tmp_path, "--ca-file", str(pki.ca), env=clean_env())
    client.proc.wait(20)
    assert client.stop() == 2
    assert message in client.log()


# ---- the documented nginx reverse proxy ------------------------------------------------------

NGINX_MAIN = """daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    include {d}/sensors.conf;
}}
"""


def nginx_copy(workdir: Path, pki: Pki, ingest_port: int, http_port: int, https_port: int) -> Path:
    """deploy/nginx-sensors.conf with test certificates, loopback ports and logs in workdir."""
    site = (REPO_ROOT / "deploy" / "nginx-sensors.conf").read_text()
    for old, new in [
        ("/etc/letsencrypt/live/sensors.example.org/fullchain.pem", str(pki.cert)),
        ("/etc/letsencrypt/live/sensors.example.org/privkey.pem", str(pki.key)),
        ("listen [::]:80;", ""), ("listen [::]:443 ssl http2;", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{ingest_port};"),
        ("/var/log/nginx/", f"{workdir}/"),
    ]:
        assert old in site, old  # the shipped file still has the lines this test relies on
        site = site.replace(old, new)
    (workdir / "sensors.conf").write_text(site)
    main = workdir / "nginx.conf"
    main.write_text(NGINX_MAIN.format(d=workdir))
    return main


def free_port() -> int:
    """A port free right now on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proxy_binary(name: str) -> str:
    """The proxy's binary (apt-get install nginx-light / caddy); the test is skipped without it."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                       if os.path.exists(p)), None)
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


def assert_proxy_works(proc: subprocess.Popen, http_port: int, https_port: int, pki: Pki,
                       device, engine, error_log) -> None:
    """Through the proxy: healthz and a stored reading over TLS, 426 for /ingest over http."""
    try:
        ctx = client_context(pki.ca)
        https = f"https://localhost:{https_port}"
        assert wait_for(lambda: _answers(f"{https}/ingest/healthz", ctx), timeout=15), error_log()
        with urllib.request.urlopen(f"{https}/ingest/healthz", context=ctx, timeout=5) as resp:
            assert resp.read() == b"ok\n"
        reply = asyncio.run(send_one(f"wss://localhost:{https_port}/ingest", device.token, ctx))
        assert reply == {"ack": [7], "rejected": []}
        assert len(stored(engine, device.id)) == 1
        # A device left on ws:// is refused, not redirected (which would resend its token).
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://localhost:{http_port}/ingest?token=secret", timeout=5)
        assert info.value.code == 426
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.build_opener(_NoRedirect).open(f"http://localhost:{http_port}/", timeout=5)
        assert info.value.code in (301, 308)
        assert info.value.headers["Location"] == "https://localhost/"  # 443 in production
    finally:
        proc.terminate()
        proc.wait(10)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report redirects as errors instead of following them."""

    def redirect_request(self, *args, **kwargs):
        return None


def _answers(url: str, ctx: ssl.SSLContext) -> bool:
    """True once url answers 200."""
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_nginx_proxy_terminates_tls(ingest, device, engine, pki, tmp_path):
    """deploy/nginx-sensors.conf passes wss:// through to a plain ingest on loopback."""
    nginx = proxy_binary("nginx")
    workdir = tmp_path / "nginx"
    workdir.mkdir()
    http_port, https_port = free_port(), free_port()
    main = nginx_copy(workdir, pki, ingest.port, http_port, https_port)
    check = subprocess.run([nginx, "-t", "-c", str(main), "-p", str(workdir)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-c", str(main), "-p", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert_proxy_works(proc, http_port, https_port, pki, device, engine,
                       lambda: (workdir / "error.log").read_text())
    assert "secret" not in (workdir / "sensors-access.log").read_text()  # ?token= is not logged


def caddy_copy(workdir: Path, pki: Pki, ingest_port: int, http_port: int, https_port: int) -> Path:
    """deploy/Caddyfile with the test certificate, loopback ports and no admin endpoint."""
    site = (REPO_ROOT / "deploy" / "Caddyfile").read_text()
    for old, new in [
        ("{\n\t# CHANGE: an address", "{\n\tadmin off\n\tskip_install_trust\n"
                                      f"\thttp_port {http_port}\n\thttps_port {https_port}\n"
                                      "\t# CHANGE: an address"),
        ("# tls /etc/ssl/sensors/fullchain.pem /etc/ssl/sensors/privkey.pem",
         f"tls {pki.cert} {pki.key}"),
        ("http://sensors.example.org {", f"http://localhost:{http_port} {{"),
        ("sensors.example.org {", f"https://localhost:{https_port} {{"),
        ("127.0.0.1:8080", f"127.0.0.1:{ingest_port}"),
    ]:
        assert old in site, old  # the shipped file still has the lines this test relies on
        site = site.replace(old, new)
    path = workdir / "Caddyfile"
    path.write_text(site)
    return path


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_caddy_proxy_terminates_tls(ingest, device, engine, pki, tmp_path):
    """deploy/Caddyfile passes wss:// through to a plain ingest on loopback."""
    caddy = proxy_binary("caddy")
    workdir = tmp_path / "caddy"
    workdir.mkdir()
    http_port, https_port = free_port(), free_port()
    config = caddy_copy(workdir, pki, ingest.port, http_port, https_port)
    env = clean_env(XDG_DATA_HOME=str(workdir), XDG_CONFIG_HOME=str(workdir), HOME=str(workdir))
    check = subprocess.run([caddy, "validate", "--config", str(config), "--adapter", "caddyfile"],
                           capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stderr
    log = open(workdir / "caddy.log", "w")
    proc = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        assert_proxy_works(proc, http_port, https_port, pki, device, engine,
                           lambda: (workdir / "caddy.log").read_text())
    finally:
        log.close()

"""The /metrics endpoint with a Prometheus-style web config: TLS and bcrypt basic auth."""

from __future__ import annotations

import base64
import datetime
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dcim.errors import ConfigError
from dcim.sinks.prometheus import PrometheusSink


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _get(url: str, ctx: ssl.SSLContext, auth: tuple[str, str] | None = None) -> int:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5,
                                    context=ctx) as resp:
            assert b"dcim_build_info" in resp.read() or not url.endswith("/metrics")
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_tls_and_basic_auth(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"scrape-secret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
                   f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    exporter = PrometheusSink("127.0.0.1:0", web)
    exporter.start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{exporter.port}/metrics"
        assert _get(url, ctx, ("prometheus", "scrape-secret")) == 200
        assert _get(url, ctx, ("prometheus", "wrong")) == 401
        assert _get(url, ctx) == 401
        with pytest.raises(OSError):  # plain HTTP is not served
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5)
    finally:
        exporter.stop()


def test_bad_web_config_is_a_config_error(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: plaintext-password\n")
    with pytest.raises(ConfigError, match="expected a bcrypt hash"):
        PrometheusSink("127.0.0.1:0", web)
    web.write_text("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.pem\n")
    with pytest.raises(ConfigError, match="tls_server_config"):
        PrometheusSink("127.0.0.1:0", web)

"""The Prometheus scrape endpoint: /metrics renders the latest Snapshot on each scrape.

Runs in its own threads (stdlib ThreadingHTTPServer), so a slow scrape never blocks polling;
it reads one immutable `Published` reference, so a scrape during a reload never sees a
half-built snapshot. TLS and basic auth come from a web config file in the format of
Prometheus' own (tls_server_config, basic_auth_users with bcrypt hashes).
"""

from __future__ import annotations

import base64
import gzip
import html
import logging
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from dcim import yamlsafe
from dcim.compute.snapshot import Published
from dcim.errors import ConfigError
from dcim.health import Health
from dcim.sinks.prometheus_metrics import render

log = logging.getLogger("dcim.prometheus")


class WebConfig:
    """TLS and basic-auth settings from a Prometheus-style web config file."""

    def __init__(self, path: Path | None):
        self.ssl_context: ssl.SSLContext | None = None
        self.users: dict[str, bytes] = {}
        if path is None:
            return
        data = yamlsafe.load(path) or {}
        if not isinstance(data, dict) or set(data) - {"tls_server_config", "basic_auth_users"}:
            raise ConfigError([f"{path}: only tls_server_config and basic_auth_users are supported"])
        tls = data.get("tls_server_config")
        if tls:
            base = path.parent
            try:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(base / tls["cert_file"], base / tls["key_file"])
                if tls.get("client_ca_file"):
                    ctx.load_verify_locations(base / tls["client_ca_file"])
                    ctx.verify_mode = ssl.CERT_REQUIRED
            except (OSError, KeyError, ssl.SSLError) as exc:
                raise ConfigError([f"{path}: tls_server_config: {exc}"]) from None
            self.ssl_context = ctx
        for user, hashed in (data.get("basic_auth_users") or {}).items():
            if not str(hashed).startswith("$2"):
                raise ConfigError([f"{path}: basic_auth_users.{user}: expected a bcrypt hash"])
            self.users[str(user)] = str(hashed).encode()

    def allowed(self, header: str | None) -> bool:
        """Check an Authorization header against the configured users (open if none)."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        import bcrypt

        return bool(bcrypt.checkpw(password.encode(), hashed))


class _SnapshotMetrics:
    def __init__(self, exporter: PrometheusSink):
        self._exporter = exporter

    def collect(self) -> Iterator[Metric]:
        yield from render(self._exporter.published, self._exporter.health, self._exporter.extra)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper hanging up or speaking plain HTTP to TLS is not worth a traceback.
        log.debug("request from %s failed", client_address, exc_info=True)


LANDING = """<!doctype html><html><head><title>dcim</title></head><body>
<h1>dcim</h1><p>Site <b>{site}</b>. Live PUE: <b>{pue}</b> ({status}, coverage {coverage}).</p>
<p><a href="/metrics">/metrics</a></p></body></html>"""


class PrometheusSink:
    """Serves /metrics from the latest Published snapshot."""

    def __init__(self, listen: str, health: Health, web_config: Path | None = None):
        self.host, _, port = listen.rpartition(":")
        self.host = self.host.strip("[]") or "0.0.0.0"
        try:
            self.port = int(port)
        except ValueError:
            raise ConfigError(
                [f"sinks.prometheus.listen (or --listen): '{listen}' is not host:port"]) from None
        self.health = health
        self.published: Published | None = None
        self.extra: list[Callable[[], Iterable[Metric]]] = []
        # Set by the daemon: False when the poll loop is wedged (the container health check).
        self.healthy: Callable[[], bool] = lambda: True
        self.web = WebConfig(web_config)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_SnapshotMetrics(self))
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Bind and serve in a background thread; raise OSError if the address is taken."""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not exporter.web.allowed(self.headers.get("Authorization")):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="dcim"')
                    self.end_headers()
                    return
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._metrics()
                elif path == "/":
                    self._send(200, "text/html; charset=utf-8", exporter.landing().encode())
                elif path in ("/-/healthy", "/-/ready"):
                    if exporter.healthy():
                        self._send(200, "text/plain", b"ok\n")
                    else:
                        self._send(503, "text/plain", b"poll loop stalled\n")
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _metrics(self) -> None:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                body = encoder(exporter.registry)
                if "gzip" in self.headers.get("Accept-Encoding", ""):
                    self._send(200, content_type, gzip.compress(body, 1), gzipped=True)
                else:
                    self._send(200, content_type, body)

            def _send(self, code: int, content_type: str, body: bytes, gzipped: bool = False) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if gzipped:
                    self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        server = _Server((self.host, self.port), Handler)
        if self.web.ssl_context is not None:
            # Handshake in the handler thread, so a client that never speaks TLS cannot block
            # the accept loop (and with it every other scrape).
            server.socket = self.web.ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="prometheus", daemon=True).start()

    def landing(self) -> str:
        """The small HTML page at /."""
        pub = self.published
        if pub is None:
            return LANDING.format(site="(starting)", pue="n/a", status="starting", coverage="0%")
        pue = pub.snapshot.pue
        return LANDING.format(
            site=html.escape(pub.site.name),
            pue="withheld" if pue.value is None else f"{pue.value:.3f}",
            status=pue.status, coverage=f"{pue.coverage:.0%}",
        )

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

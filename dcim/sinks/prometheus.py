"""The Prometheus scrape endpoint: /metrics serves the latest Snapshot.

Runs in its own threads (stdlib ThreadingHTTPServer), so a slow client never blocks polling;
it reads one immutable `Published` reference, so a scrape during a reload never sees a
half-built snapshot. The exposition is rendered once per Published (dcim/sinks/exposition.py
writes the text directly, about a microsecond a series) and its bytes, and their gzip, are
served to every scrape until the next one: two Prometheus replicas cost one render. The render
itself runs on the daemon's event loop in 5 ms slices (polls due meanwhile run between them;
the sinks' self-health it reads is the loop's own state), the connections in their threads. TLS and
basic auth come from a web config file in the format of Prometheus' own (tls_server_config,
basic_auth_users with bcrypt hashes).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import gzip
import html
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from dcim import yamlsafe
from dcim.compute.snapshot import Published
from dcim.errors import ConfigError
from dcim.metric_families import counter
from dcim.sinks import exposition
from dcim.sinks.prometheus_metrics import Pause, render, render_parts

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


@dataclass
class _Rendered:
    """One Published's exposition, and its gzip once a client asked for it."""

    published: Published | None
    body: bytes
    gzipped: bytes | None = None


@dataclass
class ScrapeStats:
    """What serving /metrics cost (CPU of the rendering threads)."""

    scrapes: int = 0
    renders: int = 0
    render_seconds: float = 0.0
    gzips: int = 0
    gzip_seconds: float = 0.0


# A client must have sent its whole request (and finished the TLS handshake) this long after
# connecting, and may then stall a read or write of the answer at most IO_TIMEOUT_S: a
# slowloris client (a byte every few seconds, or nothing) would otherwise hold a thread forever.
HEADER_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 30.0
# A render runs on the event loop in slices of about this much time, so polls due meanwhile
# start at most a slice (or one large family) late: rendered in the scrape thread it held the
# GIL against the loop for the whole render (0.17 s at bench-2000, polls due then started up
# to that late). A loop that does not take the render within LOOP_WAIT_S (wedged, or stopping)
# has it rendered in the scrape thread instead: /metrics still answers.
RENDER_SLICE_S = 0.005
LOOP_WAIT_S = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 makes a burst of connections (many scrapers, or
    # idle clients) wait for SYN retransmits, a second or more each.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper hanging up or speaking plain HTTP to TLS is not worth a traceback.
        log.debug("request from %s failed", client_address, exc_info=True)


LANDING = """<!doctype html><html><head><title>dcim</title></head><body>
<h1>dcim</h1><p>Site <b>{site}</b>. Live PUE: <b>{pue}</b> ({status}, coverage {coverage}).</p>
<p><a href="/metrics">/metrics</a></p></body></html>"""


class PrometheusSink:
    """Serves /metrics from the latest Published snapshot."""

    def __init__(self, listen: str, web_config: Path | None = None,
                 header_timeout: float = HEADER_TIMEOUT_S):
        self.host, _, port = listen.rpartition(":")
        self.host = self.host.strip("[]") or "0.0.0.0"
        try:
            self.port = int(port)
        except ValueError:
            raise ConfigError(
                [f"sinks.prometheus.listen (or --listen): '{listen}' is not host:port"]) from None
        self.published: Published | None = None
        self.extra: list[Callable[[], Iterable[Metric]]] = []
        # Set by the daemon: False when the poll loop is wedged (the container health check).
        self.healthy: Callable[[], bool] = lambda: True
        self.web = WebConfig(web_config)
        self.header_timeout = header_timeout
        self.stats = ScrapeStats()
        self._rendered: _Rendered | None = None
        self._render_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # The event loop that renders (the one start() was called on), and its thread.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.loop_wait = LOOP_WAIT_S

    def exposition(self, gzipped: bool = False) -> bytes:
        """The /metrics body for the current Published, rendered (and gzipped) once for it.

        Scrapes that arrive while it renders wait for that render rather than start another.
        """
        with self._render_lock:
            self.stats.scrapes += 1
            pub = self.published
            cached = self._rendered
            if cached is None or cached.published is not pub:
                cached = self._rendered = _Rendered(pub, self._render(pub))
                self.stats.renders += 1
            if not gzipped:
                return cached.body
            if cached.gzipped is None:
                started = time.thread_time()
                cached.gzipped = gzip.compress(cached.body, 1)
                self.stats.gzips += 1
                self.stats.gzip_seconds += time.thread_time() - started
            return cached.gzipped

    def _render(self, pub: Published | None) -> bytes:
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread and loop.is_running():
            try:
                future = asyncio.run_coroutine_threadsafe(self._render_sliced(pub), loop)
            except RuntimeError:  # the loop closed meanwhile
                pass
            else:
                try:
                    return future.result(self.loop_wait)
                except concurrent.futures.TimeoutError:
                    future.cancel()
                    log.warning("the event loop did not render /metrics within %gs: "
                                "rendered in the scrape thread", self.loop_wait)
                except concurrent.futures.CancelledError:
                    pass  # the loop is shutting down
        started = time.thread_time()
        body = exposition.write(render(pub, [*self.extra, self._own]))
        self.stats.render_seconds += time.thread_time() - started
        return body

    async def _render_sliced(self, pub: Published | None) -> bytes:
        """The exposition, rendered on the event loop a slice at a time."""
        parts: list[str] = []
        spent = 0.0  # CPU of this render's slices, counted once it is done
        cpu = time.thread_time()
        slice_end = time.perf_counter() + RENDER_SLICE_S
        for part in render_parts(pub, [*self.extra, self._own]):
            if not isinstance(part, Pause):
                parts.append(exposition.text(part))
            if time.perf_counter() >= slice_end:
                spent += time.thread_time() - cpu
                await asyncio.sleep(0)  # polls and timers due meanwhile run now
                cpu = time.thread_time()
                slice_end = time.perf_counter() + RENDER_SLICE_S
        self.stats.render_seconds += spent + time.thread_time() - cpu
        return "".join(parts).encode()

    def _own(self) -> Iterable[Metric]:
        stats = self.stats
        yield counter("dcim_metrics_scrapes", "Scrapes of /metrics served", {(): stats.scrapes}, [])
        yield counter("dcim_metrics_renders",
                      "Expositions rendered (one per snapshot scraped; the rest are cached)",
                      {(): stats.renders}, [])
        yield counter("dcim_metrics_render_cpu_seconds",
                      "CPU spent rendering and gzipping /metrics (before this render)",
                      {(): stats.render_seconds + stats.gzip_seconds}, [])

    def start(self) -> None:
        """Bind and serve in a background thread; raise OSError if the address is taken.
        Called on a running event loop, renders run on that loop (RENDER_SLICE_S)."""
        exporter = self
        try:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        except RuntimeError:
            self._loop = self._loop_thread = None

        class Handler(BaseHTTPRequestHandler):
            timeout = IO_TIMEOUT_S  # each read and write of the connection

            def setup(self) -> None:
                super().setup()
                # Whole-request deadline: the socket timeout alone restarts with every byte.
                self._deadline = threading.Timer(exporter.header_timeout, self._give_up)
                self._deadline.daemon = True
                self._deadline.start()

            def _give_up(self) -> None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def parse_request(self) -> bool:
                ok = super().parse_request()  # the request line and headers are in
                self._deadline.cancel()
                return ok

            def finish(self) -> None:
                self._deadline.cancel()
                super().finish()

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
                # Text format 0.0.4 whatever Accept says: Prometheus takes it when it asked
                # for OpenMetrics first, and one format keeps one cache.
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                self._send(200, exposition.CONTENT_TYPE, exporter.exposition(gzipped), gzipped)

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

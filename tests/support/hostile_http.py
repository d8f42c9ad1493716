"""A misbehaving InfluxDB write endpoint: a loopback proxy in front of a real one (VictoriaMetrics).

Modes (change `proxy.mode` at any time):

    pass        forward POST /api/v2/write upstream and relay its answer
    429         answer 429 Too Many Requests with `Retry-After: retry_after` (forward nothing)
    503         answer 503 (forward nothing)
    413         answer 413 to bodies larger than `max_body` bytes, forward the others
    slow-204    forward (the upstream stores the points), then answer only after `delay` s:
                a client with a shorter timeout gives up on a write that was stored
    hang        read the request and never answer (forward nothing) until the mode changes

Everything forwarded is counted in `forwarded` (requests) and `lines` (line-protocol lines), so
a test can compare what the endpoint stored with what dcim sent.
"""

from __future__ import annotations

import gzip
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("pass", "429", "503", "413", "slow-204", "hang")


class HostileWriteEndpoint:
    """An HTTP server on a free loopback port; `url` is what dcim's influxdb.url takes."""

    def __init__(self, *upstreams: str, mode: str = "pass", retry_after: str = "3600",
                 delay: float = 3.0, max_body: int = 2000):
        # Forwarded writes go to every upstream (e.g. one VictoriaMetrics with deduplication and
        # one without); the first one's answer is relayed.
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.mode = mode
        self.retry_after = retry_after
        self.delay = delay
        self.max_body = max_body
        self.requests: dict[str, int] = {}  # by mode
        self.forwarded = 0
        self.lines = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL (dcim appends /api/v2/write)."""
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        """Switch behaviour; requests hanging in "hang" are released (and never answered)."""
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self._release.set()
        self._release = threading.Event()

    def stop(self) -> None:
        """Stop serving."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _count(self, mode: str) -> None:
        with self._lock:
            self.requests[mode] = self.requests.get(mode, 0) + 1

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        mode = self.mode
        self._count(mode)
        if mode == "hang":
            release = self._release
            release.wait()
            handler.close_connection = True
            return
        if mode in ("429", "503"):
            headers = {"Retry-After": self.retry_after} if mode == "429" else {}
            self._answer(handler, int(mode), b'{"code":"unavailable","message":"hostile"}', headers)
            return
        if mode == "413" and len(body) > self.max_body:
            self._answer(handler, 413, b'{"code":"request too large"}', {})
            return
        status, answer = self._forward(handler, body)
        if mode == "slow-204":
            time.sleep(self.delay)
        self._answer(handler, status, answer, {})

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() in ("content-type", "content-encoding", "authorization")}
        answers = [_post(f"{upstream}{handler.path}", body, headers) for upstream in self.upstreams]
        status, answer = answers[0]
        if 200 <= status < 300:
            raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            with self._lock:
                self.forwarded += 1
                self.lines += sum(1 for line in raw.split(b"\n") if line.strip())
        return status, answer

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes,
                headers: dict[str, str]) -> None:
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if body:
                handler.wfile.write(body)
        except OSError:
            pass  # the client gave up first (a timeout): what a real server sees too


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()

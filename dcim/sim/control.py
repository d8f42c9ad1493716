"""The control API: a small JSON-over-HTTP server on loopback (docs/simulator.md).

    GET  /truth                          the state being served, with its time
    GET  /devices/{id}                   one device's values (model and as dcim decodes them)
    POST /racks/{id}/load                {"kw": 150}   (null: follow the load model again)
    POST /devices/{id}/fail              {"mode": "timeout" | "garbage" | "exception" | "slow"
                                          | Redfish: "unauthorized" | "http500" | "html"
                                          | lies: "zero-power" | "tenfold-power"
                                          | "tenfold-voltage" | "energy-glitch" | "sentinel"
                                          | "scale-overflow" | "negative-rows"}
    POST /devices/{id}/recover
    POST /racks/{id}/feeds/{feed}/fail   and .../recover
    POST /cdus/{id}/leak                 {"active": true}
    POST /shelves/{id}/supplies/{supply}/fail   and .../recover
    POST /devices/{id}/reset-energy

Bad input answers 4xx with {"error": message}; the simulator keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from dcim.sim.world import ActionError

log = logging.getLogger(__name__)

Apply = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Read = Callable[[], dict[str, Any]]
ReadDevice = Callable[[str], dict[str, Any]]

MAX_BODY = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}
_SEG = r"([^/]+)"
# (method, path pattern, action name, names of the captured path segments)
_ROUTES: list[tuple[str, re.Pattern[str], str, tuple[str, ...]]] = [
    ("POST", re.compile(rf"^/racks/{_SEG}/load$"), "load", ("rack",)),
    ("POST", re.compile(rf"^/racks/{_SEG}/feeds/{_SEG}/fail$"), "feed-fail", ("rack", "feed")),
    ("POST", re.compile(rf"^/racks/{_SEG}/feeds/{_SEG}/recover$"), "feed-recover",
     ("rack", "feed")),
    ("POST", re.compile(rf"^/devices/{_SEG}/fail$"), "fail", ("device",)),
    ("POST", re.compile(rf"^/devices/{_SEG}/recover$"), "recover", ("device",)),
    ("POST", re.compile(rf"^/devices/{_SEG}/reset-energy$"), "reset-energy", ("device",)),
    ("POST", re.compile(rf"^/cdus/{_SEG}/leak$"), "leak", ("cdu",)),
    ("POST", re.compile(rf"^/shelves/{_SEG}/supplies/{_SEG}/fail$"), "supply-fail",
     ("device", "supply")),
    ("POST", re.compile(rf"^/shelves/{_SEG}/supplies/{_SEG}/recover$"), "supply-recover",
     ("device", "supply")),
]
_ENDPOINTS = [
    "GET /truth", "GET /devices/{id}", "POST /racks/{id}/load", "POST /devices/{id}/fail",
    "POST /devices/{id}/recover", "POST /racks/{id}/feeds/{feed}/fail",
    "POST /racks/{id}/feeds/{feed}/recover", "POST /cdus/{id}/leak",
    "POST /devices/{id}/reset-energy", "POST /shelves/{id}/supplies/{supply}/fail",
    "POST /shelves/{id}/supplies/{supply}/recover",
]


class HttpError(Exception):
    """An answer other than 200, with its message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body (empty body: {})."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HttpError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "body must be a JSON object")
    return data


def route(method: str, path: str, body: bytes) -> tuple[str, dict[str, Any]] | None:
    """The control action for a POST (kind and parameters), None for the read endpoints."""
    for m, pattern, action, names in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if method != m:
            raise HttpError(405, f"{path} needs {m}")
        params = parse_body(body)
        params.update(zip(names, match.groups(), strict=True))
        params["action"] = action
        return action, params
    return None


class ControlServer:
    """Serves the control API; reads and changes the world through the given callables."""

    def __init__(self, truth: Read, device: ReadDevice, apply: Apply):
        self._truth = truth
        self._device = device
        self._apply = apply
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (0 = any free port); OSError when it is taken."""
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await self._serve(reader)
        except Exception as exc:  # the API must survive anything a client sends
            log.exception("control API request failed")
            status, payload = 500, {"error": f"internal error: {exc}"}
        body = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return 400, {"error": "incomplete or oversized HTTP request head"}
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return 400, {"error": "malformed request line"}
        method, target, _ = parts
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return 400, {"error": "bad Content-Length"}
        if not 0 <= length <= MAX_BODY:
            return 413, {"error": f"body larger than {MAX_BODY} bytes"}
        try:
            body = await asyncio.wait_for(reader.readexactly(length), 10.0) if length else b""
        except (asyncio.IncompleteReadError, TimeoutError):
            return 400, {"error": "body shorter than Content-Length"}
        path = target.split("?", 1)[0].rstrip("/") or "/"
        try:
            return 200, await self._dispatch(method, path, body)
        except HttpError as exc:
            return exc.status, {"error": str(exc)}
        except ActionError as exc:
            return exc.status, {"error": str(exc)}

    async def _dispatch(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        action = route(method, path, body)
        if action is not None:
            return await self._apply(action[1])
        if path in ("/truth", "/") or path.startswith("/devices/"):
            if method != "GET":
                raise HttpError(405, f"{path} needs GET")
            if path == "/truth":
                return self._truth()
            if path == "/":
                return {"endpoints": _ENDPOINTS}
            device_id = path.removeprefix("/devices/")
            if "/" not in device_id:
                return self._device(device_id)
        raise HttpError(404, f"no endpoint {method} {path}; see GET /")

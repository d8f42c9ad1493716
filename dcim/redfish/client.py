"""An asyncio Redfish client: one connection pool per service, sessions or basic auth, TLS.

Why aiohttp and not DMTF's `redfish` library (python-redfish-library): that library is built on
`requests` and is synchronous, so every BMC request would block the event loop that polls all
other devices (or need a thread per request, and BMCs are slow: hundreds of threads for a
hall). aiohttp is already a dependency (influxdb-client[async] uses it), pools connections per
host, verifies TLS with the standard `ssl` module and lets us bound every body we read.

One `RedfishService` per (scheme, host, port, user): its own connector (connection pool) with
keep-alive, a semaphore capping the requests in flight (BMCs answer one or two at a time), the
service root's ProtocolFeaturesSupported (read once) and the login state. Every failure is a
`RedfishError` with a typed `ErrorKind`; nothing else escapes `get()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from dcim.reasons import ErrorKind
from dcim.site import RedfishTarget

log = logging.getLogger("dcim.redfish")

SERVICE_ROOT = "/redfish/v1/"
# A power shelf or CDU resource is a few kB; an expanded collection of outlets a few hundred.
MAX_BODY = 4 * 1024 * 1024
# Requests one service gets at a time: BMCs are small embedded web servers.
MAX_CONCURRENCY = 4
_SNIPPET = 60


class RedfishError(Exception):
    """A request that gave no usable JSON document; `kind` classifies it for metrics."""

    def __init__(self, kind: ErrorKind, message: str, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass(frozen=True)
class Features:
    """What the service root says the service supports (ProtocolFeaturesSupported)."""

    # "." (subordinate links) or "*" (all links) when $expand with $levels works, else None.
    expand: str | None = None
    select: bool = False
    sessions: str | None = None

    @classmethod
    def of_root(cls, root: Mapping[str, Any]) -> Features:
        """Read the features and the sessions collection from a service root document."""
        pfs = root.get("ProtocolFeaturesSupported")
        pfs = pfs if isinstance(pfs, Mapping) else {}
        exp = pfs.get("ExpandQuery")
        exp = exp if isinstance(exp, Mapping) else {}
        expand = None
        if exp.get("Levels") is True:
            if exp.get("NoLinks") is True:
                expand = "."
            elif exp.get("ExpandAll") is True:
                expand = "*"
        sessions = None
        links = root.get("Links")
        if isinstance(links, Mapping) and isinstance(links.get("Sessions"), Mapping):
            uri = links["Sessions"].get("@odata.id")
            sessions = uri if isinstance(uri, str) else None
        return cls(expand=expand, select=pfs.get("SelectQuery") is True, sessions=sessions)


def normalize_uri(uri: str) -> str:
    """The path of a resource URI, without query, fragment or trailing slash."""
    path = urlsplit(uri).path or "/"
    return path.rstrip("/") or "/"


def _tls_context(target: RedfishTarget, where: str) -> ssl.SSLContext | None:
    if not target.tls:
        return None
    if not target.tls_verify:
        log.warning("%s: TLS certificate NOT verified (tls_verify: false); anyone on the path "
                    "can read the credentials and forge readings", where)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cafile = str(target.tls_ca_file) if target.tls_ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise RedfishError(ErrorKind.TLS, f"{where}: cannot load tls_ca_file {cafile}: {exc}") from None


def _snippet(body: bytes) -> str:
    text = body[:_SNIPPET].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()


class RedfishService:
    """One Redfish service: connection pool, concurrency cap, features and login."""

    def __init__(self, target: RedfishTarget, host: str, port: int, timeout: float,
                 retries: int, max_concurrency: int = MAX_CONCURRENCY):
        self.target = target
        self.where = f"{target.scheme}://{host}:{port}"
        self.timeout = timeout
        self.retries = retries
        self._base = f"{target.scheme}://{host}:{port}"
        self._sem = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._http: aiohttp.ClientSession | None = None
        self._features: Features | None = None
        self._login_lock = asyncio.Lock()
        self._root_lock = asyncio.Lock()
        self._token: str | None = None
        self._session_uri: str | None = None
        # "none", "basic" or "session", decided from the config and the service root.
        self._mode = "none" if not target.username else (
            "basic" if target.http_auth == "basic" else "pending")
        self.requests = 0  # requests sent (counted for tests and the bench)

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            ctx = _tls_context(self.target, self.where)
            connector = aiohttp.TCPConnector(limit=self._max_concurrency, ssl=ctx if ctx else False,
                                             keepalive_timeout=30)
            self._http = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                headers={"Accept": "application/json", "OData-Version": "4.0"})
        return self._http

    async def close(self) -> None:
        """Log out (DELETE the session) and close the pool; never raises."""
        if self._session_uri and self._token and self._http is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    async with self._http.delete(self._base + self._session_uri,
                                                 headers={"X-Auth-Token": self._token}):
                        pass
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.info("%s: session logout failed: %s", self.where, exc)
        self._token = self._session_uri = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def features(self) -> Features:
        """The service root's features, read once (the root needs no authentication)."""
        async with self._root_lock:  # the devices behind one service read the root once
            if self._features is None:
                root = await self._request("GET", SERVICE_ROOT, None, auth=self._mode == "basic")
                features = Features.of_root(root)
                if self._mode == "pending":
                    if self.target.http_auth == "session" and not features.sessions:
                        raise RedfishError(ErrorKind.AUTH, f"{self.where}: http_auth is session "
                                           "but the service root links no SessionService")
                    wants_session = self.target.http_auth in ("session", "auto")
                    self._mode = "session" if wants_session and features.sessions else "basic"
                self._features = features
        return self._features

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one resource as a JSON object; RedfishError for anything else."""
        await self.features()
        if self._mode == "session" and self._token is None:
            await self._login(None)
        return await self._request("GET", path, params, auth=True)

    async def _login(self, stale: str | None) -> None:
        """Create a session, unless another task already replaced the stale token."""
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return
            assert self._features is not None and self._features.sessions
            body = {"UserName": self.target.username, "Password": self.target.password}
            for attempt in range(self.retries + 1):
                try:
                    async with self._sem, asyncio.timeout(self.timeout):
                        self.requests += 1
                        async with self._client().post(
                                self._base + self._features.sessions, json=body) as resp:
                            if resp.status in (401, 403):
                                raise RedfishError(ErrorKind.AUTH, f"{self.where}: login as "
                                                   f"'{self.target.username}' refused ({resp.status})")
                            if resp.status not in (200, 201):
                                raise RedfishError(ErrorKind.HTTP_STATUS, f"{self.where}: session "
                                                   f"login answered {resp.status}")
                            token = resp.headers.get("X-Auth-Token")
                            location = resp.headers.get("Location")
                            await resp.read()
                    break
                except TimeoutError:
                    if attempt == self.retries:
                        raise RedfishError(ErrorKind.TIMEOUT, f"{self.where}: no answer to the "
                                           f"session login within {self.timeout:g}s") from None
                except (aiohttp.ClientError, OSError) as exc:
                    if attempt == self.retries:
                        raise self._transport_error(exc) from None
            if not token:
                raise RedfishError(ErrorKind.AUTH, f"{self.where}: session login gave no X-Auth-Token")
            self._token = token
            self._session_uri = normalize_uri(location) if location else None

    def _auth_headers(self) -> dict[str, str]:
        if self._mode == "session" and self._token:
            return {"X-Auth-Token": self._token}
        return {}

    def _transport_error(self, exc: BaseException) -> RedfishError:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return RedfishError(ErrorKind.TLS, f"{self.where}: TLS failed: {exc}")
        if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
            return RedfishError(ErrorKind.CONNECT, f"{self.where}: cannot connect: {exc}")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            # A BMC closing an idle keep-alive connection: retried on a new one (CONNECT).
            return RedfishError(ErrorKind.CONNECT, f"{self.where}: connection closed by the "
                                "service before it answered")
        return RedfishError(ErrorKind.PROTOCOL, f"{self.where}: {type(exc).__name__}: {exc}")

    async def _request(self, method: str, path: str, params: Mapping[str, str] | None,
                       auth: bool) -> dict[str, Any]:
        relogged = False
        attempt = 0
        while True:
            token = self._token
            try:
                return await self._once(method, path, params, auth)
            except _Unauthorized:
                if self._mode == "session" and not relogged:
                    relogged = True  # the session expired or the BMC restarted: log in again
                    await self._login(token)
                    continue
                who = f" as '{self.target.username}'" if self.target.username else \
                    " (no credentials configured)"
                raise RedfishError(ErrorKind.AUTH, f"{self.where}{path}: 401 Unauthorized{who}") \
                    from None
            except RedfishError as exc:
                retryable = exc.kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECT) or (
                    exc.kind == ErrorKind.HTTP_STATUS and (exc.status or 0) >= 500)
                if not retryable or attempt >= self.retries:
                    raise
            attempt += 1

    async def _once(self, method: str, path: str, params: Mapping[str, str] | None,
                    auth: bool) -> dict[str, Any]:
        headers = self._auth_headers() if auth else {}
        if auth and self._mode == "basic":
            headers["Authorization"] = aiohttp.encode_basic_auth(
                self.target.username or "", self.target.password or "")
        where = f"{self.where}{path}"
        try:
            async with self._sem, asyncio.timeout(self.timeout):
                self.requests += 1
                async with self._client().request(method, self._base + path, params=params,
                                                  headers=headers,
                                                  allow_redirects=False) as resp:
                    if resp.status == 401:
                        raise _Unauthorized
                    length = resp.content_length
                    if length is not None and length > MAX_BODY:
                        raise RedfishError(ErrorKind.TOO_LARGE, f"{where}: body of {length} bytes "
                                           f"exceeds {MAX_BODY} bytes")
                    body = bytearray()
                    async for chunk in resp.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > MAX_BODY:
                            raise RedfishError(ErrorKind.TOO_LARGE,
                                               f"{where}: body exceeds {MAX_BODY} bytes")
                    status, ctype = resp.status, resp.content_type
        except TimeoutError:
            raise RedfishError(ErrorKind.TIMEOUT,
                               f"{where}: no complete answer within {self.timeout:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._transport_error(exc) from None
        if status == 404:
            raise RedfishError(ErrorKind.NOT_FOUND, f"{where}: 404 Not Found")
        if status >= 300:
            raise RedfishError(ErrorKind.HTTP_STATUS, f"{where}: HTTP {status}", status)
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RedfishError(ErrorKind.NOT_JSON, f"{where}: answered {ctype or 'no content type'}"
                               f", not JSON: {_snippet(bytes(body))!r}") from None
        if not isinstance(doc, dict):
            raise RedfishError(ErrorKind.PROTOCOL, f"{where}: JSON {type(doc).__name__}, "
                               "not a resource object")
        return doc


class _Unauthorized(Exception):
    """A 401 answer (handled inside the client: re-login or an AUTH error)."""

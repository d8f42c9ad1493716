"""Shared helpers for the benchmarks: process accounting, free ports, snmpd agents, tables."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
PROFILE_DIR = BENCH / "profiles"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NCPU = os.cpu_count() or 1

# The bench PDU's MIB (see bench/profiles/bench-pdu.yaml): one place, so agents, the dcim
# profile and the snmp_exporter module cannot drift apart.
BASE = "1.3.6.1.4.1.99999.42"
SCALARS = {  # name -> (oid, snmpd override type)
    "power": (f"{BASE}.1.1.0", "uinteger"),
    "energy": (f"{BASE}.1.2.0", "counter"),
    "load_state": (f"{BASE}.1.3.0", "integer"),
    "apparent_power": (f"{BASE}.1.4.0", "uinteger"),
    "power_factor": (f"{BASE}.1.5.0", "uinteger"),
    "frequency": (f"{BASE}.1.6.0", "uinteger"),
}
PHASE_TABLE = f"{BASE}.2"
PHASE_CURRENT = f"{BASE}.2.1.2"
PHASE_VOLTAGE = f"{BASE}.2.1.3"
OUTLET_TABLE = f"{BASE}.3"
OUTLET_POWER = f"{BASE}.3.1.2"
PHASES = 3
OUTLETS = 24
VARBINDS_PER_POLL = len(SCALARS) + 2 * PHASES + OUTLETS  # 36


def cpu_seconds(pid: int) -> float:
    """CPU time of a process: utime + stime from /proc/PID/stat, in seconds.

    The kernel keeps utime + stime equal to the scheduler's exact run time, but prints it in
    clock ticks (10 ms); a poll round uses 0.1-1 s, so cpu_ns() is the finer measure.
    """
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # comm may contain spaces or parentheses; the fields after the last ')' are fixed
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_ns(pid: int) -> float:
    """Run time of a process's live threads in seconds, from /proc/PID/task/*/schedstat (ns).

    Exact, unlike the tick-rounded stat fields; a thread that exits takes its time with it,
    which the pollers measured here (long-lived threads) do not do. Falls back to cpu_seconds.
    """
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (FileNotFoundError, PermissionError, ValueError):
        return cpu_seconds(pid)
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/statm."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def total_cpu(pids: Sequence[int]) -> float:
    """Sum of cpu_seconds over processes (the ones that have exited count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port that was free a moment ago (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_ports(n: int) -> list[int]:
    """n distinct free UDP ports, held open together so none repeats."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_tcp(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")
        time.sleep(0.05)


def taskset(cpu: int | None) -> list[str]:
    """A taskset prefix pinning to one CPU (nothing on a one-CPU machine or when None)."""
    if cpu is None or NCPU < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    s = sorted(values)
    rank = max(1, min(len(s), round(q / 100 * len(s) + 0.5)))
    return s[rank - 1]


def machine() -> dict[str, str]:
    """CPU model, core count, kernel and date, for the results table."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": str(NCPU), "kernel": os.uname().release,
            "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def write_json(name: str, data: object) -> Path:
    """Store a result under bench/out/ and return its path."""
    OUT.mkdir(exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


# --- the bench PDU agents (net-snmp snmpd) ---------------------------------------------------


def pdu_values(seed: int) -> dict[str, int | list[int]]:
    """Plausible static readings for one bench PDU (a loaded 3-phase 415 V rack PDU)."""
    rng = random.Random(seed)
    outlets = [rng.randrange(200, 900) for _ in range(OUTLETS)]
    power = sum(outlets)
    return {
        "power": power,
        "energy": rng.randrange(10_000_000, 900_000_000),
        "load_state": 1,
        "apparent_power": round(power / 0.97),
        "power_factor": 97,
        "frequency": 500,
        "current": [round(power / 3 / 240 * 100) + rng.randrange(-50, 50) for _ in range(PHASES)],
        "voltage": [2400 + rng.randrange(-30, 30) for _ in range(PHASES)],
        "outlets": outlets,
    }


@dataclass(frozen=True)
class V3User:
    """An SNMPv3 authPriv user every bench agent knows (protocol names: dcim's)."""

    name: str
    auth: str
    priv: str

    @property
    def auth_key(self) -> str:
        """The auth passphrase (bench only)."""
        return f"{self.name}-auth"

    @property
    def priv_key(self) -> str:
        """The priv passphrase (bench only)."""
        return f"{self.name}-priv"


# bench name -> user; net-snmp spells SHA-256 and AES-256 with a dash, dcim and gosnmp do not
V3_USERS = {"sha-aes": V3User("bench-sha-aes", "SHA", "AES"),
            "sha256-aes256": V3User("bench-sha256-aes256", "SHA256", "AES256")}
_NETSNMP = {"SHA": "SHA", "SHA256": "SHA-256", "AES": "AES", "AES256": "AES-256"}


def snmpd_conf(seed: int) -> str:
    """An snmpd.conf serving one bench PDU through `override` lines (no agentAddress), to
    v2c community public and to the V3_USERS."""
    v = pdu_values(seed)
    lines = ["rocommunity public 127.0.0.1",
             # the default logs every request on stdout: that is agent CPU we do not want
             "dontLogTCPWrappersConnects yes"]
    for user in V3_USERS.values():
        lines += [f"createUser {user.name} {_NETSNMP[user.auth]} {user.auth_key} "
                  f"{_NETSNMP[user.priv]} {user.priv_key}", f"rouser {user.name} priv"]
    for name, (oid, typ) in SCALARS.items():
        lines.append(f"override {oid} {typ} {v[name]}")
    for column, key in ((PHASE_CURRENT, "current"), (PHASE_VOLTAGE, "voltage")):
        values = v[key]
        assert isinstance(values, list)
        lines += [f"override {column}.{i} uinteger {x}" for i, x in enumerate(values, 1)]
    outlets = v["outlets"]
    assert isinstance(outlets, list)
    lines += [f"override {OUTLET_POWER}.{i} uinteger {x}" for i, x in enumerate(outlets, 1)]
    return "\n".join(lines) + "\n"


@dataclass
class Agents:
    """A fleet of snmpd processes, one bench PDU each, on loopback UDP ports."""

    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        """Process ids of the agents."""
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        """CPU seconds used by all agents so far."""
        return total_cpu(self.pids)

    def cpu_each(self) -> list[float]:
        """CPU seconds used by each agent so far (snmpd is single-threaded)."""
        return [cpu_ns(pid) for pid in self.pids]

    def stop(self) -> None:
        """Terminate the agents this fleet started."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


@contextlib.contextmanager
def snmpd_agents(n: int, workdir: Path, cpu: int | None = None) -> Iterator[Agents]:
    """Start n snmpd agents (optionally pinned to one CPU) and stop them afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    fleet = Agents()
    try:
        for i, port in enumerate(free_udp_ports(n)):
            conf = workdir / f"agent{i}.conf"
            conf.write_text(snmpd_conf(i))
            cmd = [*taskset(cpu), "snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-m", "",
                   f"udp:127.0.0.1:{port}"]
            # each agent its own engine state (engine ID, boots, v3 keys), not /var/lib/snmp
            persist = workdir / f"agent{i}.persist"
            persist.mkdir(exist_ok=True)
            env = dict(os.environ, SNMP_PERSISTENT_DIR=str(persist))
            fleet.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL, env=env))
            fleet.ports.append(port)
        for port in fleet.ports:
            _wait_snmp(port)
        yield fleet
    finally:
        fleet.stop()


def _wait_snmp(port: int, timeout: float = 10.0) -> None:
    """Wait until an agent answers a GET of sysObjectID (an SNMPv2c packet built by hand)."""
    # GetRequest, community public, request-id 1, one varbind 1.3.6.1.2.1.1.2.0 = NULL
    probe = bytes.fromhex("302602010104067075626c6963a019020101020100020100300e300c06082b06010201010200"
                          "0500")
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(probe, ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError):
                s.recv(2048)
                return
    raise TimeoutError(f"snmpd on udp:127.0.0.1:{port} did not answer within {timeout:g}s")


def snmp_counters(port: int) -> dict[str, int]:
    """An agent's snmpInPkts and snmpInTotalReqVars (requests and varbinds it served)."""
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-Oqv", f"127.0.0.1:{port}",
                          "1.3.6.1.2.1.11.1.0", "1.3.6.1.2.1.11.13.0"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {"packets": int(out[0]), "varbinds": int(out[1])}


# --- snmp_exporter ----------------------------------------------------------------------------

EXPORTER_MODULE = "bench_pdu"


def exporter_module(auth: str) -> str:
    """The snmp.yml module reading the bench PDU with these credentials (v2c or V3_USERS)."""
    return EXPORTER_MODULE if auth == "v2c" else f"{EXPORTER_MODULE}_{auth.replace('-', '_')}"


def _exporter_auth(auth: str) -> list[str]:
    if auth == "v2c":
        return ["  version: 2", "  auth:", "    community: public"]
    user = V3_USERS[auth]
    # gosnmp's AES192/AES256 are the Blumenthal key extension, as net-snmp's (AES256C: Reeder)
    return ["  version: 3", "  auth:", f"    username: {user.name}",
            "    security_level: authPriv", f"    password: {user.auth_key}",
            f"    auth_protocol: {user.auth}", f"    priv_protocol: {user.priv}",
            f"    priv_password: {user.priv_key}"]


def exporter_config() -> str:
    """snmp.yml (snmp_exporter 0.21 format): one module per credential (v2c and V3_USERS),
    each reading the bench PDU like dcim."""
    return "".join(_exporter_module(auth) for auth in ("v2c", *V3_USERS))


def _exporter_module(auth: str) -> str:
    metrics = [
        ("benchPduPower", SCALARS["power"][0], None),
        ("benchPduEnergy", SCALARS["energy"][0], None),
        ("benchPduLoadState", SCALARS["load_state"][0], None),
        ("benchPduApparentPower", SCALARS["apparent_power"][0], None),
        ("benchPduPowerFactor", SCALARS["power_factor"][0], None),
        ("benchPduFrequency", SCALARS["frequency"][0], None),
        ("benchPhaseCurrent", PHASE_CURRENT, "phase"),
        ("benchPhaseVoltage", PHASE_VOLTAGE, "phase"),
        ("benchOutletPower", OUTLET_POWER, "outlet"),
    ]
    lines = [f"{exporter_module(auth)}:", *_exporter_auth(auth),
             "  max_repetitions: 25", "  retries: 1", "  timeout: 2s", "  get:"]
    lines += [f"  - {oid}" for oid, _ in SCALARS.values()]
    # one walk per table, as the generator writes it for a table named in generator.yml
    lines += ["  walk:", f"  - {PHASE_TABLE}", f"  - {OUTLET_TABLE}", "  metrics:"]
    for name, oid, index in metrics:
        # a scalar's metric oid is the object without its .0 instance
        lines += [f"  - name: {name}", f"    oid: {oid.removesuffix('.0')}", "    type: gauge"]
        if index:
            lines += ["    indexes:", f"    - labelname: {index}", "      type: gauge"]
    return "\n".join(lines) + "\n"

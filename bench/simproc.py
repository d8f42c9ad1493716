"""Start `dcim simulate` and `dcim run` as pinned child processes, and read dcim's /metrics."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib as bl

DCIM = [bl.PYTHON, "-m", "dcim"]


@dataclass
class Sim:
    """A running simulator: its process (plus forked workers) and control API."""

    proc: subprocess.Popen[str]
    control: str
    config: Path

    def pids(self) -> list[int]:
        """The simulator's main process and its worker children."""
        return [self.proc.pid, *children(self.proc.pid)]

    def get(self, path: str) -> Any:
        """GET a control API path (JSON)."""
        with urllib.request.urlopen(self.control + path, timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON to a control API path."""
        req = urllib.request.Request(self.control + path, data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc/*/stat."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
            text = f.read()
        if text and int(text[text.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return out


def _terminate(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def simulator(preset: str, config: Path, workers: int = 1, cpu: int | None = None,
              extra: tuple[str, ...] = ()) -> Iterator[Sim]:
    """`dcim simulate` pinned to `cpu` (workers inherit it), until the block ends."""
    config.parent.mkdir(parents=True, exist_ok=True)
    log = (config.parent / f"simulate-{preset}.log").open("w")
    cmd = [*bl.taskset(cpu), *DCIM, "simulate", "--preset", preset, "--workers", str(workers),
           "--write-config", str(config), "--control", "127.0.0.1:0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=bl.REPO)
    try:
        assert proc.stdout is not None
        control = None
        for line in proc.stdout:
            log.write(line)
            if line.startswith("control: "):
                control = line.split(" ", 1)[1].strip()
            if line.startswith("ready"):
                break
        log.flush()
        if control is None or proc.poll() is not None:
            raise RuntimeError(f"dcim simulate --preset {preset} did not start; see {log.name}")
        yield Sim(proc, control, config)
    finally:
        _terminate(proc)
        log.close()


@dataclass
class Daemon:
    """A running `dcim run`."""

    proc: subprocess.Popen[bytes]
    port: int
    scrapes: list[dict[str, float]] = field(default_factory=list)

    def metrics(self) -> str:
        """One /metrics scrape, gzip accepted as Prometheus does; its wall time, CPU, size and
        series count are kept in `scrapes`."""
        started = time.time()  # wall clock, to compare with the daemon's timestamps
        c0, t0 = bl.cpu_seconds(self.proc.pid), time.perf_counter()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics",
                                         headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=30) as r:
            raw = r.read()
            zipped = r.headers.get("Content-Encoding") == "gzip"
        t1 = time.perf_counter()
        body: str = (gzip.decompress(raw) if zipped else raw).decode()
        series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        self.scrapes.append({"start": started, "wall_s": t1 - t0, "cpu_s": bl.cpu_seconds(self.proc.pid) - c0,
                             "bytes": len(body), "wire_bytes": len(raw), "series": series})
        return body


@contextlib.contextmanager
def daemon(config: Path, workdir: Path, cpu: int | None = None) -> Iterator[Daemon]:
    """`dcim run --config CONFIG` pinned to `cpu`, state in workdir, until the block ends."""
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    port = bl.free_port()
    log = (workdir / "dcim-run.log").open("wb")
    env = dict(os.environ, STATE_DIRECTORY=str(state))
    proc = subprocess.Popen([*bl.taskset(cpu), *DCIM, "run", "--config", str(config), "--listen",
                             f"127.0.0.1:{port}"], stdout=log, stderr=log, env=env, cwd=bl.REPO)
    try:
        bl.wait_tcp(port, 60)
        yield Daemon(proc, port)
    finally:
        _terminate(proc)
        log.close()


SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)')
DEVICE = re.compile(r'device="([^"]*)"')


def per_device(body: str, names: set[str]) -> dict[str, dict[str, float]]:
    """metric name -> device -> value (summed over other labels) for the named families."""
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    for line in body.splitlines():
        if not line.startswith("dcim_device"):
            continue
        m = SAMPLE.match(line)
        if not m or m["name"] not in names:
            continue
        d = DEVICE.search(m["labels"])
        if d:
            series = out[m["name"]]
            series[d[1]] = series.get(d[1], 0.0) + float(m["value"])
    return out


def sample(body: str, name: str, **labels: str) -> float | None:
    """The value of one series (the first whose labels include `labels`), or None."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            m = SAMPLE.match(line)
            if m and m["name"] == name and all(w in m["labels"] for w in want):
                return float(m["value"])
    return None

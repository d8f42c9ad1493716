"""Part 6, soak: `dcim run` on hall-18mw for --minutes with a fault injected every minute.

dcim polls the simulated hall (every 10 s) and writes to VictoriaMetrics' /api/v2/write (plain:
no deduplication, so every duplicate shows). Each minute one fault from this cycle, for 30 s:

    devices-timeout   5 random devices stop answering          (control API fail: timeout)
    devices-garbage   5 random devices answer garbage           (control API fail: garbage)
    endpoint-down     VictoriaMetrics is killed, then restarted  (connection refused)
    endpoint-hang     VictoriaMetrics is SIGSTOPped, then resumed (writes time out; a write it
                      had read before the stop is stored on resume: the possible duplicates)
    reload            SIGHUP with a broken config (refused), then with a changed one (the
                      InfluxDB sink restarts: keepalive changed)
    devices-slow      5 random devices answer slowly             (control API fail: slow)

Reported (bench/out/soak.json; the run's files in bench/out/soak/): dcim's RSS over time and
its growth after the first minute, missed polls (devices never faulted: polls made vs the
interval's worth), overruns, and for InfluxDB, per device, polls dcim made vs `up` points
stored (lost) and stored twice (duplicated), counting what is still in the spool when dcim
stops as not lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import benchlib as bl
import simproc
import yaml

FAULTS = ("devices-timeout", "devices-garbage", "endpoint-down", "endpoint-hang", "reload",
          "devices-slow")
FAULT_S = 30.0
UP = re.compile(r'^dcim_device_polls_total\{(?P<labels>[^}]*)\} (?P<value>\S+)', re.M)


class Victoria:
    """VictoriaMetrics single node that can be killed, restarted, stopped and resumed."""

    def __init__(self, workdir: Path):
        self.exe = shutil.which("victoria-metrics") or shutil.which("victoria-metrics-prod")
        if self.exe is None:
            raise SystemExit("soak: needs victoria-metrics (apt-get install victoria-metrics)")
        self.data = workdir / "vm-data"
        self.port = bl.free_port()
        self.log = (workdir / "victoria-metrics.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.data}",
             "-retentionPeriod=100y", "-search.latencyOffset=0s", "-search.disableCache"],
            stdout=self.log, stderr=self.log)
        bl.wait_tcp(self.port, 30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def pause(self, paused: bool) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def up_samples(self) -> dict[str, list[int]]:
        """Stored dcim_device_up timestamps (ms) per device, duplicates kept."""
        with suppress(OSError):
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=30).read()
        time.sleep(5)  # a forced flush is searchable a moment later
        query = urllib.parse.urlencode({"match[]": '{__name__="dcim_device_up"}'}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/export", query, timeout=120) as resp:
            body = resp.read().decode()
        out: dict[str, list[int]] = {}
        for line in body.splitlines():
            if line.strip():
                item = json.loads(line)
                out.setdefault(item["metric"]["device"], []).extend(item["timestamps"])
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with suppress(OSError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.kill()
        self.log.close()


@contextmanager
def victoria(workdir: Path) -> Iterator[Victoria]:
    vm = Victoria(workdir)
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


def polls_by_device(body: str) -> dict[str, float]:
    """dcim_device_polls_total per device."""
    out = {}
    for m in UP.finditer(body):
        device = re.search(r'device="([^"]*)"', m["labels"])
        if device:
            out[device[1]] = float(m["value"])
    return out


def metric(body: str, name: str) -> float:
    """Sum of a family's samples in one scrape."""
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def spooled_up(path: Path) -> dict[str, set[int]]:
    """dcim_device up timestamps (ms) still waiting in the spool file, per device."""
    out: dict[str, set[int]] = {}
    if not path.exists():
        return out
    with sqlite3.connect(path) as db:
        for (line,) in db.execute("SELECT line FROM points WHERE line LIKE 'dcim_device,%'"):
            tags, _, rest = line.partition(" ")
            if not re.search(r"(^|,)up=", rest):
                continue
            device = dict(t.split("=", 1) for t in tags.split(",")[1:])["device"]
            out.setdefault(device, set()).add(int(rest.rsplit(" ", 1)[1]))
    return out


def write_config(sim_config: Path, path: Path, vm_url: str, keepalive: str) -> str:
    data: dict[str, Any] = yaml.safe_load(sim_config.read_text())
    data["sinks"] = {"influxdb": {"url": vm_url, "org": "dcim", "bucket": "dcim", "token": "t",
                                  "keepalive": keepalive, "max_backoff": "10s"}}
    text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    return text


def inject(fault: str, ctx: dict[str, Any]) -> list[str]:
    """Start a fault; return the devices it touches (for the missed-polls accounting)."""
    sim: simproc.Sim = ctx["sim"]
    vm: Victoria = ctx["vm"]
    d: simproc.Daemon = ctx["daemon"]
    if fault.startswith("devices-"):
        chosen = ctx["rng"].sample(ctx["devices"], 5)
        for device in chosen:
            sim.post(f"/devices/{device}/fail", {"mode": fault.removeprefix("devices-")})
        ctx["failed"] = chosen
        return chosen
    if fault == "endpoint-down":
        vm.kill()
    elif fault == "endpoint-hang":
        vm.pause(True)
    elif fault == "reload":
        config: Path = ctx["config"]
        config.write_text("site: {name: broken\n")  # refused: the running config stays
        d.proc.send_signal(signal.SIGHUP)
    return []


def clear(fault: str, ctx: dict[str, Any]) -> None:
    """End a fault."""
    if fault.startswith("devices-"):
        for device in ctx.pop("failed", []):
            ctx["sim"].post(f"/devices/{device}/recover", {})
    elif fault == "endpoint-down":
        ctx["vm"].start()
    elif fault == "endpoint-hang":
        ctx["vm"].pause(False)
    elif fault == "reload":
        ctx["keepalive"] = "90s" if ctx["keepalive"] == "60s" else "60s"
        write_config(ctx["sim_config"], ctx["config"], ctx["vm"].url, ctx["keepalive"])
        ctx["daemon"].proc.send_signal(signal.SIGHUP)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = bl.OUT / "soak"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sim_config = workdir / "sim.yaml"
    config = workdir / "site.yaml"
    sim_cpu, dcim_cpu = (0, 1) if bl.NCPU >= 2 else (None, None)
    rng = random.Random(args.seed)
    with simproc.simulator(args.preset, sim_config, 1, sim_cpu) as sim, victoria(workdir) as vm:
        write_config(sim_config, config, vm.url, "60s")
        interval = float(yaml.safe_load(sim_config.read_text())["polling"]["interval"].rstrip("s"))
        with simproc.daemon(config, workdir, dcim_cpu) as d:
            ctx: dict[str, Any] = {"sim": sim, "vm": vm, "daemon": d, "config": config,
                                   "sim_config": sim_config, "rng": rng, "keepalive": "60s"}
            time.sleep(20)  # every device polled at least once
            first = d.metrics()
            ctx["devices"] = sorted(polls_by_device(first))
            started = time.monotonic()
            rss: list[tuple[float, int]] = []
            faulted: set[str] = set()
            faults: list[dict[str, Any]] = []
            for minute in range(args.minutes):
                fault = FAULTS[minute % len(FAULTS)]
                minute_start = started + minute * 60
                faulted.update(inject(fault, ctx))
                faults.append({"minute": minute, "fault": fault})
                while time.monotonic() < minute_start + 60:
                    if fault and time.monotonic() >= minute_start + FAULT_S:
                        clear(fault, ctx)
                        fault = ""
                    rss.append((round(time.monotonic() - started, 1), bl.rss_bytes(d.proc.pid)))
                    time.sleep(10 - (time.monotonic() - started) % 10)
                if d.proc.poll() is not None:
                    raise SystemExit(f"dcim exited {d.proc.returncode} in minute {minute}")
            # Let the backlog of the last outage drain, then count.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                body = d.metrics()
                if metric(body, "dcim_influx_oldest_unsent_age_seconds") < 15:
                    break
                time.sleep(5)
            last = d.metrics()
            scraped_at_ms = int(time.time() * 1000)
            elapsed = time.monotonic() - started
    # dcim has stopped (SIGTERM): what it could not send is in the spool, not lost.
    spool = spooled_up(workdir / "state" / "influx-spool.db")
    with victoria(workdir) as vm2:  # the same data directory, read after a clean restart
        stored = vm2.up_samples()
    made = polls_by_device(last)
    before = polls_by_device(first)
    lost = duplicated = 0
    per_device: dict[str, dict[str, int]] = {}
    for device, polls in made.items():
        stamps = [t for t in stored.get(device, []) if t <= scraped_at_ms]
        unique = set(stamps) | {t for t in spool.get(device, set()) if t <= scraped_at_ms}
        dev_lost = max(0, int(polls) - len(unique))
        dev_dup = len(stamps) - len(set(stamps))
        lost += dev_lost
        duplicated += dev_dup
        if dev_lost or dev_dup:
            per_device[device] = {"polls": int(polls), "stored": len(unique), "lost": dev_lost,
                                  "duplicated": dev_dup}
    healthy = [dev for dev in made if dev not in faulted]
    expected = elapsed / interval
    missed = sum(max(0.0, expected - (made[dev] - before.get(dev, 0))) for dev in healthy)
    after_warmup = [b for t, b in rss if t >= 60] or [b for _, b in rss]

    def mb(n: int) -> float:
        return round(n / 2**20, 1)

    return {
        "preset": args.preset, "minutes": args.minutes, "devices": len(made),
        "interval_s": interval, "faults": faults,
        "rss_mb": {"first": mb(rss[0][1]), "after_first_minute": mb(after_warmup[0]),
                   "last": mb(rss[-1][1]), "max": mb(max(b for _, b in rss)),
                   "growth_after_first_minute": mb(after_warmup[-1] - after_warmup[0])},
        "rss_samples": [(t, mb(b)) for t, b in rss],
        "polls_made": int(sum(made.values())),
        "healthy_devices": len(healthy),
        "missed_polls_healthy": round(missed, 1),
        "expected_polls_per_device": round(expected, 1),
        "overruns": metric(last, "dcim_device_poll_overruns_total"),
        "influx": {"lost": lost, "duplicated": duplicated,
                   "still_spooled": sum(map(len, spool.values())),
                   "retries": {k: v for k, v in re.findall(
                       r'dcim_influx_write_retries_total\{reason="([^"]+)"\} (\S+)', last)},
                   "write_timeout_s": metric(last, "dcim_influx_write_timeout_seconds"),
                   "devices_with_loss_or_duplicates": per_device},
        "reloads_refused": (workdir / "dcim-run.log").read_text(errors="replace").count(
            "reload refused"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--preset", default="hall-18mw")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    result = measure(args)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=2))
    print(f"wrote {bl.write_json('soak.json', {'machine': bl.machine(), **result})}")


if __name__ == "__main__":
    main()

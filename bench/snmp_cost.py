"""Part 1, poll cost: CPU per varbind of dcim (fast path and pysnmp) vs snmp_exporter 0.21.

The same net-snmp agents (one bench PDU each, 36 values) are polled the same number of times
by each poller, in one run, alternating, for several rounds. CPU is the poller process's
run time (its threads' /proc/PID/task/*/schedstat, in ns; utime+stime agrees but is printed
in 10 ms ticks), read before and after each round; agent CPU and
the HTTP driver's CPU are recorded beside it. On a 2-core machine the pollers are pinned to
CPU 1 and the agents and the HTTP driver to CPU 0, so a poller never competes with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import benchlib as bl
import pyspy_top


@dataclass
class Poller:
    """One poller under test: the process whose CPU counts and how to drive it."""

    name: str
    measured_pid: int
    control: subprocess.Popen[str]  # the process we send round commands to
    extra: list[subprocess.Popen[bytes]]  # processes to stop afterwards (the exporter)

    def command(self, polls: int, concurrency: int, rate: float = 0) -> dict[str, Any]:
        """Run one round (rate 0: as fast as it goes) and return the driver's JSON answer."""
        stdin: IO[str] | None = self.control.stdin
        stdout: IO[str] | None = self.control.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps({"polls": polls, "concurrency": concurrency, "rate": rate}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: driver exited (rc {self.control.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def stop(self) -> None:
        """Close the driver's stdin and stop what we started."""
        if self.control.stdin:
            self.control.stdin.close()
        for p in (self.control, *self.extra):
            try:
                p.wait(10) if p is self.control else p.terminate()
            except subprocess.TimeoutExpired:
                p.kill()
        for p in self.extra:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def _spawn_driver(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=bl.BENCH)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if '"ready"' not in ready:
        raise RuntimeError(f"{cmd[0]} did not start: {ready!r} (rc {proc.wait()})")
    return proc


def start_dcim(spec: str, ports: list[int], cpu: int | None,
               baseline: Path | None = None) -> Poller:
    """A dcim worker polling through Poller.poll: spec is ENGINE[+PATCH...][@AUTH]
    (fast+walk, fast@sha256-aes256; AUTH one of benchlib.V3_USERS, default v2c).

    ENGINE+ with no patch is a second, identical process: a noise control, since two
    processes running the same code differ by several percent (heap layout, hash seeds).
    """
    body, _, auth = spec.partition("@")
    engine, *names = body.split("+")
    names = [n for n in names if n]
    env = dict(os.environ, DCIM_SNMP_ENGINE=engine)
    if baseline is not None:  # another revision's dcim package, imported ahead of this one
        env["PYTHONPATH"] = str(baseline)
    proc = _spawn_driver([*bl.taskset(cpu), bl.PYTHON, str(bl.BENCH / "dcim_worker.py"),
                          f"--patches={','.join(names)}", f"--auth={auth or 'v2c'}",
                          *map(str, ports)], env)
    name = f"dcim-{engine}-control" if body.endswith("+") and not names else f"dcim-{spec}"
    if baseline is not None:  # dcim-fast-baseline, dcim-fast-baseline@sha-aes
        name = f"dcim-{body}-baseline" + (f"@{auth}" if auth else "")
    return Poller(name, proc.pid, proc, [])


def start_exporter(ports: list[int], workdir: Path, exporter_cpu: int | None,
                   driver_cpu: int | None, auth: str = "v2c") -> Poller:
    """snmp_exporter with the bench module for `auth` (v2c or benchlib.V3_USERS), and the
    HTTP driver that scrapes it; one exporter process per credential."""
    config = workdir / "snmp.yml"
    config.write_text(bl.exporter_config())
    port = bl.free_port()
    log = (workdir / f"snmp_exporter-{auth}.log").open("wb")
    exporter = subprocess.Popen([*bl.taskset(exporter_cpu), "prometheus-snmp-exporter",
                                 f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.level=warn"], stdout=log, stderr=log)
    bl.wait_tcp(port)
    driver = _spawn_driver([*bl.taskset(driver_cpu), bl.PYTHON, str(bl.BENCH / "http_driver.py"),
                            f"--exporter-port={port}", f"--module={bl.exporter_module(auth)}",
                            f"--expect={bl.VARBINDS_PER_POLL}", *map(str, ports)])
    name = "snmp_exporter" if auth == "v2c" else f"snmp_exporter@{auth}"
    return Poller(name, exporter.pid, driver, [exporter])


def wire_counts(ports: list[int]) -> tuple[int, int]:
    """Packets and varbinds all agents have served so far (snmpInPkts, snmpInTotalReqVars)."""
    packets = varbinds = 0
    for port in ports:
        c = bl.snmp_counters(port)
        packets += c["packets"]
        varbinds += c["varbinds"]
    return packets, varbinds


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds and return per-round records and the medians."""
    workdir = bl.OUT / "snmp_cost"
    two = bl.NCPU >= 2
    poller_cpu, load_cpu = (1, 0) if two else (None, None)
    records: list[dict[str, Any]] = []
    wire: dict[str, dict[str, float]] = {}
    with bl.snmpd_agents(args.agents, workdir / "agents", load_cpu) as agents:
        pollers: list[Poller] = []
        try:
            for auth in args.exporter_auths:
                pollers.append(start_exporter(agents.ports, workdir, poller_cpu, load_cpu, auth))
            for engine in args.engines:
                pollers.append(start_dcim(engine, agents.ports, poller_cpu))
            if args.baseline:
                for spec in args.baseline_engines:
                    pollers.append(start_dcim(spec, agents.ports, poller_cpu, args.baseline))
            for p in pollers:  # warm up: sockets, caches, Go runtime, first-poll checks
                warm = p.command(args.warmup, args.concurrency)
                if warm["failed"]:
                    raise RuntimeError(f"{p.name} warm-up failed: {warm['errors']}")
                # what each poller costs the agents on the wire, per poll (snmpget adds 1 + 2)
                before = wire_counts(agents.ports)
                p.command(len(agents.ports), 1)
                after = wire_counts(agents.ports)
                n = len(agents.ports)
                wire[p.name] = {"packets_per_poll": (after[0] - before[0]) / n - 1,
                                "varbinds_per_poll": (after[1] - before[1]) / n - 2}
            for r in range(args.rounds):
                # rotate the order so no poller always runs first (cache, frequency effects)
                order = pollers[r % len(pollers):] + pollers[: r % len(pollers)]
                for p in order:
                    driver_pid = p.control.pid
                    # the HTTP driver starts threads per round (gone from schedstat): stat for it
                    t0, d0 = bl.cpu_seconds(p.measured_pid), bl.cpu_seconds(driver_pid)
                    c0, a0 = bl.cpu_ns(p.measured_pid), agents.cpu_each()
                    result = p.command(args.polls, args.concurrency, args.rate)
                    c1, a1 = bl.cpu_ns(p.measured_pid), agents.cpu_each()
                    t1, d1 = bl.cpu_seconds(p.measured_pid), bl.cpu_seconds(driver_pid)
                    per_agent = [y - x for x, y in zip(a0, a1, strict=True)]
                    rec = {"round": r + 1, "poller": p.name, "polls": args.polls,
                           "cpu_s": c1 - c0, "cpu_stat_s": t1 - t0, "agents_cpu_s": sum(per_agent),
                           "busiest_agent_cpu_s": max(per_agent),
                           "driver_cpu_s": (d1 - d0) if driver_pid != p.measured_pid else 0.0,
                           **{k: result[k] for k in ("wall", "ok", "failed", "values", "errors")}}
                    rec["us_per_varbind"] = rec["cpu_s"] / max(1, rec["values"]) * 1e6
                    if abs(rec["cpu_stat_s"] - rec["cpu_s"]) > 0.03 + 0.05 * rec["cpu_s"]:
                        # a thread of the poller exited mid-round and took its time along
                        print(f"  warning: {p.name}: schedstat {rec['cpu_s']:.2f}s but stat "
                              f"{rec['cpu_stat_s']:.2f}s", flush=True)
                    records.append(rec)
                    print(f"  round {r + 1} {p.name:14} {rec['us_per_varbind']:7.1f} µs/varbind "
                          f"cpu {rec['cpu_s']:.2f}s wall {rec['wall']:.2f}s "
                          f"agents {rec['agents_cpu_s']:.2f}s failed {rec['failed']}", flush=True)
            for p in pollers:
                if p.name.removeprefix("dcim-") in args.profile:
                    profile_round(p, args, workdir)
        finally:
            for p in pollers:
                p.stop()
    return summarize(records, wire, args)


def profile_round(p: Poller, args: argparse.Namespace, workdir: Path) -> None:
    """Sample one extra round of a dcim worker with py-spy (raw collapsed stacks)."""
    pyspy = Path(bl.PYTHON).parent / "py-spy"
    if not pyspy.exists():
        print("  (py-spy is not installed in the venv: no profile)")
        return
    out = workdir / f"profile-{p.name}.txt"
    out.unlink(missing_ok=True)
    # native unwinding needs the target paused at each sample
    mode = ["--native"] if args.native else ["--nonblocking"]
    spy = subprocess.Popen([str(pyspy), "record", "--format", "raw", "--rate", "500",
                            *mode, "--pid", str(p.measured_pid), "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=(workdir / "py-spy.log").open("wb"))
    time.sleep(1.0)  # py-spy attaches
    p.command(args.polls, args.concurrency, args.rate)
    spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
    spy.wait(30)
    if not out.exists():
        print(f"  py-spy could not sample {p.name} (ptrace not allowed?): see {workdir / 'py-spy.log'}")
        return
    print(f"  profile of {p.name}: {out}")
    report = pyspy_top.report(out, 25)
    (workdir / f"profile-{p.name}.summary.txt").write_text(report + "\n")
    print("\n".join("    " + line for line in report.splitlines()[:14]))


def _paired(by: dict[str, list[dict[str, Any]]], name: str, base: str) -> float | None:
    """Median over rounds of name's cost / base's cost in the same round (noise cancels)."""
    if base not in by:
        return None
    base_by_round = {r["round"]: r["us_per_varbind"] for r in by[base]}
    ratios = [r["us_per_varbind"] / base_by_round[r["round"]] for r in by[name]
              if base_by_round.get(r["round"])]
    return bl.median(ratios) if ratios else None


def summarize(records: list[dict[str, Any]], wire: dict[str, dict[str, float]],
              args: argparse.Namespace) -> dict[str, Any]:
    """Medians per poller, paired ratios to snmp_exporter and to dcim-fast, agents' load."""
    by: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by.setdefault(rec["poller"], []).append(rec)
    summary: dict[str, Any] = {}
    for name, recs in by.items():
        wall = bl.median([r["wall"] for r in recs])
        cost = [r["us_per_varbind"] for r in recs]
        summary[name] = {
            "us_per_varbind": bl.median(cost),
            "us_per_varbind_min": min(cost),
            "cpu_s_per_1000_varbinds": bl.median(cost) / 1000,
            "rounds": [round(c, 2) for c in cost],
            "wall_s": wall,
            "polls_per_s": args.polls / wall,
            "poller_util": bl.median([r["cpu_s"] / r["wall"] for r in recs]),
            "agents_util": bl.median([r["agents_cpu_s"] / r["wall"] for r in recs]),
            "busiest_agent_util": max(r["busiest_agent_cpu_s"] / r["wall"] for r in recs),
            "driver_util": bl.median([r["driver_cpu_s"] / r["wall"] for r in recs]),
            "failed": sum(r["failed"] for r in recs),
            # the ratio asked for, as a ratio of medians and as the median of per-round ratios
            "ratio_vs_snmp_exporter": None,
            "paired_vs_snmp_exporter": _paired(by, name, "snmp_exporter"),
            "paired_vs_dcim_fast": _paired(by, name, "dcim-fast"),
            # a v3 poller against snmp_exporter with the same credentials
            "paired_vs_exporter_same_auth": (
                _paired(by, name, f"snmp_exporter@{name.partition('@')[2]}")
                if "@" in name and not name.startswith("snmp_exporter") else None),
            **wire.get(name, {}),
        }
    base = summary.get("snmp_exporter", {}).get("us_per_varbind")
    for s in summary.values():
        s["ratio_vs_snmp_exporter"] = s["us_per_varbind"] / base if base else None
    return {"machine": bl.machine(), "agents": args.agents, "polls_per_round": args.polls,
            "rounds": args.rounds, "concurrency": args.concurrency, "rate": args.rate,
            "varbinds_per_poll": bl.VARBINDS_PER_POLL, "pinned": bl.NCPU >= 2,
            "summary": summary, "records": records}


def print_table(res: dict[str, Any]) -> None:
    """The poll-cost table."""
    print(f"\npoll cost: {res['agents']} snmpd agents, {res['polls_per_round']} polls x "
          f"{res['varbinds_per_poll']} varbinds per poller per round, {res['rounds']} rounds, "
          f"{res['concurrency']} in flight, offered {res['rate'] or 'unlimited'} polls/s")
    print("  µs/varbind: median (min) over rounds; ratio: median of per-round ratios to "
          "snmp_exporter / to dcim-fast")
    print(f"  {'poller':34} {'µs/varbind':>14} {'vs exporter':>11} {'same auth':>9} "
          f"{'vs fast':>7} {'polls/s':>7} {'poller':>6} {'agents':>6} {'pkts':>4} {'vb':>5}")
    nan = float("nan")
    for name, s in res["summary"].items():
        vs_exp = s["paired_vs_snmp_exporter"]
        vs_same = s.get("paired_vs_exporter_same_auth")
        vs_fast = s["paired_vs_dcim_fast"]
        print(f"  {name:34} {s['us_per_varbind']:6.1f} ({s['us_per_varbind_min']:5.1f}) "
              f"{vs_exp if vs_exp is not None else nan:11.2f} "
              f"{vs_same if vs_same is not None else nan:9.2f} "
              f"{vs_fast if vs_fast is not None else nan:7.2f} {s['polls_per_s']:7.0f} "
              f"{s['poller_util']:6.0%} {s['agents_util']:6.0%} "
              f"{s.get('packets_per_poll', 0):4.1f} {s.get('varbinds_per_poll', 0):5.1f}")
    print("  poller/agents: CPU as a share of one core during the round (agents: all of them, "
          "the busiest one below 1 core each)")


def measure_rates(args: argparse.Namespace) -> None:
    """One paired run per offered rate (the same pollers' cost at 50, 200, 1,000 polls/s), then
    the ratios side by side: per-request costs that a busy loop amortises show at low rates."""
    runs: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()
    for rate in (float(r) for r in args.rates.split(",") if r):
        args.rate = rate
        args.polls = max(args.agents, round(rate * args.round_seconds))
        print(f"\n-- offered {rate:g} polls/s: {args.rounds} rounds of {args.polls} polls",
              flush=True)
        res = measure(args)
        print_table(res)
        runs[f"{rate:g}"] = res
    load_after = os.getloadavg()
    print(f"\npaired ratio to snmp_exporter (median of per-round ratios) by offered rate; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    names = [n for n in next(iter(runs.values()))["summary"] if n != "snmp_exporter"]
    print(f"  {'poller':34} " + " ".join(f"{r + '/s':>14}" for r in runs))
    for name in names:
        cells = []
        for res in runs.values():
            s = res["summary"].get(name, {})
            paired = s.get("paired_vs_snmp_exporter")
            cells.append(f"{paired:5.2f} ({s['us_per_varbind']:5.1f}µs)" if paired else
                         f"{'-':>14}")
        print(f"  {name:34} " + " ".join(cells))
    exp = [f"{res['summary'].get('snmp_exporter', {}).get('us_per_varbind', float('nan')):5.1f}µs"
           for res in runs.values()]
    print(f"  {'snmp_exporter':34} " + " ".join(f"{e:>14}" for e in exp))
    out = {"rates": runs, "round_seconds": args.round_seconds,
           "loadavg_before": load_before, "loadavg_after": load_after}
    print(f"stored: {bl.write_json('snmp_cost_rates.json', out)}")
    if any(s["failed"] for res in runs.values() for s in res["summary"].values()):
        sys.exit("some polls failed: see bench/out/snmp_cost_rates.json")


def main() -> None:
    """Parse options, measure, print and store the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=30)
    parser.add_argument("--polls", type=int, default=1000, help="device polls per poller per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1000,
                        help="offered load, device polls/s (0: closed loop, as fast as it goes)")
    parser.add_argument("--rates", default="",
                        help="offered rates to measure one after the other (50,200,1000): one run "
                             "each, --round-seconds of polls per round; overrides --rate/--polls "
                             "and stores bench/out/snmp_cost_rates.json")
    parser.add_argument("--round-seconds", type=float, default=5.0,
                        help="with --rates: length of a round (polls per round = rate x this)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--engines", default="fast,pysnmp",
                        help="dcim workers to measure: DCIM_SNMP_ENGINE value, optionally +patch "
                             "names from bench/patches.py (fast+noraw+walk)")
    parser.add_argument("--exporter-auths", default="v2c",
                        help="snmp_exporter modules to measure: v2c and/or benchlib.V3_USERS "
                             "names (sha-aes, sha256-aes256), one exporter process each")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a directory holding another revision's dcim/ package (git worktree "
                             "add DIR main): its fast path is measured too, as dcim-fast-baseline")
    parser.add_argument("--baseline-engines", default="fast",
                        help="with --baseline: which of its pollers to run (as in --engines, "
                             "e.g. fast,fast@sha-aes), each named dcim-SPEC-baseline")
    parser.add_argument("--profile", default="",
                        help="dcim workers (as in --engines) to sample with py-spy for one extra round")
    parser.add_argument("--native", action="store_true", help="with --profile: native frames too")
    args = parser.parse_args()
    args.engines = [e for e in args.engines.split(",") if e]
    args.exporter_auths = [a for a in args.exporter_auths.split(",") if a]
    args.baseline_engines = [e for e in args.baseline_engines.split(",") if e]
    args.profile = [e for e in args.profile.split(",") if e]
    if args.rates:
        measure_rates(args)
        return
    res = measure(args)
    print_table(res)
    print(f"stored: {bl.write_json('snmp_cost.json', res)}")
    if any(s["failed"] for s in res["summary"].values()):
        sys.exit("some polls failed: see bench/out/snmp_cost.json")


if __name__ == "__main__":
    main()

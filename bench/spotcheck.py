"""Part 3, spot check: wall time of `dcim pue --config F` on the hall-18mw simulated site.

Wall time includes interpreter start, imports, config and profile loading, one concurrent poll
of every device PUE and rack power need (179 devices: SNMP PDUs, Modbus mains) and compute.
hyperfine runs it when installed (else a loop of timed runs). The simulator is pinned to
CPU 0 and the CLI to CPU 1. Import time comes from `python -X importtime` (bench/importtime.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from typing import Any

import benchlib as bl
import importtime
import simproc


def timed_runs(cmd: list[str], runs: int, warmup: int, cpu: int | None) -> dict[str, Any]:
    """Wall times of a command: hyperfine if present, else a plain loop (seconds)."""
    out = bl.OUT / "spotcheck" / "hyperfine.json"
    if shutil.which("hyperfine"):
        subprocess.run([*bl.taskset(cpu), "hyperfine", "--shell=none", "--style=none",
                        f"--warmup={warmup}", f"--runs={runs}", f"--export-json={out}",
                        " ".join(cmd)], check=True, cwd=bl.REPO, stdout=subprocess.DEVNULL)
        res = json.loads(out.read_text())["results"][0]
        return {"tool": "hyperfine", "mean_s": res["mean"], "median_s": res["median"],
                "min_s": res["min"], "max_s": res["max"], "stddev_s": res["stddev"],
                "runs": len(res["times"])}
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        subprocess.run([*bl.taskset(cpu), *cmd], check=True, cwd=bl.REPO,
                       stdout=subprocess.DEVNULL)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"tool": "loop", "mean_s": sum(times) / len(times), "median_s": bl.median(times),
            "min_s": min(times), "max_s": max(times), "runs": len(times)}


def import_profile(args: list[str], name: str) -> dict[str, object]:
    """`python -X importtime -m dcim ARGS`, stored and summarised."""
    path = bl.OUT / "spotcheck" / f"importtime-{name}.txt"
    with path.open("w") as err:
        subprocess.run([bl.PYTHON, "-X", "importtime", "-m", "dcim", *args], cwd=bl.REPO,
                       stdout=subprocess.DEVNULL, stderr=err, check=False)
    return importtime.report(path)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the simulator, check one run's answer, time the runs, profile imports."""
    (bl.OUT / "spotcheck").mkdir(parents=True, exist_ok=True)
    sim_cpu, cli_cpu = (0, 1) if bl.NCPU >= 2 else (None, None)
    config = bl.OUT / "spotcheck" / "site.yaml"
    with simproc.simulator(args.preset, config, 1, sim_cpu) as sim:
        dcim = str(bl.PYTHON).removesuffix("python") + "dcim"
        cmd = [dcim if os.path.exists(dcim) else "dcim", "pue", "--config", str(config)]
        once = subprocess.run([*cmd, "--json"], capture_output=True, text=True, cwd=bl.REPO)
        answer = json.loads(once.stdout)
        if once.returncode != 0:
            raise RuntimeError(f"dcim pue exited {once.returncode}: {once.stdout}{once.stderr}")
        truth = sim.get("/truth")
        timing = timed_runs(cmd, args.runs, args.warmup, cli_cpu)
        pue_imports = import_profile(["pue", "--config", str(config)], "pue")
    help_imports = import_profile(["--help"], "help")
    return {"machine": bl.machine(), "preset": args.preset, "command": " ".join(cmd),
            "devices": len(truth["devices"]), "pue": answer["pue"], "truth_pue": truth["pue"],
            "status": answer["status"], "timing": timing, "imports_pue": pue_imports,
            "imports_help": help_imports}


def print_table(r: dict[str, Any]) -> None:
    """The spot-check figures."""
    t = r["timing"]
    print(f"\nspot check: `dcim pue` on {r['preset']} ({r['devices']} devices), {t['tool']}, "
          f"{t['runs']} runs")
    print(f"  wall mean {t['mean_s']:.3f}s  median {t['median_s']:.3f}s  min {t['min_s']:.3f}s  "
          f"max {t['max_s']:.3f}s   (PUE {r['pue']} vs truth {r['truth_pue']}, {r['status']})")
    for key, label in (("imports_help", "dcim --help"), ("imports_pue", "dcim pue")):
        imp = r[key]
        heavy = ", ".join(f"{p['package']} {p['ms']:.0f}" for p in imp["packages"][:6])
        print(f"  imports of {label}: {imp['total_ms']:.0f} ms; heaviest (ms): {heavy}")


def main() -> None:
    """Parse options, measure, print and store."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="hall-18mw")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    res = measure(args)
    print_table(res)
    print(f"stored: {bl.write_json('spotcheck.json', res)}")


if __name__ == "__main__":
    main()

"""Part 4, freshness: from a rack load change (control API) to the new value on dcim's /metrics.

`dcim run` polls the hall-18mw simulated site (every 10 s). Each trial picks another rack,
POSTs /racks/{id}/load with a value far from its current load, then scrapes /metrics every
`--period` seconds until dcim_rack_power_watts{rack} is within 0.5 % of it. The latency runs from
just before the POST to the end of the first scrape showing the value, so it includes the
scrape (resolution: one period). A rack's total needs both feeds' PDUs re-polled, each on its
own random phase, then the daemon's 1 s compute tick.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import benchlib as bl
import simproc


def feeds(body: str, rack: str) -> dict[str, float]:
    """dcim_rack_feed_power_watts of one rack, by feed."""
    out = {}
    for feed in ("A", "B"):
        value = simproc.sample(body, "dcim_rack_feed_power_watts", rack=rack, feed=feed)
        if value is not None:
            out[feed] = value
    return out


def wait_for(d: simproc.Daemon, rack: str, target_w: float, period: float,
             timeout: float) -> tuple[float | None, dict[str, float]]:
    """Seconds until dcim_rack_power_watts{rack} is within 0.5 % of target (None: never),
    and when each feed's power first moved (the PDU of that feed was polled)."""
    before = feeds(d.metrics(), rack)
    t0 = time.monotonic()
    moved: dict[str, float] = {}
    while (elapsed := time.monotonic() - t0) < timeout:
        body = d.metrics()
        now = time.monotonic() - t0
        for feed, w in feeds(body, rack).items():
            if feed not in moved and abs(w - before.get(feed, w)) > 0.05 * max(before[feed], 1):
                moved[feed] = now
        value = simproc.sample(body, "dcim_rack_power_watts", rack=rack)
        if value is not None and abs(value - target_w) <= 0.005 * target_w:
            return now, moved
        time.sleep(max(0.0, period - (time.monotonic() - t0 - elapsed)))
    return None, moved


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the trials and return each latency and their median and max."""
    workdir = bl.OUT / "freshness"
    sim_cpu, dcim_cpu = (0, 1) if bl.NCPU >= 2 else (None, None)
    config = workdir / "site.yaml"
    trials: list[dict[str, Any]] = []
    with simproc.simulator(args.preset, config, 1, sim_cpu) as sim, \
            simproc.daemon(config, workdir, dcim_cpu) as d:
        racks = sorted(sim.get("/truth")["racks"])
        # settle: every device polled once and on its phase, so trials see the steady state
        time.sleep(args.settle)
        for i in range(args.trials):
            rack = racks[(i * 7) % len(racks)]  # spread over rows and PDU vendors
            target_kw = 60.0 + i  # far below the 120-190 kW the model gives
            t0 = time.monotonic()
            sim.post(f"/racks/{rack}/load", {"kw": target_kw})
            post_s = time.monotonic() - t0
            latency, moved = wait_for(d, rack, target_kw * 1000, args.period, args.timeout)
            total = None if latency is None else latency + post_s
            trials.append({"rack": rack, "kw": target_kw, "latency_s": total,
                           "feeds_moved_s": {f: t + post_s for f, t in moved.items()}})
            shown = "timeout" if total is None else f"{total:.2f}s"
            per_feed = ", ".join(f"feed {f} {t + post_s:.2f}s" for f, t in sorted(moved.items()))
            print(f"  trial {i + 1}: rack {rack} -> {target_kw:g} kW visible after {shown} "
                  f"({per_feed})", flush=True)
            # the next trial starts at a random point of the poll cycle, not right after a poll
            time.sleep(random.uniform(0, args.spread))
            sim.post(f"/racks/{rack}/load", {"kw": None})
    seen = [t["latency_s"] for t in trials if t["latency_s"] is not None]
    return {"machine": bl.machine(), "preset": args.preset, "interval_s": 10.0,
            "period_s": args.period, "trials": trials, "missed": len(trials) - len(seen),
            "median_s": bl.median(seen) if seen else None, "max_s": max(seen) if seen else None,
            "min_s": min(seen) if seen else None}


def print_table(r: dict[str, Any]) -> None:
    """The freshness figures."""
    print(f"\nfreshness: {r['preset']}, poll interval {r['interval_s']:g}s, {len(r['trials'])} "
          f"trials, scrape every {r['period_s']:g}s")
    print(f"  load change -> dcim_rack_power_watts: median {r['median_s']:.2f}s, "
          f"min {r['min_s']:.2f}s, max {r['max_s']:.2f}s, not seen {r['missed']}")


def main() -> None:
    """Parse options, measure, print and store."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="hall-18mw")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--period", type=float, default=0.2, help="scrape period while waiting")
    parser.add_argument("--settle", type=float, default=15)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--spread", type=float, default=3,
                        help="random pause between trials, seconds")
    args = parser.parse_args()
    res = measure(args)
    print_table(res)
    print(f"stored: {bl.write_json('freshness.json', res)}")


if __name__ == "__main__":
    main()

"""CPU cost of a Redfish poll: dcim reading hall-18mw's 32 power shelves and its Redfish CDU.

The simulator runs as its own process (`dcim simulate --preset hall-18mw`, pinned to CPU 0);
this process polls every Redfish device of the written config through dcim's Poller
(sessions, $expand and $select as the simulator offers them), ROUNDS times, and reports its
own CPU time per shelf poll and per HTTP GET. The extrapolation to a hall of NVL72 racks with
8 shelves each polled every 10 s is that figure times 0.8 polls per second per rack.

    .venv/bin/python bench/redfish_cost.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from pathlib import Path

import benchlib as bl
import simproc

from dcim.drivers.poller import Poller
from dcim.site import load_site


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(config: Path, rounds: int) -> dict[str, float]:
    site = load_site(config)
    shelves = [d for d in site.devices.values() if d.kind == "shelf"]
    cdus = [d for d in site.devices.values() if d.protocol == "redfish" and d.kind == "cdu"]
    poller = Poller()
    try:
        await asyncio.gather(*(poller.poll(d) for d in shelves + cdus))  # log in, read roots
        gets0 = sum(s.requests for s in poller._redfish._services.values())
        c0, t0 = cpu(), time.perf_counter()
        for _ in range(rounds):
            results = await asyncio.gather(*(poller.poll(d) for d in shelves))
            assert all(r.up and not r.errors for r in results), [r.error for r in results]
        shelf_cpu, wall = cpu() - c0, time.perf_counter() - t0
        gets = sum(s.requests for s in poller._redfish._services.values()) - gets0
        c1 = cpu()
        for _ in range(rounds):
            (cdu,) = await asyncio.gather(*(poller.poll(d) for d in cdus))
            assert cdu.up, cdu.error
        cdu_cpu = cpu() - c1
    finally:
        await poller.close()
    polls = rounds * len(shelves)
    per_poll = shelf_cpu / polls
    return {"shelves": len(shelves), "rounds": rounds, "shelf_polls": polls,
            "cpu_ms_per_shelf_poll": per_poll * 1000, "gets_per_shelf_poll": gets / polls,
            "cpu_us_per_get": shelf_cpu / gets * 1e6, "wall_s_per_round": wall / rounds,
            "cpu_ms_per_cdu_poll": cdu_cpu / rounds * 1000,
            # 8 shelves per rack, every 10 s: 0.8 polls/s per rack
            "racks_per_core_at_10s": 1.0 / (per_poll * 0.8),
            "core_share_76_nvl72_racks": per_poll * 0.8 * 76}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    out = bl.OUT
    with simproc.simulator("hall-18mw", out / "redfish-hall.yaml", cpu=0) as sim:
        result = asyncio.run(measure(sim.config, args.rounds))
    bl.write_json("redfish_cost.json", {"machine": bl.machine(), **result})
    for key, value in result.items():
        print(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()

"""Compute cost against site size: the pure compute core alone, on recorded readings.

For hall-18mw (179 devices), bench-2000 (2,000) and a synthetic hall of 20,000 devices
(bench-2000's layout ten times over), the simulator's model gives every device's canonical
readings at one instant (what a poll of each would return); compute() then runs TICKS times
on that state, unsharded and as shard 1 of 2, and each tick's CPU time is recorded
(time.process_time_ns; nothing else runs in this process). Python's garbage collector is
watched through gc.callbacks, so a slow tick can be told apart as "a collection ran inside it"
or not; the same ticks are then run with the collector frozen (gc.freeze() after the site is
built, as the daemon does), to show what that removes.

    .venv/bin/python bench/compute_scale.py [--ticks 200] [--json bench/out/compute_scale.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dcim.compute import compute  # noqa: E402
from dcim.profile import ProfileRegistry, builtin_profile_dir  # noqa: E402
from dcim.readings import PollResult  # noqa: E402
from dcim.sim import presets, siteconfig  # noqa: E402
from dcim.sim.agents import Endpoint  # noqa: E402
from dcim.sim.topology import SimSite  # noqa: E402
from dcim.sim.world import World  # noqa: E402
from dcim.site import Site, restrict_to_shard  # noqa: E402
from dcim.state import DeviceState  # noqa: E402

T0 = 1_767_225_600.0  # a fixed instant: the readings are the same on every run


def synthetic_20000(seed: int) -> SimSite:
    """bench-2000's layout ten times over: 9,000 racks (18,000 PDUs), 1,500 CDUs, ..."""
    make: Callable[..., SimSite] = presets._hall
    return make(seed, name="sim-synthetic-20000", preset="synthetic-20000", n_racks=9000,
                cdu_sizes=[6] * 1500, ups_per_feed=150, chillers=160, chiller_gateway_size=8,
                mains=40, cdu_gateway_size=10, misc_w=9_000_000.0, rows=300)


SIZES: dict[str, Callable[[int], SimSite]] = {
    "hall-18mw": presets.hall_18mw,
    "bench-2000": presets.bench_2000,
    "synthetic-20000": synthetic_20000,
}


def recorded(sim: SimSite, registry: ProfileRegistry) -> tuple[Site, Mapping[str, DeviceState]]:
    """The dcim Site of a simulated site and every device's reading at T0."""
    endpoints = {d.id: Endpoint("127.0.0.1", 10_000 + i % 50_000) for i, d in enumerate(sim.devices)}
    site = siteconfig.check(siteconfig.render(sim, endpoints, registry), registry)
    world = World(sim, 1, registry, T0, frozen=True)
    state = {}
    for dev in sim.devices:
        values = world.canonical.values(dev, world.state, world.controls, world.energy.get(dev.id))
        state[dev.id] = DeviceState(PollResult(dev.id, T0, 0.01, values=values), T0, 0)
    return site, MappingProxyType(state)


@dataclass
class Run:
    """CPU per tick, and which ticks had a full (generation 2) collection inside them."""

    cpu_ms: list[float]
    gc_ticks: set[int]

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.cpu_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        clean = [c for i, c in enumerate(self.cpu_ms) if i not in self.gc_ticks]
        return {"p50_ms": statistics.median(ordered), "p99_ms": p99, "max_ms": ordered[-1],
                "ticks": len(ordered), "ticks_with_gc": len(self.gc_ticks),
                "max_without_gc_ms": max(clean) if clean else None}


@contextmanager
def watch_gc(current: list[int], hits: set[int]) -> Iterator[None]:
    # Young collections run every few hundred allocations and cost microseconds; a full one
    # walks every tracked object the process holds.
    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            hits.add(current[0])

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


def ticks(site: Site, state: Mapping[str, DeviceState], n: int) -> Run:
    current = [0]
    hits: set[int] = set()
    cpu = []
    with watch_gc(current, hits):
        for i in range(n):
            current[0] = i
            start = time.process_time_ns()
            compute(site, state, T0 + 1.0 + i * 1e-3)
            cpu.append((time.process_time_ns() - start) / 1e6)
    return Run(cpu, hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    registry = ProfileRegistry.load_dirs([builtin_profile_dir()])
    results: dict[str, Any] = {}
    print(f"{'site':<18}{'devices':>8}  {'shard':<6}{'gc':<8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}  ticks with a full collection")
    for name in args.sizes.split(","):
        site, state = recorded(SIZES[name](1), registry)
        for shard_name, part in (("all", site), ("1/2", restrict_to_shard(site, 1, 2))):
            for gc_mode in ("on", "frozen"):
                gc.collect()
                if gc_mode == "frozen":
                    gc.freeze()
                ticks(part, state, 3)  # warm caches (cached site indexes, code paths)
                run = ticks(part, state, args.ticks)
                gc.unfreeze()
                s = run.summary()
                results[f"{name} {shard_name} gc={gc_mode}"] = {"devices": len(part.devices), **s}
                print(f"{name:<18}{len(part.devices):>8}  {shard_name:<6}{gc_mode:<8}"
                      f"{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['max_ms']:>9.2f}  "
                      f"{s['ticks_with_gc']} of {s['ticks']}" + (
                          "" if s["max_without_gc_ms"] is None
                          else f" (slowest without: {s['max_without_gc_ms']:.2f} ms)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

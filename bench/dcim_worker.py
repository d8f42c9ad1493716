"""dcim's side of the poll-cost benchmark: a long-lived process that polls bench PDUs on command.

Started by bench/snmp_cost.py with the agents' ports; it sets up (imports, profile, Poller)
before it says "ready", so the CPU the orchestrator reads from /proc/PID/stat around each
command is polling only: Poller.poll per device (request encode, UDP, BER decode, profile
decode, range checks), the same path `dcim run` uses. DCIM_SNMP_ENGINE=pysnmp selects pysnmp;
--auth sha-aes / sha256-aes256 polls over SNMPv3 authPriv (benchlib.V3_USERS);
--patches applies bench/patches.py experiments (modelled code changes) first;
DCIM_SNMP_ENGINE=floor-asyncio / floor-client run bench/floor.py's floors instead of Poller.

Protocol on stdin/stdout, one JSON line each way:
    {"polls": 3000, "concurrency": 20, "rate": 1000}  ->  {"wall": s, "ok": n, "failed": n, "values": n, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import benchlib as bl
import floor
import patches

from dcim.drivers.poller import Poller
from dcim.profile import ProfileRegistry, SnmpProfile
from dcim.site import DeviceSpec, SnmpAuth

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


def bench_auth(name: str) -> SnmpAuth:
    """v2c public, or one of benchlib.V3_USERS at authPriv."""
    if name == "v2c":
        return SnmpAuth(version=2, community="public")
    user = bl.V3_USERS[name]
    return SnmpAuth(version=3, user=user.name, auth_protocol=user.auth, auth_key=user.auth_key,
                    priv_protocol=user.priv, priv_key=user.priv_key)


def device_specs(ports: list[int], profile: SnmpProfile, auth: SnmpAuth) -> list[DeviceSpec]:
    """One DeviceSpec per agent port, as the site config would resolve it."""
    return [DeviceSpec(id=f"pdu{i}", profile=profile, host="127.0.0.1", port=port, unit=1,
                       interval=10.0, timeout=2.0, retries=1, max_age=30.0, auth=auth)
            for i, port in enumerate(ports)]


def count_values(values: object) -> int:
    """Numbers in a poll's values: a scalar point is one, a per-row point one per row."""
    assert isinstance(values, dict)
    return sum(len(v) if isinstance(v, dict) else 1 for v in values.values())


def pacer(rate: float) -> Callable[[int], Awaitable[None]]:
    """Wait until poll i is due at `rate` polls/s (0: never wait), in 50 ms ticks."""
    started = time.monotonic()
    batch = max(1, round(rate / 20))

    async def wait(i: int) -> None:
        if rate > 0:
            # polls are released a tick's worth at a time, so a lane sleeps at most once per
            # tick (one timer per several polls, not one per poll)
            delay = started + (i // batch) * batch / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    return wait


async def run_round(poller: Poller, devices: list[DeviceSpec], polls: int,
                    concurrency: int, rate: float) -> dict[str, object]:
    """Poll devices round-robin `polls` times, `concurrency` in flight, at most `rate`/s."""
    next_index = 0
    ok = failed = values = 0
    errors: dict[str, int] = {}
    due = pacer(rate)

    async def lane() -> None:
        nonlocal next_index, ok, failed, values
        while next_index < polls:
            i = next_index
            next_index += 1
            await due(i)
            result = await poller.poll(devices[i % len(devices)])
            if result.up and not result.errors:
                ok += 1
            else:
                failed += 1
                key = result.error or "; ".join(f"{k}: {v}" for k, v in result.errors.items())
                errors[key[:200]] = errors.get(key[:200], 0) + 1
            values += count_values(result.values)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return {"wall": time.perf_counter() - started, "ok": ok, "failed": failed,
            "values": values, "errors": errors}


async def run_floor(poll: floor.PollFn, polls: int, concurrency: int,
                    rate: float) -> dict[str, object]:
    """The same round over a floor poll function (bench/floor.py)."""
    next_index = values = 0
    due = pacer(rate)

    async def lane() -> None:
        nonlocal next_index, values
        while next_index < polls:
            i = next_index
            next_index += 1
            await due(i)
            n = await poll(i)  # not `values += await ...`: that reads values before awaiting
            values += n

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return {"wall": time.perf_counter() - started, "ok": polls, "failed": 0, "values": values,
            "errors": {}}


async def main() -> None:
    """Set up, say ready, then answer round commands until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patches", default="", help="bench/patches.py names, comma-separated")
    parser.add_argument("--auth", default="v2c", help="v2c or a benchlib.V3_USERS name")
    parser.add_argument("ports", type=int, nargs="+")
    args = parser.parse_args()
    patches.apply([p for p in args.patches.split(",") if p])
    profile = ProfileRegistry.load([PROFILE_DIR])["bench-pdu"]
    assert isinstance(profile, SnmpProfile)
    devices = device_specs(args.ports, profile, bench_auth(args.auth))
    poller = Poller()
    engine = os.environ.get("DCIM_SNMP_ENGINE", "fast")
    floor_poll = None
    if engine == "floor-asyncio":
        floor_poll = await floor.asyncio_floor(args.ports)
    elif engine == "floor-client":
        floor_poll = await floor.client_floor(args.ports)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True, "engine": engine}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if floor_poll is not None:
            result = await run_floor(floor_poll, int(cmd["polls"]), int(cmd["concurrency"]),
                                     float(cmd.get("rate", 0)))
        else:
            result = await run_round(poller, devices, int(cmd["polls"]), int(cmd["concurrency"]),
                                     float(cmd.get("rate", 0)))
        print(json.dumps(result), flush=True)
    await poller.close()


if __name__ == "__main__":
    if "uvloop" in patches.loop_patches(sys.argv):
        import uvloop  # not a dcim dependency: `.venv/bin/pip install uvloop` to measure it

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())

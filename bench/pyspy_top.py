"""Summarise a py-spy raw (collapsed stacks) profile: self and inclusive time per function.

    python bench/pyspy_top.py bench/out/snmp_cost/profile-dcim-fast.txt [--top 25]

Inclusive time counts a function once per sample however deep it recurses; self time is the
leaf frame. The layer table files each sample under the innermost frame that belongs to one of
dcim's layers (BER codec, UDP client, collector, decode, poller) or to asyncio/the kernel.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
IDLE_THREAD = "_worker (concurrent/futures/thread.py"
# innermost match wins; order only matters for display
LAYERS = [
    ("BER codec", "dcim/snmp/codec.py"),
    ("UDP client", "dcim/snmp/client.py"),
    ("collector get/walk (snmp.py)", "dcim/drivers/snmp.py"),
    ("profile decode (decode.py)", "dcim/decode.py"),
    ("range checks (points.py)", "dcim/points.py"),
    ("poller (poller.py)", "dcim/drivers/poller.py"),
    ("pysnmp", "pysnmp/"),
    ("pyasn1", "pyasn1/"),
    ("asyncio event loop, sockets", "asyncio/"),
    ("asyncio event loop, sockets", "selectors.py"),
    ("bench driver", "dcim_worker.py"),
    ("compute core", "dcim/compute/"),
    ("sinks (/metrics, InfluxDB, MQTT)", "dcim/sinks/"),
    ("prometheus_client", "prometheus_client/"),
    ("daemon (runtime, scheduler, energy)", "dcim/daemon/"),
    ("state store", "dcim/state.py"),
    ("pymodbus", "pymodbus/"),
    ("modbus driver", "dcim/drivers/modbus.py"),
]


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """Stacks as (frames outermost first as (function, file)), sample count."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if IDLE_THREAD in stack:
            continue  # the worker's stdin reader, blocked between rounds' commands
        frames = []
        for part in stack.split(";"):
            m = FRAME.match(part)
            frames.append((m["func"], m["file"]) if m else (part, ""))
        stacks.append((frames, int(count)))
    return stacks


def layer_of(frames: list[tuple[str, str]]) -> str:
    """The layer of the innermost frame that belongs to a known layer."""
    for func, file in reversed(frames):
        for name, marker in LAYERS:
            if marker in file:
                return name
        if func.startswith(("_run_once", "select")):
            return "asyncio event loop, sockets"
    return "other"


def report(path: Path, top: int) -> str:
    """A text report: layers, then top functions by self and by inclusive time."""
    stacks = parse(path)
    native = any(".so" in file for frames, _ in stacks for _, file in frames)
    waiting = 0
    if not native:
        # Without native frames py-spy's idle test is the thread's OS state, and a loop that
        # wakes hundreds of times a second is often caught "running" in epoll_wait: count
        # those samples apart rather than as work.
        waiting = sum(n for frames, n in stacks if frames[-1][1].endswith("selectors.py"))
        stacks = [(f, n) for f, n in stacks if not f[-1][1].endswith("selectors.py")]
    total = sum(n for _, n in stacks) or 1
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    for frames, n in stacks:
        func, file = frames[-1]
        self_t[f"{func} ({file})"] += n
        for key in {f"{f} ({fl})" for f, fl in frames}:
            incl[key] += n
        layers[layer_of(frames)] += n
    out = [f"{path.name}: {total} samples"
           + (f" (+{waiting} in epoll_wait, left out)" if waiting else ""),
           "", "self time by layer (innermost dcim/asyncio frame):"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in layers.most_common()]
    out += ["", f"top {top} by self time:"]
    out += [f"  {n / total:6.1%}  {k}" for k, n in self_t.most_common(top)]
    out += ["", f"top {top} by inclusive time:"]
    out += [f"  {n / total:6.1%}  {k}" for k, n in incl.most_common(top)]
    return "\n".join(out)


def main() -> None:
    """Print the report of each file given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(report(path, args.top))
        print()


if __name__ == "__main__":
    main()

"""The simulator's misbehaviour modes (dcim/sim/lies.py): each makes the device lie on the wire
the way field agents do, and dcim's decode refuses the lie with its reason, never a number."""

from __future__ import annotations

import pytest

from dcim.profile import ProfileRegistry
from dcim.sim import presets
from dcim.sim.world import World

T0 = 1_760_000_000.0


def world() -> World:
    return World(presets.build("tiny", 7), 7, ProfileRegistry.load(), T0, frozen=True)


@pytest.mark.parametrize(("device", "mode", "point", "reason"), [
    ("main-1", "zero-power", "power_w", "implausible"),        # 0 W while current flows
    ("main-1", "tenfold-power", "power_w", "implausible"),     # more W than V x A carry
    ("r01-pdu-a", "tenfold-voltage", "voltage_v", "out_of_range"),  # 2300 V at a PDU
    ("r01-pdu-a", "zero-power", "power_w", "implausible"),
])
def test_a_lie_is_refused_with_its_reason(device: str, mode: str, point: str,
                                          reason: str) -> None:
    w = world()
    honest = w.device_view(device)
    assert point in honest["points"] and not honest["errors"], honest["errors"]
    w.apply({"action": "fail", "device": device, "mode": mode})
    lying = w.device_view(device)
    assert point not in lying["points"]
    assert lying["errors"][point].reason == reason, lying["errors"]
    assert lying["points"], "the rest of the device still reads"
    w.apply({"action": "recover", "device": device})
    assert w.device_view(device)["points"][point] == honest["points"][point]


def test_energy_glitch_reads_zero_until_recovered() -> None:
    w = world()
    before = w.device_view("main-1")["points"]["energy_wh"]
    w.apply({"action": "fail", "device": "main-1", "mode": "energy-glitch"})
    assert w.device_view("main-1")["points"]["energy_wh"] == 0
    w.apply({"action": "recover", "device": "main-1"})
    assert w.device_view("main-1")["points"]["energy_wh"] == before

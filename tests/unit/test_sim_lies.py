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


@pytest.mark.parametrize("device", ["r02-pdu-a", "r02-pdu-b"])
def test_tenfold_power_at_a_light_load_is_implausible_whatever_the_row_layout(
        device: str) -> None:
    # Ten times a light rack's power stays in range; only volts x amps catch it, also on an
    # ePDU whose current rows include the neutral (a current row without a voltage row).
    w = world()
    w.apply({"action": "load", "rack": "r02", "kw": 15})
    w.apply({"action": "fail", "device": device, "mode": "tenfold-power"})
    lying = w.device_view(device)
    assert "power_w" not in lying["points"], lying["points"].get("power_w")
    assert lying["errors"]["power_w"].reason == "implausible", lying["errors"]


def test_energy_glitch_reads_zero_until_recovered() -> None:
    w = world()
    before = w.device_view("main-1")["points"]["energy_wh"]
    w.apply({"action": "fail", "device": "main-1", "mode": "energy-glitch"})
    assert w.device_view("main-1")["points"]["energy_wh"] == 0
    w.apply({"action": "recover", "device": "main-1"})
    assert w.device_view("main-1")["points"]["energy_wh"] == before


@pytest.mark.parametrize(("device", "mode", "point", "reason"), [
    ("ups-1", "sentinel", "input_power_w", "sentinel"),       # UPS-MIB 65535
    ("r01-pdu-a", "sentinel", "power_w", "sentinel"),         # APC -1
    ("r01-pdu-b", "scale-overflow", "power_w", "bad_scale"),  # Raritan decimal digits 400
    ("ups-1", "negative-rows", "output_power_w", "out_of_range"),  # never a partial sum
])
def test_a_wire_lie_is_refused_with_its_reason(device: str, mode: str, point: str,
                                               reason: str) -> None:
    w = world()
    w.apply({"action": "fail", "device": device, "mode": mode})
    lying = w.device_view(device)
    assert point not in lying["points"]
    assert lying["errors"][point].reason == reason, lying["errors"]
    # (every Raritan point takes decimal digits: with them all at 400 nothing reads)


def test_a_wire_lie_the_profile_cannot_tell_is_refused_by_the_api() -> None:
    from dcim.sim.world import ActionError

    with pytest.raises(ActionError, match="nothing for mode 'scale-overflow'"):
        world().apply({"action": "fail", "device": "main-1", "mode": "scale-overflow"})

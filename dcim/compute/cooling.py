"""Liquid cooling: heat removed by each CDU and the share of its racks' power it captures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from dcim.compute.fresh import Inputs
from dcim.compute.snapshot import CduCooling, RackPower
from dcim.coolant import Coolant
from dcim.site import DeviceSpec


def heat_removed_w(flow_lpm: float, delta_t: float, coolant: Coolant) -> float:
    """Heat carried by a coolant loop: volume flow x density x specific heat x delta-T."""
    mass_flow_kg_s = flow_lpm / 60_000.0 * coolant.density_kg_m3
    return mass_flow_kg_s * coolant.cp_kj_kg_k * 1000.0 * delta_t


def cdu_cooling(device: DeviceSpec, inputs: Inputs,
                racks: Mapping[str, RackPower]) -> CduCooling:
    """Heat removed (computed from flow and delta-T, else as reported) and capture ratio."""
    supply = inputs.number(device.id, "supply_temp_c")
    ret = inputs.number(device.id, "return_temp_c")
    flow = inputs.number(device.id, "flow_lpm")
    leak = inputs.number(device.id, "leak")
    delta_t = None if supply is None or ret is None else ret - supply
    heat: float | None = None
    source: Literal["computed", "reported"] | None = None
    if flow is not None and delta_t is not None and device.coolant is not None:
        heat, source = heat_removed_w(flow, delta_t, device.coolant), "computed"
    elif (reported := inputs.number(device.id, "heat_w")) is not None:
        heat, source = reported, "reported"
    served = [racks[r].power_w for r in device.serves if r in racks]
    capture = None
    if heat is not None and served and all(p is not None for p in served):
        it_w = sum(p for p in served if p is not None)
        capture = heat / it_w if it_w > 0 else None
    return CduCooling(
        id=device.id, supply_c=supply, return_c=ret, flow_lpm=flow, delta_t=delta_t,
        heat_w=heat, heat_source=source, capture_ratio=capture,
        leak=None if leak is None else leak >= 0.5, racks=device.serves,
    )

"""The pure compute core: site + latest state + time -> Snapshot. No I/O, no clocks."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.compute.cooling import cdu_cooling
from dcim.compute.fresh import Inputs
from dcim.compute.pue import live_pue
from dcim.compute.racks import rack_power
from dcim.compute.shelves import shelf_redundancy
from dcim.compute.snapshot import DeviceStatus, Overhead, PueResult, Snapshot
from dcim.compute.tenants import tenant_power, unassigned_power
from dcim.points import Kind
from dcim.site import Site
from dcim.state import DeviceState

__all__ = ["Snapshot", "compute"]


def compute(site: Site, state: Mapping[str, DeviceState], now: float) -> Snapshot:
    """Everything dcim publishes, computed from the latest readings at time `now`."""
    inputs = Inputs(site.devices, state, now)
    racks = {rid: rack_power(rack, inputs) for rid, rack in site.racks.items()}
    pue = live_pue(site.pue, inputs, site.pue_target)
    cdus = {d: cdu_cooling(site.devices[d], inputs, racks) for d in site.ids_by_kind.get(Kind.CDU, ())}
    shelves = {d: shelf_redundancy(site.devices[d], inputs)
               for d in site.ids_by_kind.get(Kind.SHELF, ())}
    devices = {d.id: _device_status(d.id, site, state, inputs) for d in site.devices.values()}
    return Snapshot(site=site.name, time=now, pue=pue, racks=racks, cdus=cdus, devices=devices,
                    overhead=_overhead(site, inputs, pue), shelves=shelves,
                    tenants=tenant_power(site, racks), unassigned=unassigned_power(site, racks))


def _device_status(device_id: str, site: Site, state: Mapping[str, DeviceState],
                   inputs: Inputs) -> DeviceStatus:
    spec = site.devices[device_id]
    st = state.get(device_id)
    fresh = inputs.is_fresh(device_id)
    last = st.last if st else None
    return DeviceStatus(
        id=device_id, profile=spec.profile.name, kind=str(spec.kind),
        up=bool(last and last.up), fresh=fresh,
        # A poll's mappings are never changed after the poll: shared, not copied every tick.
        values=last.values if fresh and last else {},
        errors=last.errors if last else {},
        last_poll=last.time if last else None,
        last_success=st.last_success if st else None,
        poll_duration=last.duration if last else None,
        error=last.error if last else "not polled yet",
        error_kind=last.error_kind if last else None,
        rack=spec.rack, feed=spec.feed,
    )


def _overhead(site: Site, inputs: Inputs, pue: PueResult) -> Overhead:
    """Split facility power into cooling, UPS losses and the rest, where meters allow."""
    by_kind = site.ids_by_kind
    cooling_points = {d: "power_w" for d in by_kind.get(Kind.CHILLER, ())}
    cdu_pumps = {d: "pump_power_w" for d in by_kind.get(Kind.CDU, ())
                 if "pump_power_w" in site.devices[d].profile.points}
    cooling, _ = inputs.total({**cooling_points, **cdu_pumps})
    ups = by_kind.get(Kind.UPS, ())
    ups_in, _ = inputs.total({d: "input_power_w" for d in ups})
    ups_out, _ = inputs.total({d: "output_power_w" for d in ups})
    ups_loss = None if ups_in is None or ups_out is None or not ups else ups_in - ups_out
    other = None
    if pue.value is not None and pue.facility_w is not None and pue.it_w is not None \
            and cooling is not None and ups_loss is not None:
        other = pue.facility_w - pue.it_w - cooling - ups_loss
    if not cooling_points and not cdu_pumps:
        cooling = None
    return Overhead(cooling_w=cooling, ups_loss_w=ups_loss, other_w=other)

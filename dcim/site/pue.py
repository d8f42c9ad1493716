"""Section `pue`: which devices make up facility and IT power, and the point read from each."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.config import Invalid, Pue
from dcim.site.model import DeviceSpec, PueSpec, RackSpec, power_point


def resolve_pue(pue: Pue, devices: Mapping[str, DeviceSpec], declared: set[str],
                racks: Mapping[str, RackSpec], invalid: Invalid,
                errors: list[str]) -> PueSpec:
    """The PueSpec (faults appended to errors); declared: every device id in the config."""

    def resolve(role: str, wanted: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for j, dev_id in enumerate(wanted):
            where = f"pue.{role}[{j}]"
            if dev_id not in declared:
                if not invalid.hides("devices", dev_id):
                    errors.append(f"{where}: unknown device '{dev_id}'")
            elif dev_id in devices and devices[dev_id].unidentified:
                # Down until identified: PUE is withheld for it, never summed without it.
                out[dev_id] = "power_w"
            elif dev_id in devices:  # else its own entry failed, and says why
                profile = devices[dev_id].profile
                point = power_point(profile, role)
                if point not in profile.points:
                    errors.append(
                        f"{where}: profile '{profile.name}' of '{dev_id}' has no {point} point"
                    )
                else:
                    out[dev_id] = point
        return out

    facility = resolve("facility", pue.facility)
    if pue.it != "racks":
        return PueSpec(facility=facility, it=resolve("it", pue.it), it_from_racks=False)
    rack_devices = tuple(d for r in racks.values() for d in r.devices)
    # A rack or device left out for its own fault may be the one that would have fed a rack.
    if not rack_devices and not (invalid.touches("racks") or invalid.touches("devices")):
        errors.append("pue.it: 'racks' needs at least one rack with a pdu or meter")
    it = {d: "power_w" for d in rack_devices}
    for dev_id in sorted(set(facility) & set(it)):
        errors.append(f"pue.facility: '{dev_id}' feeds a rack, it cannot also be facility power")
    return PueSpec(facility=facility, it=it, it_from_racks=True)

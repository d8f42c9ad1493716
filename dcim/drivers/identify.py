"""Which shipped profile fits an SNMP device: ask sysObjectID and sysDescr, match the profiles.

The most specific profile wins: the longest `sys_object_id` prefix the device's sysObjectID
lies under; where no profile claims the sysObjectID (a generic MIB such as UPS-MIB, a card
announcing net-snmp's own sysObjectID), the profiles whose `sys_descr` patterns match the
sysDescr. Used by `profile: auto` and by `dcim discover`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dcim.decode import Missing, RawValue
from dcim.drivers.snmp import SnmpDeviceError, SnmpDriver
from dcim.points import Kind
from dcim.profile import ProfileRegistry, SnmpProfile, sys_object_id_matches
from dcim.site import DeviceSpec, SnmpAuth

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"

# What a probe needs of a DeviceSpec is where to send and how to authenticate, not a profile.
_PROBE = SnmpProfile(name="identify", kind=Kind.PDU, protocol="snmp",
                     description="sysObjectID and sysDescr probe", points={})


@dataclass(frozen=True)
class Identity:
    """What a device said about itself and the profiles that fit it, best first."""

    host: str
    port: int
    sys_object_id: str | None
    sys_descr: str | None
    profiles: tuple[str, ...]
    # Why the device could not be asked (no answer, wrong community); then nothing is known.
    error: str | None = None

    @property
    def profile(self) -> str | None:
        """The one profile to use: the best match, unless two fit equally well."""
        return self.profiles[0] if len(self.profiles) == 1 else None

    def describe(self) -> str:
        """sysObjectID and sysDescr as seen, for messages."""
        return (f"sysObjectID {self.sys_object_id or '(none)'}, "
                f"sysDescr {self.sys_descr!r}" if self.sys_descr else
                f"sysObjectID {self.sys_object_id or '(none)'}, no sysDescr")


def match_profiles(registry: ProfileRegistry, sys_object_id: str | None,
                   sys_descr: str | None) -> tuple[str, ...]:
    """The SNMP profiles made for this device, most specific first (ties share the top)."""
    snmp = [p for p in registry.all() if isinstance(p, SnmpProfile)]
    if sys_object_id:
        depth = {p.name: max((len(prefix.split(".")) for prefix in p.sys_object_id
                              if sys_object_id_matches(sys_object_id, [prefix])), default=0)
                 for p in snmp}
        best = max(depth.values(), default=0)
        if best:
            return tuple(sorted(n for n, d in depth.items() if d == best))
    if sys_descr:
        return tuple(p.name for p in snmp
                     if any(re.search(rx, sys_descr, re.IGNORECASE) for rx in p.sys_descr))
    return ()


def _text(raw: RawValue | None) -> str | None:
    if raw is None or isinstance(raw, Missing):
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace").strip()
    return str(raw).strip().lstrip(".")


def probe_spec(host: str, port: int, auth: SnmpAuth, timeout: float = 2.0,
               retries: int = 1) -> DeviceSpec:
    """A DeviceSpec good for asking a device who it is."""
    return DeviceSpec(id=f"{host}:{port}", profile=_PROBE, host=host, port=port, unit=1,
                      interval=max(10.0, timeout * (retries + 2)), timeout=timeout,
                      retries=retries, max_age=30.0, auth=auth)


async def identify(client: SnmpDriver, device: DeviceSpec,
                   registry: ProfileRegistry) -> Identity:
    """Ask the device for sysObjectID and sysDescr and match them; never raises."""
    try:
        got = await client.get(device, [SYS_OBJECT_ID, SYS_DESCR])
    except (SnmpDeviceError, OSError, TimeoutError) as exc:
        return Identity(device.host, device.port, None, None, (),
                        error=str(exc) or type(exc).__name__)
    oid, descr = _text(got.get(SYS_OBJECT_ID)), _text(got.get(SYS_DESCR))
    return Identity(device.host, device.port, oid, descr, match_profiles(registry, oid, descr))

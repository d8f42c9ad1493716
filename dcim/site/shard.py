"""Scale-out: which devices one of N dcim instances polls (racks stay whole within a shard)."""

from __future__ import annotations

import zlib
from dataclasses import replace

from dcim.site.model import DeviceSpec, Site


def shard_key(device: DeviceSpec) -> str:
    """What a device is sharded by: its rack (a rack's PDUs stay together) or its own id."""
    return device.rack or device.id


def shard_of(key: str, shards: int) -> int:
    """A stable shard number for a key (the same on every machine and Python run)."""
    return zlib.crc32(key.encode()) % shards


def restrict_to_shard(site: Site, shard: int, shards: int) -> Site:
    """The part of a site that shard `shard` of `shards` polls."""
    devices = {d.id: d for d in site.devices.values() if shard_of(shard_key(d), shards) == shard}
    racks = {r.id: r for r in site.racks.values() if r.devices and r.devices[0] in devices}
    pue = None
    if site.pue is not None:
        remote = frozenset(d for d in site.pue.devices if d not in devices)
        pue = replace(
            site.pue,
            facility={d: p for d, p in site.pue.facility.items() if d in devices},
            it={d: p for d, p in site.pue.it.items() if d in devices},
            remote=remote,
        )
    return replace(site, devices=devices, racks=racks, pue=pue, shard=(shard, shards))

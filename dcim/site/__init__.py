"""The site model: a validated config resolved against the profiles, cross-references checked.

Everything downstream (scheduler, drivers, compute, sinks, sources) reads this model, never the
raw config, so defaults and references are resolved exactly once.

    model.py         the resolved dataclasses (Site, DeviceSpec, RackSpec, TenantSpec, PueSpec,
                     SinkSpecs, SourceSpecs)
    build.py         build_site / load_site: the sections below in order, every fault listed
    credentials.py   racks.py   tenants.py   devices.py   pue.py   outputs.py (sinks, sources)
    shard.py         which devices one of N instances polls
"""

from __future__ import annotations

from dcim.site.build import build_site, load_site
from dcim.site.model import (
    DEFAULT_PORTS,
    RACK_POWER_KINDS,
    SERVING_KINDS,
    BmsSpec,
    DeviceSpec,
    PueSpec,
    RackSpec,
    RedfishTarget,
    SinkSpecs,
    Site,
    SnmpAuth,
    SourceSpecs,
    TenantSpec,
    power_point,
)
from dcim.site.shard import restrict_to_shard, shard_key, shard_of

__all__ = [
    "DEFAULT_PORTS", "RACK_POWER_KINDS", "SERVING_KINDS", "BmsSpec", "DeviceSpec", "PueSpec",
    "RackSpec", "RedfishTarget", "SinkSpecs", "Site", "SnmpAuth", "SourceSpecs", "TenantSpec",
    "build_site", "load_site", "power_point", "restrict_to_shard", "shard_key", "shard_of",
]

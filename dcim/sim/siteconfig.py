"""Writing the site config (README "Site config") that points dcim at the simulated devices."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dcim import yamlsafe
from dcim.config import validate_config
from dcim.points import Kind
from dcim.profile import ProfileRegistry
from dcim.sim import redfish
from dcim.sim.agents import Endpoint
from dcim.sim.topology import SimSite
from dcim.site import DEFAULT_PORTS, Site, build_site

CREDENTIALS = "sim"
BMC_CREDENTIALS = "sim-bmc"


def _flow(item: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(item), default_flow_style=True, width=10_000, sort_keys=False).strip()


def render(site: SimSite, endpoints: Mapping[str, Endpoint], registry: ProfileRegistry,
           header: list[str] | None = None, redfish_ca_file: Path | None = None) -> str:
    """The YAML text of a site config for the simulated site.

    Redfish services are plain HTTP unless they serve HTTPS with a certificate signed by
    `redfish_ca_file` (then the config verifies it with that CA)."""
    lines = [f"# {line}" for line in header or []]
    lines.append("site: " + _flow({"name": site.name, "rack_max_kw": site.rack_max_kw,
                                   "pue_target": site.pue_target}))
    lines.append("polling: {interval: 10s, timeout: 2s, retries: 1, max_age: 30s}")
    lines.append("credentials:")
    lines.append(f"  {CREDENTIALS}: {{snmp_version: 2c, community: public}}")
    if any(registry[d.profile].protocol == "redfish" for d in site.devices):
        lines.append(f"  {BMC_CREDENTIALS}: " + _flow({"username": redfish.USERNAME,
                                                         "password": redfish.PASSWORD}))
    if site.tenants:
        lines.append("tenants:")
    for t in site.tenants:
        billing = {"model": t.model, "price_per_kwh": t.price_per_kwh, "currency": t.currency,
                   "overage_multiplier": t.overage_multiplier, "minimum_ratio": t.minimum_ratio,
                   "timezone": t.timezone}
        lines.append(f"  {t.id}: "
                     f"{_flow({'name': t.name, 'contract_kw': t.contract_kw, 'billing': billing})}")
    lines.append("racks:")
    for r in site.racks:
        rack: dict[str, Any] = {"id": r.id, "hall": r.hall, "row": r.row, "cap_kw": r.cap_kw}
        if r.tenant is not None:
            rack["tenant"] = r.tenant
        lines.append(f"  - {_flow(rack)}")
    lines.append("devices:")
    for d in site.devices:
        ep = endpoints[d.id]
        protocol = registry[d.profile].protocol
        item: dict[str, Any] = {"id": d.id, "profile": d.profile, "host": ep.host}
        if ep.port != DEFAULT_PORTS[protocol]:
            item["port"] = ep.port
        if protocol == "modbus" and ep.unit != 1:
            item["unit"] = ep.unit
        if d.rack:
            item.update(rack=d.rack, feed=d.feed)
        if d.serves:
            item["serves"] = list(d.serves)
        if protocol == "snmp":
            item["credentials"] = CREDENTIALS
        if protocol == "redfish":
            item["credentials"] = BMC_CREDENTIALS
            if redfish_ca_file is None:
                item["tls"] = False
            else:
                item["tls_ca_file"] = str(redfish_ca_file)
            if d.kind == Kind.SHELF:  # a CDU is the only member of its collection
                item["resource"] = redfish.resource_of(d.kind, d.unit)
        lines.append(f"  - {_flow(item)}")
    mains = [d.id for d in site.devices if d.kind == Kind.METER and d.share > 0]
    lines.append("pue:")
    lines.append(f"  facility: [{', '.join(mains)}]")
    lines.append("  it: racks")
    return "\n".join(lines) + "\n"


def check(text: str, registry: ProfileRegistry) -> Site:
    """Validate a rendered config exactly as dcim will (ConfigError listing every fault)."""
    return build_site(validate_config(yamlsafe.parse(text, "<simulated site>")), registry)


def write(path: Path, text: str) -> None:
    """Write atomically, so a reader never sees half a config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

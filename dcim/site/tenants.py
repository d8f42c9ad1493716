"""Section `tenants`: who leases which racks, and each rack's tenant checked against them.

A rack's `tenant` must name an entry of `tenants:`. A config with no `tenants:` section at all
keeps the old meaning (a free label on the rack's series), with a warning: such a label gets no
tenant energy, contract or bill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dcim.config import Invalid, Rack, Tenant
from dcim.site.model import TenantSpec


def resolve_tenants(tenants: Mapping[str, Tenant], racks: Sequence[Rack], invalid: Invalid,
                    errors: list[str], warnings: list[str]) -> dict[str, TenantSpec]:
    """The tenants and the racks each leases; unknown tenant names appended to errors."""
    declared = bool(tenants) or invalid.touches("tenants")
    leased: dict[str, list[str]] = {t: [] for t in tenants}
    labels: list[str] = []
    for i, rack in enumerate(racks):
        if rack.tenant is None:
            continue
        if rack.tenant in leased:
            leased[rack.tenant].append(rack.id)
        elif not declared:
            labels.append(f"racks[{i}].tenant")
        elif not invalid.hides("tenants", rack.tenant):
            known = ", ".join(sorted({*tenants, *invalid.items.get("tenants", ())}))
            errors.append(f"racks[{i}].tenant: unknown tenant '{rack.tenant}' (tenants: {known})")
    if labels:
        warnings.append(f"{labels[0]}: a tenant label without a tenants: section (deprecated; "
                        "declare each tenant under tenants: to get its energy and bill)"
                        + (f"; also {len(labels) - 1} more racks" if len(labels) > 1 else ""))
    return {
        tid: TenantSpec(id=tid, name=t.name, contract_w=t.contract_kw * 1000,
                        racks=tuple(dict.fromkeys(leased[tid])), billing=t.billing)
        for tid, t in tenants.items()
    }

"""Section `racks`: unique ids, caps within the site limit, and each rack's feeds resolved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dcim.config import Invalid, Rack
from dcim.site.model import RackSpec

# rack id -> feed name -> the ids of the devices on that feed, in config order
Feeds = dict[str, dict[str, list[str]]]


def check_racks(racks: Sequence[Rack], max_kw: float, invalid: Invalid) -> list[str]:
    """Duplicate ids, and caps above site.rack_max_kw (unless the site section failed)."""
    errors = []
    seen: dict[str, int] = {}
    for i, rack in enumerate(racks):
        if rack.id in seen:
            errors.append(f"racks[{i}].id: duplicate id '{rack.id}' (also racks[{seen[rack.id]}])")
        seen.setdefault(rack.id, i)
        if invalid.hides("site"):
            continue
        for key in ("cap_kw", "feed_kw"):
            value = getattr(rack, key)
            if value is not None and value > max_kw:
                errors.append(
                    f"racks[{i}].{key}: {value:g} kW exceeds site.rack_max_kw ({max_kw:g} kW)"
                )
    return errors


def rack_cap_kw(racks: Sequence[Rack], rack_id: str | None, max_kw: float) -> float:
    """A rack's cap: its own cap_kw, else (or for no rack) the site's rack_max_kw."""
    cap = next((r.cap_kw for r in racks if r.id == rack_id), None)
    return cap or max_kw


def rack_specs(racks: Sequence[Rack], feeds: Mapping[str, Mapping[str, list[str]]],
               max_kw: float) -> dict[str, RackSpec]:
    """The resolved racks (a duplicate id keeps the last entry; it is an error anyway)."""
    return {
        r.id: RackSpec(
            id=r.id, cap_w=(r.cap_kw or max_kw) * 1000,
            feed_w=(r.feed_kw or r.cap_kw or max_kw) * 1000,
            feeds={f: tuple(ids) for f, ids in sorted(feeds.get(r.id, {}).items())},
            hall=r.hall, row=r.row, tenant=r.tenant,
        )
        for r in racks
    }

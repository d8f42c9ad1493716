"""InfluxDB line protocol for dcim: one measurement per entity kind, ids as tags, values as fields.

    dcim_site     {site}                       pue, pue_coverage, facility_power_w, ...
    dcim_rack     {site,rack,hall,row,tenant}  power_w, cap_w, utilization, failover_risk, ...
    dcim_feed     {site,rack,feed}             power_w
    dcim_cooling  {site,cdu}                   supply_temp_c, return_temp_c, heat_removed_w, leak, ...
    dcim_energy   {site,scope,rack,method}     joules (monotonic, survives restarts)
    dcim_device   {site,device,kind,profile[,phase|outlet|row]}  up and the canonical points

A device reading carries its own poll time and is written once per poll. Site, rack, feed,
cooling and energy lines carry the snapshot time and are written when their values change,
and again after `keepalive` seconds so "last value" queries always find one. Values that are
withheld (incomplete inputs) are left out, never written as zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dcim.compute.snapshot import Published
from dcim.points import POINTS

Fields = dict[str, float | int]
Tags = dict[str, str]


# Line protocol cannot carry a line break in a name: write it as the two characters \n, so a
# name can never start a forged line (config ids cannot hold one either: dcim/ids.py).
_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r"})


def _escape_key(text: str) -> str:
    return _escape_measurement(text).replace("=", "\\=")


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").translate(_BREAKS)


def _value(value: float | int) -> str | None:
    if isinstance(value, bool):
        return "1i" if value else "0i"
    if isinstance(value, int):
        return f"{value}i"
    if math.isnan(value) or math.isinf(value):
        return None
    return repr(float(value))


def encode(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | int],
           time_ms: int) -> str | None:
    """One line of line protocol; empty tags are left out; None when no field is writable."""
    parts = []
    for key, value in fields.items():
        text = _value(value)
        if text is not None:
            parts.append(f"{_escape_key(key)}={text}")
    if not parts:
        return None
    tag_text = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return f"{_escape_measurement(measurement)}{tag_text} {','.join(parts)} {time_ms}"


def to_ms(seconds: float) -> int:
    """Epoch seconds to the integer milliseconds the sink writes with precision=ms."""
    return round(seconds * 1000)


def _some(**values: float | bool | None) -> Fields:
    out: Fields = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = int(value) if isinstance(value, bool) else float(value)
    return out


@dataclass(frozen=True, slots=True)
class Entity:
    """One line before encoding: which entity, its tags and fields."""

    measurement: str
    tags: Tags
    fields: Fields

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Identity of the series (measurement and tags)."""
        return self.measurement, tuple(sorted(self.tags.items()))


def snapshot_entities(pub: Published) -> Iterator[Entity]:
    """Site, rack, feed, cooling and energy lines of one snapshot (time: the snapshot's)."""
    snap, site = pub.snapshot, pub.site.name
    pue = snap.pue
    yield Entity("dcim_site", {"site": site}, _some(
        pue=pue.value, pue_coverage=pue.coverage, pue_withheld=pue.value is None,
        pue_target=pue.target, facility_power_w=pue.facility_w, it_power_w=pue.it_w,
        overhead_cooling_w=snap.overhead.cooling_w, overhead_ups_loss_w=snap.overhead.ups_loss_w,
        overhead_other_w=snap.overhead.other_w,
    ))
    for rack in snap.racks.values():
        tags = {"site": site, "rack": rack.id, "hall": rack.hall or "", "row": rack.row or "",
                "tenant": rack.tenant or ""}
        yield Entity("dcim_rack", tags, _some(
            power_w=rack.power_w, cap_w=rack.cap_w, utilization=rack.utilization,
            feed_capacity_w=rack.feed_capacity_w, failover_risk=rack.failover_risk,
            missing_inputs=float(len(rack.missing)),
        ))
        for feed, watts in rack.feeds.items():
            if watts is not None:
                yield Entity("dcim_feed", {"site": site, "rack": rack.id, "feed": feed},
                             {"power_w": float(watts)})
    for cdu in snap.cdus.values():
        yield Entity("dcim_cooling", {"site": site, "cdu": cdu.id}, _some(
            supply_temp_c=cdu.supply_c, return_temp_c=cdu.return_c, flow_lpm=cdu.flow_lpm,
            delta_t_k=cdu.delta_t, heat_removed_w=cdu.heat_w, capture_ratio=cdu.capture_ratio,
            leak=cdu.leak,
        ))
    for shelf in snap.shelves.values():
        yield Entity("dcim_shelf", {"site": site, "shelf": shelf.id, "rack": shelf.rack or ""},
                     _some(supplies_installed=shelf.installed, supplies_healthy=shelf.healthy,
                           capacity_w=shelf.capacity_w, n1_capacity_w=shelf.n1_capacity_w,
                           load_w=shelf.load_w, redundant=shelf.carries_one_more_failure))
    for (bucket, method), joules in sorted(pub.totals.buckets.items()):
        scope, _, rack_id = bucket.partition(":")
        yield Entity("dcim_energy", {"site": site, "scope": scope, "rack": rack_id,
                                     "method": method}, {"joules": float(joules)})


def device_entities(pub: Published, device_id: str) -> Iterator[Entity]:
    """The lines of one device's latest poll: scalar points on one line, per-row points by row."""
    dev = pub.snapshot.devices[device_id]
    base = {"site": pub.site.name, "device": dev.id, "kind": dev.kind, "profile": dev.profile}
    scalars: Fields = {"up": 1 if dev.up else 0}
    rows: dict[tuple[str, str], Fields] = {}
    for point, value in dev.values.items():
        if isinstance(value, Mapping):
            spec = POINTS.get(point)
            label = spec.row_label if spec else "row"
            for row, v in value.items():
                rows.setdefault((label, str(row)), {})[point] = float(v)
        else:
            scalars[point] = float(value)
    yield Entity("dcim_device", base, scalars)
    for (label, row), fields in sorted(rows.items()):
        yield Entity("dcim_device", {**base, label: row}, fields)


@dataclass
class LineMaker:
    """Turns successive snapshots into the lines still to write (each reading once)."""

    keepalive: float = 60.0
    _polls: dict[str, float] = field(default_factory=dict)
    _written: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Fields, float]] = field(
        default_factory=dict)

    def lines(self, pub: Published) -> list[str]:
        """Lines for what is new in this snapshot since the previous calls."""
        out: list[str] = []
        snap = pub.snapshot
        for device_id, dev in snap.devices.items():
            # A poll is written once, at its own time; a failed poll writes only up=0.
            if dev.last_poll is None or self._polls.get(device_id) == dev.last_poll:
                continue
            if dev.up and not dev.fresh:
                continue  # already too old to be a reading anyone may use
            self._polls[device_id] = dev.last_poll
            stamp = to_ms(dev.last_poll)
            for entity in device_entities(pub, device_id):
                line = encode(entity.measurement, entity.tags, entity.fields, stamp)
                if line is not None:
                    out.append(line)
        stamp = to_ms(snap.time)
        for entity in snapshot_entities(pub):
            previous = self._written.get(entity.key)
            if previous is not None and previous[0] == entity.fields \
                    and snap.time - previous[1] < self.keepalive:
                continue
            line = encode(entity.measurement, entity.tags, entity.fields, stamp)
            if line is not None:
                self._written[entity.key] = (entity.fields, snap.time)
                out.append(line)
        return out

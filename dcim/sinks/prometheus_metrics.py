"""Prometheus rendering of a Snapshot: names, units, labels and HELP.

Rendering only: every number comes from one Published: the Snapshot, the energy totals and the
health counters; nothing here computes PUE or totals. Series whose value is withheld are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client.metrics_core import Metric

from dcim import __version__
from dcim.compute.snapshot import Published
from dcim.compute.tenants import (
    FACILITY_PREFIX,
    TENANT_PREFIX,
    UNASSIGNED,
    UNASSIGNED_FACILITY,
)
from dcim.health import Health
from dcim.points import POINTS
from dcim.sinks.exposition import Family
from dcim.snmp.client import ClientStats

# Canonical point -> (metric suffix, multiplier to base unit); rows are labelled per POINTS.
# The metric is dcim_<kind>_<suffix>{<kind>="<device id>"}, e.g. dcim_cdu_flow_liters_per_minute.
POINT_METRICS: dict[str, tuple[str, float]] = {
    "power_w": ("power_watts", 1.0),
    "apparent_power_va": ("apparent_power_voltamperes", 1.0),
    "power_factor": ("power_factor_ratio", 1.0),
    "current_a": ("current_amperes", 1.0),
    "voltage_v": ("voltage_volts", 1.0),
    "frequency_hz": ("frequency_hertz", 1.0),
    "outlet_power_w": ("outlet_power_watts", 1.0),
    "outlet_current_a": ("outlet_current_amperes", 1.0),
    "load_state": ("load_state", 1.0),
    "supply_power_w": ("supply_power_watts", 1.0),
    "supply_capacity_w": ("supply_capacity_watts", 1.0),
    "supply_healthy": ("supply_healthy", 1.0),
    "input_power_w": ("input_power_watts", 1.0),
    "output_power_w": ("output_power_watts", 1.0),
    "load_ratio": ("load_ratio", 1.0),
    "on_battery": ("on_battery", 1.0),
    "battery_runtime_s": ("battery_runtime_seconds", 1.0),
    "battery_charge_ratio": ("battery_charge_ratio", 1.0),
    "battery_low": ("battery_low", 1.0),
    "supply_temp_c": ("supply_temperature_celsius", 1.0),
    "return_temp_c": ("return_temperature_celsius", 1.0),
    "flow_lpm": ("flow_liters_per_minute", 1.0),
    "pump_power_w": ("pump_power_watts", 1.0),
    "diff_pressure_kpa": ("differential_pressure_pascals", 1000.0),
    "leak": ("leak_detected", 1.0),
    "heat_w": ("reported_heat_watts", 1.0),
    "fault": ("fault", 1.0),
    "cooling_w": ("cooling_watts", 1.0),
    "chw_supply_temp_c": ("chilled_water_supply_temperature_celsius", 1.0),
    "chw_return_temp_c": ("chilled_water_return_temperature_celsius", 1.0),
}


def _g(name: str, doc: str, labels: list[str]) -> Family:
    return Family(name, doc, "gauge", labels)


def _c(name: str, doc: str, labels: list[str]) -> Family:
    return Family(name, doc, "counter", labels)


class Pause:
    """Between families, or inside one built over every device: a place where a render done
    in slices may let the event loop run (`render_parts`); `render` leaves them out."""

    __slots__ = ()


PAUSE: Final = Pause()
PAUSE_EVERY: Final = 200  # devices between pauses inside one loop over the site


def render(pub: Published | None,
           extra: Iterable[Callable[[], Iterable[Metric]]] = ()) -> Iterator[Metric]:
    """Every dcim series for one scrape."""
    return (part for part in render_parts(pub, extra) if not isinstance(part, Pause))


def render_parts(pub: Published | None, extra: Iterable[Callable[[], Iterable[Metric]]] = (),
                 ) -> Iterator[Metric | Pause]:
    """`render`, with PAUSE markers where the site's largest loops may be cut into slices."""
    info = Family("dcim_build", "dcim version information", "info", ["version"])
    info.add_metric([__version__], 1.0)
    yield info
    if pub is not None:
        yield from _site(pub)
        yield from _racks(pub)
        yield from _tenants(pub)
        yield from _cdus(pub)
        yield from _shelves(pub)
        yield from _points(pub)
        yield from _energy(pub)
        yield from _devices(pub, pub.health)
        if pub.health.snmp is not None:
            yield from _snmp_client(pub.health.snmp)
    for provider in extra:
        yield from provider()


def _site(pub: Published) -> Iterator[Metric]:
    snap, site = pub.snapshot, pub.site.name
    pue = snap.pue
    ratio = _g("dcim_pue_ratio", "Live PUE: facility power / IT power; absent when withheld",
               ["site"])
    if pue.value is not None:
        ratio.add_metric([site], pue.value)
    yield ratio
    coverage = _g("dcim_pue_coverage_ratio",
                  "Share of PUE input devices with fresh readings (1 = complete)", ["site"])
    coverage.add_metric([site], pue.coverage)
    yield coverage
    withheld = _g("dcim_pue_withheld", "1 when live PUE is withheld because inputs are missing",
                  ["site", "status"])
    withheld.add_metric([site, pue.status], 0.0 if pue.value is not None else 1.0)
    yield withheld
    missing = _g("dcim_pue_input_missing",
                 "1 for each PUE input device whose reading is missing or stale", ["site", "device"])
    for device in pue.missing:
        missing.add_metric([site, device], 1.0)
    yield missing
    if pue.target is not None:
        target = _g("dcim_pue_target_ratio", "PUE target of the site", ["site"])
        target.add_metric([site], pue.target)
        yield target
    for name, value, doc in (
        ("dcim_facility_power_watts", pue.facility_w, "Total facility power; absent when incomplete"),
        ("dcim_it_power_watts", pue.it_w, "Total IT power; absent when incomplete"),
    ):
        metric = _g(name, doc, ["site"])
        if value is not None:
            metric.add_metric([site], value)
        yield metric
    overhead = _g("dcim_overhead_power_watts",
                  "Facility power that is not IT, by component (where meters allow a split)",
                  ["site", "component"])
    for component, value in (("cooling", snap.overhead.cooling_w),
                             ("ups_loss", snap.overhead.ups_loss_w),
                             ("other", snap.overhead.other_w)):
        if value is not None:
            overhead.add_metric([site, component], value)
    yield overhead
    stamp = _g("dcim_snapshot_timestamp_seconds", "When the published snapshot was computed",
               ["site"])
    stamp.add_metric([site], snap.time)
    yield stamp
    if pub.shard is not None:
        shard = _g("dcim_shard_info", "This instance polls shard `shard` of `shards`",
                   ["site", "shard", "shards"])
        shard.add_metric([site, str(pub.shard[0]), str(pub.shard[1])], 1.0)
        yield shard


def _racks(pub: Published) -> Iterator[Metric]:
    site = pub.site.name
    labels = ["site", "rack", "hall", "row", "tenant"]
    power = _g("dcim_rack_power_watts", "Rack power, sum of its feeds; absent when incomplete",
               labels)
    cap = _g("dcim_rack_power_cap_watts", "Rack power cap", labels)
    util = _g("dcim_rack_utilization_ratio", "Rack power / cap; absent when incomplete", labels)
    feed = _g("dcim_rack_feed_power_watts", "Power drawn through one feed of a rack",
              ["site", "rack", "feed"])
    feed_cap = _g("dcim_rack_feed_capacity_watts",
                  "Power one feed may carry alone (2N failover limit)", ["site", "rack"])
    risk = _g("dcim_rack_failover_risk",
              "1 when the rack draws more than one feed may carry if the other fails",
              ["site", "rack"])
    missing = _g("dcim_rack_missing_inputs", "Devices of the rack without fresh power readings",
                 ["site", "rack"])
    for rack in pub.snapshot.racks.values():
        lv = [site, rack.id, rack.hall or "", rack.row or "", rack.tenant or ""]
        cap.add_metric(lv, rack.cap_w)
        if rack.power_w is not None:
            power.add_metric(lv, rack.power_w)
        if rack.utilization is not None:
            util.add_metric(lv, rack.utilization)
        for feed_id, value in rack.feeds.items():
            if value is not None:
                feed.add_metric([site, rack.id, feed_id], value)
        feed_cap.add_metric([site, rack.id], rack.feed_capacity_w)
        if rack.failover_risk is not None:
            risk.add_metric([site, rack.id], 1.0 if rack.failover_risk else 0.0)
        missing.add_metric([site, rack.id], float(len(rack.missing)))
    yield from (power, cap, util, feed, feed_cap, risk, missing)


def _tenants(pub: Published) -> Iterator[Metric]:
    """Tenant power against the contract, and tenant energy (docs/tenants.md)."""
    site = pub.site.name
    info = _g("dcim_tenant_info", "1 per declared tenant, with its name", ["site", "tenant", "name"])
    power = _g("dcim_tenant_power_watts",
               "Power of the racks a tenant leases; absent unless every one is complete",
               ["site", "tenant"])
    contract = _g("dcim_tenant_contract_watts", "Power the tenant's contract commits",
                  ["site", "tenant"])
    util = _g("dcim_tenant_utilization_ratio",
              "Tenant power / contracted power; absent when the power is", ["site", "tenant"])
    missing = _g("dcim_tenant_missing_racks",
                 "Racks of the tenant without complete power (its power is withheld)",
                 ["site", "tenant"])
    racks = _g("dcim_tenant_racks", "Racks the tenant leases", ["site", "tenant"])
    for t in pub.snapshot.tenants.values():
        info.add_metric([site, t.id, pub.site.tenants[t.id].name], 1.0)
        contract.add_metric([site, t.id], t.contract_w)
        racks.add_metric([site, t.id], float(t.racks))
        missing.add_metric([site, t.id], float(len(t.missing_racks)))
        if t.power_w is not None and t.utilization is not None:
            power.add_metric([site, t.id], t.power_w)
            util.add_metric([site, t.id], t.utilization)
    un = pub.snapshot.unassigned
    un_racks = _g("dcim_unassigned_racks", "Racks no tenant leases", ["site"])
    un_racks.add_metric([site], float(len(un.racks)))
    un_power = _g("dcim_unassigned_power_watts",
                  "Power of the racks no tenant leases; absent unless every one is complete",
                  ["site"])
    if un.power_w is not None:
        un_power.add_metric([site], un.power_w)
    it = _c("dcim_tenant_it_energy_joules", "IT energy of the tenant's racks since dcim first "
            "started (counted to the tenant leasing the rack at the time)", ["site", "tenant"])
    fac = _c("dcim_tenant_facility_energy_joules",
             "Facility energy allocated to the tenant: the overhead shared in proportion to IT "
             "energy (docs/tenants.md)", ["site", "tenant"])
    un_it = _c("dcim_unassigned_it_energy_joules", "IT energy of racks no tenant leased",
               ["site"])
    un_fac = _c("dcim_unassigned_facility_energy_joules",
                "Facility energy allocated to racks no tenant leased (with the overhead when "
                "no IT energy was measured)", ["site"])
    sums: dict[str, float] = {}
    for (bucket, _method), joules in pub.totals.buckets.items():
        sums[bucket] = sums.get(bucket, 0.0) + joules
    for bucket, joules in sorted(sums.items()):
        if bucket.startswith(TENANT_PREFIX):
            it.add_metric([site, bucket.removeprefix(TENANT_PREFIX)], joules)
        elif bucket.startswith(FACILITY_PREFIX):
            fac.add_metric([site, bucket.removeprefix(FACILITY_PREFIX)], joules)
        elif bucket == UNASSIGNED:
            un_it.add_metric([site], joules)
        elif bucket == UNASSIGNED_FACILITY:
            un_fac.add_metric([site], joules)
    yield from (info, power, contract, util, missing, racks, un_racks, un_power, it, fac, un_it,
                un_fac)


def _cdus(pub: Published) -> Iterator[Metric]:
    site = pub.site.name
    heat = _g("dcim_cdu_heat_removed_watts",
              "Heat removed by the CDU secondary loop: flow x density x cp x delta-T",
              ["site", "cdu", "source"])
    capture = _g("dcim_cdu_capture_ratio",
                 "Heat removed / power of the racks the CDU serves", ["site", "cdu"])
    delta = _g("dcim_cdu_delta_temperature_kelvin", "Return minus supply temperature",
               ["site", "cdu"])
    serves = _g("dcim_cdu_serves", "1 for each rack a CDU's secondary loop serves",
                ["site", "cdu", "rack"])
    for cdu in pub.snapshot.cdus.values():
        for rack in cdu.racks:
            serves.add_metric([site, cdu.id, rack], 1.0)
        if cdu.heat_w is not None:
            heat.add_metric([site, cdu.id, cdu.heat_source or ""], cdu.heat_w)
        if cdu.capture_ratio is not None:
            capture.add_metric([site, cdu.id], cdu.capture_ratio)
        if cdu.delta_t is not None:
            delta.add_metric([site, cdu.id], cdu.delta_t)
    yield from (heat, capture, delta, serves)


def _shelves(pub: Published) -> Iterator[Metric]:
    site = pub.site.name
    labels = ["site", "shelf", "rack"]
    installed = _g("dcim_shelf_supplies_installed", "Power supplies present in the shelf", labels)
    healthy = _g("dcim_shelf_supplies_healthy", "Power supplies enabled and healthy", labels)
    capacity = _g("dcim_shelf_capacity_watts", "Rated output of the healthy supplies", labels)
    n1 = _g("dcim_shelf_n1_capacity_watts",
            "Rated output left if the largest healthy supply fails too", labels)
    load = _g("dcim_shelf_load_watts", "Load the supplies carry (output total, else input power)",
              labels)
    redundant = _g("dcim_shelf_redundant",
                   "1 when the shelf carries its load with one more supply failed, else 0", labels)
    for shelf in pub.snapshot.shelves.values():
        lv = [site, shelf.id, shelf.rack or ""]
        for family, value in ((installed, shelf.installed), (healthy, shelf.healthy),
                              (capacity, shelf.capacity_w), (n1, shelf.n1_capacity_w),
                              (load, shelf.load_w), (redundant, shelf.carries_one_more_failure)):
            if value is not None:
                family.add_metric(lv, float(value))
    yield from (installed, healthy, capacity, n1, load, redundant)


def _points(pub: Published) -> Iterator[Metric | Pause]:
    """Every fresh device point, as dcim_<kind>_<quantity>{<kind>=id}."""
    site = pub.site.name
    families: dict[str, Family] = {}
    for i, device in enumerate(pub.snapshot.devices.values(), 1):
        if i % PAUSE_EVERY == 0:
            yield PAUSE
        for point, value in device.values.items():
            spec = POINT_METRICS.get(point)
            if spec is None:
                continue
            suffix, factor = spec
            name = f"dcim_{device.kind}_{suffix}"
            family = families.get(name)
            if family is None:
                row_label = POINTS[point].row_label if isinstance(value, Mapping) else None
                labels = ["site", device.kind] + ([row_label] if row_label else [])
                family = families[name] = _g(name, f"{point} of a {device.kind}", labels)
            if isinstance(value, Mapping):
                for row, v in value.items():
                    family.add_metric([site, device.id, row], v * factor)
            else:
                family.add_metric([site, device.id], value * factor)
    yield from families.values()


def _energy(pub: Published) -> Iterator[Metric | Pause]:
    site = pub.site.name
    facility = _c("dcim_facility_energy_joules", "Facility energy since dcim first started",
                  ["site", "method"])
    it = _c("dcim_it_energy_joules", "IT energy since dcim first started", ["site", "method"])
    rack = _c("dcim_rack_energy_joules", "Rack energy since dcim first started",
              ["site", "rack", "method"])
    for (bucket, method), joules in sorted(pub.totals.buckets.items()):
        if bucket == "facility":
            facility.add_metric([site, method], joules)
        elif bucket == "it":
            it.add_metric([site, method], joules)
        elif bucket.startswith("rack:"):
            rack.add_metric([site, bucket[5:], method], joules)
    device = _c("dcim_device_energy_joules",
                "Energy of one device since dcim first started (resets and wraps removed)",
                ["site", "device", "method"])
    resets = _c("dcim_device_energy_counter_resets", "Device energy counter resets seen",
                ["site", "device"])
    refused = _c("dcim_device_energy_counter_refused",
                 "Energy counter readings not taken as they are: jump (an increase beyond what "
                 "the device's power could deliver), glitch (a drop that came back)",
                 ["site", "device", "reason"])
    for i, (device_id, state) in enumerate(sorted(pub.device_energy.items()), 1):
        if i % PAUSE_EVERY == 0:
            yield PAUSE
        if device_id in pub.site.devices:
            device.add_metric([site, device_id, state.method], state.total_j)
            resets.add_metric([site, device_id], float(state.resets))
            refused.add_metric([site, device_id, "jump"], float(state.jumps))
            refused.add_metric([site, device_id, "glitch"], float(state.glitches))
    yield from (facility, it, rack, device, resets, refused)


def _devices(pub: Published, health: Health) -> Iterator[Metric | Pause]:
    site = pub.site.name
    up = _g("dcim_device_up", "1 when the device's latest poll succeeded",
            ["site", "device", "profile", "kind"])
    duration = _g("dcim_device_poll_duration_seconds", "Duration of the latest poll",
                  ["site", "device"])
    last = _g("dcim_device_last_success_timestamp_seconds", "When the device last answered",
              ["site", "device"])
    polls = _c("dcim_device_polls", "Polls attempted", ["site", "device"])
    errors = _c("dcim_device_poll_errors", "Failed polls by kind", ["site", "device", "kind"])
    invalid = _c("dcim_invalid_readings",
                 "Readings refused, by point and reason (dcim/reasons.py Reason)",
                 ["site", "device", "point", "reason"])
    overruns = _c("dcim_device_poll_overruns", "Polls that ran past their interval",
                  ["site", "device"])
    next_poll = _g("dcim_device_next_poll_timestamp_seconds",
                   "When the next poll of the device is due (a failed device keeps its interval)",
                   ["site", "device"])
    info = _g("dcim_device_info", "Where a device sits: 1 per device, for joins and grouping",
              ["site", "device", "profile", "kind", "rack", "feed", "hall"])
    for i, dev in enumerate(pub.snapshot.devices.values(), 1):
        if i % PAUSE_EVERY == 0:
            yield PAUSE
        rack = pub.site.racks.get(dev.rack or "")
        info.add_metric([site, dev.id, dev.profile, dev.kind, dev.rack or "", dev.feed or "",
                         (rack.hall if rack else None) or ""], 1.0)
        up.add_metric([site, dev.id, dev.profile, dev.kind], 1.0 if dev.up else 0.0)
        if dev.poll_duration is not None:
            duration.add_metric([site, dev.id], dev.poll_duration)
        if dev.last_success is not None:
            last.add_metric([site, dev.id], dev.last_success)
        h = health.devices.get(dev.id)
        if h is None:
            continue
        polls.add_metric([site, dev.id], float(h.polls))
        for kind, count in sorted(h.errors.items()):
            errors.add_metric([site, dev.id, str(kind)], float(count))
        for (point, reason), count in sorted(h.invalid.items()):
            invalid.add_metric([site, dev.id, point, str(reason)], float(count))
        overruns.add_metric([site, dev.id], float(h.overruns))
        if h.next_poll is not None:
            next_poll.add_metric([site, dev.id], h.next_poll)
    yield from (up, info, duration, last, polls, errors, invalid, overruns, next_poll)


def _snmp_client(stats: ClientStats) -> Iterator[Metric]:
    """dcim's own SNMP client's counters (pysnmp, for MD5 and DES users, keeps none)."""
    for family, value in (
        (_c("dcim_snmp_client_requests", "SNMP requests sent (first tries)", []), stats.sent),
        (_c("dcim_snmp_client_retries", "SNMP requests sent again after a timeout", []),
         stats.retries),
        (_c("dcim_snmp_client_timeouts",
            "SNMP requests that got no matching reply after every retry", []), stats.timeouts),
        (_c("dcim_snmp_client_malformed_replies",
            "Datagrams that did not decode as SNMP (dropped)", []), stats.malformed),
        (_c("dcim_snmp_client_unmatched_replies",
            "Replies matching no request in flight: unknown request-id (late or duplicate), "
            "wrong source, version or PDU type (dropped)", []), stats.unmatched),
        (_c("dcim_snmp_client_usm_dropped",
            "SNMPv3 answers refused: wrong digest, outside the time window, undecryptable, "
            "wrong security level", []), stats.usm_dropped),
        (_c("dcim_snmp_client_usm_discoveries",
            "SNMPv3 engine discoveries (first contact, or the agent's engine ID changed)", []),
         stats.usm_discoveries),
        (_c("dcim_snmp_client_usm_resyncs",
            "SNMPv3 requests sent again after a notInTimeWindow report", []), stats.usm_resyncs),
    ):
        family.add_metric([], float(value))
        yield family

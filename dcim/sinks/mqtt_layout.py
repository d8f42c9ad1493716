"""dcim's plain MQTT layout under topic_prefix (pure): retained state and edge-triggered events.

    {prefix}/site                 retained  {"pue", "status", "coverage", "facility_w", ...}
    {prefix}/racks/{rack}         retained  {"power_w", "cap_w", "utilization", "feeds", ...}
    {prefix}/cdus/{cdu}           retained  {"supply_temp_c", "heat_removed_w", "leak", ...}
    {prefix}/shelves/{shelf}      retained  {"supplies_installed", "supplies_healthy", "redundant", ...}
    {prefix}/events/{kind}        QoS 1, not retained, once when a condition starts and once
                                  when it clears: cap_breach, failover_risk, leak,
                                  shelf_redundancy_lost

An unknown value (incomplete inputs) neither starts nor clears an event: no data is not
evidence that a leak stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dcim.compute.snapshot import Published


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message to send."""

    topic: str
    payload: dict[str, Any]
    retain: bool
    qos: int


def state_messages(pub: Published, prefix: str) -> Iterator[Message]:
    """Retained site, rack and CDU state."""
    snap, site = pub.snapshot, pub.site.name
    pue = snap.pue
    yield Message(f"{prefix}/site", {
        "site": site, "pue": pue.value, "status": pue.status, "coverage": pue.coverage,
        "facility_w": pue.facility_w, "it_w": pue.it_w, "missing": list(pue.missing),
        "pue_target": pue.target, "time": snap.time,
    }, retain=True, qos=1)
    for rack in snap.racks.values():
        yield Message(f"{prefix}/racks/{rack.id}", {
            "site": site, "rack": rack.id, "power_w": rack.power_w, "cap_w": rack.cap_w,
            "utilization": rack.utilization, "feeds": dict(rack.feeds),
            "feed_capacity_w": rack.feed_capacity_w, "failover_risk": rack.failover_risk,
            "missing": list(rack.missing), "hall": rack.hall, "row": rack.row,
            "tenant": rack.tenant, "time": snap.time,
        }, retain=True, qos=1)
    for cdu in snap.cdus.values():
        yield Message(f"{prefix}/cdus/{cdu.id}", {
            "site": site, "cdu": cdu.id, "supply_temp_c": cdu.supply_c,
            "return_temp_c": cdu.return_c, "flow_lpm": cdu.flow_lpm, "delta_t_k": cdu.delta_t,
            "heat_removed_w": cdu.heat_w, "capture_ratio": cdu.capture_ratio, "leak": cdu.leak,
            "racks": list(cdu.racks), "time": snap.time,
        }, retain=True, qos=1)
    for shelf in snap.shelves.values():
        yield Message(f"{prefix}/shelves/{shelf.id}", {
            "site": site, "shelf": shelf.id, "rack": shelf.rack,
            "supplies_installed": shelf.installed, "supplies_healthy": shelf.healthy,
            "capacity_w": shelf.capacity_w, "n1_capacity_w": shelf.n1_capacity_w,
            "load_w": shelf.load_w, "redundant": shelf.carries_one_more_failure,
            "time": snap.time,
        }, retain=True, qos=1)


@dataclass
class EventTracker:
    """Remembers which conditions are active, to emit only their start and their end."""

    active: dict[tuple[str, str], bool] = field(default_factory=dict)

    def events(self, pub: Published, prefix: str) -> list[Message]:
        """Messages for the conditions that started or cleared in this snapshot."""
        snap, site = pub.snapshot, pub.site.name
        out: list[Message] = []

        def edge(kind: str, subject: str, key: str, now: bool | None, **detail: Any) -> None:
            if now is None:
                return
            was = self.active.get((kind, subject), False)
            if now == was:
                return
            self.active[(kind, subject)] = now
            out.append(Message(f"{prefix}/events/{kind}", {
                "event": kind, "state": "start" if now else "clear", "site": site, key: subject,
                "time": snap.time, **detail}, retain=False, qos=1))

        for rack in snap.racks.values():
            breach = None if rack.power_w is None else rack.power_w > rack.cap_w
            edge("cap_breach", rack.id, "rack", breach, power_w=rack.power_w, cap_w=rack.cap_w)
            edge("failover_risk", rack.id, "rack", rack.failover_risk, power_w=rack.power_w,
                 feed_capacity_w=rack.feed_capacity_w)
        for cdu in snap.cdus.values():
            edge("leak", cdu.id, "cdu", cdu.leak, racks=list(cdu.racks))
        for shelf in snap.shelves.values():
            lost = None if shelf.carries_one_more_failure is None \
                else not shelf.carries_one_more_failure
            edge("shelf_redundancy_lost", shelf.id, "shelf", lost, rack=shelf.rack,
                 supplies_healthy=shelf.healthy, load_w=shelf.load_w,
                 n1_capacity_w=shelf.n1_capacity_w)
        return out

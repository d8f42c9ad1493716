"""The Redfish profile language on the project's mockups, offline (tests/fixtures/redfish)."""

from __future__ import annotations

from typing import Any

import pytest
from support.profiles import assert_golden, shipped_registry
from support.redfish import Mockup, decode_mockup, redfish_mockups

from dcim.profile import RedfishProfile
from dcim.reasons import Reason
from dcim.redfish.decode import Need, RedfishData, decode_redfish

REGISTRY = shipped_registry()
MOCKUPS = redfish_mockups()


def profile_of(mockup: Mockup) -> RedfishProfile:
    profile = REGISTRY[mockup.profile]
    assert isinstance(profile, RedfishProfile)
    return profile


def test_every_redfish_profile_has_a_mockup() -> None:
    shipped = {p.name for p in REGISTRY.all() if isinstance(p, RedfishProfile)}
    assert shipped == {"redfish-power-shelf", "redfish-cdu", "redfish-pdu"}
    assert shipped <= {m.profile for m in MOCKUPS}


@pytest.mark.parametrize("mockup", MOCKUPS, ids=lambda m: m.name)
def test_mockup_decodes_to_its_golden(mockup: Mockup) -> None:
    decoded = decode_mockup(profile_of(mockup), mockup)
    assert_golden(decoded.values, decoded.errors, mockup.golden, mockup.name)


SHELF = "/redfish/v1/PowerEquipment/PowerShelves/1"


def shelf(**over: Any) -> RedfishData:
    """A minimal shelf: Metrics and a PowerSupplies collection with the given members."""
    data = RedfishData(SHELF)
    data.add(SHELF, {"@odata.id": SHELF, "Metrics": {"@odata.id": f"{SHELF}/Metrics"},
                     "PowerSupplies": {"@odata.id": f"{SHELF}/PowerSupplies"}})
    data.add(f"{SHELF}/Metrics", {"PowerWatts": over.get("power", {"Reading": 1000.0})})
    members = over.get("members", [])
    data.add(f"{SHELF}/PowerSupplies", {"Members": [{"@odata.id": m["@odata.id"]} for m in members]})
    for m in members:
        data.add(m["@odata.id"], m)
    return data


def psu(i: int, state: str = "Enabled", health: str | None = "OK") -> dict[str, Any]:
    return {"@odata.id": f"{SHELF}/PowerSupplies/{i}", "Id": f"PSU{i}",
            "Status": {"State": state, "Health": health}, "PowerCapacityWatts": 5500}


def decode(data: RedfishData, *points: str) -> Any:
    profile = REGISTRY["redfish-power-shelf"]
    assert isinstance(profile, RedfishProfile)
    return decode_redfish(profile, data, None, frozenset(points))


def test_null_reading_is_unavailable_never_zero() -> None:
    result = decode(shelf(power={"Reading": None}), "power_w")
    assert result.values == {}
    assert result.errors["power_w"].reason == Reason.SENTINEL
    assert result.errors["power_w"].message == "null"


def test_health_states_and_absent_and_disabled_supplies() -> None:
    members = [psu(1), psu(2, health="Warning"), psu(3, health="Critical"),
               psu(4, state="Absent", health=None), psu(5, state="Disabled"),
               psu(6, health=None), psu(1)]  # PSU1 listed twice
    result = decode(shelf(members=members), "supply_healthy", "supply_capacity_w")
    assert result.values["supply_healthy"] == {"PSU1": 1, "PSU2": 1, "PSU3": 0, "PSU5": 0,
                                               "PSU6": 0}
    # A Disabled supply reads nothing but its Status: its capacity is not a reading.
    assert result.values["supply_capacity_w"] == {"PSU1": 5500, "PSU2": 5500, "PSU3": 5500,
                                                  "PSU6": 5500}
    assert "PSU5 is Disabled" in result.errors["supply_capacity_w"].message


def test_walk_asks_for_what_is_missing_in_rounds() -> None:
    profile = REGISTRY["redfish-power-shelf"]
    assert isinstance(profile, RedfishProfile)
    only = frozenset({"supply_power_w"})
    data = RedfishData(SHELF)
    needs: dict[str, Need] = {}
    decode_redfish(profile, data, None, only, needs)
    assert list(needs) == [SHELF]
    data.add(SHELF, {"PowerSupplies": {"@odata.id": f"{SHELF}/PowerSupplies"}})
    needs = {}
    decode_redfish(profile, data, None, only, needs)
    assert list(needs) == [f"{SHELF}/PowerSupplies"] and needs[f"{SHELF}/PowerSupplies"].collection


def test_leak_is_any_detector_at_warning_or_critical() -> None:
    cdu = "/redfish/v1/ThermalEquipment/CDUs/1"
    profile = REGISTRY["redfish-cdu"]
    assert isinstance(profile, RedfishProfile)

    def leak(*states: str | None) -> Any:
        data = RedfishData(cdu)
        data.add(cdu, {"LeakDetection": {"@odata.id": f"{cdu}/LD"}, "Status": {"Health": "Critical"}})
        data.add(f"{cdu}/LD", {"LeakDetectors": {"@odata.id": f"{cdu}/LD/D"}})
        data.add(f"{cdu}/LD/D", {"Members": [{"@odata.id": f"{cdu}/LD/D/{i}"} for i in range(len(states))]})
        for i, s in enumerate(states):
            data.add(f"{cdu}/LD/D/{i}", {"Id": str(i), "DetectorState": s, "Status": {"State": "Enabled"}})
        return decode_redfish(profile, data, None, frozenset({"leak", "fault"}))

    assert leak("OK", "OK").values == {"leak": 0, "fault": 1}  # the unit's health is no leak
    assert leak("OK", "Critical").values["leak"] == 1
    assert leak("Unavailable", "Warning").values["leak"] == 1  # one alarm is enough
    assert "leak" in leak("OK", "Unavailable").errors  # cannot say "no leak"

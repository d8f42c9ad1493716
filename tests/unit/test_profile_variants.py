"""Vendor variants without Python: a profile extending another and changing one point's scale or
sentinels, a device entry adjusting or disabling a point, and picking the most specific shipped
profile from sysObjectID / sysDescr (ProfileRegistry.match, used by `dcim discover` and
`profile: auto`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from support.profiles import shipped_registry

from dcim.config import parse_config
from dcim.decode import SnmpData, decode_snmp
from dcim.errors import ConfigError
from dcim.profile import Identity, ProfileRegistry, SnmpProfile
from dcim.site import SnmpAuth, build_site

UPS_OUTPUT_POWER = "1.3.6.1.2.1.33.1.4.4.1.4"


def test_a_variant_changes_one_points_scale_and_sentinels(tmp_path: Path) -> None:
    (tmp_path / "acme-ups.yaml").write_text(
        "name: acme-ups\nextends: [ups-mib]\ndescription: Acme UPS reporting output in 0.1 W\n"
        "sys_object_id: [1.3.6.1.4.1.99999.7]\n"
        "points:\n"
        "  output_power_w: {scale: 0.1, not_available: [-1]}\n"  # keys merge into the parent's
        "  frequency_hz: {oid: 1.3.6.1.4.1.99999.7.1.0}\n"      # a location replaces the point
        "  battery_low: null\n", encoding="utf-8")               # null removes it
    registry = ProfileRegistry.load_dirs([Path(str(shipped_registry().sources["ups-mib"].parent)),
                                          tmp_path])
    acme, base = registry["acme-ups"], registry["ups-mib"]
    assert isinstance(acme, SnmpProfile) and isinstance(base, SnmpProfile)
    power = acme.points["output_power_w"]
    assert (power.walk, power.aggregate, power.scale) == (UPS_OUTPUT_POWER, "sum", 0.1)
    assert power.not_available == (-1,)
    assert acme.points["frequency_hz"].oid == "1.3.6.1.4.1.99999.7.1.0"
    assert acme.points["frequency_hz"].scale == 1.0  # replaced whole, not merged
    assert "battery_low" not in acme.points and "battery_low" in base.points
    out = decode_snmp(acme, SnmpData(tables={UPS_OUTPUT_POWER: {"1": 12000, "2": -1}}))
    assert out.errors["output_power_w"].reason == "sentinel"
    out = decode_snmp(acme, SnmpData(tables={UPS_OUTPUT_POWER: {"1": 12000, "2": 11000}}))
    assert out.values["output_power_w"] == pytest.approx(2300.0)


def _site(points: dict[str, object]) -> object:
    return build_site(parse_config({
        "site": {"name": "s"},
        "devices": [{"id": "ups-1", "profile": "ups-mib", "host": "127.0.0.1",
                     "points": points}],
    }), shipped_registry())


def test_a_device_entry_adjusts_or_disables_a_point() -> None:
    site = _site({"output_power_w": {"scale": 10}, "battery_runtime_s": "disabled"})
    profile = site.devices["ups-1"].profile  # type: ignore[attr-defined]
    assert profile.name == "ups-mib"
    assert profile.points["output_power_w"].scale == 10
    assert profile.points["output_power_w"].walk == UPS_OUTPUT_POWER
    assert "battery_runtime_s" not in profile.points
    assert shipped_registry()["ups-mib"].points["output_power_w"].scale == 1  # shared: untouched


def test_a_device_override_of_an_unknown_point_names_it() -> None:
    with pytest.raises(ConfigError) as info:
        _site({"power_w": {"scale": 10}})
    assert any(e.startswith("devices[0].points.power_w: profile 'ups-mib' has no point")
               for e in info.value.errors), info.value.errors
    with pytest.raises(ConfigError) as info:
        _site({"output_power_w": {"sclae": 10}})
    assert any("devices[0].points.output_power_w" in e for e in info.value.errors)


REGISTRY = shipped_registry()


@pytest.mark.parametrize(("oid", "descr", "expected"), [
    ("1.3.6.1.4.1.13742.6", "PX3", ("raritan-px",)),
    ("1.3.6.1.4.1.13742.6.3.2", "PX3", ("raritan-px",)),     # under the prefix
    ("1.3.6.1.4.1.13742.4", "Dominion PX", ("raritan-px1",)),  # the older MIB, not PDU2
    ("1.3.6.1.4.1.534.1", "Eaton 93PM 500 kW UPS", ("ups-mib",)),  # no claim: sysDescr
    ("1.3.6.1.4.1.8072.3.2.10", "Linux ups-card 5.4 UPS network card", ("ups-mib",)),
    ("1.3.6.1.4.1.8072.3.2.10", "Linux box", ()),
    (None, None, ()),
])
def test_the_most_specific_profile_is_picked(oid: str | None, descr: str | None,
                                             expected: tuple[str, ...]) -> None:
    assert REGISTRY.match(oid, descr) == expected


def test_a_longer_sys_object_id_prefix_wins_over_its_parent(tmp_path: Path) -> None:
    base = Path(str(REGISTRY.sources["raritan-px"].parent))
    (tmp_path / "raritan-px-g4.yaml").write_text(
        "name: raritan-px-g4\nextends: [raritan-px]\ndescription: PX4 firmware 4\n"
        "sys_object_id: [1.3.6.1.4.1.13742.6.4]\n", encoding="utf-8")
    registry = ProfileRegistry.load_dirs([base, tmp_path])
    assert registry.match("1.3.6.1.4.1.13742.6.4.1", None) == ("raritan-px-g4",)
    assert registry.match("1.3.6.1.4.1.13742.6.3", None) == ("raritan-px",)


def test_auto_without_a_prober_is_a_plain_error() -> None:
    with pytest.raises(ConfigError) as info:
        build_site(parse_config({"site": {"name": "s"}, "devices": [
            {"id": "x", "profile": "auto", "host": "127.0.0.1"}]}), REGISTRY)
    assert info.value.errors == [
        "devices[0].profile: auto: 127.0.0.1:161 was not asked (this command does "
        "not ask devices); name its profile (`dcim discover` prints it)"]


def _no_answer(targets: Sequence[tuple[str, int, SnmpAuth]], registry: ProfileRegistry,
               timeout: float, retries: int) -> list[Identity]:
    return [Identity(host, port, None, None, (), error="no answer within 0.5s")
            for host, port, _ in targets]


def test_an_auto_device_that_does_not_answer_loads_as_down_and_withholds_what_it_feeds() -> None:
    site = build_site(parse_config({
        "site": {"name": "s"},
        "racks": [{"id": "r1"}],
        "devices": [
            {"id": "late", "profile": "auto", "host": "127.0.0.1", "port": 1161, "rack": "r1"},
            {"id": "meter", "profile": "sunspec-meter", "host": "127.0.0.1", "port": 1502}],
        "pue": {"facility": ["meter"], "it": ["late"]}}), REGISTRY, _no_answer)
    late = site.devices["late"]
    assert late.unidentified == ("profile not identified yet: no answer to sysObjectID "
                                 "(no answer within 0.5s)")
    assert late.profile.name == "auto" and not late.profile.points
    assert late.auth is not None and late.port == 1161
    # Still counted where it was put: the rack and PUE wait for it, never sum without it.
    assert site.racks["r1"].devices == ("late",)
    assert site.pue is not None and site.pue.it == {"late": "power_w"}
    assert site.warnings == (
        "devices[0].profile: auto: 127.0.0.1:1161 profile not identified yet: no answer to "
        "sysObjectID (no answer within 0.5s); polled as down until it answers",)

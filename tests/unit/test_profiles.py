"""Shipped device profiles: they load, bad ones are reported well, and each decodes its fixture
into the hand-worked golden values. Plus the decoding rules of dcim.decode, one by one.

Fixtures (the project's own, synthetic), named <profile> or <profile>--<case> (one field
behaviour: a sentinel, negative rows, 10x units, an overflowing scale factor, ...):
  tests/fixtures/snmp/<name>.snmprec + <name>.golden.json
  tests/fixtures/modbus/<name>.yaml  (register words, optional exceptions, and `golden:`)
A golden is {"points": {name: number or {row: number}}, "errors": [names]}: `errors` lists every
point the decode reports in its errors, i.e. unavailable points and points whose dropped rows are
named (such a point is in both). Goldens are worked out by hand from the MIB / register units.
The loading helpers live in tests/support/profiles.py, shared with the live tests.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from support.profiles import (
    assert_golden,
    case_fixture_names,
    decode_fixture,
    encode,
    golden_of,
    modbus_fixture,
    modbus_fixture_names,
    modbus_fixture_path,
    profile_of,
    redfish_fixture_paths,
    shipped_profile_files,
    shipped_registry,
    snmp_fixture_names,
    snmp_fixture_path,
    snmp_golden_path,
)
from support.snmprec import load_snmprec, oid_key, record_oids, snmp_data_for

from dcim.decode import (
    Missing,
    ModbusData,
    SnmpData,
    decode_modbus,
    decode_snmp,
    number_to_registers,
    registers_to_number,
)
from dcim.errors import ConfigError
from dcim.profile import (
    ModbusProfile,
    ProfileRegistry,
    RedfishProfile,
    SnmpProfile,
)
from dcim.reasons import Reason

# --- (1) shipped profiles load; bad ones are reported with file and key -----------------------


def test_every_shipped_profile_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCIM_PROFILE_PATH", raising=False)
    registry = ProfileRegistry.load()
    files = shipped_profile_files()
    assert registry.names() == sorted(files)
    for name, path in files.items():
        assert registry[name].name == name
        assert registry.sources[name] == path
    expected = {"apc-rpdu2", "raritan-px", "servertech-sentry4", "vertiv-v5", "eaton-epdu",
                "ups-mib", "schneider-pm5500", "sunspec-meter", "generic-chiller", "generic-cdu"}
    assert expected <= set(files)


_HEAD = "kind: pdu\nprotocol: snmp\ndescription: test\n"

BAD_PROFILES = {
    "unknown-key": (
        "name: unknown-key\n" + _HEAD + "points:\n  power_w: {oid: 1.3.6.1.4.1.9.1, scael: 10}\n",
        "points.power_w.scael: unknown key"),
    "unknown-point": (
        "name: unknown-point\n" + _HEAD + "points:\n  powr_w: {oid: 1.3.6.1.4.1.9.1}\n",
        "points.powr_w: unknown point"),
    "wrong-kind": (
        "name: wrong-kind\nkind: ups\nprotocol: snmp\ndescription: test\n"
        "points:\n  power_w: {oid: 1.3.6.1.4.1.9.1}\n",
        "points.power_w: not a point of kind 'ups'"),
    "bad-oid": (
        "name: bad-oid\n" + _HEAD + "points:\n  power_w: {walk: 1.3.6.1.4.1.x.5}\n",
        "points.power_w: not a numeric OID"),
    "missing-fragment": (
        "name: missing-fragment\nextends: [_pdu-common]\n" + _HEAD
        + "points:\n  power_w: {oid: 1.3.6.1.4.1.9.1}\n",
        "extends: unknown fragment '_pdu-common'"),
    "name-mismatch": (
        "name: something-else\n" + _HEAD + "points:\n  power_w: {oid: 1.3.6.1.4.1.9.1}\n",
        "name: 'something-else' must equal the file name 'name-mismatch'"),
    "bad-register-type": (
        "name: bad-register-type\nkind: meter\nprotocol: modbus\ndescription: test\n"
        "points:\n  power_w: {address: 3059, type: float24}\n",
        "points.power_w.type:"),
}


@pytest.mark.parametrize("stem", sorted(BAD_PROFILES))
def test_bad_profile_is_reported_with_file_and_key(tmp_path: Path, stem: str) -> None:
    text, expected = BAD_PROFILES[stem]
    path = tmp_path / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        ProfileRegistry.load_dirs([tmp_path])
    lines = [e for e in info.value.errors if e.startswith(f"{path}: ")]
    assert any(expected in line for line in lines), info.value.errors


def test_every_bad_profile_is_reported_at_once(tmp_path: Path) -> None:
    for stem, (text, _) in BAD_PROFILES.items():
        (tmp_path / f"{stem}.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        ProfileRegistry.load_dirs([tmp_path])
    for stem in BAD_PROFILES:
        assert any(str(tmp_path / f"{stem}.yaml") in e for e in info.value.errors), stem


def test_fragment_is_merged_through_extends(tmp_path: Path) -> None:
    (tmp_path / "_rpdu-phases.yaml").write_text(
        "kind: pdu\nprotocol: snmp\npoints:\n"
        "  current_a: {walk: 1.3.6.1.4.1.9.6.1, scale: 0.1, aggregate: rows}\n"
        "  power_w: {walk: 1.3.6.1.4.1.9.6.2, aggregate: sum}\n", encoding="utf-8")
    (tmp_path / "model-x.yaml").write_text(
        "name: model-x\nextends: [_rpdu-phases]\ndescription: test\n"
        "points:\n  power_w: {oid: 1.3.6.1.4.1.9.1.0}\n", encoding="utf-8")
    registry = ProfileRegistry.load_dirs([tmp_path])
    assert registry.names() == ["model-x"]
    profile = registry["model-x"]
    assert isinstance(profile, SnmpProfile)
    assert profile.points["current_a"].walk == "1.3.6.1.4.1.9.6.1"
    assert profile.points["power_w"].oid == "1.3.6.1.4.1.9.1.0"  # the profile overrides


# --- (2) every shipped profile decodes its fixture into the golden values ---------------------


@pytest.mark.parametrize("name", sorted(shipped_profile_files()))
def test_profile_decodes_its_fixture_to_golden(name: str) -> None:
    profile = shipped_registry()[name]
    if isinstance(profile, SnmpProfile):
        missing = [p for p in (snmp_fixture_path(name), snmp_golden_path(name)) if not p.is_file()]
    elif isinstance(profile, RedfishProfile):
        missing = [p for p in redfish_fixture_paths(name) if not p.is_file()]
    else:
        missing = [p for p in (modbus_fixture_path(name),) if not p.is_file()]
    if missing:
        pytest.fail(f"profile {name} has no fixture: write {', '.join(map(str, missing))}")
    decoded = decode_fixture(profile)
    golden = golden_of(profile)
    assert set(golden["points"]) | set(golden["errors"]) == set(profile.points), (
        f"{name}: the golden must cover every point of the profile")
    # A point may be in both: rows it could read in points, the dropped rows named in errors.
    assert_golden(decoded.values, decoded.errors, golden, name)


@pytest.mark.parametrize("name", case_fixture_names())
def test_field_case_fixture_decodes_to_golden(name: str) -> None:
    """One field behaviour: the affected points unavailable with the right reason, the rest read."""
    profile = shipped_registry()[profile_of(name)]
    golden = golden_of(profile, name)
    assert isinstance(golden["errors"], dict), f"{name}: a field case golden gives each reason"
    assert golden["points"], f"{name}: the rest of the device's points must still read"
    assert set(golden["points"]) | set(golden["errors"]) == set(profile.points), name
    decoded = decode_fixture(profile, name)
    assert_golden(decoded.values, decoded.errors, golden, name)


@pytest.mark.parametrize("name", snmp_fixture_names())
def test_snmprec_fixture_is_well_formed(name: str) -> None:
    path = snmp_fixture_path(name)
    oids = record_oids(path)
    assert oids == sorted(oids, key=oid_key), f"{path}: records must be sorted by OID"
    assert len(oids) == len(set(oids)), f"{path}: duplicate OIDs"
    records = load_snmprec(path)
    assert "1.3.6.1.2.1.1.1.0" in records, f"{path}: no sysDescr"
    sys_object_id = records.get("1.3.6.1.2.1.1.2.0")
    assert isinstance(sys_object_id, str), f"{path}: no sysObjectID"
    stem = profile_of(name)
    profile = shipped_registry()[stem] if stem in shipped_profile_files() else None
    assert isinstance(profile, SnmpProfile), f"{path}: no shipped SNMP profile named {stem}"
    if profile.sys_object_id:
        assert any(sys_object_id == p or sys_object_id.startswith(p + ".")
                   for p in profile.sys_object_id), sys_object_id


@pytest.mark.parametrize("name", modbus_fixture_names())
def test_modbus_fixture_belongs_to_a_profile(name: str) -> None:
    assert isinstance(shipped_registry()[profile_of(name)], ModbusProfile)
    assert set(modbus_fixture(name)) <= {"holding", "input", "exceptions", "golden"}


def test_snmprec_parser_types(tmp_path: Path) -> None:
    path = tmp_path / "t.snmprec"
    path.write_text(
        "#comment\n"
        "1.3.6.1.2.1.1.1.0|4x|414243\n"
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.9\n"
        "1.3.6.1.2.1.1.3.0|67|42\n"
        "1.3.6.1.4.1.9.1.1|2|-1\n"
        "1.3.6.1.4.1.9.1.2|70|18446744073709551615\n"
        "1.3.6.1.4.1.9.1.3|4|text\n"
        "1.3.6.1.4.1.9.1.4|64|10.0.0.1\n"
        "1.3.6.1.4.1.9.1.5|4:writecache|value=cached\n",
        encoding="utf-8")
    records = load_snmprec(path)
    assert records == {
        "1.3.6.1.2.1.1.1.0": b"ABC", "1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.9",
        "1.3.6.1.2.1.1.3.0": 42, "1.3.6.1.4.1.9.1.1": -1,
        "1.3.6.1.4.1.9.1.2": 2**64 - 1, "1.3.6.1.4.1.9.1.3": b"text",
        "1.3.6.1.4.1.9.1.4": bytes([10, 0, 0, 1]), "1.3.6.1.4.1.9.1.5": b"cached",
    }


def test_snmp_data_for_builds_scalars_and_tables() -> None:
    profile = snmp_profile({
        "power_w": {"oid": "1.3.6.1.4.1.9.2.0", "decimals": "1.3.6.1.4.1.9.3.0"},
        "current_a": {"walk": "1.3.6.1.4.1.9.4", "aggregate": "rows",
                      "fallback": [{"oid": "1.3.6.1.4.1.9.5.0"}]},
    })
    records = {"1.3.6.1.4.1.9.2.0": 5, "1.3.6.1.4.1.9.4.1": 1, "1.3.6.1.4.1.9.4.2.7": 2,
               "1.3.6.1.4.1.9.40.1": 99}
    data = snmp_data_for(profile, records)
    assert data.scalars["1.3.6.1.4.1.9.2.0"] == 5
    assert isinstance(data.scalars["1.3.6.1.4.1.9.3.0"], Missing)
    assert isinstance(data.scalars["1.3.6.1.4.1.9.5.0"], Missing)
    assert data.tables["1.3.6.1.4.1.9.4"] == {"1": 1, "2.7": 2}  # .9.40 is not under .9.4


# --- (3) decoding rules -----------------------------------------------------------------------


def snmp_profile(points: dict[str, Any], kind: str = "pdu") -> SnmpProfile:
    return SnmpProfile.model_validate(
        {"name": "t", "kind": kind, "protocol": "snmp", "description": "t", "points": points})


def modbus_profile(points: dict[str, Any], kind: str = "meter") -> ModbusProfile:
    return ModbusProfile.model_validate(
        {"name": "t", "kind": kind, "protocol": "modbus", "description": "t", "points": points})


ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
SAMPLES: dict[str, list[float]] = {
    "int16": [0, 1, -1, -32768, 32767, 12345],
    "uint16": [0, 1, 65535, 40000],
    "int32": [0, -1, -2**31, 2**31 - 1, 123456789],
    "uint32": [0, 2**32 - 1, 3_000_000_000, 65536],
    "int64": [0, -1, -2**63, 2**63 - 1, 48_215_337_912],
    "uint64": [0, 2**64 - 1, 2**40 + 3],
    "float32": [0.0, 1.0, -2.5, 1926.2, 3.4e38, 1e-30],
    "float64": [0.0, 1.0, -2.5, 1926.2, 1e300, 48_215_337_912.125],
}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", sorted(SAMPLES))
def test_register_round_trip_in_every_order(type_: str, order: str) -> None:
    for value in SAMPLES[type_]:
        words = number_to_registers(value, type_, order)
        assert words == encode(type_, value, order)
        back = registers_to_number(words, type_, order)
        if type_ == "float32":
            assert back == pytest.approx(value, rel=1e-7)
        else:
            assert back == value


HAND_WORDS = [
    # float32 1.0 = 0x3F800000
    ("float32", 1.0, "ABCD", [0x3F80, 0x0000]),
    ("float32", 1.0, "CDAB", [0x0000, 0x3F80]),
    ("float32", 1.0, "BADC", [0x803F, 0x0000]),
    ("float32", 1.0, "DCBA", [0x0000, 0x803F]),
    # int32 0x01020304
    ("int32", 0x01020304, "ABCD", [0x0102, 0x0304]),
    ("int32", 0x01020304, "CDAB", [0x0304, 0x0102]),
    ("int32", 0x01020304, "BADC", [0x0201, 0x0403]),
    ("int32", 0x01020304, "DCBA", [0x0403, 0x0201]),
    ("uint32", 12345678, "ABCD", [0x00BC, 0x614E]),
    ("int16", -2, "ABCD", [0xFFFE]),
    ("int16", -2, "BADC", [0xFEFF]),
    ("uint16", 0x1234, "DCBA", [0x3412]),
    ("uint16", 0x1234, "CDAB", [0x1234]),
    # 64-bit 0x0102030405060708
    ("uint64", 0x0102030405060708, "ABCD", [0x0102, 0x0304, 0x0506, 0x0708]),
    ("uint64", 0x0102030405060708, "CDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
    ("int64", 0x0102030405060708, "BADC", [0x0201, 0x0403, 0x0605, 0x0807]),
    ("int64", 0x0102030405060708, "DCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
    ("int64", -1, "CDAB", [0xFFFF] * 4),
    # float64 1.0 = 0x3FF0000000000000, -2.0 = 0xC000000000000000
    ("float64", 1.0, "ABCD", [0x3FF0, 0, 0, 0]),
    ("float64", 1.0, "CDAB", [0, 0, 0, 0x3FF0]),
    ("float64", 1.0, "BADC", [0xF03F, 0, 0, 0]),
    ("float64", -2.0, "DCBA", [0, 0, 0, 0x00C0]),
]


@pytest.mark.parametrize(("type_", "value", "order", "words"), HAND_WORDS)
def test_hand_written_register_words(type_: str, value: float, order: str, words: list[int]) -> None:
    assert registers_to_number(words, type_, order) == value
    assert number_to_registers(value, type_, order) == words


def test_word_order_applies_through_a_profile() -> None:
    profile = modbus_profile({
        "power_w": {"address": 10, "type": "float32", "order": "CDAB", "scale": 1000},
        "energy_wh": {"address": 20, "type": "uint32", "order": "DCBA"},
    })
    data = ModbusData({("holding", 10): 0x0000, ("holding", 11): 0x3F80,
                       ("holding", 20): 0x4E61, ("holding", 21): 0xBC00})
    out = decode_modbus(profile, data)
    assert out.values == {"power_w": 1000.0, "energy_wh": 12345678.0}


def test_snmp_sentinels() -> None:
    profile = snmp_profile({
        "power_w": {"oid": "1.3.6.1.4.1.9.1.0", "scale": 10, "not_available": [-1]},
        "energy_wh": {"oid": "1.3.6.1.4.1.9.2.0", "not_available_below": 0},
        "apparent_power_va": {"oid": "1.3.6.1.4.1.9.3.0", "not_available_below": 0},
    })
    out = decode_snmp(profile, SnmpData(scalars={
        "1.3.6.1.4.1.9.1.0": -1, "1.3.6.1.4.1.9.2.0": -5, "1.3.6.1.4.1.9.3.0": 0}))
    assert "sentinel -1" in out.errors["power_w"].message
    assert "sentinel -5" in out.errors["energy_wh"].message
    assert out.values == {"apparent_power_va": 0.0}  # zero is a reading, not a sentinel


def test_modbus_nan_and_not_implemented_scale_factor() -> None:
    profile = modbus_profile({
        "power_w": {"address": 0, "type": "float32"},
        "frequency_hz": {"address": 4, "type": "int16", "scale_factor": {"address": 5}},
        "voltage_v": {"address": 6, "type": "int16", "not_available": [-32768],
                      "scale_factor": {"address": 7}},
    })
    data = ModbusData({("holding", 0): 0x7FC0, ("holding", 1): 0x0000,
                       ("holding", 4): 5001, ("holding", 5): 0x8000,
                       ("holding", 6): 0x8000, ("holding", 7): 0xFFFF})
    out = decode_modbus(profile, data)
    assert "NaN" in out.errors["power_w"].message
    assert "scale factor not implemented" in out.errors["frequency_hz"].message
    assert "sentinel -32768" in out.errors["voltage_v"].message
    assert out.values == {}


def test_scale_factor_register() -> None:
    profile = modbus_profile({
        "power_w": {"address": 0, "type": "int16", "scale_factor": {"address": 1}},
        "current_a": {"address": 2, "type": "int16", "rows": 2, "aggregate": "rows",
                      "scale_factor": {"address": 9, "function": "input"}},
    })
    data = ModbusData({("holding", 0): 23512, ("holding", 1): 2,
                       ("holding", 2): 2402, ("holding", 3): 2399, ("input", 9): 0xFFFF})
    out = decode_modbus(profile, data)
    assert out.values["power_w"] == 2_351_200
    assert out.values["current_a"] == pytest.approx({"1": 240.2, "2": 239.9})


def test_decimals_from_another_oid() -> None:
    value_col, digits_col = "1.3.6.1.4.1.13742.6.5.2.3.1.4", "1.3.6.1.4.1.13742.6.3.3.4.1.7"
    profile = snmp_profile({
        "current_a": {"walk": value_col, "index_suffix": "1", "decimals": digits_col,
                      "aggregate": "rows"},
        "frequency_hz": {"oid": "1.3.6.1.4.1.9.1.0", "decimals": "1.3.6.1.4.1.9.2.0"},
        "power_w": {"walk": value_col, "index_suffix": "5", "decimals": digits_col},
    })
    data = SnmpData(
        scalars={"1.3.6.1.4.1.9.1.0": 500, "1.3.6.1.4.1.9.2.0": 1},
        tables={
            value_col: {"1.1.1": 46210, "1.2.1": 731, "1.1.5": 138, "1.2.5": 7},
            digits_col: {"1.1.1": 3, "1.2.1": 1, "1.1.5": 0},  # no digits for inlet 2 power
        })
    out = decode_snmp(profile, data)
    assert out.values["current_a"] == pytest.approx({"1.1": 46.21, "1.2": 73.1})
    assert out.values["frequency_hz"] == pytest.approx(50.0)
    assert "decimals" in out.errors["power_w"].message  # a sum with a row it cannot scale is refused


def test_index_suffix_keeps_only_that_sensor_type() -> None:
    col = "1.3.6.1.4.1.9.7"
    profile = snmp_profile({"power_w": {"walk": col, "index_suffix": "5"}})
    out = decode_snmp(profile, SnmpData(tables={col: {"1.1.5": 100, "1.1.15": 7, "1.1.25": 9,
                                                      "1.2.5": 50, "5": 1}}))
    assert out.values["power_w"] == 151  # rows 1.1, 1.2 and the bare "5" (row "1")


def test_fallback_used_only_when_primary_is_unavailable() -> None:
    total, phases = "1.3.6.1.4.1.21239.5.2.3.1.1.9", "1.3.6.1.4.1.21239.5.2.3.2.1.12"
    profile = snmp_profile({"power_w": {"walk": total, "fallback": [{"walk": phases}]}})
    both = SnmpData(tables={total: {"1": 4400}, phases: {"1": 1464, "2": 1477, "3": 1458}})
    assert decode_snmp(profile, both).values["power_w"] == 4400
    no_total = SnmpData(tables={total: {}, phases: {"1": 1464, "2": 1477, "3": 1458}})
    assert decode_snmp(profile, no_total).values["power_w"] == 4399
    neither = decode_snmp(profile, SnmpData(tables={total: {}, phases: {}}))
    assert "power_w" not in neither.values
    why = neither.errors["power_w"]
    assert "no rows" in why.message and "fallback 1" in why.message and why.reason == "unsupported"


def test_modbus_fallback() -> None:
    profile = modbus_profile({"voltage_v": {
        "address": 3027, "type": "float32", "rows": 3, "aggregate": "rows",
        "fallback": [{"address": 3019, "type": "float32", "rows": 3, "aggregate": "rows"}]}})
    regs: dict[tuple[str, int], int | Missing] = {}
    for i, v in enumerate((415.0, 416.0, 414.0)):
        regs[("holding", 3019 + 2 * i)], regs[("holding", 3020 + 2 * i)] = encode("float32", v)
        regs[("holding", 3027 + 2 * i)], regs[("holding", 3028 + 2 * i)] = 0xFFC0, 0
    out = decode_modbus(profile, ModbusData(regs))
    assert out.values["voltage_v"] == {"1": 415.0, "2": 416.0, "3": 414.0}


COL = "1.3.6.1.4.1.9.9"


@pytest.mark.parametrize(("aggregate", "expected"), [
    ("sum", 60.0), ("max", 30.0), ("min", 10.0), ("mean", 20.0), ("first", 10.0),
    ("rows", {"1": 10.0, "2": 20.0, "3": 30.0}),
])
def test_aggregation(aggregate: str, expected: Any) -> None:
    profile = snmp_profile({"current_a": {"walk": COL, "aggregate": aggregate}})
    out = decode_snmp(profile, SnmpData(tables={COL: {"1": 10, "2": 20, "3": 30}}))
    assert out.values["current_a"] == expected


@pytest.mark.parametrize("aggregate", ["sum", "max", "min", "mean", "first"])
def test_aggregation_refuses_an_invalid_row(aggregate: str) -> None:
    profile = snmp_profile({"power_w": {"walk": COL, "aggregate": aggregate,
                                        "not_available": [-1]}})
    for bad, reason in ((-1, Reason.SENTINEL), (b"notsupported", Reason.WRONG_TYPE),
                        (-26, Reason.OUT_OF_RANGE), (Missing("x", Reason.READ_ERROR),
                                                     Reason.READ_ERROR)):
        out = decode_snmp(profile, SnmpData(tables={COL: {"1": 1000, "2": bad, "3": 900}}))
        assert "power_w" not in out.values, (aggregate, bad)  # never a partial sum
        assert out.errors["power_w"].message.startswith("row 2: ")
        assert out.errors["power_w"].reason is reason


@pytest.mark.parametrize("unpopulated", [Missing("null"), Missing("noSuchInstance")])
def test_rows_the_device_does_not_populate_are_absent(unpopulated: Missing) -> None:
    # A single-phase UPS answering Null for phases 2 and 3: the total is phase 1.
    profile = snmp_profile({"output_power_w": {"walk": COL},
                            "voltage_v": {"walk": COL + ".2", "aggregate": "rows"}}, kind="ups")
    out = decode_snmp(profile, SnmpData(tables={
        COL: {"1": 1200, "2": unpopulated, "3": unpopulated},
        COL + ".2": {"1": 230, "2": unpopulated}}))
    assert out.values == {"output_power_w": 1200.0, "voltage_v": {"1": 230.0}}
    assert out.errors == {}
    nothing = decode_snmp(profile, SnmpData(tables={COL: {"1": unpopulated},
                                                    COL + ".2": {}}))
    assert nothing.values == {}
    assert {e.reason for e in nothing.errors.values()} == {Reason.UNSUPPORTED}


def test_rows_keep_the_good_rows_and_fail_only_when_none_is_left() -> None:
    profile = snmp_profile({"voltage_v": {"walk": COL, "aggregate": "rows",
                                          "not_available": [-1]}})
    out = decode_snmp(profile, SnmpData(tables={COL: {"1": 231, "2": -1, "3": 232}}))
    assert out.values["voltage_v"] == {"1": 231.0, "3": 232.0}
    assert out.errors["voltage_v"].message == "row 2: not available (sentinel -1)"  # dropped, named
    out = decode_snmp(profile, SnmpData(tables={COL: {"1": -1, "2": -1}}))
    assert "sentinel -1" in out.errors["voltage_v"].message
    out = decode_snmp(profile, SnmpData(tables={COL: {}}))
    assert "no rows" in out.errors["voltage_v"].message


def test_modbus_rows_with_a_refused_register() -> None:
    profile = modbus_profile({
        "current_a": {"address": 0, "type": "uint16", "rows": 3, "aggregate": "rows"},
        "power_w": {"address": 10, "type": "uint16", "rows": 3, "stride": 2, "aggregate": "sum"},
        "voltage_v": {"address": 20, "type": "uint16", "rows": 3, "stride": 2, "aggregate": "rows"},
    })
    failed = Missing("exception 4 (server device failure)", Reason.READ_ERROR)
    unmapped = Missing("exception 2 (illegal data address)")
    data = ModbusData({("holding", 0): 5, ("holding", 1): failed, ("holding", 2): 7,
                       ("holding", 10): 100, ("holding", 12): 200, ("holding", 14): failed,
                       ("holding", 20): 230, ("holding", 22): unmapped, ("holding", 24): unmapped})
    out = decode_modbus(profile, data)
    assert out.values["current_a"] == {"1": 5.0, "3": 7.0}
    assert out.errors["current_a"].message.startswith("row 2: register 1: exception 4")
    assert out.errors["power_w"].message.startswith("row 3: register 14: exception 4")
    assert out.errors["power_w"].reason is Reason.READ_ERROR
    # Registers the device does not map (exception 2) are rows it does not have.
    assert out.values["voltage_v"] == {"1": 230.0}
    assert "voltage_v" not in out.errors


def test_map_and_default() -> None:
    profile = snmp_profile({
        "on_battery": {"oid": "1.3.6.1.2.1.33.1.4.1.0", "map": {5: 1}, "map_default": 0},
        "load_ratio": {"oid": "1.3.6.1.4.1.9.1.0", "map": {1: 0.5}},
    }, kind="ups")
    for source, expected in ((5, 1), (3, 0), (4, 0)):
        out = decode_snmp(profile, SnmpData(scalars={"1.3.6.1.2.1.33.1.4.1.0": source,
                                                     "1.3.6.1.4.1.9.1.0": 7}))
        assert out.values["on_battery"] == expected
        assert "unexpected value 7" in out.errors["load_ratio"].message


UPS_BATTERY_STATUS = "1.3.6.1.2.1.33.1.2.1.0"  # UPS-MIB upsBatteryStatus
UPS_CHARGE = "1.3.6.1.2.1.33.1.2.4.0"  # UPS-MIB upsEstimatedChargeRemaining, percent


@pytest.mark.parametrize(("status", "expected"), [(2, 0), (3, 1), (4, 1)])
def test_ups_mib_battery_status_low_and_depleted_are_low(status: int, expected: int) -> None:
    profile = shipped_registry()["ups-mib"]
    assert isinstance(profile, SnmpProfile)
    out = decode_snmp(profile, SnmpData(scalars={UPS_BATTERY_STATUS: status, UPS_CHARGE: 12}))
    assert out.values["battery_low"] == expected
    assert "battery_low" not in out.errors
    assert out.values["battery_charge_ratio"] == pytest.approx(0.12)


@pytest.mark.parametrize(("status", "why"), [(1, "not available"), (5, "unexpected value 5")])
def test_ups_mib_unknown_battery_status_is_not_a_healthy_zero(status: int, why: str) -> None:
    profile = shipped_registry()["ups-mib"]
    assert isinstance(profile, SnmpProfile)
    out = decode_snmp(profile, SnmpData(scalars={UPS_BATTERY_STATUS: status}))
    assert "battery_low" not in out.values
    assert why in out.errors["battery_low"].message


def test_ups_mib_charge_above_full_is_rejected() -> None:
    profile = shipped_registry()["ups-mib"]
    assert isinstance(profile, SnmpProfile)
    out = decode_snmp(profile, SnmpData(scalars={UPS_CHARGE: 130}))
    assert "battery_charge_ratio" not in out.values
    assert "above the physical maximum" in out.errors["battery_charge_ratio"].message


def test_range_rejection() -> None:
    profile = snmp_profile({
        "power_w": {"oid": "1.3.6.1.4.1.9.1.0"},
        "outlet_current_a": {"walk": COL, "aggregate": "rows"},
    })
    negative = decode_snmp(profile, SnmpData(scalars={"1.3.6.1.4.1.9.1.0": -20},
                                             tables={COL: {"1": 3, "2": -1}}))
    assert "below the physical minimum" in negative.errors["power_w"].message
    assert "power_w" not in negative.values
    assert negative.values["outlet_current_a"] == {"1": 3.0}  # the implausible row is dropped
    assert negative.errors["outlet_current_a"].message.startswith("row 2: -1 A below the physical minimum")
    cap = 190_000.0
    data = SnmpData(scalars={"1.3.6.1.4.1.9.1.0": 2 * cap + 1}, tables={COL: {"1": 3}})
    assert "twice the rack cap" in decode_snmp(profile, data, rack_cap_w=cap).errors["power_w"].message
    assert decode_snmp(profile, data).values["power_w"] == 2 * cap + 1  # no rack: no cap check
    ok = SnmpData(scalars={"1.3.6.1.4.1.9.1.0": 2 * cap}, tables={COL: {"1": 3}})
    assert decode_snmp(profile, ok, rack_cap_w=cap).values["power_w"] == 2 * cap


def test_range_rejects_nan_and_infinity() -> None:
    profile = modbus_profile({"power_w": {"address": 0, "type": "float32"},
                              "energy_wh": {"address": 2, "type": "float64"}})
    data = ModbusData({("holding", 0): 0xFFC0, ("holding", 1): 0,  # NaN
                       ("holding", 2): 0x7FF0, ("holding", 3): 0, ("holding", 4): 0,
                       ("holding", 5): 0})  # +inf
    out = decode_modbus(profile, data)
    assert out.values == {}
    assert "NaN" in out.errors["power_w"].message
    assert "not a finite number" in out.errors["energy_wh"].message
    assert math.isinf(registers_to_number([0x7FF0, 0, 0, 0], "float64", "ABCD"))


def test_wrong_type_is_unavailable() -> None:
    profile = snmp_profile({"power_w": {"oid": "1.3.6.1.4.1.9.1.0"}})
    out = decode_snmp(profile, SnmpData(scalars={"1.3.6.1.4.1.9.1.0": b"notsupported "}))
    assert "wrong type" in out.errors["power_w"].message
    out = decode_snmp(profile, SnmpData())
    assert "not returned" in out.errors["power_w"].message

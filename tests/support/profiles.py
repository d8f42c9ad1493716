"""Loading the project's device fixtures and their hand-worked goldens, offline and for live tests.

Fixtures (the project's own, synthetic), named <profile> or <profile>--<case>:
  tests/fixtures/snmp/<name>.snmprec + <name>.golden.json
  tests/fixtures/modbus/<name>.yaml  (register words, optional exceptions, and `golden:`)
  tests/fixtures/redfish/<name>/ (a DMTF-layout mockup) + <name>.golden.json
A `<profile>--<case>` fixture is one field behaviour (a sentinel, negative rows, 10x units, an
overflowing scale factor...) read with that profile. A golden is
{"points": {name: number or {row: number}}, "errors": [names] or {name: reason}}: `errors` lists
every point the decode reports in its errors, i.e. unavailable points and points whose dropped
rows are named (such a point is in both); as a mapping it also fixes each point's Reason.
Goldens are worked out by hand from the MIB / register units.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcim.decode import Decoded, Missing, ModbusData, SnmpData, decode_modbus, decode_snmp
from dcim.profile import Profile, ProfileRegistry, RedfishProfile, SnmpProfile, builtin_profile_dir
from dcim.reasons import PointError
from support.redfish import REDFISH_FIXTURES, decode_mockup, read_mockup
from support.snmprec import load_snmprec, snmp_data_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SNMP_FIXTURES = FIXTURES / "snmp"
MODBUS_FIXTURES = FIXTURES / "modbus"
REL = 1e-6  # float32 registers carry ~7 significant digits

def shipped_profile_files() -> dict[str, Path]:
    """Every shipped profile file by name (fragments starting with '_' excluded)."""
    return {p.stem: p for p in sorted(builtin_profile_dir().rglob("*.yaml"))
            if not p.stem.startswith("_")}


def shipped_registry() -> ProfileRegistry:
    """The shipped profiles only (no DCIM_PROFILE_PATH)."""
    return ProfileRegistry.load_dirs([builtin_profile_dir()])


CASE_SEPARATOR = "--"


def profile_of(fixture: str) -> str:
    """The profile a fixture is read with: `ups-mib--sentinels` -> `ups-mib`."""
    return fixture.split(CASE_SEPARATOR, 1)[0]


def snmp_fixture_names() -> list[str]:
    """Every SNMP fixture (profile goldens and field cases)."""
    return sorted(p.stem for p in SNMP_FIXTURES.glob("*.snmprec"))


def modbus_fixture_names() -> list[str]:
    """Every Modbus fixture (profile goldens and field cases)."""
    return sorted(p.stem for p in MODBUS_FIXTURES.glob("*.yaml"))


def case_fixture_names() -> list[str]:
    """The field-behaviour fixtures (`<profile>--<case>`), both protocols."""
    return [n for n in snmp_fixture_names() + modbus_fixture_names() if CASE_SEPARATOR in n]


def snmp_fixture_path(name: str) -> Path:
    return SNMP_FIXTURES / f"{name}.snmprec"


def snmp_golden_path(name: str) -> Path:
    return SNMP_FIXTURES / f"{name}.golden.json"


def redfish_fixture_paths(name: str) -> list[Path]:
    """The mockup directory and golden of a Redfish profile."""
    return [REDFISH_FIXTURES / name / "index.json", REDFISH_FIXTURES / f"{name}.golden.json"]


def modbus_fixture_path(name: str) -> Path:
    return MODBUS_FIXTURES / f"{name}.yaml"


def snmp_fixture(profile: SnmpProfile, fixture: str | None = None) -> SnmpData:
    """The SnmpData a poll of the fixture's agent (default: the profile's own) would return."""
    return snmp_data_for(profile, load_snmprec(snmp_fixture_path(fixture or profile.name)))


_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
            "uint64": ">Q", "float32": ">f", "float64": ">d"}


def encode(type_: str, value: float, order: str = "ABCD") -> list[int]:
    """Register words of a typed value (written independently of dcim.decode on purpose)."""
    number: float = value if type_.startswith("float") else int(value)
    raw = struct.pack(_FORMATS[type_], number)
    pairs = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if order in ("BADC", "DCBA"):
        pairs = [p[::-1] for p in pairs]
    if order in ("CDAB", "DCBA"):
        pairs.reverse()
    return [int.from_bytes(p, "big") for p in pairs]


def modbus_fixture(name: str) -> dict[str, Any]:
    """A Modbus fixture file as data (holding, input, exceptions, golden)."""
    data = yaml.safe_load(modbus_fixture_path(name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}: a fixture is a mapping"
    return data


def modbus_words(fixture: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """Every register word of a fixture, keyed by (function, 0-based address).

    A value is one word (int), consecutive words (list), or a typed value to encode:
    `{float32: 1.5}`, `{int64: 7, order: CDAB}`.
    """
    words: dict[tuple[str, int], int] = {}
    for function in ("holding", "input"):
        for address, spec in (fixture.get(function) or {}).items():
            if isinstance(spec, int):
                values = [spec]
            elif isinstance(spec, list):
                values = list(spec)
            else:
                spec = dict(spec)
                order = spec.pop("order", "ABCD")
                ((type_, value),) = spec.items()
                values = encode(type_, value, order)
            for offset, word in enumerate(values):
                key = (function, int(address) + offset)
                assert key not in words, f"register {key} given twice"
                assert 0 <= word <= 0xFFFF, f"register {key}: {word} is not a 16-bit word"
                words[key] = word
    return words


def modbus_exceptions(fixture: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """(function, address) -> Modbus exception code the device answers for that register."""
    out = {}
    for item in fixture.get("exceptions") or ():
        for a in range(item["address"], item["address"] + item.get("count", 1)):
            out[(item["function"], a)] = item.get("code", 2)
    return out


_EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 4: "server device failure"}


def modbus_data(fixture: Mapping[str, Any]) -> ModbusData:
    """The ModbusData a poll of the fixture device would return (refused registers as Missing)."""
    data = ModbusData(registers=dict(modbus_words(fixture)))
    for key, code in modbus_exceptions(fixture).items():
        data.registers[key] = Missing(f"exception {code} ({_EXCEPTION_NAMES.get(code, 'unknown')})")
    return data


def golden_of(profile: Profile, fixture: str | None = None) -> dict[str, Any]:
    """The hand-worked expectation for a fixture (default: the profile's own)."""
    name = fixture or profile.name
    if isinstance(profile, SnmpProfile):
        golden = json.loads(snmp_golden_path(name).read_text(encoding="utf-8"))
    elif isinstance(profile, RedfishProfile):
        return read_mockup(REDFISH_FIXTURES / f"{name}.golden.json").golden
    else:
        golden = modbus_fixture(name)["golden"]
    errors = golden.get("errors")
    return {"points": golden.get("points") or {}, "errors": [] if errors is None else errors}


def decode_fixture(profile: Profile, fixture: str | None = None) -> Decoded:
    """Decode a fixture (default: the profile's own) offline (no rack cap)."""
    if isinstance(profile, SnmpProfile):
        return decode_snmp(profile, snmp_fixture(profile, fixture))
    if isinstance(profile, RedfishProfile):
        golden = REDFISH_FIXTURES / f"{fixture or profile.name}.golden.json"
        return decode_mockup(profile, read_mockup(golden))
    return decode_modbus(profile, modbus_data(modbus_fixture(fixture or profile.name)))


def assert_golden(values: Mapping[str, Any], errors: Mapping[str, PointError],
                  golden: Mapping[str, Any], label: str) -> None:
    """Decoded points equal the golden ones (tight relative tolerance), errors exactly.

    Every error has a non-empty message; a golden giving reasons fixes them too.
    """
    expected = golden["points"]
    shown = {k: str(v) for k, v in errors.items()}
    assert sorted(errors) == sorted(golden["errors"]), f"{label}: errors differ: {shown}"
    assert all(e.message for e in errors.values()), f"{label}: an empty message: {shown}"
    if isinstance(golden["errors"], Mapping):
        reasons = {k: str(e.reason) for k, e in errors.items()}
        assert reasons == dict(golden["errors"]), f"{label}: reasons differ: {shown}"
    assert sorted(values) == sorted(expected), f"{label}: decoded points differ"
    for name, want in expected.items():
        got = values[name]
        if isinstance(want, Mapping):
            assert isinstance(got, Mapping), f"{label}: {name} should have rows, got {got!r}"
            assert sorted(got) == sorted(want), f"{label}: {name} rows {sorted(got)}"
            for row, w in want.items():
                assert got[row] == pytest.approx(w, rel=REL, abs=1e-9), f"{label}: {name}[{row}]"
        else:
            assert not isinstance(got, Mapping), f"{label}: {name} should be one number"
            assert got == pytest.approx(want, rel=REL, abs=1e-9), f"{label}: {name}"

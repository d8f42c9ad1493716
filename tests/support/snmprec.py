"""Read snmpsim `.snmprec` walks into what an SNMP poll would have fetched (dcim.decode.SnmpData).

A `.snmprec` file has one `oid|tag|value` record per line, sorted by OID. Tags are the BER type
numbers (2 Integer, 4 OctetString, 6 OID, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks,
70 Counter64); a trailing `x` means the value is hex (`4x|414243`). snmpsim variation modules
(`2:numeric`, `4:writecache`) are read from their `value=` parameter when there is one.

`snmp_data_for(profile, records)` answers like the SNMP driver does: every `oid` source (and its
`decimals`) becomes a scalar, present or Missing("noSuchObject"); every `walk` column (and its
`decimals` column) becomes a table of all records strictly under the column, keyed by the index
suffix. Fallback sources are included, so one call serves the whole profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from dcim.decode import Missing, RawValue, SnmpData
from dcim.profile import SnmpProfile, SnmpSource

_INTEGER_TAGS = {"2", "65", "66", "67", "70"}


def oid_key(oid: str) -> tuple[int, ...]:
    """Numeric sort key of a dotted OID."""
    return tuple(int(p) for p in oid.strip(".").split("."))


def _value(tag: str, text: str) -> RawValue | None:
    base, _, variation = tag.partition(":")
    if variation:
        params = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
        if "value" not in params:
            return None  # a variation computing its value at run time: nothing static to read
        text = params["value"]
    hexed = base.endswith("x")
    base = base.removesuffix("x")
    if base in _INTEGER_TAGS:
        return int(text, 16) if hexed else int(text)
    if base in ("4", "64", "68"):  # OctetString, IpAddress, Opaque
        if hexed:
            return bytes.fromhex(text)
        if base == "64":
            return bytes(int(p) for p in text.split("."))
        return text.encode("utf-8")
    if base == "6":
        return text.strip(".")
    if base == "5":
        return Missing("null")
    raise ValueError(f"unknown snmprec tag {tag!r}")


def parse_snmprec(text: str, source: str = "<snmprec>") -> dict[str, RawValue]:
    """OID -> value for every record of a .snmprec text (comments and blank lines skipped)."""
    records: dict[str, RawValue] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            oid, tag, value = line.split("|", 2)
            raw = _value(tag, value)
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: {exc}") from None
        if raw is not None:
            records[oid.strip(".")] = raw
    return records


def load_snmprec(path: Path) -> dict[str, RawValue]:
    """Parse a .snmprec file."""
    return parse_snmprec(path.read_text(encoding="utf-8"), str(path))


def record_oids(path: Path) -> list[str]:
    """The OIDs of a .snmprec file in file order (to check that it is sorted)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("|", 1)[0] for line in lines if line.strip() and not line.startswith("#")]


def _sources(profile: SnmpProfile) -> Iterable[SnmpSource]:
    for point in profile.points.values():
        yield point
        yield from point.fallback


def column(records: Mapping[str, RawValue], oid: str) -> dict[str, RawValue]:
    """Every record strictly under a column OID, keyed by the index suffix (file order)."""
    prefix = oid + "."
    return {k[len(prefix):]: v for k, v in records.items() if k.startswith(prefix)}


def snmp_data_for(profile: SnmpProfile, records: Mapping[str, RawValue]) -> SnmpData:
    """What the SNMP driver would fetch for every source of a profile from these records."""
    data = SnmpData()
    ordered = dict(sorted(records.items(), key=lambda kv: oid_key(kv[0])))
    for src in _sources(profile):
        if src.oid is not None:
            for oid in (src.oid, src.decimals):
                if oid is not None:
                    data.scalars[oid] = ordered.get(oid, Missing("noSuchObject"))
        else:
            assert src.walk is not None
            for oid in (src.walk, src.decimals):
                if oid is not None:
                    data.tables[oid] = column(ordered, oid)
    return data


# .snmprec BER tag -> the type snmpd's pass_persist answers (SnmpdServer values=)
_SNMPD_TYPES = {"2": "integer", "4": "octet", "6": "objectid", "64": "ipaddress",
                "65": "counter", "66": "gauge", "67": "timeticks", "68": "opaque",
                "70": "counter64"}
SYSTEM_GROUP = "1.3.6.1.2.1.1."
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


def snmpd_values(path: Path) -> tuple[dict[str, tuple[str, int | str | bytes]], str | None]:
    """A fixture as net-snmp snmpd serves it: {oid: (type, value)} for SnmpdServer(values=),
    and the sysObjectID (snmpd answers the system group itself; set it with `sysObjectID`)."""
    values: dict[str, tuple[str, int | str | bytes]] = {}
    sys_object_id = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        oid, tag, text = line.split("|", 2)
        raw = _value(tag, text)
        if raw is None:
            continue
        oid = oid.strip(".")
        if oid == SYS_OBJECT_ID:
            sys_object_id = str(raw)
        if oid.startswith(SYSTEM_GROUP):
            continue
        typ = _SNMPD_TYPES[tag.partition(":")[0].removesuffix("x")]
        if isinstance(raw, bytes) and typ == "ipaddress":
            values[oid] = (typ, ".".join(map(str, raw)))
        elif isinstance(raw, bytes | int | str):
            values[oid] = (typ, raw)
    return values, sys_object_id

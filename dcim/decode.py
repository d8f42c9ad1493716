"""Pure conversion of raw wire values into canonical points, following a profile.

Drivers fetch; this module interprets. It never does I/O, so every profile rule (sentinels,
decimals taken from another OID, scale-factor registers, word orders, fallbacks, row
aggregation, physical ranges) is testable without a device.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from dcim.points import POINTS, check_range
from dcim.profile import (
    ModbusProfile,
    ModbusSource,
    Scaling,
    SnmpProfile,
    SnmpSource,
)
from dcim.readings import PointValue

S = TypeVar("S", SnmpSource, ModbusSource)
D = TypeVar("D", "SnmpData", "ModbusData")


class Unavailable(Exception):
    """A source (or a row of it) gives no usable value; the message says why."""


class Rows(dict[str, float]):
    """Per-row values, remembering the rows that were dropped and why."""

    def __init__(self, good: Mapping[str, float], problems: Mapping[str, str]):
        super().__init__(good)
        self.problems = dict(problems)


@dataclass(frozen=True)
class Missing:
    """An SNMP varbind or Modbus register that did not come back, and why."""

    reason: str


RawValue = int | float | bytes | str | Missing


@dataclass
class SnmpData:
    """What an SNMP poll fetched: scalar OIDs and walked columns (index -> value)."""

    scalars: dict[str, RawValue] = field(default_factory=dict)
    tables: dict[str, dict[str, RawValue]] = field(default_factory=dict)


@dataclass
class ModbusData:
    """What a Modbus poll fetched: register words keyed by (function, address)."""

    registers: dict[tuple[str, int], int | Missing] = field(default_factory=dict)


@dataclass
class Decoded:
    """Points decoded from one poll."""

    values: dict[str, PointValue] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    raw: dict[str, object] = field(default_factory=dict)


def _number(raw: RawValue) -> float:
    if isinstance(raw, Missing):
        raise Unavailable(raw.reason)
    if isinstance(raw, bool):
        raise Unavailable("wrong type (boolean)")
    if isinstance(raw, int | float):
        return float(raw)
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        return float(text.strip())
    except ValueError:
        raise Unavailable(f"wrong type (string {text[:24]!r})") from None


def _scale(rule: Scaling, raw: float, exp10: float = 0.0) -> float:
    if math.isnan(raw):
        raise Unavailable("not available (NaN)")
    if raw in rule.not_available:
        raise Unavailable(f"not available (sentinel {raw:g})")
    if rule.not_available_below is not None and raw < rule.not_available_below:
        raise Unavailable(f"not available (sentinel {raw:g} < {rule.not_available_below:g})")
    if rule.map is not None:
        key = int(raw)
        if key in rule.map:
            return rule.map[key]
        if rule.map_default is None:
            raise Unavailable(f"unexpected value {raw:g}")
        return rule.map_default
    return raw * rule.scale * math.pow(10.0, exp10) + rule.offset


def _aggregate(rule: Scaling, rows: Mapping[str, float | Unavailable]) -> PointValue:
    if not rows:
        raise Unavailable("not available (no rows)")
    bad = {k: v for k, v in rows.items() if isinstance(v, Unavailable)}
    good = {k: v for k, v in rows.items() if not isinstance(v, Unavailable)}
    if rule.aggregate == "rows":
        if not good:
            raise Unavailable("; ".join(f"row {k}: {v}" for k, v in bad.items()))
        return Rows(good, {k: str(v) for k, v in bad.items()})
    if bad:
        # A sum over units with one unit missing would be a wrong total: refuse it.
        raise Unavailable("; ".join(f"row {k}: {v}" for k, v in bad.items()))
    values = list(good.values())
    match rule.aggregate:
        case "sum":
            return math.fsum(values)
        case "max":
            return max(values)
        case "min":
            return min(values)
        case "mean":
            return math.fsum(values) / len(values)
    return values[0]


def _check(name: str, value: PointValue, rack_cap_w: float | None) -> tuple[PointValue, str | None]:
    """Apply the point's physical range: a bad scalar fails, bad rows are dropped and named."""
    spec = POINTS[name]
    if not isinstance(value, Mapping):
        reason = check_range(spec, value, rack_cap_w)
        if reason:
            raise Unavailable(reason)
        return value, None
    bad = {row: r for row, v in value.items() if (r := check_range(spec, v, rack_cap_w))}
    if isinstance(value, Rows):
        bad = {**value.problems, **bad}
    if not bad:
        return dict(value), None
    why = "; ".join(f"row {row}: {r}" for row, r in bad.items())
    good = {row: v for row, v in value.items() if row not in bad}
    if not good:
        raise Unavailable(why)
    return good, why


# --- SNMP -------------------------------------------------------------------------------------


def _snmp_rows(src: SnmpSource, data: SnmpData) -> dict[str, tuple[str, RawValue]]:
    """Rows of a walked column as row key -> (full index, raw), filtered by index_suffix."""
    assert src.walk is not None
    column = data.tables.get(src.walk, {})
    if src.index_suffix is None:
        return {idx: (idx, raw) for idx, raw in column.items()}
    suffix = src.index_suffix
    rows = {}
    for idx, raw in column.items():
        if idx == suffix:
            rows["1"] = (idx, raw)
        elif idx.endswith("." + suffix):
            rows[idx[: -len(suffix) - 1]] = (idx, raw)
    return rows


def _snmp_exp10(src: SnmpSource, data: SnmpData, index: str | None) -> float:
    if src.decimals is None:
        return 0.0
    if index is None:
        raw = data.scalars.get(src.decimals, Missing("decimals not returned"))
    else:
        raw = data.tables.get(src.decimals, {}).get(index, Missing("decimals not returned"))
    try:
        return -_number(raw)
    except Unavailable as exc:
        raise Unavailable(f"decimals {src.decimals}: {exc}") from None


def read_snmp_source(src: SnmpSource, data: SnmpData) -> PointValue:
    """One SNMP source's value, or Unavailable with the reason."""
    if src.oid is not None:
        raw = data.scalars.get(src.oid, Missing("not returned"))
        return _scale(src, _number(raw), _snmp_exp10(src, data, None))
    results: dict[str, float | Unavailable] = {}
    for row, (index, raw) in _snmp_rows(src, data).items():
        try:
            results[row] = _scale(src, _number(raw), _snmp_exp10(src, data, index))
        except Unavailable as exc:
            results[row] = exc
    return _aggregate(src, results)


def _snmp_raw(src: SnmpSource, data: SnmpData) -> object:
    if src.oid is not None:
        raw = data.scalars.get(src.oid)
        return _printable(raw)
    return {row: _printable(raw) for row, (_, raw) in _snmp_rows(src, data).items()}


def _printable(raw: RawValue | None) -> object:
    if isinstance(raw, Missing):
        return raw.reason
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return raw


def _first_usable(name: str, sources: Sequence[S], read: Callable[[S, D], PointValue],
                  raw: Callable[[S, D], object], data: D, rack_cap_w: float | None,
                  out: Decoded) -> None:
    reasons = []
    for i, src in enumerate(sources):
        try:
            out.values[name], partial = _check(name, read(src, data), rack_cap_w)
            out.raw[name] = raw(src, data)
            if partial:
                out.errors[name] = partial
            return
        except Unavailable as exc:
            reasons.append(f"fallback {i}: {exc}" if i else str(exc))
    out.raw[name] = raw(sources[0], data)
    out.errors[name] = "; ".join(reasons)


def decode_snmp(profile: SnmpProfile, data: SnmpData, rack_cap_w: float | None = None,
                only: frozenset[str] | None = None) -> Decoded:
    """Every point of an SNMP profile from fetched data."""
    out = Decoded()
    for name, point in profile.points.items():
        if only is not None and name not in only:
            continue
        _first_usable(name, [point, *point.fallback], read_snmp_source, _snmp_raw, data,
                      rack_cap_w, out)
    return out



# --- Modbus -----------------------------------------------------------------------------------

_STRUCT = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
    "uint64": ">Q", "float32": ">f", "float64": ">d",
}


def registers_to_number(words: Sequence[int], type_: str, order: str) -> float:
    """Decode 16-bit register words into a number, honouring byte and word order."""
    if order in ("CDAB", "DCBA"):
        words = list(reversed(words))
    data = b"".join(
        (w & 0xFFFF).to_bytes(2, "little" if order in ("BADC", "DCBA") else "big") for w in words
    )
    value: float = struct.unpack(_STRUCT[type_], data)[0]
    return value


def number_to_registers(value: float, type_: str, order: str) -> list[int]:
    """Encode a number into 16-bit register words (inverse of registers_to_number)."""
    fmt = _STRUCT[type_]
    number: float | int = value if type_.startswith("float") else round(value)
    data = struct.pack(fmt, number)
    swap_bytes = order in ("BADC", "DCBA")
    words = [int.from_bytes(data[i:i + 2], "little" if swap_bytes else "big")
             for i in range(0, len(data), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    return words


def _words(data: ModbusData, function: str, address: int, count: int) -> list[int]:
    words = []
    for a in range(address, address + count):
        word = data.registers.get((function, a), Missing("not read"))
        if isinstance(word, Missing):
            raise Unavailable(f"register {a}: {word.reason}")
        words.append(word)
    return words


def read_modbus_source(src: ModbusSource, data: ModbusData) -> PointValue:
    """One Modbus source's value, or Unavailable with the reason."""
    exp10 = 0.0
    if src.scale_factor is not None:
        sf = registers_to_number(
            _words(data, src.scale_factor.function, src.scale_factor.address, 1), "int16", "ABCD"
        )
        if sf == -32768:
            raise Unavailable("not available (scale factor not implemented)")
        exp10 = sf
    results: dict[str, float | Unavailable] = {}
    for row, address in src.row_addresses():
        try:
            raw = registers_to_number(_words(data, src.function, address, src.width),
                                      src.type, src.order)
            results[row] = _scale(src, raw, exp10)
        except Unavailable as exc:
            results[row] = exc
    if src.rows == 1 and src.aggregate != "rows":
        only_row = results["1"]
        if isinstance(only_row, Unavailable):
            raise only_row
        return only_row
    return _aggregate(src, results)


def _modbus_raw(src: ModbusSource, data: ModbusData) -> object:
    out = {}
    for row, address in src.row_addresses():
        words = [data.registers.get((src.function, a)) for a in range(address, address + src.width)]
        out[row] = [w.reason if isinstance(w, Missing) else w for w in words]
    return out["1"] if src.rows == 1 else out


def decode_modbus(profile: ModbusProfile, data: ModbusData, rack_cap_w: float | None = None,
                  only: frozenset[str] | None = None) -> Decoded:
    """Every point of a Modbus profile from fetched registers."""
    out = Decoded()
    for name, point in profile.points.items():
        if only is not None and name not in only:
            continue
        _first_usable(name, [point, *point.fallback], read_modbus_source, _modbus_raw, data,
                      rack_cap_w, out)
    return out


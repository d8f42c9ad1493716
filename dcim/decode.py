"""Pure conversion of raw wire values into canonical points, following a profile.

Drivers fetch; this module interprets. It never does I/O, so every profile rule (sentinels,
decimals taken from another OID, scale-factor registers, word orders, fallbacks, row
aggregation, physical ranges, plausibility across points) is testable without a device.

Every value is checked where it is read: each row against its point's physical range before
any aggregate, the exponent a device supplies against SCALE_EXPONENT_RANGE, and the decoded
points of the device against the rules of its kind (dcim/points.py RULES). A failure is a
PointError with a typed Reason (dcim/reasons.py) and a specific message.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from dcim.points import POINTS, RULES, SCALE_EXPONENT_RANGE, AtLeast, Kind, PowerWithinVa, check_range
from dcim.profile import (
    ModbusProfile,
    ModbusSource,
    Profile,
    Scaling,
    SnmpProfile,
    SnmpSource,
)
from dcim.readings import PointValue
from dcim.reasons import PointError, Reason, worst

S = TypeVar("S", SnmpSource, ModbusSource)
D = TypeVar("D", "SnmpData", "ModbusData")


class Unavailable(Exception):
    """A source (or a row of it) gives no usable value: a typed reason and the message."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message

    def error(self) -> PointError:
        """As the PointError a poll reports."""
        return PointError(self.reason, self.message)


class Rows(dict[str, float]):
    """Per-row values, remembering the rows that were dropped and why."""

    def __init__(self, good: Mapping[str, float], problems: Mapping[str, Unavailable]):
        super().__init__(good)
        self.problems = dict(problems)


@dataclass(frozen=True)
class Missing:
    """An SNMP varbind or Modbus register that did not come back, and why.

    `kind` UNSUPPORTED means the device does not have it (noSuchObject, Null, Modbus exception
    2): a row like that is absent, a point like that is unsupported, neither is counted.
    """

    reason: str
    kind: Reason = Reason.UNSUPPORTED


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
    errors: dict[str, PointError] = field(default_factory=dict)
    raw: dict[str, object] = field(default_factory=dict)


class _Context:
    """What a row check needs: the point, the device kind, the rack cap. Built per point per
    poll, so a plain slotted class (a frozen dataclass costs several times more to build)."""

    __slots__ = ("kind", "point", "rack_cap_w", "spec")

    def __init__(self, point: str, kind: Kind, rack_cap_w: float | None) -> None:
        self.point = point
        self.kind = kind
        self.rack_cap_w = rack_cap_w
        self.spec = POINTS[point]

    def check(self, value: float) -> float:
        why = check_range(self.spec, value, self.rack_cap_w, self.kind)
        if why:
            raise Unavailable(Reason.OUT_OF_RANGE, why)
        return value


def _number(raw: RawValue) -> float:
    if isinstance(raw, Missing):
        raise Unavailable(raw.kind, raw.reason)
    if isinstance(raw, bool):
        raise Unavailable(Reason.WRONG_TYPE, "wrong type (boolean)")
    if isinstance(raw, int | float):
        try:
            return float(raw)
        except OverflowError:
            raise Unavailable(Reason.OUT_OF_RANGE, f"{raw} does not fit a number") from None
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        return float(text.strip())
    except ValueError:
        raise Unavailable(Reason.WRONG_TYPE, f"wrong type (string {text[:24]!r})") from None


def _exponent(value: float, what: str) -> float:
    """A device-supplied power of ten, refused outside SCALE_EXPONENT_RANGE."""
    low, high = SCALE_EXPONENT_RANGE
    if not low <= value <= high or value != int(value):
        raise Unavailable(Reason.BAD_SCALE, f"{what} {value:g} outside {low}..{high}")
    return value


def _scale(rule: Scaling, raw: float, exp10: float = 0.0) -> float:
    if math.isnan(raw):
        raise Unavailable(Reason.SENTINEL, "not available (NaN)")
    if raw in rule.not_available:
        raise Unavailable(Reason.SENTINEL, f"not available (sentinel {raw:g})")
    if rule.not_available_below is not None and raw < rule.not_available_below:
        raise Unavailable(Reason.SENTINEL,
                          f"not available (sentinel {raw:g} < {rule.not_available_below:g})")
    if rule.map is not None:
        key = int(raw) if math.isfinite(raw) and raw == int(raw) else None
        if key is not None and key in rule.map:
            return rule.map[key]
        if rule.map_default is None:
            raise Unavailable(Reason.OUT_OF_RANGE, f"unexpected value {raw:g}")
        return rule.map_default
    return raw * rule.scale * math.pow(10.0, exp10) + rule.offset


def _aggregate(rule: Scaling, rows: Mapping[str, float | Unavailable]) -> PointValue:
    """One value (or the rows) from checked rows; rows the device does not populate are gone."""
    if not rows:
        raise Unavailable(Reason.UNSUPPORTED, "not available (no rows)")
    bad = {k: v for k, v in rows.items() if isinstance(v, Unavailable)}
    good = {k: v for k, v in rows.items() if not isinstance(v, Unavailable)}
    if rule.aggregate == "rows":
        if not good:
            raise _rows_unavailable(bad)
        return Rows(good, bad)
    if rule.aggregate == "any" and any(good.values()):
        return 1.0  # one alarming row is enough; unreadable others cannot clear it
    if bad:
        # A sum over units with one unit missing would be a wrong total: refuse it.
        raise _rows_unavailable(bad)
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
        case "any":
            return 0.0
    return values[0]


def _rows_unavailable(bad: Mapping[str, Unavailable]) -> Unavailable:
    reason = worst([e.error() for e in bad.values()])
    return Unavailable(reason, "; ".join(f"row {k}: {v.message}" for k, v in bad.items()))


def _populated(rows: Mapping[str, RawValue]) -> dict[str, RawValue]:
    """Rows without those the device answers Null/noSuchInstance for (unused phases)."""
    return {k: v for k, v in rows.items()
            if not (isinstance(v, Missing) and v.kind is Reason.UNSUPPORTED)}


def _check(ctx: _Context, value: PointValue) -> tuple[PointValue, PointError | None]:
    """Apply the point's physical range to the result: a bad scalar fails, bad rows drop.

    Rows come from a read that range-checked each one already (`Rows.problems` holds those
    refused), so only a plain mapping is checked row by row here."""
    if not isinstance(value, Mapping):
        return ctx.check(value), None
    if isinstance(value, Rows):
        bad, good = dict(value.problems), dict(value)
    else:
        bad, good = {}, {}
        for row, v in value.items():
            try:
                good[row] = ctx.check(v)
            except Unavailable as exc:
                bad[row] = exc
    if not bad:
        return good, None
    why = _rows_unavailable(bad)
    if not good:
        raise why
    return good, why.error()


# --- SNMP -------------------------------------------------------------------------------------


# Defaults of dict.get, made once rather than per point per poll.
_NOT_RETURNED = Missing("not returned")
_DECIMALS_MISSING = Missing("decimals not returned", Reason.READ_ERROR)


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
        raw = data.scalars.get(src.decimals, _DECIMALS_MISSING)
    else:
        raw = data.tables.get(src.decimals, {}).get(index, _DECIMALS_MISSING)
    try:
        return -_exponent(_number(raw), "decimal digits")
    except Unavailable as exc:
        raise Unavailable(exc.reason, f"decimals {src.decimals}: {exc.message}") from None


def read_snmp_source(src: SnmpSource, data: SnmpData, ctx: _Context) -> PointValue:
    """One SNMP source's value (every row range-checked), or Unavailable with the reason."""
    if src.oid is not None:
        raw = data.scalars.get(src.oid, _NOT_RETURNED)
        return ctx.check(_scale(src, _number(raw), _snmp_exp10(src, data, None)))
    results: dict[str, float | Unavailable] = {}
    rows = _snmp_rows(src, data)
    populated = _populated({row: raw for row, (_, raw) in rows.items()})
    if rows and not populated:
        raise Unavailable(Reason.UNSUPPORTED, f"not available ({len(rows)} rows, none populated)")
    for row in populated:
        index, raw = rows[row]
        try:
            results[row] = ctx.check(_scale(src, _number(raw), _snmp_exp10(src, data, index)))
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


def _first_usable(ctx: _Context, sources: Sequence[S],
                  read: Callable[[S, D, _Context], PointValue],
                  raw: Callable[[S, D], object], data: D, out: Decoded) -> None:
    failures: list[Unavailable] = []
    for src in sources:
        try:
            out.values[ctx.point], partial = _check(ctx, read(src, data, ctx))
            out.raw[ctx.point] = raw(src, data)
            if partial:
                out.errors[ctx.point] = partial
            return
        except Unavailable as exc:
            failures.append(exc)
    out.raw[ctx.point] = raw(sources[0], data)
    message = "; ".join(f"fallback {i}: {e.message}" if i else e.message
                        for i, e in enumerate(failures))
    out.errors[ctx.point] = PointError(worst([e.error() for e in failures]), message)


def decode_snmp(profile: SnmpProfile, data: SnmpData, rack_cap_w: float | None = None,
                only: frozenset[str] | None = None) -> Decoded:
    """Every point of an SNMP profile from fetched data."""
    out = Decoded()
    for name, point in profile.points.items():
        if only is not None and name not in only:
            continue
        _first_usable(_Context(name, profile.kind, rack_cap_w), [point, *point.fallback],
                      read_snmp_source, _snmp_raw, data, out)
    return check_plausible(profile, out)


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
        word = data.registers.get((function, a), Missing("not read", Reason.READ_ERROR))
        if isinstance(word, Missing):
            raise Unavailable(word.kind, f"register {a}: {word.reason}")
        words.append(word)
    return words


def _unmapped(data: ModbusData, function: str, address: int, count: int) -> bool:
    """Whether the device refused this value's registers as not mapped (exception 1 or 2)."""
    return any(isinstance(w := data.registers.get((function, a)), Missing)
               and w.kind is Reason.UNSUPPORTED for a in range(address, address + count))


def read_modbus_source(src: ModbusSource, data: ModbusData, ctx: _Context) -> PointValue:
    """One Modbus source's value (every row range-checked), or Unavailable with the reason."""
    exp10 = 0.0
    if src.scale_factor is not None:
        sf = registers_to_number(
            _words(data, src.scale_factor.function, src.scale_factor.address, 1), "int16", "ABCD"
        )
        if sf == -32768:
            raise Unavailable(Reason.SENTINEL, "not available (scale factor not implemented)")
        exp10 = _exponent(sf, f"scale factor (register {src.scale_factor.address})")
    results: dict[str, float | Unavailable] = {}
    addresses = src.row_addresses()
    populated = [(row, a) for row, a in addresses
                 if src.rows == 1 or not _unmapped(data, src.function, a, src.width)]
    if not populated:
        raise Unavailable(Reason.UNSUPPORTED, f"not available ({len(addresses)} rows, none mapped)")
    for row, address in populated:
        try:
            raw = registers_to_number(_words(data, src.function, address, src.width),
                                      src.type, src.order)
            results[row] = ctx.check(_scale(src, raw, exp10))
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
        _first_usable(_Context(name, profile.kind, rack_cap_w), [point, *point.fallback],
                      read_modbus_source, _modbus_raw, data, out)
    return check_plausible(profile, out)



# --- Plausibility across points ---------------------------------------------------------------


def _total(value: PointValue) -> float:
    return math.fsum(value.values()) if isinstance(value, Mapping) else value


def _rows_of(value: PointValue) -> dict[str, float]:
    return dict(value) if isinstance(value, Mapping) else {"1": value}


def _apparent(current: PointValue, voltage: PointValue,
              line_to_line: bool) -> tuple[float, float, float] | None:
    """(VA, total A, mean V) the current and voltage rows carry, or None if rows do not pair."""
    amps, volts = _rows_of(current), _rows_of(voltage)
    if len(volts) == 1:
        (v,) = volts.values()
        pairs = [(i, v) for i in amps.values()]
    elif set(volts) <= set(amps):
        # Current rows without a voltage row (an ePDU's neutral) carry no power of their own.
        pairs = [(amps[k], volts[k]) for k in volts]
    else:
        return None
    va = math.fsum(i * v for i, v in pairs) / (math.sqrt(3) if line_to_line else 1.0)
    return va, math.fsum(i for i, _ in pairs), math.fsum(volts.values()) / len(volts)


def _violation(rule: PowerWithinVa | AtLeast, values: Mapping[str, PointValue],
               line_to_line: bool) -> str | None:
    if rule.unless is not None and _total(values[rule.unless]) == 1:
        return None
    if isinstance(rule, PowerWithinVa):
        carried = _apparent(values[rule.current], values[rule.voltage], line_to_line)
        if carried is None:
            return None
        va, amps, volts = carried
        watts = _total(values[rule.power])
        if watts > va * (1 + rule.tolerance) + rule.slack_w:
            return f"{watts:g} W is more than the {va:.4g} VA that {amps:.4g} A at {volts:.4g} V carry"
        if va >= rule.min_va and watts < rule.min_power_factor * va:
            return f"{watts:g} W while {amps:.4g} A flows at {volts:.4g} V"
        return None
    larger, smaller = _total(values[rule.larger]), _total(values[rule.smaller])
    if larger < smaller * (1 - rule.tolerance) - rule.slack:
        unit = POINTS[rule.smaller].unit
        return (f"{rule.why}: {rule.larger} {larger:g} {unit}, "
                f"{rule.smaller} {smaller:g} {unit}")
    return None


def _rule_points(rule: PowerWithinVa | AtLeast) -> tuple[str, ...]:
    needed = ((rule.power, rule.current, rule.voltage) if isinstance(rule, PowerWithinVa)
              else (rule.larger, rule.smaller))
    return (*needed, rule.unless) if rule.unless is not None else needed


def check_plausible(profile: Profile, out: Decoded) -> Decoded:
    """Refuse every point of a violated rule of the device's kind (dcim/points.py RULES).

    A rule applies only when all its points were read whole (a point with dropped rows would
    make volts x amps too small) and, for `unless`, the condition point too.
    """
    complete = {k: v for k, v in out.values.items() if k not in out.errors}
    refused: dict[str, str] = {}
    for rule in RULES.get(profile.kind, ()):
        if not all(p in complete for p in _rule_points(rule)):
            continue
        why = _violation(rule, complete, profile.line_to_line_voltage)
        if why is not None:
            for point in rule.refuses:
                refused.setdefault(point, why)
    for point, why in refused.items():
        del out.values[point]
        out.errors[point] = PointError(Reason.IMPLAUSIBLE, why)
    return out

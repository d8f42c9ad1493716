"""Profile -> wire: serve canonical values exactly as a profile expects to read them.

Each point's source is inverted: divide by the scale (and 10^-decimals or 10^SF), place rows
under the walked column with the profile's index_suffix, encode Modbus registers with
`number_to_registers`, fill scale-factor and decimals registers. dcim's own decoder then reads
the image back, which gives the values a perfect poll of the device must return.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dcim.decode import (
    Decoded,
    Missing,
    ModbusData,
    SnmpData,
    decode_modbus,
    decode_snmp,
    number_to_registers,
)
from dcim.profile import ModbusProfile, ModbusSource, Profile, Scaling, SnmpProfile, SnmpSource
from dcim.sim.canonical import PointValue, neutral_current_a
from dcim.sim.lies import POWER_POINTS
from dcim.sim.redfish import RedfishEncoder
from dcim.sim.vendors import VendorHints
from dcim.snmp.codec import OID, Counter32, Counter64, Gauge32, TimeTicks, Value, parse_oid

log = logging.getLogger(__name__)

SnmpImage = dict[OID, Value]
ModbusImage = dict[tuple[str, int], int]

_SYS_DESCR = parse_oid("1.3.6.1.2.1.1.1.0")
_SYS_OBJECT_ID = parse_oid("1.3.6.1.2.1.1.2.0")
_SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
_SYS_NAME = parse_oid("1.3.6.1.2.1.1.5.0")
_INT32 = (-(2 ** 31), 2 ** 31 - 1)
_INT_RANGES = {
    "int16": (-(2 ** 15), 2 ** 15 - 1), "uint16": (0, 2 ** 16 - 1),
    "int32": (-(2 ** 31), 2 ** 31 - 1), "uint32": (0, 2 ** 32 - 1),
    "int64": (-(2 ** 63), 2 ** 63 - 1), "uint64": (0, 2 ** 64 - 1),
}


class EncodeError(ValueError):
    """A canonical value that the profile's wire format cannot carry."""


def _unmap(rule: Scaling, value: float, preferred: Mapping[float, int] | None) -> int:
    assert rule.map is not None
    if preferred and value in preferred:
        return preferred[value]
    for raw, mapped in rule.map.items():
        if mapped == value:
            return raw
    if rule.map_default == value:
        # any code outside the map means the default
        return next(i for i in range(1_000) if i not in rule.map)
    raise EncodeError(f"value {value:g} has no code in the map")


def unscale(rule: Scaling, value: float, exp10: float = 0.0,
            preferred: Mapping[float, int] | None = None) -> float:
    """The raw number that `rule` (with 10^exp10) turns back into `value`."""
    if rule.map is not None:
        return float(_unmap(rule, value, preferred))
    return (value - rule.offset) / rule.scale / math.pow(10.0, exp10)


def _spread(value: PointValue, rows: Sequence[str], aggregate: str,
            neutral: bool) -> list[float]:
    """One value per wire row: the model's rows in order, or a total shared out."""
    if isinstance(value, dict):
        values = list(value.values())
        if neutral and len(rows) == len(values) + 1:
            values.append(neutral_current_a(value))
        if len(values) != len(rows):
            raise EncodeError(f"{len(values)} model rows for {len(rows)} wire rows")
        return values
    if aggregate == "sum":
        return [value / len(rows)] * len(rows)
    return [value] * len(rows)


def _default_rows(value: PointValue) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, dict) else ("1",)


def _snmp_typed(raw: float, kind: str, wrap: float | None) -> Value:
    number = round(raw)
    if wrap:
        number %= int(wrap)
    if kind == "string":
        return str(number).encode()
    if kind == "counter64":
        return Counter64(number % 2 ** 64)
    if kind in ("gauge", "counter32"):
        number = max(0, number) % 2 ** 32
        return Counter32(number) if kind == "counter32" else Gauge32(number)
    if not _INT32[0] <= number <= _INT32[1]:
        return Gauge32(max(0, number) % 2 ** 32)
    return number


@dataclass(frozen=True)
class _SnmpSlot:
    point: str
    source: SnmpSource


class SnmpEncoder:
    """Encodes a device's canonical values into the OID -> value map its profile reads."""

    def __init__(self, profile: SnmpProfile, hints: VendorHints, device_id: str,
                 old_firmware: bool = False):
        self.profile = profile
        self.hints = hints
        self._slots = []
        for name, point in profile.points.items():
            use_fallback = old_firmware and name in hints.firmware_without and point.fallback
            self._slots.append(_SnmpSlot(name, point.fallback[0] if use_fallback else point))
        self._oids: dict[str, OID] = {}
        self._static: SnmpImage = {
            _SYS_DESCR: f"{profile.vendor or 'generic'} {profile.description} (dcim simulator)"
            .encode(),
            _SYS_NAME: device_id.encode(),
        }
        if profile.sys_object_id:
            self._static[_SYS_OBJECT_ID] = parse_oid(profile.sys_object_id[0])
        self._warned: set[str] = set()

    def _oid(self, text: str) -> OID:
        oid = self._oids.get(text)
        if oid is None:
            oid = self._oids[text] = parse_oid(text)
        return oid

    def encode(self, values: Mapping[str, PointValue], uptime_s: float = 0.0) -> SnmpImage:
        """The agent's MIB for these values (points the model lacks are left out)."""
        image = dict(self._static)
        image[_SYS_UPTIME] = TimeTicks(int(uptime_s * 100) % 2 ** 32)
        for slot in self._slots:
            value = values.get(slot.point)
            if value is None:
                self._warn(slot.point, "the simulator has no value for it")
                continue
            try:
                self._encode_source(slot.point, slot.source, value, image)
            except EncodeError as exc:
                self._warn(slot.point, str(exc))
        return image

    def _warn(self, point: str, why: str) -> None:
        if point not in self._warned:
            self._warned.add(point)
            log.warning("%s: point %s not served: %s", self.profile.name, point, why)

    def _encode_source(self, point: str, src: SnmpSource, value: PointValue,
                       image: SnmpImage) -> None:
        hints = self.hints
        digits = hints.decimals.get(point, 0) if src.decimals else 0
        preferred = hints.map_raw.get(point)
        wrap = src.wrap or (hints.energy_wrap if point == "energy_wh" else None)
        if src.oid is not None:
            if isinstance(value, dict):
                value = sum(value.values()) / len(value)
            kind = hints.types.get(src.oid, hints.default_type)
            raw = unscale(src, value, -digits, preferred)
            image[self._oid(src.oid)] = _snmp_typed(raw, kind, wrap)
            if src.decimals:
                image[self._oid(src.decimals)] = digits
            return
        assert src.walk is not None
        rows = hints.rows.get(src.walk) or _default_rows(value)
        kind = hints.types.get(src.walk, hints.default_type)
        per_row = _spread(value, rows, src.aggregate, src.walk == hints.neutral_column)
        suffix = f".{src.index_suffix}" if src.index_suffix else ""
        for row, v in zip(rows, per_row, strict=True):
            index = f"{row}{suffix}"
            raw = unscale(src, v, -digits, preferred)
            image[self._oid(f"{src.walk}.{index}")] = _snmp_typed(raw, kind, wrap)
            if src.decimals:
                image[self._oid(f"{src.decimals}.{index}")] = digits

    def misreport(self, mode: str, image: SnmpImage) -> bool:
        """Rewrite the image as a lying agent would (dcim/sim/lies.py WIRE_LIES); False when
        this device's profile gives the mode nothing to work with."""
        changed = False
        for slot in self._slots:
            src = slot.source
            if mode == "scale-overflow" and src.decimals:
                column, value = parse_oid(src.decimals), 400
            elif mode == "sentinel" and slot.point in POWER_POINTS and src.not_available:
                column, value = parse_oid(src.oid or src.walk or ""), int(src.not_available[0])
            elif mode == "negative-rows" and slot.point in POWER_POINTS and src.walk:
                rows = sorted(k for k in image if k[:len(parse_oid(src.walk))] == parse_oid(src.walk))
                if len(rows) > 1:  # a UPS on bypass: -4 / 469 / -26 W
                    image[rows[0]] = _snmp_typed(-4, "integer", None)
                    image[rows[-1]] = _snmp_typed(-26, "integer", None)
                    changed = True
                continue
            else:
                continue
            for key in [k for k in image if k[:len(column)] == column]:
                image[key] = _snmp_typed(value, "integer", None)
                changed = True
        return changed

    def decode(self, image: Mapping[OID, Value]) -> Decoded:
        """What dcim's decoder reads from this image (a perfect, complete poll)."""
        return decode_snmp(self.profile, snmp_data(self.profile, image))


def _columns(profile: SnmpProfile) -> tuple[set[str], set[str]]:
    scalars: set[str] = set()
    columns: set[str] = set()
    for point in profile.points.values():
        for src in (point, *point.fallback):
            if src.oid is not None:
                scalars.add(src.oid)
                if src.decimals:
                    scalars.add(src.decimals)
            else:
                assert src.walk is not None
                columns.add(src.walk)
                if src.decimals:
                    columns.add(src.decimals)
    return scalars, columns


def _plain(value: Value) -> int | float | bytes | str | Missing:
    if isinstance(value, int | bytes | str):
        return value
    return Missing(f"type {type(value).__name__}")


def snmp_data(profile: SnmpProfile, image: Mapping[OID, Value]) -> SnmpData:
    """The SnmpData a complete walk of `image` would give dcim's decoder."""
    scalars, columns = _columns(profile)
    data = SnmpData()
    for name in scalars:
        value = image.get(parse_oid(name))
        data.scalars[name] = Missing("noSuchObject") if value is None else _plain(value)
    prefixes = {c: parse_oid(c) for c in columns}
    for column in columns:
        data.tables[column] = {}
    for oid, value in image.items():
        for column, prefix in prefixes.items():
            if oid[: len(prefix)] == prefix and len(oid) > len(prefix):
                data.tables[column][".".join(map(str, oid[len(prefix):]))] = _plain(value)
    return data


@dataclass(frozen=True)
class _ModbusSlot:
    point: str
    source: ModbusSource


def _needed_sf(value: float, src: ModbusSource) -> int:
    low, high = _INT_RANGES.get(src.type, (-(2 ** 63), 2 ** 63 - 1))
    raw = abs(unscale(src, value))
    if raw == 0:
        return -1
    # headroom x4 so the same exponent keeps fitting as the load moves
    return max(-3, math.ceil(math.log10(raw * 4.0 / max(abs(low), high))))


class ModbusEncoder:
    """Encodes a device's canonical values into the registers its profile reads."""

    def __init__(self, profile: ModbusProfile, hints: VendorHints):
        self.profile = profile
        self.hints = hints
        self._slots = [_ModbusSlot(n, p) for n, p in profile.points.items()]
        # a real meter's scale factors are fixed: choose each once, raise it only if needed
        self._sf: dict[tuple[str, int], int] = {}
        self._warned: set[str] = set()

    def encode(self, values: Mapping[str, PointValue]) -> ModbusImage:
        """The register image for these values (points the model lacks are left out)."""
        image: ModbusImage = {("holding", a): w for a, w in self.hints.registers.items()}
        present = [(s, values[s.point]) for s in self._slots if values.get(s.point) is not None]
        for slot in self._slots:
            if values.get(slot.point) is None and slot.point not in self._warned:
                self._warned.add(slot.point)
                log.warning("%s: point %s not served: the simulator has no value for it",
                            self.profile.name, slot.point)
        for slot, value in present:
            sf = slot.source.scale_factor
            if sf is None:
                continue
            key: tuple[str, int] = (sf.function, sf.address)
            rows = _spread(value, [str(i) for i in range(slot.source.rows)],
                           slot.source.aggregate, False)
            need = max(_needed_sf(v, slot.source) for v in rows)
            if key not in self._sf or need > self._sf[key]:
                self._sf[key] = need
        for key, exp in self._sf.items():
            image[key] = number_to_registers(exp, "int16", "ABCD")[0]
        for slot, value in present:
            try:
                self._encode_source(slot.point, slot.source, value, image)
            except EncodeError as exc:
                if slot.point not in self._warned:
                    self._warned.add(slot.point)
                    log.warning("%s: point %s not served: %s", self.profile.name, slot.point, exc)
        return image

    def misreport(self, mode: str, image: ModbusImage) -> bool:
        """Rewrite the registers as a lying device would (dcim/sim/lies.py WIRE_LIES); False
        when this device's profile gives the mode nothing to work with."""
        changed = False
        for slot in self._slots:
            src = slot.source
            if mode == "scale-overflow" and src.scale_factor is not None:
                sf = src.scale_factor
                image[(sf.function, sf.address)] = number_to_registers(400, "int16", "ABCD")[0]
                changed = True
            elif mode == "sentinel" and slot.point in POWER_POINTS and src.not_available:
                words = number_to_registers(src.not_available[0], src.type, src.order)
                for _, address in src.row_addresses():
                    for i, word in enumerate(words):
                        image[(src.function, address + i)] = word
                changed = True
        return changed

    def register_span(self) -> dict[str, tuple[int, int]]:
        """Per function, the lowest and highest register any image of this device can hold."""
        spans: dict[str, tuple[int, int]] = {}

        def add(function: str, low: int, high: int) -> None:
            old_low, old_high = spans.get(function, (low, high))
            spans[function] = (min(old_low, low), max(old_high, high))

        for address in self.hints.registers:
            add("holding", address, address)
        for slot in self._slots:
            src = slot.source
            if src.scale_factor is not None:
                add(src.scale_factor.function, src.scale_factor.address, src.scale_factor.address)
            addresses = [a for _, a in src.row_addresses()]
            add(src.function, min(addresses), max(addresses) + src.width - 1)
        return spans

    def _encode_source(self, point: str, src: ModbusSource, value: PointValue,
                       image: ModbusImage) -> None:
        exp = self._sf[(src.scale_factor.function, src.scale_factor.address)] \
            if src.scale_factor else 0
        preferred = self.hints.map_raw.get(point)
        addresses = src.row_addresses()
        per_row = _spread(value, [r for r, _ in addresses], src.aggregate, False)
        for (_, address), v in zip(addresses, per_row, strict=True):
            raw = unscale(src, v, exp, preferred)
            if not src.type.startswith("float"):
                raw = round(raw)
                low, high = _INT_RANGES[src.type]
                if src.wrap:
                    raw %= int(src.wrap)
                elif low == 0:
                    raw = max(0, raw) % (high + 1)  # unsigned accumulators roll over
                if not low <= raw <= high:
                    raise EncodeError(f"raw {raw} does not fit {src.type}")
            for i, word in enumerate(number_to_registers(raw, src.type, src.order)):
                image[(src.function, address + i)] = word

    def decode(self, image: Mapping[tuple[str, int], int]) -> Decoded:
        """What dcim's decoder reads from this image (every register read)."""
        return decode_modbus(self.profile, ModbusData(registers=dict(image)))


Encoder = SnmpEncoder | ModbusEncoder | RedfishEncoder


def encoder_for(profile: Profile, hints: VendorHints, device_id: str,
                old_firmware: bool = False, unit: int = 1) -> Encoder:
    """The encoder matching a profile's protocol (`unit`: a Redfish device's slot)."""
    if isinstance(profile, SnmpProfile):
        return SnmpEncoder(profile, hints, device_id, old_firmware)
    if isinstance(profile, ModbusProfile):
        return ModbusEncoder(profile, hints)
    return RedfishEncoder(profile, profile.kind, unit)

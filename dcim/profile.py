"""Device profiles: the YAML language that maps a device model onto canonical points.

A profile is data (collectors/snmp/*.yaml, collectors/modbus/*.yaml, collectors/redfish/*.yaml).
This module holds its schema, loads and checks the files (errors name the file and the key),
resolves `extends` fragments and keeps the registry of known profiles.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dcim import yamlsafe
from dcim.errors import ConfigError, format_validation_error
from dcim.ids import Id
from dcim.points import POINTS, Kind

# any: 1 when some row is non-zero (even if other rows are unreadable), else 0 (alarm inputs).
Aggregate = Literal["sum", "rows", "max", "min", "mean", "first", "any"]
RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
# Byte order inside a 16-bit register and word order across registers, written as the
# position of bytes A (most significant) to D: ABCD is big-endian throughout.
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

REGISTER_WIDTH: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
    "int64": 4, "uint64": 4, "float64": 4,
}


def _normalize_oid(value: str) -> str:
    oid = value.strip().lstrip(".")
    parts = oid.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a numeric OID: {value!r}")
    return oid


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scaling(_Strict):
    """How a raw number becomes a canonical value, shared by every protocol."""

    scale: float = 1.0
    offset: float = 0.0
    not_available: tuple[float, ...] = ()
    not_available_below: float | None = None
    map: dict[int, float] | None = None
    map_default: float | None = None
    aggregate: Aggregate = "sum"
    # Raw value at which a cumulative counter rolls over to zero (e.g. 4294967296 for a
    # Counter32/Unsigned32 energy register); lets the energy ledger tell a wrap from a reset.
    wrap: float | None = Field(default=None, gt=0)


class SnmpSource(Scaling):
    """One way of reading a point over SNMP: a scalar OID or a walked table column."""

    oid: str | None = None
    walk: str | None = None
    index_suffix: str | None = None
    decimals: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> SnmpSource:
        if (self.oid is None) == (self.walk is None):
            raise ValueError("exactly one of 'oid' (scalar) or 'walk' (table column) is required")
        for name in ("oid", "walk", "decimals"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _normalize_oid(value))
        if self.index_suffix is not None:
            if self.walk is None:
                raise ValueError("'index_suffix' only applies to 'walk'")
            object.__setattr__(self, "index_suffix", self.index_suffix.strip("."))
        return self


class ScaleFactorRegister(_Strict):
    """A register holding a power-of-ten exponent for another value (SunSpec *_SF)."""

    address: int = Field(ge=0, le=65535)
    function: Literal["holding", "input"] = "holding"


class ModbusSource(Scaling):
    """One way of reading a point over Modbus: typed registers, optionally several rows."""

    address: int = Field(ge=0, le=65535)
    function: Literal["holding", "input"] = "holding"
    type: RegisterType = "uint16"
    order: WordOrder = "ABCD"
    rows: int = Field(default=1, ge=1, le=256)
    stride: int | None = Field(default=None, ge=1)
    scale_factor: ScaleFactorRegister | None = None

    @property
    def width(self) -> int:
        """Registers per value."""
        return REGISTER_WIDTH[self.type]

    def row_addresses(self) -> list[tuple[str, int]]:
        """(row key, first register) for every row; a single row is keyed '1'."""
        step = self.stride or self.width
        return [(str(i + 1), self.address + i * step) for i in range(self.rows)]


class SnmpPoint(SnmpSource):
    """A point read over SNMP, with sources to try when the first is not available."""

    fallback: tuple[SnmpSource, ...] = ()


class ModbusPoint(ModbusSource):
    """A point read over Modbus, with sources to try when the first is not available."""

    fallback: tuple[ModbusSource, ...] = ()


def _check_link_path(value: str) -> str:
    parts = value.strip("/").split("/") if value.strip("/") else []
    if any(not p or p.startswith("@") or p.startswith("redfish") for p in parts):
        raise ValueError(f"{value!r}: give link property names relative to the resource, "
                         "e.g. Metrics or LeakDetection/LeakDetectors")
    return "/".join(parts)


class RedfishSource(Scaling):
    """One way of reading a point over Redfish: a property of a resource linked from the device.

    `collection` (optional) is a path of link properties from the device resource to a
    collection whose members each give a row (keyed by the member's Id); `resource` is a path
    of link properties from the device resource (or from each member) to the resource holding
    `property`, a dotted path inside it (`PowerWatts.Reading`). `lines` expands `{line}` in the
    property into one row per line (row key: the label). `states` maps Redfish enum strings
    (Status.Health, DetectorState) onto numbers; `where` keeps only members whose property
    (dotted path) has one of the given values.
    """

    collection: str | None = None
    resource: str = ""
    property: str = Field(min_length=1)
    lines: dict[str, str] = {}
    states: dict[str, float] | None = None
    where: dict[str, tuple[str, ...]] = {}

    @model_validator(mode="after")
    def _paths(self) -> RedfishSource:
        object.__setattr__(self, "resource", _check_link_path(self.resource))
        if self.collection is not None:
            object.__setattr__(self, "collection", _check_link_path(self.collection))
            if not self.collection:
                raise ValueError("'collection' must name a link property")
        if self.lines and "{line}" not in self.property:
            raise ValueError("'lines' needs '{line}' in 'property'")
        if "{line}" in self.property and not self.lines:
            raise ValueError("'{line}' in 'property' needs 'lines'")
        if self.where and self.collection is None:
            raise ValueError("'where' selects collection members: it needs 'collection'")
        return self


class RedfishPoint(RedfishSource):
    """A point read over Redfish; fallbacks are tried per member where a source gives nothing."""

    fallback: tuple[RedfishSource, ...] = ()


class _ProfileBase(_Strict):
    name: Id  # a label and a tag (dcim_device_info{profile=...})
    kind: Kind
    description: str
    vendor: str | None = None
    extends: tuple[str, ...] = ()
    # Voltage rows are line-to-line while current rows are line currents (a three-phase load
    # measured L-L): volts x amps per row then overstates the apparent power by sqrt(3).
    line_to_line_voltage: bool = False


class SnmpProfile(_ProfileBase):
    """A device model read over SNMP."""

    protocol: Literal["snmp"]
    sys_object_id: tuple[str, ...] = ()
    # Regular expressions on sysDescr that identify the model where sysObjectID cannot (a
    # generic MIB such as UPS-MIB, agents announcing a generic net-snmp sysObjectID).
    sys_descr: tuple[str, ...] = ()

    @field_validator("sys_descr")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value
    max_repetitions: int = Field(default=25, ge=1, le=200)
    points: dict[str, SnmpPoint]


class ModbusProfile(_ProfileBase):
    """A device model read over Modbus TCP (or RTU over TCP through a gateway)."""

    protocol: Literal["modbus"]
    max_gap: int = Field(default=8, ge=0, le=64)
    max_block: int = Field(default=125, ge=1, le=125)
    points: dict[str, ModbusPoint]


class RedfishProfile(_ProfileBase):
    """A device model read over Redfish (HTTPS, JSON), e.g. a power shelf, CDU or rack PDU."""

    protocol: Literal["redfish"]
    # Where the device's resource lives when the site config gives no `resource`: the
    # collection must then have exactly one member.
    collection: str = Field(pattern=r"^/redfish/v1/")
    points: dict[str, RedfishPoint]


Profile = SnmpProfile | ModbusProfile | RedfishProfile
_PROTOCOLS: dict[str, type[SnmpProfile] | type[ModbusProfile] | type[RedfishProfile]] = {
    "snmp": SnmpProfile, "modbus": ModbusProfile, "redfish": RedfishProfile,
}


def _check_points(profile: Profile) -> list[str]:
    errors = []
    for name in profile.points:
        spec = POINTS.get(name)
        if spec is None:
            errors.append(f"points.{name}: unknown point; known: {', '.join(sorted(POINTS))}")
        elif profile.kind not in spec.kinds:
            kinds = ", ".join(sorted(spec.kinds))
            errors.append(f"points.{name}: not a point of kind '{profile.kind}' (only {kinds})")
    return errors


# Keys that say where a value comes from: a point naming one replaces the inherited point.
LOCATION_KEYS = frozenset({"oid", "walk", "address", "resource", "collection", "property"})


def merge_points(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Points of `over` on top of `base`: a point giving only scaling keys (scale, sentinels,
    offset, ...) changes those keys of the inherited point; one naming a location (oid, walk,
    address, ...) replaces it; `null` removes it."""
    merged = dict(base)
    for name, point in over.items():
        inherited = merged.get(name)
        if point is None:
            merged.pop(name, None)
        elif (isinstance(point, Mapping) and isinstance(inherited, Mapping)
              and not LOCATION_KEYS & set(point)):
            merged[name] = {**inherited, **point}
        else:
            merged[name] = point
    return merged


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if key == "points" and isinstance(value, Mapping):
            merged[key] = merge_points(base.get("points") or {}, value)
        else:
            merged[key] = value
    return merged


def with_overrides(profile: Profile, overrides: Mapping[str, Mapping[str, Any] | None]) -> Profile:
    """The profile as one device entry adjusts it (a one-off firmware): per point, scaling keys
    replaced, or the point disabled (None). Keys are checked by the site config's schema."""
    points: dict[str, Any] = dict(profile.points)
    for name, keys in overrides.items():
        if keys is None:
            points.pop(name, None)
        elif name in points:
            points[name] = points[name].model_copy(update=dict(keys))
    return profile.model_copy(update={"points": points})


@dataclass(frozen=True)
class Identity:
    """What an SNMP device said about itself and the profiles that fit it, best first."""

    host: str
    port: int
    sys_object_id: str | None
    sys_descr: str | None
    profiles: tuple[str, ...]
    # Why the device could not be asked (no answer, wrong community); then nothing is known.
    error: str | None = None

    @property
    def profile(self) -> str | None:
        """The one profile to use: the best match, unless two fit equally well."""
        return self.profiles[0] if len(self.profiles) == 1 else None

    def describe(self) -> str:
        """sysObjectID and sysDescr as seen, for messages."""
        oid = f"sysObjectID {self.sys_object_id or '(none)'}"
        return f"{oid}, sysDescr {self.sys_descr!r}" if self.sys_descr else f"{oid}, no sysDescr"


def sys_object_id_matches(oid: str, prefixes: Iterable[str]) -> bool:
    """Whether a sysObjectID is one of the prefixes or lies under one."""
    return any(oid == p or oid.startswith(p + ".") for p in prefixes)


def builtin_profile_dir() -> Path:
    """Where the shipped profiles live (inside the wheel, or the repo's collectors/)."""
    packaged = Path(__file__).parent / "collectors"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "collectors"


class ProfileRegistry:
    """Every known profile by name, loaded from one or more directories."""

    def __init__(self, profiles: Mapping[str, Profile], sources: Mapping[str, Path]):
        self._profiles = dict(profiles)
        self.sources = dict(sources)

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def __getitem__(self, name: str) -> Profile:
        return self._profiles[name]

    def names(self) -> list[str]:
        """Profile names, sorted."""
        return sorted(self._profiles)

    def all(self) -> list[Profile]:
        """Every profile, sorted by name."""
        return [self._profiles[n] for n in self.names()]

    def match(self, sys_object_id: str | None, sys_descr: str | None) -> tuple[str, ...]:
        """The SNMP profiles made for a device, most specific first (ties share the top).

        The longest `sys_object_id` prefix the sysObjectID lies under wins; where no profile
        claims the sysObjectID (a generic MIB such as UPS-MIB, a card announcing net-snmp's
        own), the profiles whose `sys_descr` patterns match the sysDescr.
        """
        snmp = [p for p in self.all() if isinstance(p, SnmpProfile)]
        if sys_object_id:
            depth = {p.name: max((len(prefix.split(".")) for prefix in p.sys_object_id
                                  if sys_object_id_matches(sys_object_id, [prefix])), default=0)
                     for p in snmp}
            best = max(depth.values(), default=0)
            if best:
                return tuple(sorted(n for n, d in depth.items() if d == best))
        if sys_descr:
            return tuple(p.name for p in snmp
                         if any(re.search(rx, sys_descr, re.IGNORECASE) for rx in p.sys_descr))
        return ()

    def for_sys_object_id(self, oid: str) -> list[str]:
        """Names of the SNMP profiles made for a device announcing this sysObjectID."""
        return [p.name for p in self.all()
                if isinstance(p, SnmpProfile) and sys_object_id_matches(oid, p.sys_object_id)]

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> ProfileRegistry:
        """Load the shipped profiles, then DCIM_PROFILE_PATH and extra_dirs (later dirs win)."""
        dirs = [builtin_profile_dir()]
        env = os.environ.get("DCIM_PROFILE_PATH")
        if env:
            dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
        dirs.extend(extra_dirs)
        return cls.load_dirs(dirs)

    @classmethod
    def load_dirs(cls, dirs: Iterable[Path]) -> ProfileRegistry:
        """Load every *.yaml under the given directories; raise ConfigError listing all faults."""
        files: dict[str, Path] = {}
        for base in dirs:
            if not base.is_dir():
                raise ConfigError([f"{base}: profile directory does not exist"])
            for path in sorted(base.rglob("*.yaml")):
                files[path.stem] = path
        errors: list[str] = []
        raw: dict[str, Any] = {}
        for stem, path in files.items():
            try:
                raw[stem] = yamlsafe.load(path)
            except ConfigError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ConfigError(errors)
        profiles: dict[str, Profile] = {}
        for stem, path in files.items():
            if stem.startswith("_"):
                continue  # fragments are only used through `extends`
            try:
                profile = _build(stem, path, raw, files)
            except ConfigError as exc:
                errors.extend(exc.errors)
                continue
            profiles[profile.name] = profile
        if errors:
            raise ConfigError(errors)
        return cls(profiles, {name: files[name] for name in profiles})


def _resolve(stem: str, raw: Mapping[str, Any], files: Mapping[str, Path],
             seen: tuple[str, ...]) -> dict[str, Any]:
    data = raw[stem]
    path = files[stem]
    if not isinstance(data, Mapping):
        raise ConfigError([f"{path}: a profile must be a YAML mapping"])
    parents = data.get("extends") or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError([f"{path}: extends: must be a list of fragment names"])
    merged: dict[str, Any] = {}
    for parent in parents:
        if parent in seen:
            raise ConfigError([f"{path}: extends: cycle through '{parent}'"])
        if parent not in raw:
            raise ConfigError([f"{path}: extends: unknown fragment '{parent}'"])
        merged = _merge(merged, _resolve(parent, raw, files, (*seen, parent)))
    return _merge(merged, data)


def _build(stem: str, path: Path, raw: Mapping[str, Any],
           files: Mapping[str, Path]) -> Profile:
    data = _resolve(stem, raw, files, (stem,))
    model = _PROTOCOLS.get(str(data.get("protocol")))
    if model is None:
        raise ConfigError([f"{path}: protocol: must be one of {', '.join(_PROTOCOLS)}"])
    try:
        profile = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {line}" for line in format_validation_error(exc)]) from None
    errors = _check_points(profile)
    if profile.name != stem:
        errors.append(f"name: '{profile.name}' must equal the file name '{stem}'")
    if errors:
        raise ConfigError([f"{path}: {e}" for e in errors])
    return profile

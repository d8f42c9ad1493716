"""The site model: a validated config resolved against the profiles, cross-references checked.

Everything downstream (scheduler, drivers, compute, sinks) reads this model, never the raw
config, so defaults and references are resolved exactly once.
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from dcim.config import (
    COOLANTS,
    BmsPoint,
    Config,
    Coolant,
    Credentials,
    Device,
    load_config_file,
)
from dcim.errors import ConfigError
from dcim.points import POINTS, Kind
from dcim.profile import Profile, ProfileRegistry

DEFAULT_PORTS = {"snmp": 161, "modbus": 502, "redfish": 443}
# Device kinds whose power counts towards the rack they are attached to.
RACK_POWER_KINDS = {Kind.PDU, Kind.SHELF, Kind.METER}
# Device kinds that may say what they serve: a CDU the racks it cools, a meter or UPS where its
# power goes (the DSX power path: racks or devices).
SERVING_KINDS = {Kind.CDU, Kind.METER, Kind.UPS}


@dataclass(frozen=True)
class SnmpAuth:
    """Resolved SNMP credentials (secrets hidden from repr)."""

    version: int = 2
    community: str = field(default="public", repr=False)
    user: str | None = None
    auth_protocol: str | None = None
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: str | None = None
    priv_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RedfishTarget:
    """How to reach a Redfish service and which resource is the device (secrets hidden)."""

    tls: bool = True
    tls_verify: bool = True
    tls_ca_file: Path | None = None
    # The device's own resource (a collection member); None: the profile's collection's
    # only member.
    resource: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    http_auth: str = "auto"

    @property
    def scheme(self) -> str:
        """https or http."""
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class DeviceSpec:
    """One device to poll, with every default resolved."""

    id: str
    profile: Profile
    host: str
    port: int
    unit: int
    interval: float
    timeout: float
    retries: int
    max_age: float
    rack: str | None = None
    feed: str | None = None
    serves: tuple[str, ...] = ()
    framer: str = "tcp"
    coolant: Coolant | None = None
    auth: SnmpAuth | None = None
    redfish: RedfishTarget | None = None
    # Power readings above twice this are rejected as implausible (None: no such bound).
    rack_cap_w: float | None = None

    @property
    def kind(self) -> Kind:
        """The device kind, from its profile."""
        return self.profile.kind

    @property
    def protocol(self) -> str:
        """snmp, modbus or redfish, from its profile."""
        return self.profile.protocol


@dataclass(frozen=True)
class RackSpec:
    """A rack, its cap and the devices feeding it, by feed."""

    id: str
    cap_w: float
    feed_w: float
    feeds: Mapping[str, tuple[str, ...]]
    hall: str | None = None
    row: str | None = None
    tenant: str | None = None

    @property
    def devices(self) -> tuple[str, ...]:
        """All devices feeding the rack."""
        return tuple(d for ids in self.feeds.values() for d in ids)


@dataclass(frozen=True)
class PueSpec:
    """The devices PUE is computed from, and the point read from each."""

    facility: Mapping[str, str]
    it: Mapping[str, str]
    it_from_racks: bool
    # Inputs polled by other shards: this instance can sum its part but never give a PUE.
    remote: frozenset[str] = frozenset()

    @cached_property
    def devices(self) -> tuple[str, ...]:
        """Every device PUE needs (of this shard, when sharded)."""
        return tuple(dict.fromkeys([*self.facility, *self.it]))


@dataclass(frozen=True)
class Site:
    """The resolved site: what the daemon polls and what compute needs."""

    name: str
    rack_max_w: float
    pue_target: float | None
    racks: Mapping[str, RackSpec]
    devices: Mapping[str, DeviceSpec]
    pue: PueSpec | None
    config: Config
    # (shard, shards) when this is the part one instance polls (restrict_to_shard).
    shard: tuple[int, int] | None = None

    @cached_property
    def ids_by_kind(self) -> Mapping[Kind, tuple[str, ...]]:
        """Device ids of each kind, in config order (fixed by the config: built once per load)."""
        out: dict[Kind, list[str]] = {}
        for device in self.devices.values():
            out.setdefault(device.kind, []).append(device.id)
        return {kind: tuple(ids) for kind, ids in out.items()}

    def devices_for(self, ids: tuple[str, ...]) -> list[DeviceSpec]:
        """The specs of the given device ids, in order."""
        return [self.devices[i] for i in ids]


def power_point(profile: Profile, role: str) -> str:
    """Which point gives a device's power when it counts as facility or IT power."""
    if profile.kind == Kind.UPS:
        return "input_power_w" if role == "facility" else "output_power_w"
    return "power_w"


def _auth(creds: Credentials) -> SnmpAuth:
    return SnmpAuth(
        version=creds.snmp_version,
        community=creds.secret("community") or "public",
        user=creds.user,
        auth_protocol=creds.auth_protocol,
        auth_key=creds.secret("auth_key"),
        priv_protocol=creds.priv_protocol,
        priv_key=creds.secret("priv_key"),
    )


def _redfish_target(dev: Device, creds: Credentials | None) -> RedfishTarget:
    return RedfishTarget(
        tls=dev.tls if dev.tls is not None else True,
        tls_verify=dev.tls_verify if dev.tls_verify is not None else True,
        tls_ca_file=dev.tls_ca_file, resource=dev.resource,
        username=creds.username if creds else None,
        password=creds.secret("password") if creds else None,
        http_auth=creds.http_auth if creds else "auto",
    )


def _check_redfish_fields(where: str, dev: Device, protocol: str) -> list[str]:
    """tls/resource settings only mean something to a Redfish device."""
    if protocol == "redfish":
        given = [k for k in ("tls_verify", "tls_ca_file") if getattr(dev, k) is not None]
        if dev.tls is False:
            return [f"{where}.{k}: a certificate setting needs tls: true" for k in given]
        return []
    given = [k for k in ("tls", "tls_verify", "tls_ca_file", "resource")
             if getattr(dev, k) is not None]
    return [f"{where}.{k}: only for redfish devices (this one is {protocol})" for k in given]


def _suggest(name: str, registry: ProfileRegistry) -> str:
    close = difflib.get_close_matches(name, registry.names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; `dcim profiles` lists the known ones"


def _rack_cap_w(config: Config, rack_id: str | None, kind: Kind) -> float | None:
    if kind not in (Kind.PDU, Kind.SHELF) and rack_id is None:
        return None
    cap = next((r.cap_kw for r in config.racks if r.id == rack_id), None)
    return (cap or config.site.rack_max_kw) * 1000


def _check_credentials(name: str, creds: Credentials) -> list[str]:
    where = f"credentials.{name}"
    errors = []
    if creds.snmp_version == 3:
        if not creds.user:
            errors.append(f"{where}.user: required for snmp_version 3")
        if creds.auth_protocol and not creds.secret("auth_key"):
            errors.append(f"{where}.auth_key: required with auth_protocol (or auth_key_file)")
        if creds.priv_protocol and not creds.auth_protocol:
            errors.append(f"{where}.priv_protocol: privacy needs auth_protocol too")
        if creds.priv_protocol and not creds.secret("priv_key"):
            errors.append(f"{where}.priv_key: required with priv_protocol (or priv_key_file)")
        for key in ("auth_key", "priv_key"):
            secret = creds.secret(key)
            if secret is not None and len(secret) < 8:
                errors.append(f"{where}.{key}: SNMPv3 keys need at least 8 characters")
    elif creds.user or creds.auth_protocol or creds.priv_protocol:
        errors.append(f"{where}.snmp_version: user/auth/priv settings need snmp_version 3")
    if creds.username and not creds.secret("password"):
        errors.append(f"{where}.password: required with username (or password_file)")
    if creds.secret("password") and not creds.username:
        errors.append(f"{where}.username: required with password")
    return errors


def build_site(config: Config, registry: ProfileRegistry) -> Site:
    """Resolve a Config against the profile registry; raise ConfigError listing every fault."""
    errors: list[str] = []
    max_kw = config.site.rack_max_kw

    for name, creds in config.credentials.items():
        errors.extend(_check_credentials(name, creds))

    racks_seen: dict[str, int] = {}
    for i, rack in enumerate(config.racks):
        if rack.id in racks_seen:
            errors.append(f"racks[{i}].id: duplicate id '{rack.id}' (also racks[{racks_seen[rack.id]}])")
        racks_seen.setdefault(rack.id, i)
        if rack.cap_kw is not None and rack.cap_kw > max_kw:
            errors.append(
                f"racks[{i}].cap_kw: {rack.cap_kw:g} kW exceeds site.rack_max_kw ({max_kw:g} kW)"
            )
        if rack.feed_kw is not None and rack.feed_kw > max_kw:
            errors.append(
                f"racks[{i}].feed_kw: {rack.feed_kw:g} kW exceeds site.rack_max_kw ({max_kw:g} kW)"
            )

    devices: dict[str, DeviceSpec] = {}
    seen: dict[str, int] = {}
    serving: list[tuple[str, str]] = []  # (where, target) once every device id is known
    feeds: dict[str, dict[str, list[str]]] = {r.id: {} for r in config.racks}
    polling = config.polling
    for i, dev in enumerate(config.devices):
        where = f"devices[{i}]"
        if dev.id in seen:
            errors.append(f"{where}.id: duplicate id '{dev.id}' (also devices[{seen[dev.id]}])")
            continue
        seen[dev.id] = i
        if dev.profile not in registry:
            hint = _suggest(dev.profile, registry)
            errors.append(f"{where}.profile: unknown profile '{dev.profile}'{hint}")
            continue
        profile = registry[dev.profile]
        auth = None
        redfish = None
        errors.extend(_check_redfish_fields(where, dev, profile.protocol))
        if dev.credentials is not None and dev.credentials not in config.credentials:
            errors.append(f"{where}.credentials: unknown credentials '{dev.credentials}'")
        elif profile.protocol == "snmp":
            named = config.credentials.get(dev.credentials or "default")
            auth = _auth(named) if named else SnmpAuth()
        elif profile.protocol == "redfish":
            named = config.credentials.get(dev.credentials) if dev.credentials else None
            redfish = _redfish_target(dev, named)
        if dev.rack is not None:
            if dev.rack not in feeds:
                errors.append(f"{where}.rack: unknown rack '{dev.rack}'")
            elif profile.kind not in RACK_POWER_KINDS:
                errors.append(
                    f"{where}.rack: a {profile.kind} cannot feed a rack (pdu, shelf or meter only)")
            elif "power_w" not in profile.points:
                errors.append(f"{where}.rack: profile '{profile.name}' has no power_w point")
            else:
                feeds[dev.rack].setdefault(dev.feed or "A", []).append(dev.id)
        elif dev.feed is not None:
            errors.append(f"{where}.feed: a feed needs a rack")
        if dev.serves and profile.kind not in SERVING_KINDS:
            errors.append(f"{where}.serves: a {profile.kind} serves nothing (a cdu serves racks; "
                          "a meter or ups serves racks or devices)")
        for j, target in enumerate(dev.serves):
            if target in feeds:
                continue
            if profile.kind == Kind.CDU:
                errors.append(f"{where}.serves[{j}]: unknown rack '{target}'")
            elif profile.kind in SERVING_KINDS:
                # A meter's or UPS's serves (the DSX power path) may also name a device.
                serving.append((f"{where}.serves[{j}]", target))
        interval = dev.interval or polling.interval
        timeout = dev.timeout or polling.timeout
        if timeout >= interval:
            errors.append(
                f"{where}.timeout: {timeout:g}s must be shorter than the poll interval {interval:g}s"
            )
        coolant = dev.coolant or (COOLANTS["pg25"] if profile.kind == Kind.CDU else None)
        devices[dev.id] = DeviceSpec(
            id=dev.id, profile=profile, host=dev.host,
            port=dev.port or DEFAULT_PORTS[profile.protocol], unit=dev.unit,
            interval=interval, timeout=timeout, retries=polling.retries,
            max_age=max(polling.max_age, interval), rack=dev.rack, feed=dev.feed or
            ("A" if dev.rack else None), serves=dev.serves, framer=dev.framer,
            coolant=coolant, auth=auth, redfish=redfish,
            rack_cap_w=_rack_cap_w(config, dev.rack, profile.kind),
        )

    errors += [f"{where}: unknown rack or device '{target}'" for where, target in serving
               if target not in seen]
    racks = {
        r.id: RackSpec(
            id=r.id, cap_w=(r.cap_kw or max_kw) * 1000, feed_w=(r.feed_kw or r.cap_kw or max_kw) * 1000,
            feeds={f: tuple(ids) for f, ids in sorted(feeds[r.id].items())},
            hall=r.hall, row=r.row, tenant=r.tenant,
        )
        for r in config.racks if r.id in feeds
    }

    pue = None
    if config.pue is not None:
        pue = _build_pue(config, devices, racks, errors)
    if config.exporters.mqtt is not None and config.exporters.mqtt.bms is not None:
        errors.extend(_check_bms_points(config.exporters.mqtt.bms.points, devices))

    if errors:
        raise ConfigError(errors)
    return Site(
        name=config.site.name, rack_max_w=max_kw * 1000, pue_target=config.site.pue_target,
        racks=racks, devices=devices, pue=pue, config=config,
    )


def _check_bms_points(points: tuple[BmsPoint, ...], devices: Mapping[str, DeviceSpec]) -> list[str]:
    """Cross-references of the BMS source mapping: known device, a point of its kind."""
    errors = []
    seen: set[str] = set()
    for i, p in enumerate(points):
        where = f"exporters.mqtt.bms.points[{i}]"
        if p.topic in seen:
            errors.append(f"{where}.topic: '{p.topic}' is mapped twice")
        seen.add(p.topic)
        device = devices.get(p.device)
        if device is None:
            errors.append(f"{where}.device: unknown device '{p.device}'")
            continue
        spec = POINTS.get(p.point)
        if spec is None:
            errors.append(f"{where}.point: unknown point '{p.point}'")
        elif device.kind not in spec.kinds:
            errors.append(f"{where}.point: a {device.kind} has no point '{p.point}'")
    return errors


def _build_pue(config: Config, devices: Mapping[str, DeviceSpec],
               racks: Mapping[str, RackSpec], errors: list[str]) -> PueSpec | None:
    assert config.pue is not None
    ids = {d.id for d in config.devices}

    def resolve(role: str, wanted: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for j, dev_id in enumerate(wanted):
            where = f"pue.{role}[{j}]"
            if dev_id not in ids:
                errors.append(f"{where}: unknown device '{dev_id}'")
            elif dev_id in devices:
                profile = devices[dev_id].profile
                point = power_point(profile, role)
                if point not in profile.points:
                    errors.append(
                        f"{where}: profile '{profile.name}' of '{dev_id}' has no {point} point"
                    )
                else:
                    out[dev_id] = point
        return out

    facility = resolve("facility", config.pue.facility)
    if config.pue.it == "racks":
        rack_devices = tuple(d for r in racks.values() for d in r.devices)
        if not rack_devices:
            errors.append("pue.it: 'racks' needs at least one rack with a pdu or meter")
        it = {d: "power_w" for d in rack_devices}
        overlap = set(facility) & set(it)
        for dev_id in sorted(overlap):
            errors.append(f"pue.facility: '{dev_id}' feeds a rack, it cannot also be facility power")
        return PueSpec(facility=facility, it=it, it_from_racks=True)
    it = resolve("it", config.pue.it)
    return PueSpec(facility=facility, it=it, it_from_racks=False)


def shard_key(device: DeviceSpec) -> str:
    """What a device is sharded by: its rack (a rack's PDUs stay together) or its own id."""
    return device.rack or device.id


def shard_of(key: str, shards: int) -> int:
    """A stable shard number for a key (the same on every machine and Python run)."""
    return zlib.crc32(key.encode()) % shards


def restrict_to_shard(site: Site, shard: int, shards: int) -> Site:
    """The part of a site that shard `shard` of `shards` polls."""
    devices = {d.id: d for d in site.devices.values() if shard_of(shard_key(d), shards) == shard}
    racks = {r.id: r for r in site.racks.values() if r.devices and r.devices[0] in devices}
    pue = None
    if site.pue is not None:
        remote = frozenset(d for d in site.pue.devices if d not in devices)
        pue = replace(
            site.pue,
            facility={d: p for d, p in site.pue.facility.items() if d in devices},
            it={d: p for d, p in site.pue.it.items() if d in devices},
            remote=remote,
        )
    return replace(site, devices=devices, racks=racks, pue=pue, shard=(shard, shards))


def load_site(path: Path, registry: ProfileRegistry | None = None) -> Site:
    """Load, validate and resolve a site config file against the profiles."""
    config = load_config_file(path)
    if registry is None:
        base = path.parent
        registry = ProfileRegistry.load(base / d for d in config.profile_dirs)
    return build_site(config, registry)

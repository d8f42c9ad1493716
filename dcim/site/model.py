"""The resolved site model: plain frozen dataclasses, every default and reference resolved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dcim.config import (
    Billing,
    BmsPoint,
    InfluxSinkConfig,
    MqttBroker,
    MqttSinkConfig,
    PrometheusSinkConfig,
)
from dcim.coolant import Coolant
from dcim.points import Kind
from dcim.profile import Profile

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
    # How `profile: auto` picked the profile (sysObjectID, sysDescr seen), None if named.
    detected: str | None = None
    # `profile: auto` and the device did not answer at load: why. Its profile is then a
    # placeholder without points (UNIDENTIFIED); the poller asks it again each interval and
    # has the config reloaded once it answers, which gives it its real profile.
    unidentified: str | None = None

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

    @cached_property
    def feed_points(self) -> Mapping[str, Mapping[str, str]]:
        """feed -> {device: the point its power is read from}, built once per load."""
        return {feed: {d: "power_w" for d in ids} for feed, ids in self.feeds.items()}


@dataclass(frozen=True)
class TenantSpec:
    """A tenant: its contracted power, the racks it leases and how it is billed."""

    id: str
    name: str
    contract_w: float
    racks: tuple[str, ...]
    billing: Billing | None = None


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
class SinkSpecs:
    """Where dcim publishes: Prometheus always (its defaults if not configured), the rest if
    configured (README "Site config": sinks)."""

    prometheus: PrometheusSinkConfig = field(default_factory=PrometheusSinkConfig)
    influxdb: InfluxSinkConfig | None = None
    mqtt: MqttSinkConfig | None = None


@dataclass(frozen=True)
class BmsSpec:
    """The BMS source: which broker, and which topic feeds which point of which device."""

    broker: MqttBroker
    points: tuple[BmsPoint, ...]
    # None: dcim-<site>-<host>-bms (see dcim.mqtt_client.client_id).
    client_id: str | None = None

    @property
    def devices(self) -> frozenset[str]:
        """The devices the BMS feeds (the scheduler does not poll them)."""
        return frozenset(p.device for p in self.points)


@dataclass(frozen=True)
class SourceSpecs:
    """Inputs other than polling (README "Site config": sources)."""

    bms: BmsSpec | None = None


@dataclass(frozen=True)
class Site:
    """The resolved site: what the daemon polls, what compute needs and where it all goes."""

    name: str
    rack_max_w: float
    pue_target: float | None
    racks: Mapping[str, RackSpec]
    devices: Mapping[str, DeviceSpec]
    pue: PueSpec | None
    sinks: SinkSpecs = SinkSpecs()
    sources: SourceSpecs = SourceSpecs()
    # Tenants by id (only declared ones: a rack's tenant label without a tenants: section is
    # not one).
    tenants: Mapping[str, TenantSpec] = field(default_factory=dict)
    # Cap on requests in flight across all devices (polling.max_in_flight).
    max_in_flight: int = 64
    state_dir: Path | None = None
    # Deprecated keys found in the config, as `path: message` (logged at load, shown by
    # check-config).
    warnings: tuple[str, ...] = ()
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

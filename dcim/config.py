"""Site config: the YAML users write, validated strictly (README "Site config").

Unknown keys are errors, `${ENV}` is expanded in every string, `*_file` keys read a secret
from a file, and every problem is reported as `path: message`.

Loading is tolerant so one run reports everything: `validate_config` leaves out each part that
failed (a device, a credential, a section) and validates the rest, and says what it left out
(`Invalid`) so the site checks (dcim.site) can run on what remains without repeating the fault.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from dcim import yamlsafe
from dcim.coolant import COOLANTS
from dcim.errors import ConfigError, Loc, format_loc, format_validation_error
from dcim.ids import Id, Topic

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any) -> float:
    """Turn 10s / 2m / 1h / 500ms / a bare number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 2m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 10s, 2m, 1h")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def _read_secret_file(value: Any, info: ValidationInfo) -> SecretStr:
    path = Path(str(value))
    if not path.is_absolute() and info.context and "base_dir" in info.context:
        path = info.context["base_dir"] / path
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"secret file {path} is empty")
    return SecretStr(text)


Duration = Annotated[float, BeforeValidator(parse_duration)]
SecretFile = Annotated[SecretStr, BeforeValidator(_read_secret_file)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(_Strict):
    """Site identity and limits."""

    name: Id
    rack_max_kw: float = Field(default=190.0, gt=0)
    pue_target: float | None = Field(default=None, ge=1.0, le=5.0)


class Polling(_Strict):
    """Polling defaults; a device may override interval and timeout."""

    interval: Duration = 10.0
    timeout: Duration = 2.0
    retries: int = Field(default=1, ge=0, le=10)
    max_age: Duration = 30.0
    max_in_flight: int = Field(default=64, ge=1, le=1000)


AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "AES", "AES192", "AES256"]


def _snmp_version(value: Any) -> Any:
    return {"1": 1, "2": 2, "2c": 2, "3": 3}.get(str(value).lower(), value)


class Credentials(_Strict):
    """SNMP or HTTP (Redfish) credentials, referenced from devices by name."""

    snmp_version: Annotated[Literal[1, 2, 3], BeforeValidator(_snmp_version)] = 2
    community: SecretStr | None = None
    community_file: SecretFile | None = None
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key: SecretStr | None = None
    auth_key_file: SecretFile | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key: SecretStr | None = None
    priv_key_file: SecretFile | None = None
    # Redfish: a session (POST SessionService/Sessions, X-Auth-Token) or HTTP basic on every
    # request; auto uses a session when the service root links a SessionService.
    username: str | None = None
    password: SecretStr | None = None
    password_file: SecretFile | None = None
    http_auth: Literal["auto", "session", "basic"] = "auto"

    def secret(self, name: str) -> str | None:
        """The secret `name` from its inline/env value or its *_file, whichever is set."""
        value = getattr(self, name) or getattr(self, f"{name}_file")
        return value.get_secret_value() if value is not None else None


class Rack(_Strict):
    """A rack: its cap, and where it sits."""

    id: Id
    hall: Id | None = None
    row: Id | None = None
    tenant: Id | None = None
    cap_kw: float | None = Field(default=None, gt=0)
    feed_kw: float | None = Field(default=None, gt=0)


class Billing(_Strict):
    """How a tenant is billed (docs/tenants.md "Billing models").

    committed: contract_kw x the period's hours at price_per_kwh, IT energy above that at
    price_per_kwh x overage_multiplier. metered: IT energy at price_per_kwh, at least
    minimum_ratio x contract_kw x hours. pue_multiplier: as metered, times the site's energy PUE
    of the period (ISO/IEC 30134-2: facility energy / IT energy over the same period).
    """

    model: Literal["committed", "metered", "pue_multiplier"]
    price_per_kwh: float = Field(ge=0)
    currency: str
    overage_multiplier: float = Field(default=1.0, ge=1.0)
    minimum_ratio: float = Field(default=0.0, ge=0.0, le=1.0)
    # Billing periods start at midnight on the 1st in this IANA time zone.
    timezone: str = "UTC"
    period: Literal["monthly"] = "monthly"

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError(f"'{value}' is not an ISO 4217 currency code (three capitals: USD)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (give an IANA name such as "
                             "America/Los_Angeles or UTC)") from None
        return value


class Tenant(_Strict):
    """A customer leasing racks: its contracted power and how it is billed."""

    name: str = Field(min_length=1)
    contract_kw: float = Field(gt=0)
    # Without billing, `dcim report` gives energy and demand but no cost.
    billing: Billing | None = None


class CoolantProperties(_Strict):
    """A coolant given by its properties instead of by name."""

    density_kg_m3: float = Field(gt=0)
    cp_kj_kg_k: float = Field(gt=0)


def _coolant(value: Any) -> Any:
    if isinstance(value, str):
        if value not in COOLANTS:
            raise ValueError(f"unknown coolant '{value}'; known: {', '.join(COOLANTS)}")
        return dataclasses.asdict(COOLANTS[value])
    return value


class PointOverride(_Strict):
    """A device entry's change to one point of its profile (a one-off firmware)."""

    scale: float | None = None
    offset: float | None = None
    not_available: tuple[float, ...] | None = None
    not_available_below: float | None = None

    def keys(self) -> dict[str, Any]:
        """The keys given, as profile point keys."""
        return self.model_dump(exclude_none=True)


class Device(_Strict):
    """A polled device; protocol details come from its profile."""

    id: Id
    profile: str
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255)
    rack: str | None = None
    feed: Id | None = None
    credentials: str | None = None
    serves: tuple[str, ...] = ()
    interval: Duration | None = None
    timeout: Duration | None = None
    framer: Literal["tcp", "rtu"] = "tcp"
    coolant: Annotated[CoolantProperties, BeforeValidator(_coolant)] | None = None
    # Redfish only (None: not given; the defaults are tls on, certificate verified).
    tls: bool | None = None
    tls_verify: bool | None = None
    tls_ca_file: Path | None = None
    resource: str | None = None
    # Per point: scaling keys replacing the profile's, or "disabled" (the point is not read).
    points: dict[str, PointOverride | Literal["disabled"]] = Field(default_factory=dict)

    @field_validator("resource")
    @classmethod
    def _resource_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^/redfish/v1/[^?#\s]+$", value):
            raise ValueError(f"{value!r} is not a Redfish resource URI "
                             "(e.g. /redfish/v1/PowerEquipment/PowerShelves/1)")
        return value


class Pue(_Strict):
    """Which devices make up facility power and IT power."""

    facility: tuple[str, ...] = Field(min_length=1)
    it: Literal["racks"] | tuple[str, ...] = "racks"

    @field_validator("it")
    @classmethod
    def _it_not_empty(cls, value: Any) -> Any:
        if isinstance(value, tuple) and not value:
            raise ValueError("give 'racks' or at least one device id")
        return value


class PrometheusSinkConfig(_Strict):
    """Prometheus scrape endpoint."""

    listen: str = "127.0.0.1:9860"
    web_config_file: Path | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        port = value.rpartition(":")[2]
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"'{value}' is not host:port (e.g. 127.0.0.1:9860, [::1]:9860)")
        return value


class InfluxSinkConfig(_Strict):
    """InfluxDB v2 write API sink (/api/v2/write) with a durable SQLite spool."""

    url: str = Field(pattern=r"^https?://")
    org: str
    bucket: str
    token: SecretStr | None = None
    token_file: SecretFile | None = None
    # Relative paths (and the default, influx-spool.db) live in the state directory.
    spool: Path | None = None
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval: Duration = 5.0
    max_spool_mb: float = Field(default=512.0, gt=0)
    timeout: Duration = 10.0
    # Longest pause between retries after 429/5xx/network errors (Retry-After may ask for more).
    max_backoff: Duration = 60.0
    # Unchanged site/rack/feed/cooling values are written again at least this often.
    keepalive: Duration = 60.0
    ca_file: Path | None = None
    tls_verify: bool = True

    def secret_token(self) -> str | None:
        """The API token from `token` or `token_file`, whichever is set."""
        value = self.token or self.token_file
        return value.get_secret_value() if value is not None else None


class MqttBroker(_Strict):
    """How to reach an MQTT broker: shared by the MQTT sink and the BMS source."""

    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: SecretFile | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    keepalive: Duration = 30.0
    # A persistent session (clean_session false) so the broker keeps QoS 1 state across reconnects.
    persistent_session: bool = True

    def secret_password(self) -> str | None:
        """The broker password from `password` or `password_file`, whichever is set."""
        value = self.password or self.password_file
        return value.get_secret_value() if value is not None else None


class BmsPoint(_Strict):
    """One BMS value topic mapped onto a canonical point of a site device."""

    topic: str = Field(min_length=1)
    device: Id
    point: str
    # Multiplier from the BMS unit to dcim's canonical unit (e.g. 1000 for kW -> W).
    scale: float = 1.0

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("give the exact value topic; wildcards are not allowed")
        return value


class LegacyBms(_Strict):
    """The BMS mapping where it used to live (exporters.mqtt.bms, on the sink's broker)."""

    points: tuple[BmsPoint, ...] = Field(min_length=1)


class MqttSinkConfig(MqttBroker):
    """MQTT sink (plain layout under topic_prefix, optional DSX BMS event bus layout)."""

    topic_prefix: Topic = "dcim"
    dsx: bool = False
    # First tagPath segments of DSX topics (default: the site name): levels of id characters,
    # so no wildcards, spaces (a NATS bus refuses them) or empty segments.
    dsx_tag_prefix: Topic | None = None
    # Re-send unchanged DSX values and metadata this often (the bus convention is 100 s).
    dsx_republish: Duration = 100.0
    # QoS of DSX value messages: the bus default is 0 (metadata always goes at QoS 1).
    dsx_qos: Literal[0, 1] = 0
    plain: bool = True
    # Events waiting for the broker; beyond this the oldest are dropped and counted.
    max_queue: int = Field(default=10_000, ge=1)
    # Deprecated: read as sources.bms on this broker (dcim.site.outputs says so at load).
    bms: LegacyBms | None = None


class BmsSourceConfig(MqttBroker):
    """Points read from a BMS on an MQTT bus (DSX value payloads) instead of polling."""

    points: tuple[BmsPoint, ...] = Field(min_length=1)


class Sinks(_Strict):
    """Where dcim publishes (all optional; Prometheus listens on its default without one)."""

    prometheus: PrometheusSinkConfig | None = None
    influxdb: InfluxSinkConfig | None = None
    mqtt: MqttSinkConfig | None = None


class Sources(_Strict):
    """Inputs other than polling."""

    bms: BmsSourceConfig | None = None


class Config(_Strict):
    """The whole site config file."""

    site: SiteSection
    polling: Polling = Polling()
    credentials: dict[Id, Credentials] = {}
    tenants: dict[Id, Tenant] = {}
    racks: tuple[Rack, ...] = ()
    devices: tuple[Device, ...] = ()
    pue: Pue | None = None
    sinks: Sinks = Sinks()
    sources: Sources = Sources()
    # Deprecated name of `sinks` (dcim.site.outputs warns, and refuses both at once).
    exporters: Sinks | None = None
    profile_dirs: tuple[Path, ...] = ()
    state_dir: Path | None = None


Fault = tuple[Loc, str]


def expand_env(node: Any, loc: Loc, faults: list[Fault],
               env: Callable[[str], str | None] = os.environ.get) -> Any:
    """Replace ${NAME} in every string of a YAML tree; unset variables become faults."""
    if isinstance(node, dict):
        return {k: expand_env(v, (*loc, k), faults, env) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, (*loc, i), faults, env) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(match: re.Match[str]) -> str:
            value = env(match.group(1))
            if value is None:
                faults.append((loc, f"environment variable {match.group(1)} is not set"))
                return ""
            return value
        return _ENV.sub(sub, node)
    return node


@dataclass(frozen=True)
class Invalid:
    """The parts of a config that failed validation and were left out of its Config.

    A site check that needs a left-out part is skipped and a reference to a left-out item is
    not reported: the one fault was already reported where it is.
    """

    # Whole parts left out: top-level keys ("site", "polling", "devices") or "sinks.mqtt".
    parts: frozenset[str] = frozenset()
    # Items left out of a section, by id ("devices" -> {"p1"}, "credentials" -> {"pdus"}).
    items: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def hides(self, part: str, item: str | None = None) -> bool:
        """Whether `part` (or its item `item`) was left out, so checks against it are moot."""
        return part in self.parts or (item is not None and item in self.items.get(part, ()))

    def touches(self, part: str) -> bool:
        """Whether anything of `part` was left out (the part or one of its items)."""
        return part in self.parts or bool(self.items.get(part))


@dataclass(frozen=True)
class ValidatedConfig:
    """What validation kept (a valid Config) and what it could not (errors, left-out parts)."""

    config: Config
    errors: tuple[str, ...] = ()
    invalid: Invalid = Invalid()


# Sections checked item by item: one bad entry leaves out only itself.
_ITEM_SECTIONS = ("credentials", "tenants", "racks", "devices")
# Sections of named optional parts: one bad part (sinks.mqtt) leaves out only itself.
_PART_SECTIONS = ("sinks", "sources", "exporters")
# Stands in for a site section that failed (`site` is required); Invalid says it is not real.
_PLACEHOLDER_SITE = {"name": "invalid"}


# Old spellings that still load (dcim.site.outputs): never suggested for a mistyped key.
_DEPRECATED = {"Config.exporters", "MqttSinkConfig.bms"}


def _keys_at(loc: Loc) -> tuple[str, ...]:
    """The keys the config accepts in the mapping at loc (none known: empty)."""
    node: Any = Config
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = node.model_fields[str(part)].annotation
        elif typing.get_origin(node) in (tuple, dict):
            node = typing.get_args(node)[-1 if typing.get_origin(node) is dict else 0]
        else:
            return ()
    node = _unwrap(node)
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return ()
    return tuple(k for k in node.model_fields if f"{node.__name__}.{k}" not in _DEPRECATED)


def _unwrap(node: Any) -> Any:
    """The model inside Annotated[...] and `X | None`."""
    while typing.get_origin(node) is Annotated:
        node = typing.get_args(node)[0]
    if isinstance(node, types.UnionType) or typing.get_origin(node) is typing.Union:
        members = [a for a in typing.get_args(node) if a is not type(None)]
        node = members[0] if len(members) == 1 else node
        while typing.get_origin(node) is Annotated:
            node = typing.get_args(node)[0]
    return node


def _drop_key(data: dict[str, Any], loc: Loc) -> bool:
    """Remove the unknown key at loc (copying the containers on its path); False if not found."""
    parent: Any = data
    for part in loc[:-1]:
        child = parent[part] if _has(parent, part) else None
        if not isinstance(child, dict | list):
            return False
        parent[part] = child = dict(child) if isinstance(child, dict) else list(child)
        parent = child
    if not isinstance(parent, dict) or loc[-1] not in parent:
        return False
    del parent[loc[-1]]
    return True


def _has(container: Any, part: int | str) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _leave_out(data: dict[str, Any], faults: list[tuple[Loc, str]]) -> tuple[dict[str, Any], Invalid]:
    """The config without what the faults point at, and what was left out.

    An unknown key is only removed (the rest of its entry is still good); any other fault
    leaves out its whole entry (a device, a credential) or part (a section, sinks.mqtt).
    """
    data = dict(data)
    parts: set[str] = set()
    bad_entries: dict[str, set[int | str]] = {}
    for loc, kind in faults:
        head = str(loc[0]) if loc else ""
        if kind == "extra_forbidden" and _drop_key(data, loc):
            continue
        if head in _ITEM_SECTIONS and len(loc) >= 2 and isinstance(data.get(head), dict | list):
            bad_entries.setdefault(head, set()).add(loc[1])
        elif head in _PART_SECTIONS and len(loc) >= 2 and isinstance(data.get(head), dict):
            data[head] = {k: v for k, v in data[head].items() if k != loc[1]}
            parts.add(f"{head}.{loc[1]}")
        else:
            parts.add(head)
            if head == "site":
                data[head] = _PLACEHOLDER_SITE
            else:
                data.pop(head, None)
    items: dict[str, frozenset[str]] = {}
    for section, keys in bad_entries.items():
        entries = data[section]
        if isinstance(entries, dict):
            items[section] = frozenset(str(k) for k in keys)
            data[section] = {k: v for k, v in entries.items() if k not in keys}
            continue
        left_out = [e for i, e in enumerate(entries) if i in keys]
        items[section] = frozenset(e["id"] for e in left_out
                                   if isinstance(e, dict) and isinstance(e.get("id"), str))
        data[section] = [e for i, e in enumerate(entries) if i not in keys]
    return data, Invalid(frozenset(parts), items)


def validate_config(data: Any, env: Callable[[str], str | None] = os.environ.get,
                    base_dir: Path | None = None) -> ValidatedConfig:
    """Validate a parsed YAML tree, leaving out what fails (see the module docstring).

    Relative *_file paths are read from base_dir. Raises ConfigError only when nothing can be
    checked further (not a mapping).
    """
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping with at least 'site'"])
    env_faults: list[Fault] = []
    data = expand_env(data, (), env_faults, env)
    context = {"base_dir": base_dir or Path.cwd()}
    errors = [f"{format_loc(loc)}: {message}" for loc, message in env_faults]
    faults = [(loc, "env") for loc, _ in env_faults]
    try:
        config = Config.model_validate(data, context=context)
        if not faults:
            return ValidatedConfig(config)
    except ValidationError as exc:
        errors += format_validation_error(exc, known_keys=_keys_at)
        faults += [(err["loc"], err["type"]) for err in exc.errors()]
    kept, invalid = _leave_out(data, faults)
    try:
        config = Config.model_validate(kept, context=context)
    except ValidationError:
        # Leaving the faulty parts out always validates; should it not, stop at what we have.
        raise ConfigError(errors) from None
    return ValidatedConfig(config, tuple(errors), invalid)


def parse_config(data: Any, env: Callable[[str], str | None] = os.environ.get,
                 base_dir: Path | None = None) -> Config:
    """Validate a parsed YAML tree into a Config; any fault raises ConfigError."""
    validated = validate_config(data, env, base_dir)
    if validated.errors:
        raise ConfigError(list(validated.errors))
    return validated.config


def load_config_file(path: Path) -> ValidatedConfig:
    """Read (dcim.yamlsafe) and validate a site config file, tolerantly: see validate_config."""
    return validate_config(yamlsafe.load(path), base_dir=path.parent)

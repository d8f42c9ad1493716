"""Site config: the YAML users write, validated strictly (README "Site config").

Unknown keys are errors, `${ENV}` is expanded in every string, `*_file` keys read a secret
from a file, and every problem is reported as `path: message`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
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
from dcim.errors import ConfigError, format_validation_error
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


class Coolant(_Strict):
    """Coolant properties used for heat = flow x density x cp x delta-T."""

    density_kg_m3: float = Field(gt=0)
    cp_kj_kg_k: float = Field(gt=0)


# PG25 (25 % propylene glycol) near 35 C, the usual secondary loop of GB300-class racks.
COOLANTS = {
    "pg25": Coolant(density_kg_m3=1017.0, cp_kj_kg_k=3.95),
    "water": Coolant(density_kg_m3=994.0, cp_kj_kg_k=4.18),
}


def _coolant(value: Any) -> Any:
    if isinstance(value, str):
        if value not in COOLANTS:
            raise ValueError(f"unknown coolant '{value}'; known: {', '.join(COOLANTS)}")
        return COOLANTS[value]
    return value


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
    coolant: Annotated[Coolant, BeforeValidator(_coolant)] | None = None
    # Redfish only (None: not given; the defaults are tls on, certificate verified).
    tls: bool | None = None
    tls_verify: bool | None = None
    tls_ca_file: Path | None = None
    resource: str | None = None

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


class PrometheusSink(_Strict):
    """Prometheus scrape endpoint."""

    listen: str = "127.0.0.1:9860"
    web_config_file: Path | None = None


class InfluxExporter(_Strict):
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


class MqttSource(_Strict):
    """Points read from a BMS on the same MQTT bus (DSX value payloads) instead of polling."""

    points: tuple[BmsPoint, ...] = Field(min_length=1)


class MqttExporter(_Strict):
    """MQTT sink (plain layout under topic_prefix, optional DSX BMS event bus layout)."""

    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: Topic = "dcim"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: SecretFile | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    dsx: bool = False
    # First tagPath segments of DSX topics (default: the site name): levels of id characters,
    # so no wildcards, spaces (a NATS bus refuses them) or empty segments.
    dsx_tag_prefix: Topic | None = None
    # Re-send unchanged DSX values and metadata this often (the bus convention is 100 s).
    dsx_republish: Duration = 100.0
    # QoS of DSX value messages: the bus default is 0 (metadata always goes at QoS 1).
    dsx_qos: Literal[0, 1] = 0
    plain: bool = True
    keepalive: Duration = 30.0
    # Events waiting for the broker; beyond this the oldest are dropped and counted.
    max_queue: int = Field(default=10_000, ge=1)
    # A persistent session (clean_session false) so the broker keeps QoS 1 state across reconnects.
    persistent_session: bool = True
    bms: MqttSource | None = None

    def secret_password(self) -> str | None:
        """The broker password from `password` or `password_file`, whichever is set."""
        value = self.password or self.password_file
        return value.get_secret_value() if value is not None else None


class Exporters(_Strict):
    """Optional sinks."""

    prometheus: PrometheusSink | None = None
    influxdb: InfluxExporter | None = None
    mqtt: MqttExporter | None = None


class Config(_Strict):
    """The whole site config file."""

    site: SiteSection
    polling: Polling = Polling()
    credentials: dict[Id, Credentials] = {}
    racks: tuple[Rack, ...] = ()
    devices: tuple[Device, ...] = ()
    pue: Pue | None = None
    exporters: Exporters = Exporters()
    profile_dirs: tuple[Path, ...] = ()
    state_dir: Path | None = None


def expand_env(node: Any, path: str, errors: list[str],
               env: Callable[[str], str | None] = os.environ.get) -> Any:
    """Replace ${NAME} in every string of a YAML tree; unset variables become errors."""
    if isinstance(node, dict):
        return {k: expand_env(v, f"{path}.{k}" if path else str(k), errors, env)
                for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, f"{path}[{i}]", errors, env) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(match: re.Match[str]) -> str:
            value = env(match.group(1))
            if value is None:
                errors.append(f"{path}: environment variable {match.group(1)} is not set")
                return ""
            return value
        return _ENV.sub(sub, node)
    return node


def parse_config(data: Any, env: Callable[[str], str | None] = os.environ.get,
                 base_dir: Path | None = None) -> Config:
    """Validate a parsed YAML tree into a Config; relative *_file paths are read from base_dir."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping with at least 'site'"])
    errors: list[str] = []
    data = expand_env(data, "", errors, env)
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        raise ConfigError(errors + format_validation_error(exc)) from None
    if errors:
        raise ConfigError(errors)
    return config


def load_config_file(path: Path) -> Config:
    """Read and validate a site config file."""
    return parse_config(yamlsafe.load(path), base_dir=path.parent)

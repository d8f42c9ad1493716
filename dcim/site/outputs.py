"""Sections `sinks` and `sources`, and the old names they replace.

`exporters` is the old name of `sinks` and `exporters.mqtt.bms` (or `sinks.mqtt.bms`) the old
place of `sources.bms`: both still load, each with a deprecation warning; the old and the new
spelling given together is an error naming the old one.
"""

from __future__ import annotations

from collections.abc import Mapping

from dcim.config import BmsPoint, Config, Invalid, PrometheusSinkConfig, Sinks
from dcim.points import POINTS
from dcim.site.model import BmsSpec, DeviceSpec, SinkSpecs, SourceSpecs


def _given(config: Config, invalid: Invalid, key: str) -> bool:
    return key in config.model_fields_set or invalid.hides(key)


def resolve_outputs(config: Config, devices: Mapping[str, DeviceSpec], declared: set[str],
                    invalid: Invalid, errors: list[str],
                    warnings: list[str]) -> tuple[SinkSpecs, SourceSpecs]:
    """The sinks and sources (the BMS mapping checked against the devices); faults appended
    to errors, deprecated keys to warnings."""
    sinks, sinks_key = _sinks(config, invalid, errors, warnings)
    sources = _sources(config, sinks, sinks_key, devices, declared, invalid, errors, warnings)
    mqtt = sinks.mqtt
    if mqtt is not None and mqtt.bms is not None:
        mqtt = mqtt.model_copy(update={"bms": None})  # read as a source, not the sink's business
    return SinkSpecs(prometheus=sinks.prometheus or PrometheusSinkConfig(),
                     influxdb=sinks.influxdb, mqtt=mqtt), sources


def _sinks(config: Config, invalid: Invalid, errors: list[str],
           warnings: list[str]) -> tuple[Sinks, str]:
    """The sinks and the key they were given under (sinks, or the deprecated exporters)."""
    if config.exporters is None:
        return config.sinks, "sinks"
    if _given(config, invalid, "sinks"):
        errors.append("exporters: the old name of sinks; give only sinks")
        return config.sinks, "sinks"
    warnings.append("exporters: deprecated, rename it to sinks (the keys inside stay the same)")
    return config.exporters, "exporters"


def _sources(config: Config, sinks: Sinks, sinks_key: str, devices: Mapping[str, DeviceSpec],
             declared: set[str], invalid: Invalid, errors: list[str],
             warnings: list[str]) -> SourceSpecs:
    """The sources: sources.bms, or the deprecated BMS mapping inside the MQTT sink."""
    bms: BmsSpec | None = None
    new = config.sources.bms
    if new is not None:
        bms = BmsSpec(broker=new, points=new.points, client_id=new.client_id)
        errors.extend(check_bms_points("sources.bms", new.points, devices, declared, invalid))
        mqtt = sinks.mqtt
        if (mqtt is not None and new.client_id is not None and new.client_id == mqtt.client_id
                and (new.host, new.port) == (mqtt.host, mqtt.port)):
            errors.append(f"sources.bms.client_id: '{new.client_id}' is also {sinks_key}.mqtt."
                          "client_id on the same broker, which would drop one for the other")
    mqtt = sinks.mqtt
    if mqtt is None or mqtt.bms is None:
        return SourceSpecs(bms=bms)
    where = f"{sinks_key}.mqtt.bms"
    if new is not None or invalid.hides("sources.bms"):
        errors.append(f"{where}: the old place of sources.bms; give only sources.bms")
    else:
        warnings.append(f"{where}: deprecated, move it to sources.bms with the broker settings "
                        f"it shares with {sinks_key}.mqtt (host, port, credentials, tls)")
        # Its own client id, or the broker would drop the sink's connection for this one.
        bms = BmsSpec(broker=mqtt, points=mqtt.bms.points,
                      client_id=f"{mqtt.client_id}-bms" if mqtt.client_id else None)
        errors.extend(check_bms_points(where, mqtt.bms.points, devices, declared, invalid))
    return SourceSpecs(bms=bms)


def check_bms_points(where: str, points: tuple[BmsPoint, ...], devices: Mapping[str, DeviceSpec],
                     declared: set[str], invalid: Invalid) -> list[str]:
    """Cross-references of the BMS mapping: a declared device, a point of its kind, no topic
    twice."""
    errors = []
    seen: set[str] = set()
    for i, p in enumerate(points):
        at = f"{where}.points[{i}]"
        if p.topic in seen:
            errors.append(f"{at}.topic: '{p.topic}' is mapped twice")
        seen.add(p.topic)
        device = devices.get(p.device)
        if device is None:
            if p.device not in declared and not invalid.hides("devices", p.device):
                errors.append(f"{at}.device: unknown device '{p.device}'")
            continue
        spec = POINTS.get(p.point)
        if spec is None:
            errors.append(f"{at}.point: unknown point '{p.point}'")
        elif device.kind not in spec.kinds:
            errors.append(f"{at}.point: a {device.kind} has no point '{p.point}'")
    return errors

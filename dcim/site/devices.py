"""Sections `devices` and `polling`: each device resolved against its profile and the racks.

A timeout that is not below its interval is reported where it was set: once as
`polling.timeout` when both come from `polling`, on the device when the device sets either.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence

from dcim.config import Config, Credentials, Device, Invalid, Polling
from dcim.coolant import COOLANTS, DEFAULT_COOLANT, Coolant
from dcim.points import Kind
from dcim.profile import Identity, Profile, ProfileRegistry, SnmpProfile, with_overrides
from dcim.site.credentials import snmp_auth
from dcim.site.model import (
    DEFAULT_PORTS,
    RACK_POWER_KINDS,
    SERVING_KINDS,
    DeviceSpec,
    RedfishTarget,
    SnmpAuth,
)
from dcim.site.racks import Feeds, rack_cap_kw

log = logging.getLogger("dcim.site")


def check_polling(polling: Polling, invalid: Invalid) -> list[str]:
    """The defaults themselves: the timeout must be shorter than the interval."""
    if invalid.hides("polling") or polling.timeout < polling.interval:
        return []
    return [f"polling.timeout: {polling.timeout:g}s must be shorter than the poll interval "
            f"{polling.interval:g}s"]


def _check_timing(where: str, dev: Device, polling: Polling) -> list[str]:
    interval = dev.interval or polling.interval
    timeout = dev.timeout or polling.timeout
    if timeout < interval:
        return []
    if dev.timeout is not None:
        return [f"{where}.timeout: {timeout:g}s must be shorter than the poll interval "
                f"{interval:g}s"]
    if dev.interval is not None:
        return [f"{where}.interval: {interval:g}s must be longer than the timeout {timeout:g}s "
                "(polling.timeout)"]
    return []  # both from polling: check_polling reports it once


def _suggest(name: str, registry: ProfileRegistry) -> str:
    close = difflib.get_close_matches(name, registry.names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; `dcim profiles` lists the known ones"


def _check_rack(where: str, dev: Device, profile: Profile, feeds: Feeds,
                invalid: Invalid) -> list[str]:
    """Whether the device may feed the rack it names (or names a feed without a rack)."""
    if dev.rack is None:
        return [f"{where}.feed: a feed needs a rack"] if dev.feed is not None else []
    if dev.rack not in feeds:
        hidden = invalid.hides("racks", dev.rack)
        return [] if hidden else [f"{where}.rack: unknown rack '{dev.rack}'"]
    if profile.kind not in RACK_POWER_KINDS:
        return [f"{where}.rack: a {profile.kind} cannot feed a rack (pdu, shelf or meter only)"]
    if "power_w" not in profile.points:
        return [f"{where}.rack: profile '{profile.name}' has no power_w point"]
    return []


def _check_serves(where: str, dev: Device, profile: Profile, feeds: Feeds, declared: set[str],
                  invalid: Invalid) -> list[str]:
    errors = []
    if dev.serves and profile.kind not in SERVING_KINDS:
        errors.append(f"{where}.serves: a {profile.kind} serves nothing (a cdu serves racks; "
                      "a meter or ups serves racks or devices)")
    for j, target in enumerate(dev.serves):
        if target in feeds or invalid.hides("racks", target):
            continue
        if profile.kind == Kind.CDU:
            errors.append(f"{where}.serves[{j}]: unknown rack '{target}'")
        # A meter's or UPS's serves (the DSX power path) may also name a device.
        elif (profile.kind in SERVING_KINDS and target not in declared
              and not invalid.hides("devices", target)):
            errors.append(f"{where}.serves[{j}]: unknown rack or device '{target}'")
    return errors


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


def _coolant(dev: Device, profile: Profile) -> Coolant | None:
    if dev.coolant is not None:
        return Coolant(density_kg_m3=dev.coolant.density_kg_m3, cp_kj_kg_k=dev.coolant.cp_kj_kg_k)
    return COOLANTS[DEFAULT_COOLANT] if profile.kind == Kind.CDU else None


AUTO = "auto"  # profile: auto, picked from the device's sysObjectID / sysDescr at load
# The profile of a `profile: auto` device that did not answer at load: no points, so it reads
# nothing and counts as down (a rack it feeds, a PUE it is part of are withheld, never partial).
# Its kind is a placeholder; the reload once it answers gives it its real profile.
UNIDENTIFIED = SnmpProfile(name=AUTO, kind=Kind.PDU, protocol="snmp",
                           description="profile: auto, not identified yet", points={})


def _target(dev: Device, config: Config) -> tuple[str, int, SnmpAuth]:
    return dev.host, dev.port or DEFAULT_PORTS["snmp"], snmp_auth(config.credentials,
                                                                  dev.credentials)


# Asks SNMP devices (host, port, auth) who they are, in order (dcim.drivers.identify): handed
# in by whoever loads the site, so the config layer itself does no I/O.
Identify = Callable[[Sequence[tuple[str, int, SnmpAuth]], ProfileRegistry, float, int],
                    list[Identity]]


NOT_ASKED = "this command does not ask devices"


def _identify_auto(config: Config, registry: ProfileRegistry,
                   identify: Identify | None) -> dict[str, Identity]:
    """Ask every `profile: auto` device who it is, all at once (SNMP devices only), by id."""
    wanted = [d for d in config.devices if d.profile == AUTO
              and (d.credentials is None or d.credentials in config.credentials)]
    if not wanted:
        return {}
    if identify is None:
        return {d.id: Identity(d.host, d.port or DEFAULT_PORTS["snmp"], None, None, (),
                               error=NOT_ASKED)
                for d in wanted}
    found = identify([_target(d, config) for d in wanted], registry, config.polling.timeout,
                     config.polling.retries)
    return {d.id: ident for d, ident in zip(wanted, found, strict=True)}


def _unanswered(identities: Mapping[str, Identity], dev: Device) -> str | None:
    """Why a `profile: auto` device is not identified yet (it did not answer), else None."""
    ident = identities.get(dev.id)
    if ident is None or ident.error is None or ident.error == NOT_ASKED:
        return None
    return f"profile not identified yet: no answer to sysObjectID ({ident.error})"


def _auto_profile(where: str, dev: Device, identities: Mapping[str, Identity],
                  errors: list[str]) -> str | None:
    ident = identities.get(dev.id)
    if ident is None:
        errors.append(f"{where}.credentials: unknown credentials '{dev.credentials}'")
        return None
    target = f"{ident.host}:{ident.port}"
    if ident.error is not None:  # only when this command does not ask devices
        errors.append(f"{where}.profile: auto: {target} was not asked ({ident.error}); "
                      "name its profile (`dcim discover` prints it)")
        return None
    if not ident.profiles:
        errors.append(f"{where}.profile: auto: no shipped profile matches {target} "
                      f"({ident.describe()}); name or write one")
    elif ident.profile is None:
        errors.append(f"{where}.profile: auto: several profiles fit {target} equally "
                      f"({', '.join(ident.profiles)}); name one")
    if ident.profile is not None:
        log.info("%s: profile auto -> %s (%s)", dev.id, ident.profile, ident.describe())
    return ident.profile


def _detected(dev: Device, identities: Mapping[str, Identity]) -> str | None:
    ident = identities.get(dev.id)
    return f"auto: {ident.describe()}" if ident is not None and ident.profile else None


def _adjusted(where: str, dev: Device, profile: Profile, errors: list[str]) -> Profile:
    """The profile with the device entry's `points` overrides applied."""
    if not dev.points:
        return profile
    unknown = [n for n in dev.points if n not in profile.points]
    errors.extend(f"{where}.points.{n}: profile '{profile.name}' has no point '{n}' "
                  f"(it has {', '.join(sorted(profile.points))})" for n in unknown)
    return with_overrides(profile, {
        n: None if o == "disabled" else o.keys()
        for n, o in dev.points.items() if n not in unknown})


def resolve_devices(config: Config, registry: ProfileRegistry, declared: set[str],
                    invalid: Invalid, errors: list[str], warnings: list[str],
                    identify: Identify | None = None) -> tuple[dict[str, DeviceSpec], Feeds]:
    """The devices that resolve (faults appended to errors), and which feed each rack;
    declared: every device id in the config (a meter may serve any of them); identify: how
    to ask `profile: auto` devices who they are (None: such a device is an error). A
    `profile: auto` device that does not answer is a warning: it loads as down (UNIDENTIFIED)
    and the rest of the site is polled."""
    polling = config.polling
    max_kw = config.site.rack_max_kw
    devices: dict[str, DeviceSpec] = {}
    seen: dict[str, int] = {}
    feeds: Feeds = {r.id: {} for r in config.racks}
    identities = _identify_auto(config, registry, identify)
    for i, dev in enumerate(config.devices):
        where = f"devices[{i}]"
        if dev.id in seen:
            errors.append(f"{where}.id: duplicate id '{dev.id}' (also devices[{seen[dev.id]}])")
            continue
        seen[dev.id] = i
        unanswered = _unanswered(identities, dev) if dev.profile == AUTO else None
        if unanswered is not None:
            warnings.append(f"{where}.profile: auto: {dev.host}:{dev.port or DEFAULT_PORTS['snmp']}"
                            f" {unanswered}; polled as down until it answers")
            devices[dev.id] = _unidentified_spec(dev, config, feeds, unanswered)
            if not invalid.hides("polling"):
                errors.extend(_check_timing(where, dev, polling))
            continue
        if dev.profile == AUTO:
            picked = _auto_profile(where, dev, identities, errors)
            if picked is None:
                continue
            dev = dev.model_copy(update={"profile": picked})
        if dev.profile not in registry:
            if not invalid.hides("profile_dirs"):
                errors.append(f"{where}.profile: unknown profile '{dev.profile}'"
                              f"{_suggest(dev.profile, registry)}")
            continue
        profile = _adjusted(where, dev, registry[dev.profile], errors)
        auth: SnmpAuth | None = None
        redfish: RedfishTarget | None = None
        errors.extend(_check_redfish_fields(where, dev, profile.protocol))
        if dev.credentials is not None and dev.credentials not in config.credentials:
            if not invalid.hides("credentials", dev.credentials):
                errors.append(f"{where}.credentials: unknown credentials '{dev.credentials}'")
        elif profile.protocol == "snmp":
            auth = snmp_auth(config.credentials, dev.credentials)
        elif profile.protocol == "redfish":
            named = config.credentials.get(dev.credentials) if dev.credentials else None
            redfish = _redfish_target(dev, named)
        rack_errors = _check_rack(where, dev, profile, feeds, invalid)
        if dev.rack is not None and dev.rack in feeds and not rack_errors:
            feeds[dev.rack].setdefault(dev.feed or "A", []).append(dev.id)
        errors.extend(rack_errors)
        errors.extend(_check_serves(where, dev, profile, feeds, declared, invalid))
        if not invalid.hides("polling"):
            errors.extend(_check_timing(where, dev, polling))
        interval = dev.interval or polling.interval
        # A PDU or shelf always has a rack-sized bound on its power, racked or not.
        cap_kw = (rack_cap_kw(config.racks, dev.rack, max_kw)
                  if dev.rack is not None or profile.kind in (Kind.PDU, Kind.SHELF) else None)
        devices[dev.id] = DeviceSpec(
            id=dev.id, profile=profile, host=dev.host,
            port=dev.port or DEFAULT_PORTS[profile.protocol], unit=dev.unit,
            interval=interval, timeout=dev.timeout or polling.timeout, retries=polling.retries,
            max_age=max(polling.max_age, interval), rack=dev.rack,
            feed=dev.feed or ("A" if dev.rack else None), serves=dev.serves, framer=dev.framer,
            coolant=_coolant(dev, profile), auth=auth, redfish=redfish,
            rack_cap_w=None if cap_kw is None else cap_kw * 1000,
            detected=_detected(dev, identities),
        )
    return devices, feeds


def _unidentified_spec(dev: Device, config: Config, feeds: Feeds, why: str) -> DeviceSpec:
    """A `profile: auto` device that did not answer: down until it does. Checks that need its
    profile (rack kind, points, serves) wait for the reload that identifies it."""
    if dev.rack is not None and dev.rack in feeds:
        feeds[dev.rack].setdefault(dev.feed or "A", []).append(dev.id)
    interval = dev.interval or config.polling.interval
    return DeviceSpec(
        id=dev.id, profile=UNIDENTIFIED, host=dev.host, port=dev.port or DEFAULT_PORTS["snmp"],
        unit=dev.unit, interval=interval, timeout=dev.timeout or config.polling.timeout,
        retries=config.polling.retries, max_age=max(config.polling.max_age, interval),
        rack=dev.rack, feed=dev.feed or ("A" if dev.rack else None), serves=dev.serves,
        auth=snmp_auth(config.credentials, dev.credentials), unidentified=why)

"""Redfish collection: walk a device's resource tree with as few GETs as the service allows.

Each poll starts at the device resource and follows the links its profile names, fetching
every round's documents concurrently (capped per service by dcim.redfish.client). Collections
are fetched with `$expand=.($levels=1)` (members inline: one request instead of one per member)
and other resources with `$select` of the properties read, but only when the service root's
ProtocolFeaturesSupported says so. A sub-resource that 404s loses only its points; anything
else (401, 5xx, HTML, a huge body, a timeout) fails the device with a typed error kind.
This module only fetches; dcim.redfish.decode turns documents into points.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from dcim.decode import Decoded, Missing
from dcim.profile import RedfishProfile
from dcim.reasons import ErrorKind
from dcim.redfish.client import RedfishError, RedfishService, normalize_uri
from dcim.redfish.decode import Need, RedfishData, decode_redfish
from dcim.site import DeviceSpec, RedfishTarget

# Link depth of the deepest shipped profile is 4 (CDU -> LeakDetection -> LeakDetectors ->
# member, plus a DataSourceUri); more rounds than this means a link loop.
MAX_ROUNDS = 8


class RedfishDriver:
    """Reads Redfish devices; one RedfishService (pool, cap, login) per service."""

    def __init__(self) -> None:
        self._services: dict[tuple[str, int, RedfishTarget], RedfishService] = {}
        self._resources: dict[str, str] = {}

    def service(self, device: DeviceSpec) -> RedfishService:
        """The service a device lives on (shared by the devices behind one BMC)."""
        target = device.redfish
        assert target is not None, f"{device.id} is not a redfish device"
        # Devices behind one BMC (same address, TLS settings and user) share its service.
        key = (device.host, device.port, replace(target, resource=None))
        svc = self._services.get(key)
        if svc is None:
            svc = self._services[key] = RedfishService(
                target, device.host, device.port, device.timeout, device.retries)
        return svc

    async def close(self) -> None:
        """Log out of every session and close every pool."""
        await asyncio.gather(*(s.close() for s in self._services.values()))
        self._services.clear()

    async def _resource(self, svc: RedfishService, device: DeviceSpec,
                        profile: RedfishProfile) -> str:
        """The device's resource URI: configured, or the profile collection's only member."""
        assert device.redfish is not None
        if device.redfish.resource:
            return normalize_uri(device.redfish.resource)
        known = self._resources.get(device.id)
        if known:
            return known
        coll = await svc.get(profile.collection)
        members = list(dict.fromkeys(
            normalize_uri(m["@odata.id"]) for m in coll.get("Members") or ()
            if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)))
        if len(members) != 1:
            listed = ", ".join(members[:8]) or "none"
            raise RedfishError(ErrorKind.RESOURCE, f"{device.id}: no resource configured and "
                               f"{profile.collection} has {len(members)} members ({listed}): "
                               "set the device's resource")
        self._resources[device.id] = members[0]
        return members[0]

    async def _fetch(self, svc: RedfishService, uri: str, need: Need,
                     data: RedfishData) -> None:
        features = await svc.features()
        params: dict[str, str] = {}
        selected: frozenset[str] | None = None
        if need.collection and features.expand:
            params["$expand"] = f"{features.expand}($levels=1)"
        elif features.select and need.properties and not need.collection:
            selected = frozenset(need.properties)
            params["$select"] = ",".join(sorted(selected))
        try:
            doc = await svc.get(uri, params or None)
        except RedfishError as exc:
            if exc.kind != ErrorKind.NOT_FOUND or uri == data.device_uri:
                raise
            data.add(uri, Missing("404 Not Found"))
            return
        data.add(uri, doc, selected)

    async def poll(self, device: DeviceSpec, profile: RedfishProfile,
                   only: frozenset[str] | None = None) -> Decoded:
        """Fetch what the profile's points need and decode it; RedfishError if the device failed."""
        svc = self.service(device)
        data = RedfishData(await self._resource(svc, device, profile))
        for _ in range(MAX_ROUNDS):
            needs: dict[str, Need] = {}
            decoded = decode_redfish(profile, data, device.rack_cap_w, only, needs)
            if not needs:
                return decoded
            results = await asyncio.gather(
                *(self._fetch(svc, uri, need, data) for uri, need in needs.items()),
                return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return decode_redfish(profile, data, device.rack_cap_w, only)

"""The simulator's Redfish side: DMTF-shaped documents of a power shelf or CDU, and the HTTP(S)
service (aiohttp) that serves them with authentication, sessions, $expand and $select.

One service per Redfish "gateway" (the rack's management controller serving its power shelves
at PowerShelves/1..8; a CDU is its own service). `RedfishEncoder` turns a device's canonical
values into its resource documents (the wire image); `decode` reads them back through dcim's
own Redfish decoder, for /devices and the tests. Faults per device, on requests under its
resource: slow (the answer after SLOW_S), timeout (no answer), unauthorized (401), http500,
html (an HTML page with 200), garbage (bytes that are not JSON).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import ssl
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dcim.decode import Decoded, Missing
from dcim.points import Kind
from dcim.profile import RedfishProfile
from dcim.redfish.decode import Need, RedfishData, decode_redfish
from dcim.sim.canonical import PointValue

V1 = "/redfish/v1"
SESSIONS = f"{V1}/SessionService/Sessions"
USERNAME = "dcim"
PASSWORD = "sim-bmc-password"
SLOW_S = 3.0
REDFISH_MODES = ("unauthorized", "http500", "html")

RedfishImage = dict[str, dict[str, Any]]


COLLECTIONS = {Kind.SHELF: f"{V1}/PowerEquipment/PowerShelves",
               Kind.PDU: f"{V1}/PowerEquipment/RackPDUs", Kind.CDU: f"{V1}/ThermalEquipment/CDUs"}


def resource_of(kind: Kind, unit: int) -> str:
    """The device resource of a simulated shelf (by its slot behind the rack service), rack
    PDU or CDU."""
    return f"{COLLECTIONS[kind]}/{unit}"


def _link(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def _collection(uri: str, kind: str, members: list[str]) -> dict[str, Any]:
    return {"@odata.id": uri, "@odata.type": f"#{kind}Collection.{kind}Collection", "Name": kind,
            "Members@odata.count": len(members), "Members": [_link(m) for m in members]}


def _reading(value: float) -> dict[str, float]:
    return {"Reading": round(value, 3)}


def _rows(values: Mapping[str, PointValue], name: str) -> dict[str, float]:
    value = values.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def _number(values: Mapping[str, PointValue], name: str) -> float:
    value = values.get(name, 0.0)
    return float(value) if not isinstance(value, Mapping) else float(sum(value.values()))


class RedfishEncoder:
    """The documents one simulated Redfish device serves (keyed by URI)."""

    def __init__(self, profile: RedfishProfile, kind: Kind, unit: int):
        self.profile = profile
        self.kind = kind
        self.uri = resource_of(kind, unit)

    def encode(self, values: Mapping[str, PointValue]) -> RedfishImage:
        """The resource tree for these canonical values."""
        if self.kind == Kind.SHELF:
            return self._shelf(values)
        if self.kind == Kind.PDU:
            return self._pdu(values)
        return self._cdu(values)

    def _power_distribution(self, values: Mapping[str, PointValue], equipment: str,
                            links: Mapping[str, str]) -> RedfishImage:
        """What a shelf and a rack PDU share: the resource, its Metrics, its Mains."""
        s = self.uri
        docs: RedfishImage = {}
        docs[s] = {
            "@odata.id": s, "@odata.type": "#PowerDistribution.v1_4_0.PowerDistribution",
            "Id": s.rsplit("/", 1)[-1], "Name": equipment, "EquipmentType": equipment,
            "Status": {"State": "Enabled", "Health": "OK"}, "Metrics": _link(f"{s}/Metrics"),
            "Mains": _link(f"{s}/Mains"), **{k: _link(f"{s}/{v}") for k, v in links.items()}}
        power = _reading(_number(values, "power_w"))
        if "apparent_power_va" in values:
            power["ApparentVA"] = round(_number(values, "apparent_power_va"), 3)
        if "power_factor" in values:
            power["PowerFactor"] = round(_number(values, "power_factor"), 6)
        docs[f"{s}/Metrics"] = {
            "@odata.id": f"{s}/Metrics", "Id": "Metrics", "Name": f"{equipment} metrics",
            "@odata.type": "#PowerDistributionMetrics.v1_3_0.PowerDistributionMetrics",
            "PowerWatts": power,
            "EnergykWh": {"LifetimeReading": round(_number(values, "energy_wh") / 1000.0, 6)}}
        amps, volts = _rows(values, "current_a"), _rows(values, "voltage_v")
        docs[f"{s}/Mains"] = _collection(f"{s}/Mains", "Circuit", [f"{s}/Mains/AC1"])
        docs[f"{s}/Mains/AC1"] = {
            "@odata.id": f"{s}/Mains/AC1", "@odata.type": "#Circuit.v1_7_0.Circuit", "Id": "AC1",
            "Name": "Input", "Status": {"State": "Enabled", "Health": "OK"},
            "PhaseWiringType": "ThreePhase5Wire",
            "FrequencyHz": _reading(_number(values, "frequency_hz")),
            "PolyPhaseCurrentAmps": {f"Line{i}": _reading(amps.get(str(i), 0.0)) for i in (1, 2, 3)},
            "PolyPhaseVoltage": {f"Line{i}ToNeutral": _reading(volts.get(str(i), 0.0))
                                 for i in (1, 2, 3)}}
        return docs

    def _pdu(self, values: Mapping[str, PointValue]) -> RedfishImage:
        s = self.uri
        docs = self._power_distribution(values, "RackPDU", {"Outlets": "Outlets"})
        watts, amps = _rows(values, "outlet_power_w"), _rows(values, "outlet_current_a")
        ids = [f"OUTLET{o}" for o in watts]
        docs[f"{s}/Outlets"] = _collection(f"{s}/Outlets", "Outlet",
                                           [f"{s}/Outlets/{o}" for o in ids])
        for row, oid in zip(watts, ids, strict=True):
            docs[f"{s}/Outlets/{oid}"] = {
                "@odata.id": f"{s}/Outlets/{oid}", "@odata.type": "#Outlet.v1_4_0.Outlet",
                "Id": oid, "Name": f"Outlet {row}", "Status": {"State": "Enabled", "Health": "OK"},
                "PowerWatts": _reading(watts[row]), "CurrentAmps": _reading(amps.get(row, 0.0))}
        return docs

    def _shelf(self, values: Mapping[str, PointValue]) -> RedfishImage:
        s = self.uri
        docs = self._power_distribution(values, "PowerShelf", {"PowerSupplies": "PowerSupplies"})
        healthy = _rows(values, "supply_healthy")
        out = _rows(values, "supply_power_w")
        capacity = _rows(values, "supply_capacity_w")
        ids = list(healthy)
        docs[f"{s}/PowerSupplies"] = _collection(f"{s}/PowerSupplies", "PowerSupply",
                                                 [f"{s}/PowerSupplies/{p}" for p in ids])
        for p in ids:
            u = f"{s}/PowerSupplies/{p}"
            ok = healthy[p] >= 0.5
            docs[u] = {"@odata.id": u, "@odata.type": "#PowerSupply.v1_5_0.PowerSupply", "Id": p,
                       "Name": p, "Status": {"State": "Enabled", "Health": "OK" if ok else "Critical"},
                       "PowerCapacityWatts": capacity.get(p, 0.0), "Metrics": _link(f"{u}/Metrics")}
            docs[f"{u}/Metrics"] = {
                "@odata.id": f"{u}/Metrics", "Id": "Metrics", "Name": f"{p} metrics",
                "@odata.type": "#PowerSupplyMetrics.v1_1_0.PowerSupplyMetrics",
                "OutputPowerWatts": _reading(out.get(p, 0.0))}
        return docs

    def _cdu(self, values: Mapping[str, PointValue]) -> RedfishImage:
        c = self.uri
        leak = _number(values, "leak") >= 0.5
        docs: RedfishImage = {}
        docs[c] = {
            "@odata.id": c, "@odata.type": "#CoolingUnit.v1_1_0.CoolingUnit",
            "Id": c.rsplit("/", 1)[-1], "Name": "CDU", "EquipmentType": "CDU",
            "Status": {"State": "Enabled", "Health": "Warning" if leak else "OK"},
            "SecondaryCoolantConnectors": _link(f"{c}/SecondaryCoolantConnectors"),
            "LeakDetection": _link(f"{c}/LeakDetection"),
            "EnvironmentMetrics": _link(f"{c}/EnvironmentMetrics")}
        docs[f"{c}/EnvironmentMetrics"] = {
            "@odata.id": f"{c}/EnvironmentMetrics", "Id": "EnvironmentMetrics", "Name": "CDU power",
            "@odata.type": "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
            "PowerWatts": _reading(_number(values, "pump_power_w"))}
        q = f"{c}/SecondaryCoolantConnectors"
        docs[q] = _collection(q, "CoolantConnector", [f"{q}/SC1"])
        docs[f"{q}/SC1"] = {
            "@odata.id": f"{q}/SC1", "@odata.type": "#CoolantConnector.v1_0_0.CoolantConnector",
            "Id": "SC1", "Name": "Rack loop", "Status": {"State": "Enabled", "Health": "OK"},
            "FlowLitersPerMinute": _reading(_number(values, "flow_lpm")),
            "SupplyTemperatureCelsius": _reading(_number(values, "supply_temp_c")),
            "ReturnTemperatureCelsius": _reading(_number(values, "return_temp_c")),
            "DeltaPressurekPa": _reading(_number(values, "diff_pressure_kpa")),
            "HeatRemovedkW": _reading(_number(values, "heat_w") / 1000.0)}
        ld = f"{c}/LeakDetection"
        docs[ld] = {"@odata.id": ld, "@odata.type": "#LeakDetection.v1_0_0.LeakDetection",
                    "Id": "LeakDetection", "Name": "Leak detection",
                    "LeakDetectors": _link(f"{ld}/LeakDetectors")}
        docs[f"{ld}/LeakDetectors"] = _collection(
            f"{ld}/LeakDetectors", "LeakDetector", [f"{ld}/LeakDetectors/{d}" for d in ("Tray", "Floor")])
        for d in ("Tray", "Floor"):
            state = "Critical" if leak and d == "Tray" else "OK"
            docs[f"{ld}/LeakDetectors/{d}"] = {
                "@odata.id": f"{ld}/LeakDetectors/{d}", "@odata.type": "#LeakDetector.v1_1_0.LeakDetector",
                "Id": d, "Name": f"{d} leak detector", "DetectorState": state,
                "Status": {"State": "Enabled", "Health": state}}
        return docs

    def decode(self, image: RedfishImage) -> Decoded:
        """What dcim's decoder reads from this image (links it does not hold are 404s)."""
        data = RedfishData(self.uri)
        for uri, doc in image.items():
            data.add(uri, doc)
        for _ in range(8):
            needs: dict[str, Need] = {}
            decode_redfish(self.profile, data, None, None, needs)
            if not needs:
                break
            for uri in needs:
                data.add(uri, Missing("404 Not Found"))
        return decode_redfish(self.profile, data)


def _root(kinds: set[Kind]) -> RedfishImage:
    root: dict[str, Any] = {
        "@odata.id": f"{V1}/", "@odata.type": "#ServiceRoot.v1_16_0.ServiceRoot", "Id": "RootService",
        "Name": "dcim simulator", "RedfishVersion": "1.17.0",
        "ProtocolFeaturesSupported": {"ExpandQuery": {"ExpandAll": False, "Levels": True,
                                                      "Links": False, "NoLinks": True,
                                                      "MaxLevels": 1},
                                      "SelectQuery": True},
        "SessionService": _link(f"{V1}/SessionService"), "Links": {"Sessions": _link(SESSIONS)}}
    docs: RedfishImage = {V1: root}
    power = {"PowerShelves": Kind.SHELF, "RackPDUs": Kind.PDU}
    if kinds & set(power.values()):
        root["PowerEquipment"] = _link(f"{V1}/PowerEquipment")
        docs[f"{V1}/PowerEquipment"] = {
            "@odata.id": f"{V1}/PowerEquipment", "Id": "PowerEquipment",
            **{name: _link(COLLECTIONS[k]) for name, k in power.items() if k in kinds}}
    if Kind.CDU in kinds:
        root["ThermalEquipment"] = _link(f"{V1}/ThermalEquipment")
        docs[f"{V1}/ThermalEquipment"] = {"@odata.id": f"{V1}/ThermalEquipment",
                                          "Id": "ThermalEquipment",
                                          "CDUs": _link(f"{V1}/ThermalEquipment/CDUs")}
    return docs


class RedfishSimService:
    """One Redfish service on loopback serving some devices of a World (HTTP, or HTTPS)."""

    def __init__(self, world: Any, devices: Mapping[str, RedfishEncoder]):
        self.world = world
        self.devices = dict(devices)
        self.tokens: set[str] = set()
        self.requests = 0
        self._static = _root({e.kind for e in devices.values()})
        for kind, coll in COLLECTIONS.items():
            members = [e.uri for e in devices.values() if e.kind == kind]
            if members:
                self._static[coll] = _collection(coll, "CoolingUnit" if kind == Kind.CDU
                                                 else "PowerDistribution", members)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _documents(self) -> dict[str, dict[str, Any]]:
        docs = dict(self._static)
        for dev_id in self.devices:
            docs.update(self.world.image(dev_id))
        return docs

    def _owner(self, path: str) -> str | None:
        for dev_id, enc in self.devices.items():
            if path == enc.uri or path.startswith(enc.uri + "/"):
                return dev_id
        return None

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("X-Auth-Token") in self.tokens:
            return True
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        return secrets.compare_digest(header, f"Basic {expected}")

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "a JSON body is required"}, status=400)
        if not isinstance(body, dict) or body.get("UserName") != USERNAME \
                or not secrets.compare_digest(str(body.get("Password")), PASSWORD):
            return web.json_response({"error": "invalid credentials"}, status=401)
        token = secrets.token_hex(16)
        self.tokens.add(token)
        uri = f"{SESSIONS}/{token[:8]}"
        return web.json_response({"@odata.id": uri, "Id": token[:8], "UserName": USERNAME},
                                 status=201, headers={"X-Auth-Token": token, "Location": uri})

    async def _logout(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Auth-Token", "")
        if token not in self.tokens or not token.startswith(request.match_info["id"]):
            return web.json_response({"error": "unknown session"}, status=404)
        self.tokens.discard(token)
        return web.Response(status=204)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        path = request.path.rstrip("/") or "/"
        owner = self._owner(path)
        mode = self.world.modes.get(owner) if owner else None
        if mode == "timeout":
            await asyncio.sleep(3600)
        if mode == "slow":
            await asyncio.sleep(SLOW_S)
        if path != V1 and (mode == "unauthorized" or not self._authorized(request)):
            return web.json_response({"error": {"code": "Base.1.0.NoValidSession"}}, status=401)
        if mode == "http500":
            return web.json_response({"error": {"code": "Base.1.0.InternalError"}}, status=500)
        if mode == "html":
            return web.Response(text="<!DOCTYPE html><html><body>BMC login</body></html>",
                                content_type="text/html")
        if mode == "garbage":
            return web.Response(body=os.urandom(64), content_type="application/json")
        docs = self._documents()
        doc = docs.get(path)
        if doc is None:
            return web.json_response({"error": {"code": "Base.1.0.ResourceMissingAtURI"}},
                                     status=404)
        if "$expand" in request.query and isinstance(doc.get("Members"), list):
            doc = dict(doc, Members=[docs.get(m["@odata.id"], m) for m in doc["Members"]])
        elif "$select" in request.query:
            keep = {p.strip() for p in request.query["$select"].split(",")}
            doc = {k: v for k, v in doc.items() if k in keep or k.startswith("@odata.")}
        return web.Response(text=json.dumps(doc), content_type="application/json")

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """Listen on host:port (0: any free port); return the port."""
        app = web.Application()
        app.router.add_post(SESSIONS, self._login)
        app.router.add_delete(SESSIONS + "/{id}", self._logout)
        app.router.add_get("/{tail:.*}", self._get)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=tls, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

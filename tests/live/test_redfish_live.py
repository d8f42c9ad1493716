"""Redfish devices read through the real driver: sushy-static serving the project's mockups
(goldens), and a hostile aiohttp service for what sushy-static cannot do (auth, sessions,
$expand) and for bad answers (401, 500, HTML, huge bodies, slowness, missing properties)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support.profiles import assert_golden, shipped_registry
from support.redfish import Mockup, mockup_documents, redfish_mockups
from support.servers import SushyStaticServer
from support.tls import make_ca_and_server_cert

from dcim.drivers.poller import Poller
from dcim.readings import PollResult
from dcim.site import DeviceSpec, RedfishTarget

REGISTRY = shipped_registry()
MOCKUPS = redfish_mockups()


def device(profile_name: str, port: int, target: RedfishTarget, timeout: float = 2.0,
           retries: int = 1) -> DeviceSpec:
    profile = REGISTRY[profile_name]
    return DeviceSpec(id=profile_name, profile=profile, host="127.0.0.1", port=port, unit=1,
                      interval=10.0, timeout=timeout, retries=retries, max_age=30.0,
                      redfish=target, rack_cap_w=190_000.0)


async def poll(*specs: DeviceSpec) -> list[PollResult]:
    poller = Poller()
    try:
        return list(await asyncio.gather(*(poller.poll(s) for s in specs)))
    finally:
        await poller.close()


@pytest.mark.parametrize("mockup", MOCKUPS, ids=lambda m: m.name)
async def test_mockup_read_from_sushy_static(mockup: Mockup,
                                             sushy_static_factory: Callable[..., SushyStaticServer]) -> None:
    server = sushy_static_factory(mockup.root)
    target = RedfishTarget(tls=False, resource=mockup.resource)
    (result,) = await poll(device(mockup.profile, server.port, target))
    assert result.up, result.error
    assert_golden(result.values, result.errors, mockup.golden, mockup.name)


# --- the hostile service ------------------------------------------------------------------------

USER, PASSWORD = "dcim", "s3cret-bmc-pass"


class Hostile:
    """A Redfish service over aiohttp serving one mockup, with switchable misbehaviour."""

    def __init__(self, docs: dict[str, dict[str, Any]], features: bool = True):
        self.docs = {u.rstrip("/"): d for u, d in docs.items()}
        if features:
            root = dict(self.docs["/redfish/v1"])
            root["ProtocolFeaturesSupported"] = {"ExpandQuery": {"Levels": True, "NoLinks": True,
                                                                 "MaxLevels": 1},
                                                 "SelectQuery": True}
            root["Links"] = {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
            self.docs["/redfish/v1"] = root
        self.mode = "ok"
        self.auth = "session"  # session | basic | none
        self.tokens: set[str] = set()
        self.logins = 0
        self.deleted: list[str] = []
        self.gets: list[str] = []
        self.in_flight = self.max_in_flight = 0

    def authorized(self, request: web.Request) -> bool:
        if self.auth == "none" or request.path.rstrip("/") == "/redfish/v1":
            return True
        if self.auth == "basic":
            return request.headers.get("Authorization", "").startswith("Basic ZGNpbTpzM2NyZXQ")
        return request.headers.get("X-Auth-Token") in self.tokens

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body != {"UserName": USER, "Password": PASSWORD}:
            return web.json_response({"error": "bad credentials"}, status=401)
        self.logins += 1
        token = f"token-{self.logins}"
        self.tokens.add(token)
        uri = f"/redfish/v1/SessionService/Sessions/{self.logins}"
        return web.json_response({"@odata.id": uri}, status=201,
                                 headers={"X-Auth-Token": token, "Location": uri})

    async def logout(self, request: web.Request) -> web.Response:
        self.deleted.append(request.path)
        self.tokens.discard(request.headers.get("X-Auth-Token", ""))
        return web.Response(status=204)

    async def get(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        self.gets.append(f"{request.path}?{query}" if query else request.path)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)  # a BMC takes its time: lets requests overlap
            if self.mode == "slow":
                await asyncio.sleep(5)
            if not self.authorized(request):
                return web.json_response({"error": "auth"}, status=401)
            if self.mode == "drop-once" and path != "/redfish/v1":
                self.mode = "ok"  # like a BMC closing an idle keep-alive connection
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=204)
            if self.mode == "500" and path != "/redfish/v1":
                return web.Response(status=500, text="internal error")
            if self.mode == "html" and path != "/redfish/v1":
                return web.Response(text="<html><body>Login</body></html>", content_type="text/html")
            if self.mode == "huge" and path != "/redfish/v1":
                resp = web.StreamResponse()
                await resp.prepare(request)
                for _ in range(80):
                    await resp.write(b" " * 65536)
                return resp
            doc = self.docs.get(path)
            if doc is None:
                return web.json_response({"error": "not found"}, status=404)
            if "$expand" in request.query and "Members" in doc:
                doc = dict(doc, Members=[self.docs[m["@odata.id"].rstrip("/")] for m in doc["Members"]])
            if "$select" in request.query:
                keep = set(request.query["$select"].split(",")) | {"@odata.id", "@odata.type"}
                doc = {k: v for k, v in doc.items() if k in keep}
            return web.json_response(doc)
        finally:
            self.in_flight -= 1

    def expire_sessions(self) -> None:
        self.tokens.clear()


@pytest.fixture
async def hostile_factory() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def make(mockup: str, **kwargs: Any) -> tuple[Hostile, int]:
        service = Hostile(mockup_documents(Path(_mockup(mockup).root)), **kwargs)
        app = web.Application()
        app.router.add_post("/redfish/v1/SessionService/Sessions", service.login)
        app.router.add_delete("/redfish/v1/SessionService/Sessions/{id}", service.logout)
        app.router.add_get("/{tail:.*}", service.get)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return service, port

    yield make
    for runner in runners:
        await runner.cleanup()


def _mockup(name: str) -> Mockup:
    return next(m for m in MOCKUPS if m.name == name)


CREDS = RedfishTarget(tls=False, username=USER, password=PASSWORD)


async def test_session_expand_select_and_logout(hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-power-shelf")
    poller = Poller()
    spec = device("redfish-power-shelf", port, CREDS)
    try:
        first = await poller.poll(spec)
        gets_first = len(service.gets)
        second = await poller.poll(spec)
    finally:
        await poller.close()
    assert first.up and second.up, (first.error, second.error)
    assert_golden(second.values, second.errors, _mockup("redfish-power-shelf").golden, "expanded")
    assert service.logins == 1  # one session, reused
    assert service.deleted == ["/redfish/v1/SessionService/Sessions/1"]  # and logged out
    assert any("$expand=.($levels=1)" in g for g in service.gets)
    assert any("$select=" in g for g in service.gets)
    # Collections come expanded: the second poll needs no service root or discovery GETs and
    # no GET per supply (only their Metrics).
    per_poll = len(service.gets) - gets_first
    assert per_poll <= 10, service.gets[gets_first:]
    assert 1 < service.max_in_flight <= 4  # concurrent, but capped per service


async def test_expired_session_logs_in_again(hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-cdu")
    poller = Poller()
    spec = device("redfish-cdu", port, CREDS)
    try:
        assert (await poller.poll(spec)).up
        service.expire_sessions()  # the BMC rebooted
        again = await poller.poll(spec)
    finally:
        await poller.close()
    assert again.up, again.error
    assert service.logins == 2
    assert again.values["leak"] == 1


async def test_basic_auth(hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-pdu", features=False)
    service.auth = "basic"
    (result,) = await poll(device("redfish-pdu", port, replace(CREDS, http_auth="basic")))
    assert result.up, result.error
    assert result.values["power_w"] == 20680 and service.logins == 0


async def test_wrong_password_is_an_auth_error_without_the_secret(
        hostile_factory: Callable[..., Any]) -> None:
    _, port = await hostile_factory("redfish-pdu")
    (result,) = await poll(device("redfish-pdu", port, replace(CREDS, password="wrong-secret")))
    assert not result.up and result.error_kind == "auth"
    assert "wrong-secret" not in (result.error or "") and "dcim" in (result.error or "")


async def test_no_credentials_on_a_protected_service(hostile_factory: Callable[..., Any]) -> None:
    _, port = await hostile_factory("redfish-pdu")
    (result,) = await poll(device("redfish-pdu", port, RedfishTarget(tls=False)))
    assert result.error_kind == "auth" and "no credentials" in (result.error or "")


@pytest.mark.parametrize(("mode", "kind"), [
    ("500", "http_status"), ("html", "not_json"), ("huge", "too_large"), ("slow", "timeout")])
async def test_bad_answers_mark_the_device_down(mode: str, kind: str,
                                                hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-power-shelf")
    service.mode = mode
    (result,) = await poll(device("redfish-power-shelf", port, CREDS, timeout=0.5, retries=0))
    assert not result.up and result.error_kind == kind, result.error
    assert result.values == {}
    if mode == "html":
        assert "text/html" in (result.error or "") and "<html>" in (result.error or "")


async def test_a_dropped_keepalive_connection_is_retried(
        hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-power-shelf")
    service.mode = "drop-once"
    (result,) = await poll(device("redfish-power-shelf", port, CREDS))
    assert result.up, result.error
    assert service.mode == "ok"  # the drop did happen


async def test_missing_properties_lose_only_their_points(hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-cdu", features=False)
    service.auth = "none"
    cdu = "/redfish/v1/ThermalEquipment/CDUs/1"
    del service.docs[f"{cdu}/EnvironmentMetrics"]  # the link 404s
    for sc in ("SC1", "SC2"):
        del service.docs[f"{cdu}/SecondaryCoolantConnectors/{sc}"]["HeatRemovedkW"]
    (result,) = await poll(device("redfish-cdu", port, RedfishTarget(tls=False)))
    assert result.up, result.error
    assert set(result.errors) == {"pump_power_w", "heat_w"}
    assert "404" in result.errors["pump_power_w"].message
    assert "not reported" in result.errors["heat_w"].message
    assert result.values["flow_lpm"] == pytest.approx(188.0)


async def test_unreachable_and_ambiguous_resource(hostile_factory: Callable[..., Any]) -> None:
    service, port = await hostile_factory("redfish-pdu-delta", features=False)
    service.auth = "none"
    results = await poll(device("redfish-pdu", port, RedfishTarget(tls=False)),
                         replace(device("redfish-pdu", 1, RedfishTarget(tls=False)), id="gone"))
    assert results[0].error_kind == "resource" and "RackPDUs/A" in (results[0].error or "")
    assert results[1].error_kind == "connect"


async def test_tls_verified_with_a_ca_file_and_unverified_with_a_warning(
        tmp_path: Path, sushy_static_factory: Callable[..., SushyStaticServer],
        caplog: pytest.LogCaptureFixture) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    mockup = _mockup("redfish-cdu")
    server = sushy_static_factory(mockup.root, cert_file=cert, key_file=key)
    good, unverified, untrusted = await poll(
        device("redfish-cdu", server.port, RedfishTarget(tls_ca_file=ca)),
        replace(device("redfish-cdu", server.port, RedfishTarget(tls_verify=False)), id="b"),
        replace(device("redfish-cdu", server.port, RedfishTarget()), id="c"))
    assert good.up, good.error
    assert_golden(good.values, good.errors, mockup.golden, "tls")
    assert unverified.up and "NOT verified" in caplog.text
    assert untrusted.error_kind == "tls", untrusted.error

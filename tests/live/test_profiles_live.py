"""Every shipped profile read through the real drivers from a real agent, against its golden.

SNMP fixtures are served by snmpsim and read with both SNMP engines (dcim's BER fast path and
pysnmp, the reference): both must give the golden points. Modbus fixtures are served by a
pymodbus TCP server. SNMPv1, v2c and v3 authPriv (SHA, SHA-256, AES) run against net-snmp's
snmpd, including a tooBig split.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from support.modbus_server import serve_modbus_fixtures
from support.polling import device, poll
from support.profiles import (
    SNMP_FIXTURES,
    assert_golden,
    case_fixture_names,
    golden_of,
    profile_of,
    shipped_registry,
)
from support.registry import SNMP_V3_USER, ServerRegistry
from support.servers import SnmpdServer, SnmpsimServer

from dcim.drivers.poller import Poller
from dcim.profile import ModbusProfile, SnmpProfile
from dcim.site import DeviceSpec, SnmpAuth

REGISTRY = shipped_registry()
SNMP_PROFILES = [p for p in REGISTRY.all() if isinstance(p, SnmpProfile)]
MODBUS_PROFILES = [p for p in REGISTRY.all() if isinstance(p, ModbusProfile)]


@pytest.fixture(scope="module")
def fixture_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimServer]:
    """snmpsim serving tests/fixtures/snmp (community = profile name), once per module."""
    registry = ServerRegistry(tmp_path_factory)
    server = registry.add(SnmpsimServer(registry.workdir("snmpsim"), SNMP_FIXTURES))
    yield server
    registry.stop_all()


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("profile", SNMP_PROFILES, ids=lambda p: p.name)
def test_snmp_profile_reads_its_fixture_live(profile: SnmpProfile, version: int, engine: str,
                                             fixture_agent: SnmpsimServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    auth = SnmpAuth(version=version, community=profile.name)
    result = poll(device(profile, fixture_agent.port, auth), engine, monkeypatch)
    assert result.up, result.error
    assert_golden(result.values, result.errors, golden_of(profile), f"{profile.name} v{version} {engine}")


SNMP_CASES = [n for n in case_fixture_names() if isinstance(REGISTRY[profile_of(n)], SnmpProfile)]
MODBUS_CASES = [n for n in case_fixture_names()
                if isinstance(REGISTRY[profile_of(n)], ModbusProfile)]


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
@pytest.mark.parametrize("name", SNMP_CASES)
def test_snmp_field_case_reads_live(name: str, engine: str, fixture_agent: SnmpsimServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A field behaviour served by snmpsim: unavailable with the right reason, the rest read."""
    profile = REGISTRY[profile_of(name)]
    result = poll(device(profile, fixture_agent.port, SnmpAuth(version=2, community=name)),
                  engine, monkeypatch)
    assert result.up, result.error
    assert_golden(result.values, result.errors, golden_of(profile, name), f"{name} {engine}")


async def test_modbus_field_cases_read_live() -> None:
    server, port = await serve_modbus_fixtures(MODBUS_CASES)
    poller = Poller()
    try:
        results = await asyncio.gather(*(
            poller.poll(device(REGISTRY[profile_of(n)], port, unit=i + 1))
            for i, n in enumerate(MODBUS_CASES)))
    finally:
        await poller.close()
        await server.shutdown()
    for name, result in zip(MODBUS_CASES, results, strict=True):
        assert result.up, f"{name}: {result.error}"
        assert_golden(result.values, result.errors, golden_of(REGISTRY[profile_of(name)], name),
                      name)


def test_both_engines_agree_on_raw_values(fixture_agent: SnmpsimServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for profile in SNMP_PROFILES:
        spec = device(profile, fixture_agent.port, SnmpAuth(version=2, community=profile.name))
        fast, reference = poll(spec, "fast", monkeypatch), poll(spec, "pysnmp", monkeypatch)
        assert fast.values == reference.values, profile.name
        assert fast.errors == reference.errors, profile.name
        assert fast.raw == reference.raw, profile.name


def test_wrong_profile_is_refused(fixture_agent: SnmpsimServer,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The Vertiv fixture answered with the Raritan profile: its sysObjectID gives it away.
    raritan = REGISTRY["raritan-px"]
    spec = device(raritan, fixture_agent.port, SnmpAuth(version=2, community="vertiv-v5"))
    result = poll(spec, "fast", monkeypatch)
    assert not result.up and result.error_kind == "profile_mismatch"
    assert "1.3.6.1.4.1.21239" in (result.error or "")
    assert (result.error or "").endswith("use profile vertiv-v5")
    # A first-generation Dominion PX (PDU-MIB v1) is pointed at its own profile.
    spec = device(raritan, fixture_agent.port, SnmpAuth(version=2, community="raritan-px1"))
    result = poll(spec, "fast", monkeypatch)
    assert result.error_kind == "profile_mismatch"
    assert (result.error or "").endswith("use profile raritan-px1")


# --- net-snmp snmpd: versions, v3 authPriv, tooBig ---------------------------------------------

PDU_OIDS = {f"1.3.6.1.4.1.99999.1.{i}.0": 1000 + i for i in range(1, 41)}
TEST_PROFILE = SnmpProfile.model_validate({
    "name": "snmpd-test", "kind": "pdu", "protocol": "snmp", "description": "snmpd overrides",
    "points": {
        "power_w": {"oid": "1.3.6.1.4.1.99999.1.1.0"},
        "energy_wh": {"oid": "1.3.6.1.4.1.99999.1.2.0", "scale": 100},
        "outlet_power_w": {"walk": "1.3.6.1.4.1.99999.1", "aggregate": "rows"},
        "frequency_hz": {"oid": "1.3.6.1.4.1.99999.2.0"},  # not served: noSuchObject
    },
})


@pytest.fixture
def agent(snmpd_factory: Any) -> SnmpdServer:
    server: SnmpdServer = snmpd_factory(
        v3_users=[SNMP_V3_USER],
        overrides=[(oid, "integer", value) for oid, value in PDU_OIDS.items()],
    )
    return server


AUTHS = {
    "v1": SnmpAuth(version=1, community="public"),
    "v2c": SnmpAuth(version=2, community="public"),
    "v3-sha256-aes": SnmpAuth(version=3, user=SNMP_V3_USER.name, auth_protocol="SHA256",
                              auth_key=SNMP_V3_USER.auth_key, priv_protocol="AES",
                              priv_key=SNMP_V3_USER.priv_key),
}


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
@pytest.mark.parametrize("name", sorted(AUTHS))
def test_snmpd_versions(agent: SnmpdServer, name: str, engine: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = poll(device(TEST_PROFILE, agent.port, AUTHS[name]), engine, monkeypatch)
    assert result.up, result.error
    assert result.values["power_w"] == 1001
    assert result.values["energy_wh"] == 100_200
    rows = result.values["outlet_power_w"]
    assert isinstance(rows, dict) and len(rows) == 40 and rows["40.0"] == 1040
    assert result.errors["frequency_hz"].message in {"noSuchObject", "noSuchName", "noSuchInstance"}
    assert result.errors["frequency_hz"].reason == "unsupported"


def test_v3_wrong_key_is_a_device_error(agent: SnmpdServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = SnmpAuth(version=3, user=SNMP_V3_USER.name, auth_protocol="SHA256",
                   auth_key="not-the-right-key", priv_protocol="AES",
                   priv_key=SNMP_V3_USER.priv_key)
    result = poll(device(TEST_PROFILE, agent.port, bad, timeout=0.5), "fast", monkeypatch)
    assert not result.up
    assert "auth-secret" not in (result.error or "") and "not-the-right-key" not in (result.error or "")


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
async def test_get_is_split_when_the_agent_says_toobig(engine: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # net-snmp's snmpd never answers tooBig over UDP (it silently drops what does not fit), so
    # the agent here is dcim's own RFC 3416 responder (the simulator's), limited to 1472 bytes:
    # 24 values of 90 bytes do not fit, so the GET must be split until the parts do.
    from dcim.drivers.snmp import FastClient, PysnmpClient
    from dcim.sim.snmp_agent import Mib, mib_handler, serve_snmp

    long = {f"1.3.6.1.4.1.99999.3.{i}.0": b"x" * 90 for i in range(1, 41)}
    transport = await serve_snmp("127.0.0.1", 0, mib_handler(Mib(long), max_size=1472))
    port = transport.get_extra_info("sockname")[1]
    sizes: list[int] = []
    client = FastClient() if engine == "fast" else PysnmpClient()
    real_get = client._get

    async def counting_get(spec: DeviceSpec, oids: Any) -> Any:
        sizes.append(len(oids))
        return await real_get(spec, oids)

    client._get = counting_get  # type: ignore[method-assign]
    try:
        spec = device(TEST_PROFILE, port, SnmpAuth(version=2, community="public"))
        values = await client.get(spec, list(long))
    finally:
        client.close()
        transport.close()
    assert max(sizes) == 24 and min(sizes) < 12, sizes
    assert values == long


# --- Modbus ------------------------------------------------------------------------------------


@pytest.fixture
async def modbus_gateway() -> AsyncIterator[int]:
    """One Modbus TCP port serving every Modbus fixture, profile i at unit i + 1."""
    server, port = await serve_modbus_fixtures([p.name for p in MODBUS_PROFILES])
    yield port
    await server.shutdown()


async def test_modbus_profiles_read_their_fixtures_live(modbus_gateway: int) -> None:
    poller = Poller()
    try:
        results = await asyncio.gather(*(
            poller.poll(device(p, modbus_gateway, unit=i + 1))
            for i, p in enumerate(MODBUS_PROFILES)))
    finally:
        await poller.close()
    for profile, result in zip(MODBUS_PROFILES, results, strict=True):
        assert result.up, f"{profile.name}: {result.error}"
        assert_golden(result.values, result.errors, golden_of(profile), profile.name)



@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
async def test_walk_follows_tables_that_grow(engine: str) -> None:
    """Repetitions learned from the last walk are a hint: a changed table is still read whole."""
    from dcim.drivers.snmp import FastClient, PysnmpClient
    from dcim.sim.snmp_agent import Mib, mib_handler, serve_snmp

    phases, outlets = "1.3.6.1.4.1.99999.5.1", "1.3.6.1.4.1.99999.5.2"
    mib = Mib({**{f"{phases}.{i}": 230 + i for i in range(1, 4)},
               **{f"{outlets}.{i}": 100 + i for i in range(1, 25)},
               "1.3.6.1.4.1.99999.6.0": 1})
    transport = await serve_snmp("127.0.0.1", 0, mib_handler(mib))
    port = transport.get_extra_info("sockname")[1]
    client = FastClient() if engine == "fast" else PysnmpClient()
    spec = device(TEST_PROFILE, port, SnmpAuth(version=2, community="public"))
    try:
        first = await client.walk(spec, [phases, outlets], 25)
        assert (len(first[phases]), len(first[outlets])) == (3, 24)
        mib[f"{phases}.4"] = 234  # a fourth phase row appears (daisy-chained unit added)
        mib[f"{outlets}.25"] = 125
        grown = await client.walk(spec, [phases, outlets], 25)
        assert (len(grown[phases]), len(grown[outlets])) == (4, 25)
        assert grown[phases]["4"] == 234 and grown[outlets]["25"] == 125
        again = await client.walk(spec, [phases, outlets], 25)
        assert again == grown
    finally:
        client.close()
        transport.close()

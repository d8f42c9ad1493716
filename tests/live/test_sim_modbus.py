"""The simulator's Modbus ports (dcim/sim/agents.py, pymodbus's server) on the wire.

A World with one stand-alone meter and two CDUs behind one gateway is served in-process on
free loopback ports and read with pymodbus's client: the registers are the World's, the
map's edges and writes are refused as a read-only meter refuses them, and every fault mode
of the control API answers as described in the module's docstring.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from dcim.points import Kind
from dcim.profile import ProfileRegistry
from dcim.sim import agents as sim_agents
from dcim.sim.agents import Agents, PortInUse
from dcim.sim.topology import SimDevice, SimRack, SimSite
from dcim.sim.wire import ModbusEncoder
from dcim.sim.world import World

RACK = SimRack(id="r01", cap_kw=190.0, base_kw=120.0, job=0, row="a", hall="h1")
SITE = SimSite(name="modbus", preset="test", racks=(RACK,), devices=(
    SimDevice(id="main-1", profile="schneider-pm5500", kind=Kind.METER, share=1.0),
    SimDevice(id="cdu-1", profile="generic-cdu", kind=Kind.CDU, serves=("r01",),
              gateway="gw", unit=1),
    SimDevice(id="cdu-2", profile="generic-cdu", kind=Kind.CDU, serves=("r01",),
              gateway="gw", unit=2),
))


@pytest.fixture
async def served() -> AsyncIterator[tuple[World, Agents]]:
    world = World(SITE, 1, ProfileRegistry.load(), 1_760_000_000.0, frozen=True)
    agents = Agents(world)
    await agents.start(list(SITE.devices))
    try:
        yield world, agents
    finally:
        await agents.close()


async def read(agents: Agents, device: str, address: int, count: int = 2, *,
               unit: int | None = None, function: str = "holding", timeout: float = 2.0) -> Any:
    end = agents.endpoints[device]
    client = AsyncModbusTcpClient(end.host, port=end.port, timeout=timeout, retries=0)
    await client.connect()
    try:
        call = client.read_holding_registers if function == "holding" else \
            client.read_input_registers
        return await call(address, count=count, device_id=end.unit if unit is None else unit)
    finally:
        client.close()


def first_register(world: World, device: str) -> tuple[str, int, int]:
    """(function, lowest address, highest address) of a device's register map."""
    encoder = world.encoders[device]
    assert isinstance(encoder, ModbusEncoder)
    function, (low, high) = min(encoder.register_span().items())
    return function, low, high


async def test_registers_are_the_worlds_at_any_unit_id(served: tuple[World, Agents]) -> None:
    world, agents = served
    function, low, _ = first_register(world, "main-1")
    image = world.image("main-1")
    expected = [image.get((function, a), 0) for a in range(low, low + 4)]
    for unit in (1, 17):  # a stand-alone device answers whatever unit id it is asked
        result = await read(agents, "main-1", low, 4, unit=unit, function=function)
        assert not result.isError() and result.registers == expected


async def test_gateway_serves_each_unit_its_own_device(served: tuple[World, Agents]) -> None:
    world, agents = served
    assert agents.endpoints["cdu-1"].port == agents.endpoints["cdu-2"].port
    function, low, high = first_register(world, "cdu-2")
    result = await read(agents, "cdu-2", low, high - low + 1, function=function)
    image = world.image("cdu-2")
    assert result.registers == [image.get((function, a), 0)
                                for a in range(low, high + 1)]


async def test_outside_the_map_and_writes_are_refused(served: tuple[World, Agents]) -> None:
    world, agents = served
    function, low, high = first_register(world, "main-1")
    assert (await read(agents, "main-1", high, 2, function=function)).exception_code == 2
    if low > 0:
        assert (await read(agents, "main-1", low - 1, 2, function=function)).exception_code == 2
    end = agents.endpoints["main-1"]
    client = AsyncModbusTcpClient(end.host, port=end.port, timeout=2.0, retries=0)
    await client.connect()
    try:
        assert (await client.write_register(low, 1, device_id=1)).exception_code == 1
        assert (await client.read_coils(0, count=1, device_id=1)).exception_code == 1
    finally:
        client.close()


async def test_unit_no_gateway_serves_is_exception_10(served: tuple[World, Agents]) -> None:
    world, agents = served
    function, low, _ = first_register(world, "cdu-1")
    assert (await read(agents, "cdu-1", low, unit=9, function=function)).exception_code == 10


@pytest.mark.parametrize(("device", "code"), [("main-1", 4), ("cdu-1", 11)])
async def test_exception_mode(served: tuple[World, Agents], device: str, code: int) -> None:
    world, agents = served
    function, low, _ = first_register(world, device)
    world.apply({"action": "fail", "device": device, "mode": "exception"})
    assert (await read(agents, device, low, function=function)).exception_code == code
    if device == "cdu-1":  # the gateway's other unit still answers
        assert not (await read(agents, "cdu-2", low, function=function)).isError()
    world.apply({"action": "recover", "device": device})
    assert not (await read(agents, device, low, function=function)).isError()


@pytest.mark.parametrize("mode", ["timeout", "garbage"])
@pytest.mark.parametrize("device", ["main-1", "cdu-1"])
async def test_no_valid_answer(served: tuple[World, Agents], mode: str, device: str) -> None:
    world, agents = served
    function, low, _ = first_register(world, device)
    world.apply({"action": "fail", "device": device, "mode": mode})
    with pytest.raises(ModbusIOException):
        await read(agents, device, low, function=function, timeout=0.5)
    world.apply({"action": "recover", "device": device})
    assert not (await read(agents, device, low, function=function)).isError()


async def test_slow_answer_comes_late(served: tuple[World, Agents],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    world, agents = served
    monkeypatch.setattr(sim_agents, "SLOW_S", 1.0)
    function, low, _ = first_register(world, "cdu-2")
    world.apply({"action": "fail", "device": "cdu-2", "mode": "slow"})
    with pytest.raises(ModbusIOException):  # an impatient client gives up ...
        await read(agents, "cdu-2", low, function=function, timeout=0.3)
    late = await read(agents, "cdu-2", low, function=function, timeout=5.0)
    assert not late.isError()  # ... a patient one gets the registers


async def test_a_taken_port_is_a_clear_error() -> None:
    world = World(SITE, 1, ProfileRegistry.load(), 1_760_000_000.0, frozen=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        agents = Agents(world)
        with pytest.raises(PortInUse, match=f"cannot bind TCP 127.0.0.1:{port}: "):
            await agents.start([SITE.devices[0]], base_port=port)
        await agents.close()

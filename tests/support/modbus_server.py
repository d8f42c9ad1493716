"""A pymodbus TCP server serving the Modbus profile fixtures (tests/fixtures/modbus)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from support.profiles import modbus_exceptions, modbus_fixture, modbus_words


def free_tcp_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fixture_device(fixture: dict[str, Any], unit: int) -> SimDevice:
    """A Modbus device serving a fixture's registers and refusing its `exceptions`."""
    words = modbus_words(fixture)
    refused = modbus_exceptions(fixture)

    def blocks(function: str) -> list[SimData]:
        regs = {a: w for (f, a), w in words.items() if f == function}
        return [SimData(a, values=w, datatype=DataType.REGISTERS) for a, w in sorted(regs.items())]

    async def action(function_code: int, start_address: int, address: int, count: int,
                     current_registers: list[int], set_values: Any) -> ExcCodes | None:
        function = "holding" if function_code == 3 else "input"
        for a in range(address, address + count):
            if (function, a) in refused:
                return ExcCodes(refused[(function, a)])
        return None

    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    holding = blocks("holding") or [SimData(0, values=0, datatype=DataType.REGISTERS)]
    inputs = blocks("input") or [SimData(0, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(unit, simdata=(bits, bits, holding, inputs), action=action)


async def serve_modbus_fixtures(names: list[str]) -> tuple[ModbusTcpServer, int]:
    """One gateway port serving the fixtures of the named profiles at unit 1, 2, ..."""
    devices = [fixture_device(modbus_fixture(name), i + 1) for i, name in enumerate(names)]
    port = free_tcp_port()
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    await asyncio.sleep(0.1)
    return server, port

"""Modbus TCP (and RTU over TCP) collection with pymodbus 3.

Registers of a device are read in as few requests as possible (contiguous ranges coalesced,
small holes filled, at most 125 registers per request). One transaction at a time per
host:port, because a gateway with many unit ids behind it must never be hit concurrently.
This module only fetches; dcim.decode turns registers into points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dcim.decode import Missing, ModbusData
from dcim.profile import ModbusSource
from dcim.reasons import ErrorKind, Reason
from dcim.site import DeviceSpec

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# Illegal function / illegal data address for one value: the device does not have that value.
UNMAPPED_CODES = frozenset({1, 2})


class ModbusDeviceError(Exception):
    """The device as a whole could not be read; `kind` classifies it for metrics."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, order=True)
class Block:
    """One read request: function, first register, register count."""

    function: str
    address: int
    count: int


def registers_needed(sources: Iterable[ModbusSource]) -> set[tuple[str, int]]:
    """Every (function, register) the given sources read, scale-factor registers included."""
    needed: set[tuple[str, int]] = set()
    for src in sources:
        for _, address in src.row_addresses():
            needed.update((src.function, a) for a in range(address, address + src.width))
        if src.scale_factor is not None:
            needed.add((src.scale_factor.function, src.scale_factor.address))
    return needed


def coalesce(registers: Iterable[tuple[str, int]], max_gap: int, max_block: int) -> list[Block]:
    """Group registers into as few reads as possible, filling holes up to max_gap."""
    blocks: list[Block] = []
    for function in ("holding", "input"):
        addresses = sorted(a for f, a in registers if f == function)
        start = end = None
        for address in addresses:
            if start is not None and end is not None and (
                address - end - 1 <= max_gap and address - start + 1 <= max_block
            ):
                end = address
                continue
            if start is not None and end is not None:
                blocks.append(Block(function, start, end - start + 1))
            start = end = address
        if start is not None and end is not None:
            blocks.append(Block(function, start, end - start + 1))
    return blocks


def _read_failure(device: DeviceSpec, block: Block, exc: BaseException) -> ModbusDeviceError:
    """The device error for a read that failed on every attempt, with a message never empty."""
    where = (f"{device.host}:{device.port} unit {device.unit}: reading {block.count} "
             f"{block.function} registers at {block.address}")
    detail = str(exc).strip()
    if isinstance(exc, TimeoutError) or "timeout" in detail.lower():
        return ModbusDeviceError(ErrorKind.TIMEOUT, f"{where}: no response within "
                                 f"{device.timeout:g}s x {device.retries + 1}")
    return ModbusDeviceError(ErrorKind.PROTOCOL, f"{where}: {detail or type(exc).__name__}")


class _Connection:
    """A pymodbus client for one host:port, with the lock that serializes its transactions."""

    def __init__(self, host: str, port: int, framer: str):
        self.host, self.port, self.framer = host, port, framer
        self.lock = asyncio.Lock()
        self.client: Any = None

    async def ensure(self, timeout: float) -> Any:
        from pymodbus.client import AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        if self.client is not None and self.client.connected:
            return self.client
        await self.drop()
        framer = FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET
        # reconnect_delay=0: dcim decides when to reconnect (next poll), not pymodbus.
        client = AsyncModbusTcpClient(self.host, port=self.port, framer=framer,
                                      timeout=timeout, retries=0, reconnect_delay=0)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancellation.
            async with asyncio.timeout(timeout):
                ok = await client.connect()
        except (TimeoutError, OSError):
            ok = False
        if not ok:
            client.close()
            raise ModbusDeviceError(ErrorKind.CONNECT, f"cannot connect to {self.host}:{self.port}")
        self.client = client
        return client

    async def drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class ModbusClient:
    """Reads register blocks, one transaction at a time per host:port."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], _Connection] = {}

    def _connection(self, device: DeviceSpec) -> _Connection:
        key = (device.host, device.port)
        conn = self._connections.get(key)
        if conn is None:
            conn = self._connections[key] = _Connection(device.host, device.port, device.framer)
        return conn

    async def close(self) -> None:
        """Close every connection."""
        for conn in self._connections.values():
            await conn.drop()
        self._connections.clear()

    async def _read_block(self, conn: _Connection, device: DeviceSpec, block: Block,
                          data: ModbusData) -> int | None:
        """Read one block into data; return the exception code if the device refused it."""
        from pymodbus.exceptions import ModbusException

        for attempt in range(device.retries + 1):
            client = await conn.ensure(device.timeout)
            read = (client.read_holding_registers if block.function == "holding"
                    else client.read_input_registers)
            try:
                async with asyncio.timeout(device.timeout):
                    result = await read(block.address, count=block.count, device_id=device.unit)
                break
            except (TimeoutError, ModbusException, OSError) as exc:
                await conn.drop()
                if attempt == device.retries:
                    raise _read_failure(device, block, exc) from None
        if result.isError():
            code = int(getattr(result, "exception_code", 0))
            reason = Missing(f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})",
                             Reason.UNSUPPORTED if code in UNMAPPED_CODES else Reason.READ_ERROR)
            for a in range(block.address, block.address + block.count):
                data.registers[(block.function, a)] = reason
            return code
        words = list(result.registers)
        if len(words) != block.count:
            raise ModbusDeviceError(
                ErrorKind.PROTOCOL, f"{device.id}: asked for {block.count} registers, got {len(words)}"
            )
        for offset, word in enumerate(words):
            data.registers[(block.function, block.address + offset)] = word
        return None

    async def fetch(self, device: DeviceSpec, sources: Iterable[ModbusSource],
                    max_gap: int, max_block: int, data: ModbusData | None = None) -> ModbusData:
        """Read every register the sources need; an exception code fails only its points."""
        data = data or ModbusData()
        sources = list(sources)
        needed = registers_needed(sources)
        conn = self._connection(device)
        async with conn.lock:
            refused = [b for b in coalesce(needed, max_gap, max_block)
                       if await self._read_block(conn, device, b, data) is not None]
            # A refused coalesced block may hide good registers (a hole the device does not
            # map): read each affected source on its own before giving up on it.
            retry: set[Block] = set()
            for src in sources:
                own = registers_needed([src])
                if any(isinstance(data.registers.get(r), Missing) for r in own):
                    retry.update(coalesce(own, 0, max_block))
            if refused and retry != set(refused):
                for block in sorted(retry):
                    await self._read_block(conn, device, block, data)
        if needed and all(isinstance(data.registers.get(r), Missing) for r in needed):
            first = data.registers[min(needed)]
            reason = first.reason if isinstance(first, Missing) else "refused"
            raise ModbusDeviceError(ErrorKind.EXCEPTION, f"{device.id}: every read refused: {reason}")
        return data

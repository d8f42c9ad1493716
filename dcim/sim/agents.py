"""Serving simulated devices: one UDP SNMP agent or Modbus TCP port per device (or gateway).

The agents answer from the World's latest state through the shared SNMP codec
(`dcim.sim.snmp_agent.respond`) and a minimal Modbus TCP responder (read holding/input
registers), and act out the injected faults: timeout, garbage, exception, slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from dcim.sim.snmp_agent import Mib, respond
from dcim.sim.topology import SimDevice
from dcim.sim.wire import ModbusImage, SnmpImage
from dcim.sim.world import World
from dcim.snmp.codec import (
    ErrorStatus,
    Message,
    Pdu,
    PduType,
    SnmpDecodeError,
    decode_message,
    encode_message,
)

log = logging.getLogger(__name__)

# Longer than dcim's default 2 s timeout, yet the device does answer in the end.
SLOW_S = 3.0
COMMUNITY = b"public"
_MODBUS_EXCEPTION_DEVICE_FAILURE = 4
_MODBUS_EXCEPTION_GATEWAY_PATH = 10
_MODBUS_EXCEPTION_GATEWAY_TARGET = 11


class PortInUse(OSError):
    """A port the simulator was told to use is taken."""


@dataclass
class Endpoint:
    """Where a device is served."""

    host: str
    port: int
    unit: int = 1


def _garbage() -> bytes:
    return os.urandom(8 + os.urandom(1)[0] % 48)


class _SnmpAgent(asyncio.DatagramProtocol):
    def __init__(self, world: World, device_id: str):
        self.world = world
        self.device_id = device_id
        self.transport: asyncio.DatagramTransport | None = None
        self._mib: Mib | None = None
        self._mib_image: SnmpImage | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _current_mib(self) -> Mib:
        image = self.world.image(self.device_id)
        if self._mib is None or image is not self._mib_image:
            assert isinstance(image, dict)
            self._mib = Mib(image)  # type: ignore[arg-type]
            self._mib_image = image  # type: ignore[assignment]
        return self._mib

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        mode = self.world.modes.get(self.device_id)
        if mode == "timeout":
            return
        if mode == "garbage":
            self._send(_garbage(), addr)
            return
        try:
            request = decode_message(data)
        except SnmpDecodeError:
            return  # an agent drops what it cannot parse
        if request.community != COMMUNITY:
            return
        if mode == "exception":
            pdu = Pdu(PduType.RESPONSE, request.pdu.request_id, ErrorStatus.genErr, 1,
                      request.pdu.varbinds)
            self._send(encode_message(request.version, request.community, pdu), addr)
        elif mode == "slow":
            asyncio.get_running_loop().call_later(SLOW_S, self._answer, request, addr)
        else:
            self._answer(request, addr)

    def _answer(self, request: Message, addr: tuple[Any, ...]) -> None:
        try:
            reply = respond(request, self._current_mib(), COMMUNITY)
            if reply is not None:
                self._send(encode_message(reply.version, reply.community, reply.pdu), addr)
        except Exception:  # one bad request must not stop the agent
            log.exception("%s: SNMP answer failed", self.device_id)

    def _send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


@dataclass
class _Registers:
    image: ModbusImage
    ranges: dict[str, tuple[int, int]]


def _ranges(image: ModbusImage) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for function, address in image:
        low, high = out.get(function, (address, address))
        out[function] = (min(low, address), max(high, address))
    return out


@dataclass
class _ModbusPort:
    """A Modbus TCP port: one device (any unit id) or a gateway (unit id -> device)."""

    world: World
    units: dict[int, str]
    gateway: bool
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    cache: dict[str, _Registers] = field(default_factory=dict)

    def registers(self, device_id: str) -> _Registers:
        image = self.world.image(device_id)
        cached = self.cache.get(device_id)
        if cached is None or cached.image is not image:
            assert isinstance(image, dict)
            cached = self.cache[device_id] = _Registers(image, _ranges(image))  # type: ignore[arg-type]
        return cached

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, proto, length, unit = struct.unpack(">HHHB", header)
                if proto != 0 or not 2 <= length <= 254:
                    return  # not Modbus TCP: drop the connection as devices do
                pdu = await reader.readexactly(length - 1)
                reply = await self._reply(unit, pdu, writer)
                if reply is not None:
                    writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _reply(self, unit: int, pdu: bytes, writer: asyncio.StreamWriter) -> bytes | None:
        function = pdu[0]
        device_id = self.units.get(unit) if self.gateway else next(iter(self.units.values()))
        if device_id is None:
            return bytes((function | 0x80, _MODBUS_EXCEPTION_GATEWAY_PATH))
        mode = self.world.modes.get(device_id)
        if mode == "timeout":
            return None
        if mode == "garbage":
            writer.write(_garbage())
            return None
        if mode == "exception":
            code = _MODBUS_EXCEPTION_GATEWAY_TARGET if self.gateway else \
                _MODBUS_EXCEPTION_DEVICE_FAILURE
            return bytes((function | 0x80, code))
        if mode == "slow":
            await asyncio.sleep(SLOW_S)
        if function not in (3, 4):
            return bytes((function | 0x80, 1))  # illegal function: the simulator is read-only
        if len(pdu) != 5:
            return bytes((function | 0x80, 3))
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 125:
            return bytes((function | 0x80, 3))
        kind = "holding" if function == 3 else "input"
        regs = self.registers(device_id)
        low, high = regs.ranges.get(kind, (1, 0))
        if address < low or address + count - 1 > high:
            return bytes((function | 0x80, 2))  # illegal data address
        # reserved registers inside the device's map read 0, as on most meters
        words = [regs.image.get((kind, a), 0) for a in range(address, address + count)]
        return struct.pack(f">BB{count}H", function, 2 * count, *words)


class Agents:
    """Every device of one World, served on host; `endpoints` says where each one is."""

    def __init__(self, world: World, host: str = "127.0.0.1"):
        self.world = world
        self.host = host
        self.endpoints: dict[str, Endpoint] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self._servers: list[asyncio.Server] = []
        self._ports: list[_ModbusPort] = []

    async def start(self, devices: list[SimDevice], base_port: int | None = None) -> None:
        """Bind every device's port (consecutive from base_port, or any free ones)."""
        loop = asyncio.get_running_loop()
        next_port = base_port
        gateways: dict[str, list[SimDevice]] = {}
        for dev in devices:
            protocol = self.world.profiles[dev.id].protocol
            if protocol == "modbus" and dev.gateway:
                gateways.setdefault(dev.gateway, []).append(dev)
                continue
            port = next_port or 0
            if next_port:
                next_port += 1
            if protocol == "snmp":
                sock = _bind(socket.SOCK_DGRAM, self.host, port)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda d=dev.id: _SnmpAgent(self.world, d), sock=sock)  # type: ignore[misc]
                self._transports.append(transport)
                self.endpoints[dev.id] = Endpoint(self.host, sock.getsockname()[1])
            else:
                self.endpoints[dev.id] = Endpoint(
                    self.host, await self._modbus({1: dev.id}, False, port))
        for members in gateways.values():
            port = next_port or 0
            if next_port:
                next_port += 1
            bound = await self._modbus({d.unit: d.id for d in members}, True, port)
            for d in members:
                self.endpoints[d.id] = Endpoint(self.host, bound, d.unit)

    async def _modbus(self, units: dict[int, str], gateway: bool, port: int) -> int:
        handler = _ModbusPort(self.world, units, gateway)
        sock = _bind(socket.SOCK_STREAM, self.host, port)
        server = await asyncio.start_server(handler.handle, sock=sock, backlog=512)
        self._servers.append(server)
        self._ports.append(handler)
        bound: int = sock.getsockname()[1]
        return bound

    async def close(self) -> None:
        """Close every socket and connection, so every port is free again."""
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for handler in self._ports:
            for writer in list(handler.writers):
                writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._transports.clear()
        self._servers.clear()


def _bind(kind: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
    except OSError as exc:
        sock.close()
        proto = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
        raise PortInUse(exc.errno, f"cannot bind {proto} {host}:{port}: {exc.strerror}") from None
    return sock

"""Serving simulated devices: one UDP SNMP agent or Modbus TCP port per device (or gateway),
one Redfish HTTP(S) service per rack of power shelves or per CDU (dcim/sim/redfish.py).

The agents answer from the World's latest state and act out the injected faults: timeout
(no answer), garbage (random bytes), exception (SNMP genErr; Modbus exception 4, or 11
behind a gateway) and slow (the answer comes after SLOW_S).

SNMP goes through dcim's own codec (`dcim.sim.snmp_agent.respond`); real agents (snmpd,
snmpsim) test that codec independently. Modbus is pymodbus's TCP server, as in the tests
(tests/support/modbus_server.py): a register action reads the World's image and delays slow
answers, `trace_pdu` swaps in exception responses (and exception 10 for a unit no gateway
serves), `trace_packet` drops or garbles the answer. pymodbus's server tracks one request per
connection at a time, so a client must not pipeline requests (dcim's does not: it
serializes per host:port and reconnects after a timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData
from pymodbus.simulator import SimDevice as ModbusDevice

from dcim.sim.redfish import RedfishEncoder, RedfishSimService
from dcim.sim.snmp_agent import Mib, respond
from dcim.sim.topology import SimDevice
from dcim.sim.wire import ModbusEncoder, ModbusImage, SnmpImage
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


def _modbus_server(world: World, units: dict[int, str], gateway: bool,
                   host: str, port: int) -> ModbusTcpServer:
    """pymodbus's TCP server for one port: one device (any unit id) or a gateway.

    The faults hook into the server where pymodbus lets them: the register action serves
    the World's registers and delays a slow answer, `trace_pdu` swaps in the exception
    responses, `trace_packet` drops the answer (timeout) or replaces it with garbage.
    """

    def device_of(unit: int) -> str | None:
        return units.get(unit) if gateway else next(iter(units.values()))

    def trace_pdu(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            return pdu
        device_id = device_of(pdu.dev_id)
        if device_id is None:
            code = ExcCodes.GATEWAY_PATH_UNAVIABLE  # (sic) pymodbus's spelling
        elif world.modes.get(device_id) == "exception":
            code = ExcCodes.GATEWAY_NO_RESPONSE if gateway else ExcCodes.DEVICE_FAILURE
        else:
            return pdu
        return ExceptionResponse(pdu.function_code & 0x7F, code, device_id=pdu.dev_id,
                                 transaction=pdu.transaction_id)

    def trace_packet(sending: bool, data: bytes) -> bytes:
        if not sending or len(data) < 7:
            return data
        device_id = device_of(data[6])  # the MBAP header's unit id
        mode = world.modes.get(device_id) if device_id is not None else None
        if mode == "timeout":
            return b""  # pymodbus writes nothing: the request goes unanswered
        if mode == "garbage":
            return _garbage()
        return data

    devices = [_modbus_device(world, device_id, unit if gateway else 0)
               for unit, device_id in units.items()]
    if gateway:
        # unit 0 stands for every unit id not behind the gateway; trace_pdu refuses them
        devices.append(ModbusDevice(0, simdata=_blocks({})))
    return ModbusTcpServer(devices, address=(host, port), trace_pdu=trace_pdu,
                           trace_packet=trace_packet)


_Blocks = tuple[list[SimData], list[SimData], list[SimData], list[SimData]]


def _blocks(spans: dict[str, tuple[int, int]]) -> _Blocks:
    """pymodbus register blocks (coils, discrete inputs, holding, input) over these spans."""
    def block(function: str) -> list[SimData]:
        low, high = spans.get(function, (0, 0))
        return [SimData(low, count=high - low + 1, values=0, datatype=DataType.REGISTERS)]

    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    return bits, bits, block("holding"), block("input")


def _modbus_device(world: World, device_id: str, unit: int) -> ModbusDevice:
    """One device's registers, read from the World's current image on every request."""
    encoder = world.encoders[device_id]
    assert isinstance(encoder, ModbusEncoder)

    async def action(function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: Any) -> ExcCodes | None:
        if set_values is not None or function_code not in (3, 4):
            return ExcCodes.ILLEGAL_FUNCTION  # the simulator is read-only
        if world.modes.get(device_id) == "slow":
            await asyncio.sleep(SLOW_S)
        image = cast(ModbusImage, world.image(device_id))
        function = "holding" if function_code == 3 else "input"
        for a in range(address, address + count):
            # reserved registers inside the device's map read 0, as on most meters
            registers[a - start_address] = image.get((function, a), 0)
        return None

    # outside the span a read is refused with exception 2 (illegal data address)
    return ModbusDevice(unit, simdata=_blocks(encoder.register_span()), action=action)


class Agents:
    """Every device of one World, served on host; `endpoints` says where each one is."""

    def __init__(self, world: World, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.world = world
        self.host = host
        self.tls = tls  # Redfish services answer HTTPS with it, else plain HTTP
        self.endpoints: dict[str, Endpoint] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self._servers: list[ModbusTcpServer] = []
        self.redfish: list[RedfishSimService] = []

    async def start(self, devices: list[SimDevice], base_port: int | None = None) -> None:
        """Bind every device's port (consecutive from base_port, or any free ones)."""
        loop = asyncio.get_running_loop()
        next_port = base_port
        gateways: dict[str, list[SimDevice]] = {}
        services: dict[str, list[SimDevice]] = {}
        for dev in devices:
            protocol = self.world.profiles[dev.id].protocol
            if protocol == "modbus" and dev.gateway:
                gateways.setdefault(dev.gateway, []).append(dev)
                continue
            if protocol == "redfish":
                services.setdefault(dev.gateway or dev.id, []).append(dev)
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
        for members in services.values():
            port = next_port or 0
            if next_port:
                next_port += 1
            encoders = {d.id: e for d in members
                        if isinstance(e := self.world.encoders[d.id], RedfishEncoder)}
            service = RedfishSimService(self.world, encoders)
            try:
                bound = await service.start(self.host, port, self.tls)
            except OSError as exc:
                raise PortInUse(exc.errno, f"cannot listen on TCP {self.host}:{port}: "
                                f"{exc.strerror}") from None
            self.redfish.append(service)
            for d in members:
                self.endpoints[d.id] = Endpoint(self.host, bound, d.unit)

    async def _modbus(self, units: dict[int, str], gateway: bool, port: int) -> int:
        server = _modbus_server(self.world, units, gateway, self.host, port)
        try:
            await server.serve_forever(background=True)
        except RuntimeError:  # pymodbus says only "could not listen": bind to learn why
            _bind(socket.SOCK_STREAM, self.host, port).close()
            raise PortInUse(f"cannot listen on TCP {self.host}:{port}") from None
        self._servers.append(server)
        listener = server.transport
        assert isinstance(listener, asyncio.Server)
        bound: int = listener.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Close every socket and connection, so every port is free again."""
        for transport in self._transports:
            transport.close()
        listeners = [cast(asyncio.Server, server.transport) for server in self._servers]
        for server in self._servers:
            await server.shutdown()  # type: ignore[no-untyped-call]  # listener + connections
        for listener in listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 2.0)
        for service in self.redfish:
            await service.close()
        self._transports.clear()
        self._servers.clear()
        self.redfish.clear()


def _bind(kind: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        proto = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
        raise PortInUse(exc.errno, f"cannot bind {proto} {host}:{port}: {exc.strerror}") from None
    return sock

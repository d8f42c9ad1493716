"""The Modbus driver against a real pymodbus TCP server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from dcim.decode import number_to_registers
from dcim.drivers.modbus import Block, coalesce, registers_needed
from dcim.drivers.poller import Poller
from dcim.profile import ModbusProfile
from dcim.site import DeviceSpec

PROFILE = ModbusProfile.model_validate({
    "name": "test-meter", "kind": "meter", "protocol": "modbus", "description": "test",
    "points": {
        "power_w": {"address": 3059, "type": "float32", "scale": 1000},
        "energy_wh": {"address": 3203, "type": "int64"},
        "voltage_v": {"address": 3027, "type": "float32", "rows": 3, "aggregate": "rows"},
        "frequency_hz": {"address": 3109, "type": "float32"},
        # Not mapped by the server: the device answers exception 2 for it.
        "apparent_power_va": {"address": 3900, "type": "float32"},
        "current_a": {"address": 100, "function": "input", "type": "int16", "order": "ABCD",
                      "scale_factor": {"address": 104, "function": "input"}, "rows": 3,
                      "aggregate": "rows"},
    },
})


def _registers() -> dict[int, int]:
    regs: dict[int, int] = {}

    def put(address: int, value: float, type_: str, order: str = "ABCD") -> None:
        for i, word in enumerate(number_to_registers(value, type_, order)):
            regs[address + i] = word

    put(3059, 123.25, "float32")  # kW
    put(3203, 987_654_321, "int64")
    for i, volts in enumerate((230.5, 231.0, 229.5)):
        put(3027 + 2 * i, volts, "float32")
    put(3109, 50.0, "float32")
    return regs


class Recorder:
    """Server-side view: which reads arrived, and how many overlapped in time."""

    def __init__(self, delay: float = 0.0):
        self.reads: list[tuple[int, int, int]] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self.refuse: ExcCodes | None = None

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     current_registers: list[int], set_values: Any) -> ExcCodes | None:
        self.reads.append((function_code, address, count))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        return self.refuse


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _device(unit: int, recorder: Recorder) -> SimDevice:
    regs = _registers()
    # One mapped range 3000..3206; 3900 stays unmapped so reading it raises exception 2.
    hr = [SimData(3000, values=[regs.get(a, 0) for a in range(3000, 3207)],
                  datatype=DataType.REGISTERS)]
    ir = [SimData(100, values=[1234, 1250, 65535 - 9, 0, 65534], datatype=DataType.REGISTERS)]
    co = [SimData(0, values=False, datatype=DataType.BITS)]
    di = [SimData(0, values=False, datatype=DataType.BITS)]
    return SimDevice(unit, simdata=(co, di, hr, ir), action=recorder.action)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[int, Recorder]]:
    """A Modbus TCP gateway with units 1 and 2 behind one port."""
    recorder = Recorder()
    port = _free_port()
    server = ModbusTcpServer([_device(1, recorder), _device(2, recorder)],
                             address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    await asyncio.sleep(0.1)
    yield port, recorder
    await server.shutdown()


def spec(port: int, unit: int = 1, timeout: float = 1.0, retries: int = 0) -> DeviceSpec:
    return DeviceSpec(id=f"m{unit}", profile=PROFILE, host="127.0.0.1", port=port, unit=unit,
                      interval=10.0, timeout=timeout, retries=retries, max_age=30.0)


async def test_reads_every_type_and_isolates_an_unmapped_register(
        gateway: tuple[int, Recorder]) -> None:
    port, _ = gateway
    poller = Poller()
    try:
        result = await poller.poll(spec(port))
    finally:
        await poller.close()
    assert result.up, result.error
    assert result.values["power_w"] == pytest.approx(123_250)
    assert result.values["energy_wh"] == 987_654_321
    assert result.values["voltage_v"] == pytest.approx({"1": 230.5, "2": 231.0, "3": 229.5})
    assert result.values["frequency_hz"] == 50.0
    # SunSpec-style scale factor register (104 = -2): 1234 -> 12.34 A; -10 A is rejected.
    assert result.values["current_a"] == pytest.approx({"1": 12.34, "2": 12.5})
    assert "row 3" in result.errors["current_a"].message
    assert result.errors["current_a"].reason == "out_of_range"
    # An unmapped register is a point the device lacks: unsupported, never counted as invalid.
    assert "exception 2 (illegal data address)" in result.errors["apparent_power_va"].message
    assert result.errors["apparent_power_va"].reason == "unsupported"
    assert set(result.values) | set(result.errors) == set(PROFILE.points)


async def test_reads_are_coalesced(gateway: tuple[int, Recorder]) -> None:
    port, recorder = gateway
    poller = Poller()
    try:
        await poller.poll(spec(port), only=frozenset({"power_w", "voltage_v", "frequency_hz"}))
    finally:
        await poller.close()
    # 3027..3032, 3059..3060 and 3109..3110 fit in one request of <= 125 registers? No: the
    # holes exceed max_gap (8), so three requests; never one per register.
    assert [(fc, a, c) for fc, a, c in recorder.reads] == [
        (3, 3027, 6), (3, 3059, 2), (3, 3109, 2)]


async def test_one_transaction_at_a_time_per_gateway(gateway: tuple[int, Recorder]) -> None:
    port, recorder = gateway
    recorder.delay = 0.05
    poller = Poller()
    try:
        results = await asyncio.gather(*(poller.poll(spec(port, unit)) for unit in (1, 2, 1, 2)))
    finally:
        await poller.close()
    assert all(r.up for r in results)
    assert recorder.max_active == 1


async def test_device_refusing_everything_is_down(gateway: tuple[int, Recorder]) -> None:
    port, recorder = gateway
    recorder.refuse = ExcCodes.DEVICE_FAILURE
    poller = Poller()
    try:
        result = await poller.poll(spec(port))
    finally:
        await poller.close()
    assert not result.up
    assert result.error_kind == "exception"
    assert "exception 4" in (result.error or "")


async def test_slow_device_times_out_without_stalling_others(
        gateway: tuple[int, Recorder]) -> None:
    port, recorder = gateway
    recorder.delay = 1.0
    dead_port = _free_port()
    poller = Poller()
    try:
        slow, dead = await asyncio.gather(
            poller.poll(spec(port, timeout=0.3)), poller.poll(spec(dead_port, timeout=0.3)))
    finally:
        await poller.close()
    assert not slow.up and slow.error_kind in {"timeout", "deadline"}
    assert slow.error and not slow.error.endswith(": "), slow.error  # says what timed out
    assert not dead.up and dead.error_kind == "connect"
    assert dead.duration < 1.0


def test_coalesce_rules() -> None:
    regs = {("holding", a) for a in (0, 1, 5, 20, 21)} | {("input", 7)}
    assert coalesce(regs, max_gap=3, max_block=125) == [
        Block("holding", 0, 6), Block("holding", 20, 2), Block("input", 7, 1)]
    assert coalesce({("holding", a) for a in range(300)}, 8, 125) == [
        Block("holding", 0, 125), Block("holding", 125, 125), Block("holding", 250, 50)]
    point = PROFILE.points["current_a"]
    assert registers_needed([point]) == {("input", a) for a in (100, 101, 102, 104)}


async def test_rtu_over_tcp_through_a_gateway() -> None:
    """A serial-to-Ethernet gateway passing raw RTU frames (with CRC) over TCP."""
    from pymodbus.framer import FramerType

    recorder = Recorder()
    port = _free_port()
    server = ModbusTcpServer([_device(7, recorder)], address=("127.0.0.1", port),
                             framer=FramerType.RTU)
    await server.serve_forever(background=True)
    await asyncio.sleep(0.1)
    poller = Poller()
    try:
        device = DeviceSpec(id="rtu", profile=PROFILE, host="127.0.0.1", port=port, unit=7,
                            interval=10.0, timeout=1.0, retries=0, max_age=30.0, framer="rtu")
        result = await poller.poll(device, only=frozenset({"power_w", "energy_wh"}))
    finally:
        await poller.close()
        await server.shutdown()
    assert result.up, result.error
    assert result.values == {"power_w": pytest.approx(123_250), "energy_wh": 987_654_321}

"""Daemon building blocks: systemd notify over a real socket, scheduler and coordinators (with a
virtual clock), sharding, rendering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dcim.compute import compute
from dcim.compute.snapshot import Published
from dcim.config import parse_config
from dcim.daemon.coordinator import Coordinators
from dcim.daemon.notify import Notifier
from dcim.daemon.scheduler import Scheduler, deadline_for
from dcim.health import DeviceHealth, Health
from dcim.profile import ProfileRegistry, SnmpProfile
from dcim.readings import PollResult, failed
from dcim.reasons import ErrorKind, PointError, Reason
from dcim.sinks.prometheus_metrics import render
from dcim.site import DeviceSpec, Site, build_site, restrict_to_shard, shard_of
from dcim.snmp.client import ClientStats
from dcim.state import latest
from dcim.tasks import cancel_and_wait

PDU = SnmpProfile.model_validate({"name": "pdu", "kind": "pdu", "protocol": "snmp",
                                  "description": "d",
                                  "points": {"power_w": {"oid": "1.3.6.1.4.1.1.1.0"}}})


def _site(n_racks: int = 4) -> Site:
    racks = [{"id": f"r{i}"} for i in range(n_racks)]
    devices = [{"id": f"r{i}-{f}", "profile": "pdu", "host": "h", "rack": f"r{i}", "feed": f}
               for i in range(n_racks) for f in "AB"]
    devices.append({"id": "main", "profile": "pdu", "host": "h"})
    return build_site(parse_config({"site": {"name": "s", "pue_target": 1.25}, "racks": racks,
                                    "devices": devices,
                                    "pue": {"facility": ["main"], "it": "racks"}}),
                      ProfileRegistry({"pdu": PDU}, {}))


def test_notify_protocol_over_a_real_unix_socket(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    notifier = Notifier()
    assert notifier.enabled and notifier.watchdog_interval() == 15.0
    notifier.ready("PUE 1.25 (ok); 9/9 devices up")
    notifier.watchdog()
    notifier.stopping()
    assert server.recv(4096) == b"READY=1\nSTATUS=PUE 1.25 (ok); 9/9 devices up"
    assert server.recv(4096) == b"WATCHDOG=1"
    assert server.recv(4096) == b"STOPPING=1"
    server.close()


def test_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("x")  # must not raise


def test_poll_deadline_is_per_poll_and_never_below_one_requests_attempts() -> None:
    device = _site().devices["main"]
    assert deadline_for(device) < device.interval
    # timeout and retries are per request: a poll of several requests answered in 1.5 s each
    # (2 s timeout, 1 retry) may take 90% of its 10 s interval, not one request's 4.5 s.
    assert (device.interval, device.timeout, device.retries) == (10, 2, 1)
    assert deadline_for(device) == 9.0
    # Never shorter than one request's attempts: a silent device fails as a timeout.
    slow = DeviceSpec(**{**device.__dict__, "interval": 5.0, "timeout": 4.0, "retries": 2})
    assert deadline_for(slow) == 12.5


def _coordinators(devices: list[DeviceSpec], results: list[PollResult] | None = None
                  ) -> Coordinators:
    coordinators = Coordinators(lambda d, r: results.append(r) if results is not None else None)
    coordinators.sync(devices)
    return coordinators


class FakePoller:
    """Answers from a script; a real poll is covered by the driver and end-to-end tests."""

    def __init__(self, outcomes: dict[str, list[bool]], delay: dict[str, float]):
        self.outcomes = outcomes
        self.delay = delay

    async def poll(self, device: DeviceSpec, only: object = None,
                   deadline: float | None = None) -> PollResult:
        await asyncio.sleep(self.delay.get(device.id, 0))
        ok = self.outcomes[device.id].pop(0) if self.outcomes[device.id] else True
        if ok:
            return PollResult(device.id, 0.0, 0.01, {"power_w": 1.0})
        return failed(device.id, 0.0, 0.01, "timeout", "no answer")


async def test_scheduler_logs_failure_once_and_recovery(caplog: pytest.LogCaptureFixture) -> None:
    site = _site(1)
    fast = [DeviceSpec(**{**d.__dict__, "interval": 0.05, "timeout": 0.01})
            for d in site.devices.values()]
    poller = FakePoller({d.id: [True, False, False, False, True] for d in fast}, {})
    results: list[PollResult] = []
    coordinators = _coordinators(fast[:1], results)
    sched = Scheduler(poller, seed=1)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="dcim.coordinator")
    sched.set_devices(coordinators)
    await asyncio.sleep(1.0)
    await sched.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("down" in m for m in messages) == 1
    assert sum("recovered after 3 failed polls" in m for m in messages) == 1
    coordinator = coordinators[fast[0].id]
    assert coordinator.errors == {"timeout": 3}
    assert coordinator.up and coordinator.failures == 0 and coordinator.down_since is None
    assert coordinator.polls == len(results) >= 5


async def test_a_slow_device_does_not_delay_the_others() -> None:
    site = _site(1)
    devices = [DeviceSpec(**{**d.__dict__, "interval": 0.1}) for d in site.devices.values()]
    slow = devices[0].id
    poller = FakePoller({d.id: [] for d in devices}, {slow: 5.0})
    counts: dict[str, int] = {}
    coordinators = Coordinators(lambda d, r: counts.__setitem__(d.id, counts.get(d.id, 0) + 1))
    coordinators.sync(devices)
    sched = Scheduler(poller, seed=2)  # type: ignore[arg-type]
    sched.set_devices(coordinators)
    await asyncio.sleep(1.0)
    await sched.stop()
    assert counts.get(slow, 0) == 0
    assert all(counts[d.id] >= 5 for d in devices[1:])


class RaisesPoller(FakePoller):
    """Raises what a hostile value made decode raise (math.pow overflow) for some polls."""

    def __init__(self, raises: dict[str, int]):
        super().__init__({}, {})
        self.raises = raises

    async def poll(self, device: DeviceSpec, only: object = None,
                   deadline: float | None = None) -> PollResult:
        if self.raises.get(device.id, 0) > 0:
            self.raises[device.id] -= 1
            raise OverflowError("math range error")
        return PollResult(device.id, 0.0, 0.01, {"power_w": 1.0})


async def test_an_exception_from_a_poll_marks_the_device_down_and_polling_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    site = _site(1)
    devices = [DeviceSpec(**{**d.__dict__, "interval": 0.05, "timeout": 0.01})
               for d in site.devices.values()]
    bad, good = devices[0].id, devices[1].id
    poller = RaisesPoller({bad: 4})
    results: dict[str, list[PollResult]] = {}

    def on_result(d: DeviceSpec, r: PollResult) -> None:
        results.setdefault(d.id, []).append(r)
        if d.id == good and len(results[good]) == 2:
            raise KeyError("a bug in result handling")

    coordinators = Coordinators(on_result)
    coordinators.sync(devices)
    sched = Scheduler(poller, seed=4)  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG, logger="dcim.coordinator")
    sched.set_devices(coordinators)
    await asyncio.sleep(1.5)
    await sched.stop()
    first = results[bad][:4]
    assert all(not r.up and r.error_kind == "internal" for r in first)
    assert "OverflowError: math range error" in (first[0].error or "")
    assert results[bad][4].up  # the task lived on and the device recovered
    assert coordinators[bad].errors == {"internal": 4}
    assert len(results[good]) > 3  # an exception in the result handler did not end its task
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage().split(":")[0] for r in tracebacks] == [bad, good]
    assert "OverflowError" in caplog.text and sum(
        "recovered after 4 failed polls" in r.getMessage() for r in caplog.records) == 1


class LosesCancellation(FakePoller):
    """Swallows the first cancellation during a poll, as Python 3.11's wait_for can when the
    cancel races with a read that just completed (a driver then returns a normal result)."""

    def __init__(self) -> None:
        super().__init__({}, {})
        self.swallowed = 0

    async def poll(self, device: DeviceSpec, only: object = None,
                   deadline: float | None = None) -> PollResult:
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.swallowed += 1
        return PollResult(device.id, 0.0, 0.01, {"power_w": 1.0})


async def test_stop_and_reload_end_tasks_whose_cancellation_was_lost() -> None:
    site = _site(1)
    devices = [DeviceSpec(**{**d.__dict__, "interval": 30.0}) for d in site.devices.values()]
    poller = LosesCancellation()
    counts: dict[str, int] = {}
    coordinators = Coordinators(lambda d, r: counts.__setitem__(d.id, counts.get(d.id, 0) + 1))
    coordinators.sync(devices)
    sched = Scheduler(poller, seed=3,  # type: ignore[arg-type]
                      sleep=lambda s: asyncio.sleep(min(s, 0.05)))
    sched.set_devices(coordinators)
    await asyncio.sleep(0.1)  # every task is inside its first poll
    # A reload that drops a device: the old task must not go on polling it.
    sched.set_devices([coordinators[d.id] for d in devices[1:]])
    await asyncio.sleep(0.5)
    dropped = counts.get(devices[0].id, 0)
    await asyncio.sleep(0.5)
    assert counts.get(devices[0].id, 0) == dropped <= 1
    async with asyncio.timeout(5):  # before the fix: waited forever on a task still polling
        await sched.stop()
    assert poller.swallowed >= 1


async def test_cancel_and_wait_gives_up_on_a_task_that_ignores_cancel(
        caplog: pytest.LogCaptureFixture) -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    async def failing() -> None:
        raise RuntimeError("boom")

    bad = asyncio.create_task(stubborn())
    broken = asyncio.create_task(failing(), name="broken")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        left = await cancel_and_wait([bad, broken], timeout=1.0)
    assert left == {bad}
    assert "task broken ended with RuntimeError('boom')" in caplog.text
    released.set()
    bad.cancel()
    await asyncio.wait({bad}, timeout=1.0)
    assert bad.done()


def test_sharding_keeps_racks_whole_and_is_stable() -> None:
    site = _site(20)
    parts = [restrict_to_shard(site, i, 3) for i in range(3)]
    assert sorted(d for p in parts for d in p.devices) == sorted(site.devices)
    for part in parts:
        for rack in part.racks.values():
            assert all(d in part.devices for d in rack.devices)
    assert shard_of("r7", 3) == 2  # crc32 of b"r7" mod 3: the same on every machine and run
    holder = next(p for p in parts if "main" in p.devices)
    assert holder.pue is not None and holder.pue.remote
    snap = compute(holder, latest(PollResult(dev, 100.0, 0.1, {"power_w": 1000.0})
                                  for dev in holder.devices), 101.0)
    assert snap.pue.value is None and "other shards" in (snap.pue.reason or "")
    assert snap.pue.facility_w == 1000.0


def _scrape(pub: Published) -> str:
    registry = CollectorRegistry(auto_describe=False)

    class C:
        def collect(self):  # type: ignore[no-untyped-def]
            return render(pub)

    registry.register(C())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_withheld_values_are_absent_from_metrics() -> None:
    site = _site(2)
    results = [PollResult(dev, 100.0, 0.1, {"power_w": 10_000.0})
               for dev in site.devices if dev != "r1-B"]
    text = _scrape(Published(site=site, snapshot=compute(site, latest(results), 101.0)))
    assert "\ndcim_pue_ratio{" not in text
    assert 'dcim_pue_coverage_ratio{site="s"} 0.8' in text
    assert 'dcim_pue_input_missing{device="r1-B",site="s"} 1.0' in text
    assert 'dcim_rack_power_watts{hall="",rack="r0",row="",site="s",tenant=""} 20000.0' in text
    assert 'dcim_rack_power_watts{hall="",rack="r1"' not in text
    assert 'dcim_rack_feed_power_watts{feed="A",rack="r1",site="s"} 10000.0' in text
    assert 'dcim_device_up{device="r1-B",kind="pdu",profile="pdu",site="s"} 0.0' in text
    results += [PollResult("r1-B", 100.0, 0.1, {"power_w": 10_000.0}),
                PollResult("main", 100.0, 0.1, {"power_w": 50_000.0})]
    text = _scrape(Published(site=site, snapshot=compute(site, latest(results), 101.0)))
    assert 'dcim_pue_ratio{site="s"} 1.25' in text
    assert 'dcim_it_power_watts{site="s"} 40000.0' in text


def test_invalid_readings_are_counted_by_typed_reason_and_unsupported_points_never() -> None:
    site = _site(1)
    coordinators = _coordinators([site.devices["main"]])
    coordinator = coordinators["main"]
    errors = {
        # Modbus exception 2 for this register only: the device does not have the point.
        "apparent_power_va": PointError(Reason.UNSUPPORTED,
                                        "register 40093: exception 2 (illegal data address)"),
        "power_w": PointError(Reason.IMPLAUSIBLE, "0 W while 14.5 A flows at 230 V"),
        "energy_wh": PointError(Reason.BAD_SCALE, "scale factor (register 40124) 400 outside -6..9"),
    }

    async def poll(device: DeviceSpec) -> PollResult:
        return PollResult("main", 100.0, 0.1, {}, errors)

    for _ in range(2):
        asyncio.run(coordinator.refresh(poll))
    assert coordinator.invalid == {("power_w", Reason.IMPLAUSIBLE): 2,
                                   ("energy_wh", Reason.BAD_SCALE): 2}
    text = _scrape(Published(site=site, snapshot=compute(site, coordinators.states(), 101.0),
                             health=Health(coordinators.health())))
    assert ('dcim_invalid_readings_total{device="main",point="power_w",reason="implausible",'
            'site="s"} 2.0') in text
    assert 'reason="bad_scale"' in text and "apparent_power_va" not in text


def test_pymodbus_logs_nothing_below_critical_unless_dcim_logs_debug() -> None:
    from dcim.daemon.runtime import configure_logging

    pymodbus = logging.getLogger("pymodbus")
    root = logging.getLogger()
    saved = (pymodbus.level, root.level)
    try:
        root.setLevel(logging.INFO)  # basicConfig leaves the level alone under pytest's handlers
        configure_logging("INFO")
        # pymodbus.logging (its framing errors with hex dumps) inherits from "pymodbus".
        assert not logging.getLogger("pymodbus.logging").isEnabledFor(logging.ERROR)
        root.setLevel(logging.DEBUG)
        configure_logging("DEBUG")
        assert logging.getLogger("pymodbus.logging").isEnabledFor(logging.ERROR)
    finally:
        pymodbus.setLevel(saved[0])
        root.setLevel(saved[1])


class VirtualTime:
    """A clock that jumps to the end of every sleep, so an hour of polling runs in no time."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


class ScriptedDevice:
    """Answers per a script of outcomes at virtual times; then stops answering forever."""

    def __init__(self, vt: VirtualTime, outcomes: list[bool]):
        self.vt = vt
        self.outcomes = outcomes
        self.polled_at: list[float] = []
        self.scheduled_for: list[float | None] = []
        self.coordinators: Coordinators | None = None
        self.done = asyncio.Event()

    async def poll(self, device: DeviceSpec, only: object = None,
                   deadline: float | None = None) -> PollResult:
        assert self.coordinators is not None
        if not self.outcomes:
            self.done.set()
            await asyncio.Event().wait()  # parked until the scheduler stops
        self.polled_at.append(self.vt.now)
        self.scheduled_for.append(self.coordinators[device.id].next_poll)
        if self.outcomes.pop(0):
            return PollResult(device.id, self.vt.now, 0.01, {"power_w": 1.0})
        return failed(device.id, self.vt.now, 0.01, "timeout", "no answer")


async def test_a_failed_device_is_retried_at_its_own_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    """No backoff: ten failures in a row are ten polls one interval apart, and the first poll
    after the device answers again records the recovery. The exported next-poll time is
    always the time the poll then ran."""
    vt = VirtualTime()
    device = _site(1).devices["main"]  # interval 10 s
    scripted = ScriptedDevice(vt, [True, True] + [False] * 10 + [True, True])
    results: list[PollResult] = []
    coordinators = scripted.coordinators = _coordinators([device], results)
    sched = Scheduler(scripted, seed=4, clock=vt.clock, wall_clock=vt.clock,  # type: ignore[arg-type]
                      sleep=vt.sleep)
    caplog.set_level(logging.INFO, logger="dcim.coordinator")
    sched.set_devices(coordinators)
    async with asyncio.timeout(5):
        await scripted.done.wait()
    coordinator = coordinators[device.id]
    assert coordinator.next_poll == scripted.polled_at[-1] + device.interval
    await sched.stop()
    gaps = [b - a for a, b in zip(scripted.polled_at[1:], scripted.polled_at[2:], strict=False)]
    assert gaps == [device.interval] * 12
    assert scripted.scheduled_for == pytest.approx(scripted.polled_at)
    assert [r.up for r in results] == [True, True] + [False] * 10 + [True, True]
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert recovered == ["main recovered after 10 failed polls (100 s)"]
    assert coordinator.up and coordinator.last_success == scripted.polled_at[-1]
    assert coordinator.errors == {"timeout": 10} and coordinator.polls == 14
    assert coordinator.next_poll is None  # stopped: nothing is scheduled any more


def test_a_coordinator_outlives_reloads_and_is_retired_with_its_device() -> None:
    site = _site(1)
    pdu, main = site.devices["r0-A"], site.devices["main"]
    seen: list[tuple[str, bool]] = []
    coordinators = Coordinators(lambda d, r: seen.append((d.id, r.up)))
    coordinators.sync([pdu, main])
    coordinator = coordinators[main.id]
    coordinator.record(failed(main.id, 100.0, 2.0, "timeout", "no answer"))
    view = coordinators.states()
    assert coordinator.last_error == "no answer" and coordinator.last_error_kind == "timeout"
    assert coordinator.down_since == 100.0 and coordinator.failures == 1
    # A reload that changes the interval keeps state and counters, with the new spec.
    faster = DeviceSpec(**{**main.__dict__, "interval": 5.0})
    coordinators.sync([pdu, faster])
    assert coordinators[main.id] is coordinator and coordinator.spec == faster
    coordinator.record(PollResult(main.id, 110.0, 0.1, {"power_w": 5.0}))
    assert not view[main.id].last.up  # the view compute took is frozen
    assert coordinators.states()[main.id].last_success == 110.0
    assert coordinator.up and coordinator.down_since is None and coordinator.last_error is None
    # A source's reading is recorded, not counted as a poll, and a source device has no
    # poll counters to export.
    coordinators.record(pdu, PollResult(pdu.id, 111.0, 0.0, {"power_w": 7.0}))
    assert coordinators[pdu.id].up and coordinators[pdu.id].polls == 0
    assert pdu.id not in coordinators.health()
    # A device that left the site: a result still in flight for it is dropped.
    coordinators.sync([pdu])
    coordinator.record(PollResult(main.id, 120.0, 0.1, {"power_w": 5.0}))
    assert main.id not in coordinators.states() and coordinator.retired
    assert seen == [("main", False), ("main", True), ("r0-A", True)]


def test_next_poll_and_snmp_client_counters_are_exported() -> None:
    site = _site(1)
    results = [PollResult(dev, 100.0, 0.1, {"power_w": 1000.0}) for dev in site.devices]
    health = Health(devices={"main": DeviceHealth(polls=3, errors={ErrorKind.TIMEOUT: 1},
                                                  next_poll=110.0)},
                    snmp=ClientStats(sent=7, retries=2, timeouts=1, malformed=3, unmatched=4,
                                     usm_dropped=5, usm_discoveries=6, usm_resyncs=8))
    text = _scrape(Published(site=site, snapshot=compute(site, latest(results), 101.0),
                             health=health))
    assert 'dcim_device_next_poll_timestamp_seconds{device="main",site="s"} 110.0' in text
    assert 'dcim_device_last_success_timestamp_seconds{device="main",site="s"} 100.0' in text
    assert 'dcim_device_polls_total{device="main",site="s"} 3.0' in text
    assert 'dcim_device_poll_errors_total{device="main",kind="timeout",site="s"} 1.0' in text
    for name, value in (("requests", 7), ("retries", 2), ("timeouts", 1),
                        ("malformed_replies", 3), ("unmatched_replies", 4), ("usm_dropped", 5),
                        ("usm_discoveries", 6), ("usm_resyncs", 8)):
        assert f"\ndcim_snmp_client_{name}_total {value:.1f}\n" in text
    # Before the first SNMP poll there is no client and no series.
    text = _scrape(Published(site=site, snapshot=compute(site, latest(results), 101.0)))
    assert "dcim_snmp_client_" not in text

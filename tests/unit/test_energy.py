"""Energy ledger: counter deltas, resets, wraps, integration, and persistence across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dcim.compute.energy import (
    WH,
    DeviceEnergy,
    Increment,
    Totals,
    observe,
)
from dcim.daemon.energy_store import EnergyStore, StateError
from dcim.daemon.ledger import EnergyLedger
from dcim.profile import SnmpProfile
from dcim.readings import PollResult, failed
from dcim.site import DeviceSpec

T0 = 1_800_000_000.0


def _device(wrap: float | None = None, energy: bool = True, scale: float = 1.0) -> DeviceSpec:
    points: dict[str, object] = {"power_w": {"oid": "1.3.6.1.4.1.1.1.0"}}
    if energy:
        points["energy_wh"] = {"oid": "1.3.6.1.4.1.1.2.0", "scale": scale,
                               **({"wrap": wrap} if wrap else {})}
    profile = SnmpProfile.model_validate({"name": "p", "kind": "pdu", "protocol": "snmp",
                                          "description": "d", "points": points})
    return DeviceSpec(id="pdu", profile=profile, host="h", port=161, unit=1, interval=10.0,
                      timeout=2.0, retries=1, max_age=30.0, rack="r1", feed="A")


def reading(t: float, power: float | None = None, energy: float | None = None) -> PollResult:
    values: dict[str, float] = {}
    if power is not None:
        values["power_w"] = power
    if energy is not None:
        values["energy_wh"] = energy
    return PollResult(device="pdu", time=T0 + t, duration=0.1, values=values)


def run(device: DeviceSpec, readings: list[PollResult],
        start: DeviceEnergy | None = None) -> tuple[DeviceEnergy, list[Increment]]:
    state = start or DeviceEnergy()
    incs = []
    for r in readings:
        state, inc = observe(device, "it", state, r)
        if inc is not None:
            incs.append(inc)
    return state, incs


def test_counter_deltas() -> None:
    state, incs = run(_device(), [reading(0, 36_000, 1000.0), reading(10, 36_000, 1000.1),
                                  reading(20, 36_000, 1000.2)])
    assert [i.method for i in incs] == ["counter", "counter"]
    assert state.total_j == pytest.approx(0.2 * WH)


def test_reset_is_not_negative_energy() -> None:
    # APC-style user reset between two polls: the counter restarts near zero and counts on.
    state, incs = run(_device(), [reading(0, 36_000, 5000.0), reading(10, 36_000, 0.05),
                                  reading(20, 36_000, 100.05)])
    # The drop is held for one reading (reset or glitch?); counting on from it is a reset.
    assert [i.event for i in incs] == ["reset"]
    # Power says 36 kW x 20 s = 0.2 kWh were used; the counter alone shows 100.05 Wh.
    assert incs[0].joules == pytest.approx(0.2 * 1000 * WH)
    assert state.resets == 1 and state.glitches == 0 and state.total_j > 0


def test_a_drop_that_comes_back_is_a_glitch_not_a_reset() -> None:
    # A utility meter (123.5 MWh on its register) reads 0 for one poll, then its count again.
    lifetime = 123_500_000.0
    state, incs = run(_device(), [reading(0, 1_000_000, lifetime), reading(10, 1_000_000, 0.0),
                                  reading(20, 1_000_000, lifetime + 5_555.0)])
    assert state.resets == 0 and state.glitches == 1
    # Only the 5.6 kWh used in the 20 s reach the ledger, never the meter's lifetime.
    assert sum(i.joules for i in incs) == pytest.approx(5_555.0 * WH)
    assert state.total_j == pytest.approx(5_555.0 * WH)


def test_a_counter_stuck_at_zero_for_several_polls_is_still_a_glitch() -> None:
    # The meter reads 0 for three polls, then its count again: no reset (it never counted on
    # from 0), no jump; only what was used since the last good count reaches the ledger.
    lifetime = 123_500_000.0
    zeros = [reading(t, 1_000_000, 0.0) for t in (10, 20, 30)]
    state, _ = run(_device(), [reading(0, 1_000_000, lifetime), *zeros,
                               reading(40, 1_000_000, lifetime + 11_111.0)])
    assert (state.resets, state.glitches, state.jumps) == (0, 1, 0)
    assert state.total_j == pytest.approx(11_111.0 * WH)


def test_an_increase_beyond_what_power_delivers_is_refused() -> None:
    # 10 kW for 10 s is 28 Wh; the counter claims 1 MWh: refused, re-baselined, power credited.
    state, incs = run(_device(), [reading(0, 10_000, 1000.0), reading(10, 10_000, 1_001_000.0),
                                  reading(20, 10_000, 1_001_027.0)])
    assert state.jumps == 1
    assert incs[0].event == "jump" and incs[0].method == "integrated"
    assert incs[0].joules == pytest.approx(10_000 * 10)
    assert incs[1].joules == pytest.approx(27.0 * WH) and incs[1].event is None


def test_a_coarse_counter_step_after_a_quiet_hour_is_credible() -> None:
    # 1 kW on a counter in 0.1 kWh steps: it moves 100 Wh every six minutes, not every poll.
    device = _device(scale=100.0)
    readings = [reading(t, 1000, 12_300.0) for t in range(0, 360, 10)]
    state, incs = run(device, [*readings, reading(360, 1000, 12_400.0)])
    assert state.jumps == 0 and sum(i.joules for i in incs) == pytest.approx(100.0 * WH)


def test_wrap_of_unsigned32_counter() -> None:
    device = _device(wrap=4294967296)
    top = 4294967296 - 50.0
    state, incs = run(device, [reading(0, 36_000, top), reading(10, 36_000, 50.0)])
    assert incs[0].event == "wrap"
    assert incs[0].joules == pytest.approx(100.0 * WH)
    assert state.wraps == 1


def test_wrap_without_headroom_is_a_reset() -> None:
    device = _device(wrap=4294967296)
    _, incs = run(device, [reading(0, 1000, 1000.0), reading(10, 1000, 5.0),
                           reading(20, 1000, 7.0)])
    assert incs[0].event == "reset"


def test_integrated_power_without_counter() -> None:
    device = _device(energy=False)
    state, incs = run(device, [reading(0, 1000), reading(10, 3000), reading(20, 3000)])
    assert all(i.method == "integrated" for i in incs)
    assert state.total_j == pytest.approx(2000 * 10 + 3000 * 10)


def test_integration_never_bridges_a_gap() -> None:
    device = _device(energy=False)
    state, _incs = run(device, [reading(0, 1000), reading(100, 1000), reading(110, 1000)])
    assert state.total_j == pytest.approx(1000 * 10)  # the 100 s gap is unknown, not guessed


def test_failed_poll_keeps_state() -> None:
    device = _device()
    state, _ = run(device, [reading(0, 1000, 10.0)])
    after, inc = observe(device, "it", state, failed("pdu", T0 + 10, 2.0, "timeout", "t"))
    assert after == state and inc is None


def test_restart_counts_energy_used_while_down_exactly_once(tmp_path: Path) -> None:
    device = _device()
    from dcim.config import parse_config
    from dcim.profile import ProfileRegistry
    from dcim.site import build_site

    site = build_site(parse_config({"site": {"name": "s"}, "racks": [{"id": "r1"}],
                                    "devices": [{"id": "pdu", "profile": "p", "host": "h",
                                                 "rack": "r1"}],
                                    "pue": {"facility": ["pdu"], "it": ["pdu"]}}),
                      ProfileRegistry({"p": device.profile}, {}))
    ledger = EnergyLedger.open(tmp_path / "state.db", T0)
    for r in (reading(0, 36_000, 1000.0), reading(10, 36_000, 1000.1)):
        ledger.observe(site, device, r)
    assert ledger.totals == Totals({})  # increments reach the totals at the tick's flush
    ledger.flush(site, T0 + 10)
    state, totals = ledger.devices()["pdu"], ledger.totals
    assert totals.get("it", "counter") == pytest.approx(0.1 * WH)
    ledger.close()
    # dcim is down for an hour while the PDU keeps counting 36 kW.
    ledger = EnergyLedger.open(tmp_path / "state.db", T0 + 3610)
    assert ledger.devices()["pdu"] == state and ledger.totals == totals
    ledger.observe(site, device, reading(3610, 36_000, 1000.1 + 36_000))
    ledger.flush(site, T0 + 3610)
    totals3 = ledger.totals
    assert totals3.get("it", "counter") == pytest.approx((0.1 + 36_000) * WH)
    assert totals3.get("rack:r1", "counter") == totals3.get("it", "counter")
    assert totals3.get("facility", "counter") == totals3.get("it", "counter")
    ledger.close()
    assert EnergyStore(tmp_path / "state.db").load() == ({"pdu": ledger.devices()["pdu"]}, totals3)


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="move it aside"):
        EnergyStore(path)


def test_a_locked_state_database_delays_saves_and_loses_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    store = EnergyStore(path)
    first = DeviceEnergy(total_j=1.0, method="counter")
    assert store.save({"a": first}, Totals({("it", "counter"): 1.0}))
    # Another process (sqlite3 CLI, a backup) holds the write lock, as with BEGIN EXCLUSIVE.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    caplog.set_level("INFO", logger="dcim.state")
    second = DeviceEnergy(total_j=2.0, method="counter")
    third = DeviceEnergy(total_j=3.0, method="integrated")
    assert not store.save({"a": second}, Totals({("it", "counter"): 2.0}))
    assert not store.save({"b": third}, Totals({("it", "counter"): 3.0}))
    assert store.unsaved == 2
    other.execute("ROLLBACK")
    other.close()
    assert store.save({}, Totals({("it", "counter"): 3.0}))
    assert store.unsaved == 0
    devices, totals = store.load()
    assert devices == {"a": second, "b": third} and totals == Totals({("it", "counter"): 3.0})
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot save energy (database is locked)" in m for m in messages) == 1
    assert sum("saved again after 2 failed saves" in m for m in messages) == 1
    store.close()


def test_what_a_lock_kept_unsaved_is_written_at_close(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = EnergyStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    state = DeviceEnergy(total_j=5.0, method="counter")
    assert not store.save({"a": state}, Totals({("it", "counter"): 5.0}))
    other.execute("ROLLBACK")  # released before close gives up waiting
    other.close()
    store.close()
    reopened = EnergyStore(path)
    assert reopened.load()[0] == {"a": state}
    reopened.close()


def test_state_schema_1_file_gains_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE device_energy (device TEXT PRIMARY KEY, total_j REAL NOT NULL,"
        " method TEXT NOT NULL, last_wh REAL, last_power_w REAL, last_time REAL,"
        " resets INTEGER NOT NULL, wraps INTEGER NOT NULL);"
        "INSERT INTO device_energy VALUES ('pdu', 7200.0, 'counter', 12.0, 100.0, 5.0, 1, 0);")
    db.commit()
    db.close()
    store = EnergyStore(path)
    devices, _ = store.load()
    assert devices["pdu"] == DeviceEnergy(7200.0, "counter", 12.0, 100.0, 5.0, 1, 0)
    held = DeviceEnergy(7200.0, "counter", 12.0, 100.0, 5.0, 1, 0, jumps=2, glitches=3,
                        suspect_wh=0.0, changed_time=4.0)
    store.save({"pdu": held}, Totals({}))
    store.close()
    assert EnergyStore(path).load()[0]["pdu"] == held

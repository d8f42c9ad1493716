"""The simulator: its physics, its wire formats through dcim's own profiles, its control API.

The end-to-end tests start `python -m dcim simulate` as a subprocess on free loopback ports,
read every device through dcim's real drivers and decoder, and stop it with SIGTERM, checking
that every port is free again.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcim.compute.cooling import heat_removed_w
from dcim.coolant import COOLANTS
from dcim.points import Kind
from dcim.profile import ModbusProfile, ProfileRegistry, RedfishProfile, SnmpProfile
from dcim.sim import presets, vendors
from dcim.sim.child import SimulatorProcess
from dcim.sim.model import Controls, Physics
from dcim.sim.topology import SimDevice, SimRack, SimSite
from dcim.sim.world import World
from dcim.site import Site, load_site
from dcim.snmp.codec import parse_oid
from dcim.spotcheck import poll_once

REGISTRY = ProfileRegistry.load()
T0 = 1_760_000_000.0


# --- helpers ------------------------------------------------------------------------------


def dcim(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the dcim CLI as users do."""
    return subprocess.run([sys.executable, "-m", "dcim", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def poll(site: Site, *device_ids: str) -> dict[str, Any]:
    """Poll devices through dcim's real drivers; results by device id."""
    results = asyncio.run(poll_once(site, site.devices_for(device_ids)))
    return {r.device: r for r in results}


def served_ports(config: Path) -> list[tuple[str, int]]:
    """(protocol, port) of every device a written config points at."""
    data = yaml.safe_load(config.read_text())
    out = []
    for dev in data["devices"]:
        proto = REGISTRY[dev["profile"]].protocol
        out.append((proto, dev.get("port", 161 if proto == "snmp" else 502)))
    return out


def port_free(proto: str, port: int) -> bool:
    """Whether a loopback port can be bound again (by a server: TIME_WAIT is not held)."""
    kind = socket.SOCK_DGRAM if proto == "snmp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop_and_check_ports(sim: SimulatorProcess) -> None:
    """SIGTERM the simulator; it exits 0 and every port it held is free."""
    ports = [*served_ports(sim.config), ("http", int(sim.control_url.rsplit(":", 1)[1]))]
    assert sim.stop() == 0
    busy = [p for p in ports if not port_free(*p)]
    assert not busy, f"ports still bound after SIGTERM: {busy}"


def post_status(sim: SimulatorProcess, path: str, body: bytes | None) -> tuple[int, Any]:
    """POST raw bytes; (status, JSON answer) whatever the status."""
    req = urllib.request.Request(sim.control_url + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """The tiny preset, frozen in time so every reading can be compared exactly."""
    config = tmp_path_factory.mktemp("tiny") / "site.yaml"
    sim = SimulatorProcess.start("tiny", config, seed=7, extra=("--frozen",))
    try:
        yield sim
    finally:
        stop_and_check_ports(sim)


@pytest.fixture(scope="module")
def tiny_site(tiny: SimulatorProcess) -> Site:
    return load_site(tiny.config)


# --- physics (pure) ----------------------------------------------------------------------


def test_physics_is_a_pure_function_of_seed_and_time() -> None:
    site = presets.build("hall-18mw", 3)
    a = Physics(site, 3).state(T0, Controls())
    b = Physics(presets.build("hall-18mw", 3), 3).state(T0, Controls())
    c = Physics(presets.build("hall-18mw", 4), 4).state(T0, Controls())
    assert a == b
    assert a.facility_w != c.facility_w


def test_facility_power_is_it_plus_cooling_losses_and_constant() -> None:
    site = presets.build("hall-18mw", 1)
    st = Physics(site, 1).state(T0, Controls())
    assert st.it_w == pytest.approx(sum(st.rack_w.values()))
    assert st.facility_w == pytest.approx(
        st.it_w + st.chiller_plant_w + st.pump_w + st.ups_loss_w + st.misc_w)
    assert sum(st.meter_w.values()) == pytest.approx(st.facility_w)
    for ups in st.ups.values():  # efficiency curve: 94-98 % across the load range
        assert 0.94 < ups.output_w / ups.input_w < 0.98
    for cdu in st.cdus.values():  # one formula for simulator and dcim
        assert cdu.heat_w == pytest.approx(
            heat_removed_w(cdu.flow_lpm, cdu.return_c - cdu.supply_c, COOLANTS["pg25"]))
        assert 8.0 < cdu.return_c - cdu.supply_c < 12.5  # ~1.5 L/min per kW of PG25


def test_hall_load_profile_and_pue_over_a_day() -> None:
    site = presets.build("hall-18mw", 1)
    assert len(site.racks) == 76
    assert {d.profile for d in site.of_kind(Kind.PDU)} == set(presets.PDU_PROFILES)
    assert all(4 <= len(c.serves) <= 8 for c in site.of_kind(Kind.CDU))
    physics = Physics(site, 1)
    pues, peaks = [], []
    for t in range(int(T0), int(T0) + 86_400, 600):
        st = physics.state(t, Controls())
        pues.append(st.pue)
        peaks.append(max(st.rack_w.values()))
        assert all(60_000 < w <= 190_000 for w in st.rack_w.values())
    assert min(pues) > 1.2 and max(pues) < 1.3
    assert max(peaks) > 170_000  # training bursts push racks toward the cap


def test_chiller_cop_falls_as_outdoor_temperature_rises() -> None:
    from dcim.sim.model import chiller_cop

    site = presets.build("tiny", 1)
    assert chiller_cop(site, 10.0) > chiller_cop(site, 25.0) > chiller_cop(site, 35.0)


def test_feed_failure_moves_the_whole_rack_to_the_other_feed() -> None:
    site = presets.build("tiny", 1)
    physics = Physics(site, 1)
    normal = physics.state(T0, Controls())
    failed = physics.state(T0, Controls(failed_feeds=frozenset({("r01", "A")})))
    assert 0.48 < normal.feed_w["r01"]["A"] / normal.rack_w["r01"] < 0.52
    assert failed.pdu_w["r01-pdu-a"] == 0.0
    assert failed.pdu_w["r01-pdu-b"] == pytest.approx(normal.rack_w["r01"])


def test_energy_counters_integrate_power_each_second() -> None:
    site = presets.build("tiny", 1)
    world = World(site, 1, REGISTRY, T0)
    start = dict(world.energy)
    physics = Physics(site, 1)
    world.advance(T0 + 10)
    expected = sum(physics.state(T0 + k, Controls()).pdu_w["r01-pdu-a"] for k in range(1, 11))
    assert world.energy["r01-pdu-a"] - start["r01-pdu-a"] == pytest.approx(expected / 3600)


# --- wire formats: every shipped profile round-trips through dcim's decoder ----------------


def _site_for(profile: str, device_id: str) -> SimSite:
    kind = REGISTRY[profile].kind
    rack = SimRack(id="r01", cap_kw=190.0, base_kw=130.0, job=0, row="a", hall="h1")
    extra: dict[str, Any] = {
        Kind.PDU: {"rack": "r01", "feed": "A"},
        Kind.SHELF: {"rack": "r01", "feed": "A"},
        Kind.METER: {"share": 1.0},
        Kind.UPS: {"carries": (("r01", "A"), ("r01", "B")), "rated_w": 400_000.0},
        Kind.CDU: {"serves": ("r01",)},
        Kind.CHILLER: {"share": 1.0, "rated_w": 500_000.0},
    }[kind]
    dev = SimDevice(id=device_id, profile=profile, kind=kind, **extra)
    return SimSite(name="one", preset="test", racks=(rack,), devices=(dev,), misc_w=1000.0)


def _resolution(profile: Any, point: str, world: World, device_id: str) -> float:
    """Half of one raw step of the point's primary source: the rounding the wire allows."""
    src = profile.points[point]
    if isinstance(profile, RedfishProfile):
        return 0.0005 * src.scale  # the simulator's Redfish readings carry 3 decimals
    hints = vendors.hints_for(profile.name)
    if isinstance(profile, SnmpProfile):
        digits = hints.decimals.get(point, 0) if src.decimals else 0
        return 0.5 * src.scale * 10.0 ** -digits
    if src.type.startswith("float"):
        return 0.0
    exp = 0
    if src.scale_factor is not None:
        word = world.image(device_id)[(src.scale_factor.function, src.scale_factor.address)]
        exp = word - 65536 if word >= 32768 else word
    return 0.5 * src.scale * 10.0 ** exp


def _device_ids() -> list[str]:
    """Two device ids: one on current firmware, one on the older firmware of its vendor."""
    ids = [f"dev-{i}" for i in range(10)]
    return [next(i for i in ids if not vendors.uses_fallback_firmware(i)),
            next(i for i in ids if vendors.uses_fallback_firmware(i))]


@pytest.mark.parametrize("device_id", _device_ids())
@pytest.mark.parametrize("profile", REGISTRY.names())
def test_every_profile_round_trips_canonical_values(profile: str, device_id: str) -> None:
    world = World(_site_for(profile, device_id), 5, REGISTRY, T0)
    view = world.device_view(device_id)
    prof = REGISTRY[profile]
    assert not view["errors"], view["errors"]
    assert set(view["points"]) == set(prof.points)
    for name, got in view["points"].items():
        want = view["model"][name]
        tol = _resolution(prof, name, world, device_id)
        if isinstance(got, dict):
            assert isinstance(want, dict)
            model_rows = list(want.values())
            if len(got) == len(model_rows) + 1:  # a neutral row the model derives
                model_rows.append(list(got.values())[-1])
            for g, w in zip(got.values(), model_rows, strict=True):
                assert g == pytest.approx(w, rel=1e-5, abs=tol + 1e-6), (name, got, want)
        else:
            if isinstance(want, dict):  # a per-phase quantity read as one number
                want = sum(want.values()) / len(want)
            # a total spread over rows rounds once per row
            rows = 3 if prof.protocol == "snmp" and prof.points[name].walk else 1
            assert got == pytest.approx(want, rel=1e-5, abs=rows * tol + 1e-6), (name, got, want)


def test_sunspec_meter_serves_model_markers_and_scale_factors() -> None:
    world = World(_site_for("sunspec-meter", "m1"), 1, REGISTRY, T0)
    image = world.image("m1")
    assert image[("holding", 40000)] == 0x5375 and image[("holding", 40001)] == 0x6E53
    assert image[("holding", 40070)] == 203
    profile = REGISTRY["sunspec-meter"]
    assert isinstance(profile, ModbusProfile)
    sf = profile.points["power_w"].scale_factor
    assert sf is not None and ("holding", sf.address) in image


def test_ups_serves_a_full_battery_in_normal_status() -> None:
    """On mains the UPS-MIB agent says upsBatteryStatus batteryNormal(2), charge 100 %."""
    world = World(_site_for("ups-mib", "u1"), 1, REGISTRY, T0)
    image = world.image("u1")
    assert image[parse_oid("1.3.6.1.2.1.33.1.2.1.0")] == 2
    assert image[parse_oid("1.3.6.1.2.1.33.1.2.4.0")] == 100
    points = world.device_view("u1")["points"]
    assert points["battery_low"] == 0.0 and points["battery_charge_ratio"] == 1.0
    assert points["on_battery"] == 0.0


def test_raritan_energy_counter_wraps_while_running() -> None:
    world = World(_site_for("raritan-px", "p1"), 1, REGISTRY, T0)
    first = world.device_view("p1")["points"]["energy_wh"]
    world.advance(T0 + 2 * 3600)  # starts within 80 minutes of the Unsigned32 wrap
    later = world.device_view("p1")["points"]["energy_wh"]
    assert first > 2 ** 32 - 200_000 and later < first


# --- end to end: tiny preset through dcim ------------------------------------------------


def test_config_written_validates(tiny: SimulatorProcess) -> None:
    result = dcim("check-config", str(tiny.config))
    assert result.returncode == 0, result.stderr
    assert "2 racks, 7 devices" in result.stdout


def test_every_tiny_device_reads_the_ground_truth(tiny: SimulatorProcess, tiny_site: Site) -> None:
    results = poll(tiny_site, *tiny_site.devices)
    truth = tiny.get("/truth")
    assert set(truth["devices"]) == set(tiny_site.devices)
    for device_id, result in results.items():
        assert result.up, (device_id, result.error)
        view = tiny.get(f"/devices/{device_id}")
        assert not result.errors, (device_id, result.errors)
        assert set(result.values) == set(view["points"])
        for name, value in result.values.items():
            want = view["points"][name]
            if isinstance(value, dict):
                assert value == pytest.approx(want), (device_id, name)
            else:
                assert value == pytest.approx(want, rel=1e-9), (device_id, name)
    # the physical truth, within the rounding of each wire format
    for rack_id, watts in truth["racks"].items():
        rack = tiny_site.racks[rack_id]
        measured = sum(results[d].values["power_w"] for d in rack.devices)
        assert measured == pytest.approx(watts, abs=20.0)
    cdu = results["cdu-1"].values
    true_cdu = truth["cdus"]["cdu-1"]
    assert cdu["supply_temp_c"] == pytest.approx(true_cdu["supply_c"], abs=1e-4)
    assert cdu["return_temp_c"] == pytest.approx(true_cdu["return_c"], abs=1e-4)
    assert cdu["flow_lpm"] == pytest.approx(true_cdu["flow_lpm"], rel=1e-6)
    assert results["main-1"].values["power_w"] == pytest.approx(truth["facility_w"], rel=1e-6)
    ups = results["ups-1"].values
    assert ups["output_power_w"] == pytest.approx(truth["it_w"], abs=3.0)
    assert ups["input_power_w"] > ups["output_power_w"]
    assert ups["battery_charge_ratio"] == 1.0 and ups["battery_low"] == 0.0


def test_poll_cli_json(tiny: SimulatorProcess) -> None:
    result = dcim("poll", "--config", str(tiny.config), "r02-pdu-b", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    view = tiny.get("/devices/r02-pdu-b")
    assert out["profile"] == "eaton-epdu"
    assert out["points"]["power_w"] == pytest.approx(view["points"]["power_w"])
    assert len(out["points"]["current_a"]) == 4  # three phases and the neutral


def test_poll_cli_shows_states_and_ratios_plainly(tiny: SimulatorProcess) -> None:
    shown = dcim("poll", "--config", str(tiny.config), "ups-1")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert " not on battery " in lines["on_battery"]
    assert " battery ok " in lines["battery_low"]
    assert " 100 % " in lines["battery_charge_ratio"]  # the simulator's battery is full
    as_json = json.loads(dcim("poll", "--config", str(tiny.config), "ups-1", "--json").stdout)
    assert as_json["points"]["on_battery"] == 0.0  # --json stays numeric
    assert as_json["points"]["battery_charge_ratio"] == 1.0
    load = as_json["points"]["load_ratio"]
    assert f" {load * 100:g} % " in lines["load_ratio"]


def test_pue_cli_matches_truth(tiny: SimulatorProcess) -> None:
    result = dcim("pue", "--config", str(tiny.config), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    truth = tiny.get("/truth")
    assert out["status"] == "ok" and out["coverage"] == 1.0
    assert out["pue"] == pytest.approx(truth["pue"], rel=0.005)
    assert out["facility_w"] == pytest.approx(truth["facility_w"], rel=0.001)
    assert out["it_w"] == pytest.approx(truth["it_w"], rel=0.001)


@pytest.mark.parametrize("mode", ["timeout", "garbage", "exception"])
@pytest.mark.parametrize("device", ["r01-pdu-b", "main-1"])  # SNMP and Modbus
def test_failed_device_withholds_pue(tiny: SimulatorProcess, mode: str, device: str) -> None:
    tiny.post(f"/devices/{device}/fail", {"mode": mode})
    try:
        result = dcim("pue", "--config", str(tiny.config), "--json")
        out = json.loads(result.stdout)
        assert result.returncode == 3, result.stdout
        assert out["pue"] is None and out["status"] == "degraded"
        assert out["missing"] == [device]
        assert tiny.get("/truth")["failed_devices"] == {device: mode}
    finally:
        tiny.post(f"/devices/{device}/recover")
    assert dcim("pue", "--config", str(tiny.config), "--json").returncode == 0


@pytest.mark.parametrize("device", ["r02-pdu-a", "cdu-1"])
def test_slow_device_answers_after_the_default_timeout(tiny: SimulatorProcess, tiny_site: Site,
                                                        device: str) -> None:
    tiny.post(f"/devices/{device}/fail", {"mode": "slow"})
    try:
        patient = replace(tiny_site.devices[device], timeout=6.0, retries=0)
        started = time.monotonic()
        (result,) = asyncio.run(poll_once(tiny_site, [patient]))
        took = time.monotonic() - started
        assert result.up, result.error
        assert took > 2.0  # longer than dcim's default timeout ...
        impatient = replace(tiny_site.devices[device], timeout=1.0, retries=0)
        (late,) = asyncio.run(poll_once(tiny_site, [impatient]))
        assert not late.up  # ... so a default poll gives up on it
    finally:
        tiny.post(f"/devices/{device}/recover")


def test_feed_failure_other_feed_carries_the_rack(tiny: SimulatorProcess,
                                                  tiny_site: Site) -> None:
    before = tiny.get("/truth")["racks"]["r01"]
    answer = tiny.post("/racks/r01/feeds/A/fail")
    try:
        assert answer["feeds"] == {"A": 0.0, "B": pytest.approx(before)}
        results = poll(tiny_site, "r01-pdu-a", "r01-pdu-b")
        assert results["r01-pdu-a"].values["power_w"] == 0.0
        assert results["r01-pdu-b"].values["power_w"] == pytest.approx(before, abs=10.0)
        pue = json.loads(dcim("pue", "--config", str(tiny.config), "--json").stdout)
        assert pue["status"] == "ok"
        assert pue["pue"] == pytest.approx(tiny.get("/truth")["pue"], rel=0.005)
    finally:
        tiny.post("/racks/r01/feeds/A/recover")
    assert tiny.get("/truth")["feeds"]["r01"]["A"] > 0


def test_leak_sets_the_cdu_leak_point(tiny: SimulatorProcess, tiny_site: Site) -> None:
    assert poll(tiny_site, "cdu-1")["cdu-1"].values["leak"] == 0.0
    tiny.post("/cdus/cdu-1/leak", {"active": True})
    try:
        assert poll(tiny_site, "cdu-1")["cdu-1"].values["leak"] == 1.0
        assert tiny.get("/truth")["cdus"]["cdu-1"]["leak"] is True
    finally:
        tiny.post("/cdus/cdu-1/leak", {"active": False})
    assert poll(tiny_site, "cdu-1")["cdu-1"].values["leak"] == 0.0


@pytest.mark.parametrize("device", ["r01-pdu-a", "r02-pdu-b", "main-1"])
def test_reset_energy_drops_the_counter(tiny: SimulatorProcess, tiny_site: Site,
                                        device: str) -> None:
    before = poll(tiny_site, device)[device].values["energy_wh"]
    assert before > 1000
    tiny.post(f"/devices/{device}/reset-energy")
    after = poll(tiny_site, device)[device].values["energy_wh"]
    assert after < before and after < 1000


def test_load_override_reaches_the_pdus(tiny: SimulatorProcess, tiny_site: Site) -> None:
    answer = tiny.post("/racks/r02/load", {"kw": 150})
    try:
        assert answer["w"] == 150_000.0
        assert tiny.get("/truth")["racks"]["r02"] == 150_000.0
        results = poll(tiny_site, "r02-pdu-a", "r02-pdu-b")
        total = sum(r.values["power_w"] for r in results.values())
        assert total == pytest.approx(150_000.0, abs=5.0)
    finally:
        tiny.post("/racks/r02/load", {"kw": None})


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/racks/nope/load", b'{"kw": 100}', 404),
    ("/racks/r01/load", b'{"kw": -5}', 400),
    ("/racks/r01/load", b'{"kw": 381}', 400),
    ("/racks/r01/load", b'{"kw": "lots"}', 400),
    ("/racks/r01/load", b'{"kw": 1', 400),
    ("/racks/r01/load", b'[1, 2]', 400),
    ("/devices/nope/fail", b'{"mode": "timeout"}', 404),
    ("/devices/main-1/fail", b'{"mode": "melt"}', 400),
    ("/devices/main-1/fail", b'{}', 400),
    ("/racks/r01/feeds/C/fail", None, 404),
    ("/cdus/main-1/leak", b'{"active": true}', 404),
    ("/cdus/cdu-1/leak", b'{"active": "yes"}', 400),
    ("/devices/cdu-1/reset-energy", None, 409),
    ("/no/such/thing", None, 404),
    ("/truth", None, 405),
])
def test_bad_control_input_is_4xx_and_harmless(tiny: SimulatorProcess, path: str,
                                               body: bytes | None, status: int) -> None:
    got, answer = post_status(tiny, path, body)
    assert got == status
    assert isinstance(answer["error"], str) and answer["error"]
    truth = tiny.get("/truth")
    assert truth["failed_devices"] == {} and truth["load_overrides_kw"] == {}


def test_unknown_preset_exits_2(tmp_path: Path) -> None:
    result = dcim("simulate", "--preset", "huge", "--write-config", str(tmp_path / "x.yaml"))
    assert result.returncode == 2
    assert "unknown preset 'huge'" in result.stderr and "tiny" in result.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_control_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = dcim("simulate", "--preset", "tiny", "--write-config", str(tmp_path / "x.yaml"),
                      "--control", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_device_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = dcim("simulate", "--preset", "tiny", "--write-config", str(tmp_path / "x.yaml"),
                      "--base-port", str(port))
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr


def test_workers_spread_devices_and_forward_control(tmp_path: Path) -> None:
    sim = SimulatorProcess.start("tiny", tmp_path / "site.yaml", extra=("--workers", "2",
                                                                        "--frozen"))
    try:
        site = load_site(sim.config)
        sim.post("/racks/r01/load", {"kw": 120})
        results = poll(site, *site.devices)
        assert all(r.up for r in results.values())
        rack = sum(results[d].values["power_w"] for d in site.racks["r01"].devices)
        assert rack == pytest.approx(120_000.0, abs=5.0)
        assert results["main-1"].values["power_w"] == pytest.approx(
            sim.get("/truth")["facility_w"], rel=1e-6)
    finally:
        stop_and_check_ports(sim)


# --- the 18 MW hall ----------------------------------------------------------------------


def test_hall_18mw_pue_matches_truth(tmp_path: Path) -> None:
    sim = SimulatorProcess.start("hall-18mw", tmp_path / "hall.yaml", seed=2)
    try:
        before = sim.get("/truth")
        result = dcim("pue", "--config", str(sim.config), "--json")
        after = sim.get("/truth")
        assert result.returncode == 0, result.stdout + result.stderr
        out = json.loads(result.stdout)
        assert out["status"] == "ok" and out["coverage"] == 1.0
        assert 1.2 < out["pue"] < 1.3
        assert 1.2 < after["pue"] < 1.3
        assert any(out["pue"] == pytest.approx(t["pue"], rel=0.005) for t in (before, after))
        assert any(out["it_w"] == pytest.approx(t["it_w"], rel=0.01) for t in (before, after))
        assert len(before["devices"]) == len(yaml.safe_load(sim.config.read_text())["devices"])
        assert before["facility_w"] > 10e6  # an 18 MW-class hall
    finally:
        stop_and_check_ports(sim)


def test_bench_2000_serves_two_thousand_devices_over_workers(tmp_path: Path) -> None:
    sim = SimulatorProcess.start("bench-2000", tmp_path / "bench.yaml", extra=("--workers", "2"))
    try:
        site = load_site(sim.config)
        assert len(site.devices) == 2000
        kinds = {d.kind for d in site.devices.values()}
        sample = [next(d.id for d in site.devices.values() if d.kind == kind)
                  for kind in Kind if kind in kinds]
        sample += ["r900-pdu-b", "cdu-150", "chiller-16"]  # the last units behind gateways
        results = poll(site, *sample)
        assert all(r.up and not r.errors for r in results.values()), results
        assert site.devices["cdu-150"].port == site.devices["cdu-141"].port  # one gateway
    finally:
        stop_and_check_ports(sim)

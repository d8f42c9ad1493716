"""`dcim discover` against real agents: snmpsim serving the project's fixtures, net-snmp's snmpd
(a device no profile is made for) and the simulator's tiny site (every SNMP device in it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from support.profiles import SNMP_FIXTURES
from support.servers import SnmpdServer, SnmpsimServer

from dcim.sim.child import SimulatorProcess
from dcim.site import load_site


def dcim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcim", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def credentials_config(tmp_path: Path, communities: list[str]) -> Path:
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "site": {"name": "discover"},
        "credentials": {c: {"snmp_version": "2c", "community": c} for c in communities},
    }), encoding="utf-8")
    return config


# Fixture (community) -> the profile discover must name: by sysObjectID, most specific first
# (a Dominion PX under .13742.4 is raritan-px1, not raritan-px), or by sysDescr for UPS-MIB.
EXPECTED = {"raritan-px": "raritan-px", "raritan-px1": "raritan-px1", "vertiv-v5": "vertiv-v5",
            "apc-rpdu2": "apc-rpdu2", "eaton-epdu": "eaton-epdu",
            "servertech-sentry4": "servertech-sentry4", "ups-mib": "ups-mib",
            "ups-mib--sentinels": "ups-mib"}


def test_discover_names_the_profile_of_each_fixture_agent(
        snmpsim_factory: Callable[..., SnmpsimServer], tmp_path: Path) -> None:
    agent = snmpsim_factory(SNMP_FIXTURES)
    config = credentials_config(tmp_path, list(EXPECTED))
    for community, profile in EXPECTED.items():
        result = dcim("discover", f"127.0.0.1:{agent.port}", "--config", str(config),
                      "--credentials", community)
        assert result.returncode == 0, (community, result.stdout, result.stderr)
        entries = yaml.safe_load(result.stdout)
        assert entries == [{"id": f"dev-127-0-0-1-{agent.port}", "profile": profile,
                            "host": "127.0.0.1", "port": agent.port,
                            "credentials": community}], result.stdout
        assert "sysObjectID 1.3.6.1.4.1." in result.stdout  # says what it saw


def test_discover_says_plainly_when_nothing_matches(
        snmpd_factory: Callable[..., SnmpdServer], tmp_path: Path) -> None:
    agent = snmpd_factory(extra_config=["sysDescr a Linux box, not a power device"])
    dead = snmpd_factory(start=False)
    result = dcim("discover", f"127.0.0.1:{agent.port}", f"127.0.0.1:{dead.port}",
                  "--timeout", "0.3")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"127.0.0.1:{agent.port}: no shipped profile matches")
               and "sysObjectID 1.3.6.1.4.1.8072" in line and "a Linux box" in line
               for line in lines), result.stderr
    assert any(line.startswith(f"127.0.0.1:{dead.port}: no answer") for line in lines)


def test_discover_identifies_every_snmp_device_of_the_simulator(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    sim = SimulatorProcess.start("tiny", config, seed=3)
    try:
        site = load_site(config)
        snmp = {d.id: d for d in site.devices.values() if d.protocol == "snmp"}
        targets = [f"{d.host}:{d.port}" for d in snmp.values()]
        result = dcim("discover", *targets, "--config", str(config), "--credentials", "sim")
    finally:
        sim.stop()
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = yaml.safe_load(result.stdout)
    by_port = {e["port"]: e["profile"] for e in found}
    assert by_port == {d.port: d.profile.name for d in snmp.values()}
    assert {d.profile.name for d in snmp.values()} >= {"ups-mib"}  # found by sysDescr

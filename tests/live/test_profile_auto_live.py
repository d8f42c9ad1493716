"""`profile: auto` against real agents: the site config picks the profile the device's
sysObjectID (or, for UPS-MIB, sysDescr) calls for, says so, and refuses plainly otherwise."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support.profiles import SNMP_FIXTURES
from support.servers import SnmpdServer, SnmpsimServer

from dcim.drivers.identify import identify_all
from dcim.errors import ConfigError
from dcim.site import load_site


def _config(tmp_path: Path, devices: list[dict[str, object]], communities: list[str]) -> Path:
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({
        "site": {"name": "auto"},
        "polling": {"timeout": "500ms", "retries": 0},
        "credentials": {c: {"snmp_version": "2c", "community": c} for c in communities},
        "devices": devices,
    }), encoding="utf-8")
    return config


def test_auto_picks_the_profile_from_the_device(
        snmpsim_factory: Callable[..., SnmpsimServer], tmp_path: Path) -> None:
    agent = snmpsim_factory(SNMP_FIXTURES)
    wanted = {"raritan-px1": "raritan-px1", "vertiv-v5": "vertiv-v5", "ups-mib": "ups-mib"}
    config = _config(tmp_path, [
        {"id": f"d-{c}", "profile": "auto", "host": "127.0.0.1", "port": agent.port,
         "credentials": c} for c in wanted], list(wanted))
    site = load_site(config, identify=identify_all)
    assert {d: site.devices[f"d-{c}"].profile.name for c, d in wanted.items()} == {
        v: v for v in wanted.values()}
    assert "sysObjectID 1.3.6.1.4.1.13742.4" in (site.devices["d-raritan-px1"].detected or "")
    result = subprocess.run([sys.executable, "-m", "dcim", "poll", "--config", str(config),
                             "d-ups-mib"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("d-ups-mib (ups-mib, auto: sysObjectID 1.3.6.1.4.1.534.1"), first


def test_auto_refuses_plainly_what_it_cannot_identify(
        snmpd_factory: Callable[..., SnmpdServer], tmp_path: Path) -> None:
    agent = snmpd_factory()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent = s.getsockname()[1]  # bound while asked: nothing answers there
        config = _config(tmp_path, [
            {"id": "linux", "profile": "auto", "host": "127.0.0.1", "port": agent.port},
            {"id": "gone", "profile": "auto", "host": "127.0.0.1", "port": silent},
        ], [])
        with pytest.raises(ConfigError) as info:
            load_site(config, identify=identify_all)
    errors = info.value.errors
    assert any(e.startswith("devices[0].profile: auto: no shipped profile matches")
               and "sysObjectID 1.3.6.1.4.1.8072" in e for e in errors), errors
    # A device that does not answer is no config error: it loads as down (its own test).
    assert not any(e.startswith("devices[1]") for e in errors), errors
    assert any(w.startswith("devices[1].profile: auto: ") and "no answer to sysObjectID" in w
               for w in info.value.warnings), info.value.warnings

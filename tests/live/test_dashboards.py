"""The Grafana dashboards and provisioning files, checked without a Grafana server.

Structure (JSON model, schemaVersion, variables, units, layout), the references that make
thresholds follow the exported cap and target series, and every PromQL expression: with its
variables replaced by plausible values, each one must pass `promtool check rules` (parse and
type check) and run against a real Prometheus with an empty TSDB.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.dashboards import DASHBOARDS, FILES, expressions, load, panels
from support.series import exported_names, series_names
from support.servers import PrometheusServer, promtool_binary

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = DASHBOARDS / "provisioning"

# The classic dashboard JSON model: Grafana's latest schema version (its last v1-API migration).
SCHEMA_VERSION = 42
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Grafana unit ids the dashboards may use (a typo renders as a bare number with no unit).
UNITS = {"watt", "kwatth", "none", "short", "percentunit", "celsius", "kelvin", "flowlpm",
         "pressurepa", "s", "cps", "bytes", "amp"}

# Plausible values for the template variables, as Grafana would interpolate them.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "6h",
    "$datasource": "dcim-prometheus",
    "$site": "sim-tiny",
    "$hall": "h1",
    "$rack": "r01",
    "$cdu": "cdu-1",
    "$kind": "pdu",
    "$tenant": "acme",
}
EXPECTED = {
    "dcim-site-overview.json": "dcim / Site overview",
    "dcim-rack-power.json": "dcim / Rack power",
    "dcim-liquid-cooling.json": "dcim / Liquid cooling",
    "dcim-collector-health.json": "dcim / Collector health",
    "dcim-tenants.json": "dcim / Tenants",
}


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"unknown variable left in {expr!r}"
    return expr


def all_expressions() -> list[tuple[str, str]]:
    return [(where, substitute(expr)) for path in FILES for where, expr in expressions(load(path))]


# --- structure ---------------------------------------------------------------------------------


def test_the_five_dashboards_exist() -> None:
    assert {p.name: load(p)["title"] for p in FILES} == EXPECTED
    uids = [load(p)["uid"] for p in FILES]
    assert len(set(uids)) == len(uids)
    assert all(8 <= len(uid) <= 40 for uid in uids)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_model(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard.get("id") is None  # provisioned dashboards get their id from Grafana
    assert "dcim" in dashboard["tags"]
    assert dashboard["description"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    assert "site" in variables
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    if path.name in ("dcim-site-overview.json", "dcim-rack-power.json"):
        assert {"site", "hall", "rack"} <= set(variables)
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"] == DATASOURCE


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_panel_uses_the_datasource_variable_and_sets_its_unit(path: Path) -> None:
    dashboard = load(path)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        where = f"{path.name}: {panel['title']}"
        assert panel["datasource"] == DATASOURCE, where
        assert panel["targets"], where
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), where
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, where
            assert target["expr"].strip(), where
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, f"{where}: unit {unit!r}"
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    assert prop["value"] in UNITS, where
        assert panel["title"] and panel.get("description"), where


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in load(path)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{path.name}: {panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_transformations_reference_existing_queries(path: Path) -> None:
    for panel in panels(load(path)):
        refs = {t["refId"] for t in panel["targets"]}
        for transformation in panel.get("transformations", []):
            if transformation["id"] == "configFromData":
                assert transformation["options"]["configRefId"] in refs, panel["title"]


def _panel(file: str, title: str) -> dict[str, Any]:
    for panel in panels(load(DASHBOARDS / file)):
        if panel["title"] == title:
            return panel
    raise AssertionError(f"{file}: no panel {title!r}")


def _dashed(panel: dict[str, Any], legend_regex: str) -> bool:
    for override in panel["fieldConfig"]["overrides"]:
        props = {p["id"]: p["value"] for p in override["properties"]}
        if override["matcher"]["options"] == legend_regex and \
                props.get("custom.lineStyle", {}).get("fill") == "dash":
            return True
    return False


def test_thresholds_follow_the_cap_and_target_series() -> None:
    # PUE gauge: its red zone starts at dcim_pue_target_ratio (Grafana "config from query")
    gauge = _panel("dcim-site-overview.json", "Live PUE")
    config = {t["refId"]: t["expr"] for t in gauge["targets"]}
    (transformation,) = gauge["transformations"]
    assert transformation["id"] == "configFromData"
    assert "dcim_pue_target_ratio" in config[transformation["options"]["configRefId"]]
    assert transformation["options"]["mappings"][0]["handlerKey"] == "threshold1"
    # rack power: every rack's cap series drawn as a dashed line next to its power
    racks = _panel("dcim-rack-power.json", "Rack power and cap")
    caps = [t for t in racks["targets"] if "dcim_rack_power_cap_watts" in t["expr"]]
    assert caps and caps[0]["legendFormat"].endswith(" cap") and _dashed(racks, ".* cap$")
    feeds = _panel("dcim-rack-power.json", "Feed power (A/B) and one-feed capacity")
    assert any("dcim_rack_feed_capacity_watts" in t["expr"] for t in feeds["targets"])
    assert _dashed(feeds, ".* one-feed capacity$")
    trend = _panel("dcim-site-overview.json", "Energy PUE: 24 h, 7 d, 30 d")
    assert any("dcim_pue_target_ratio" in t["expr"] for t in trend["targets"])
    assert _dashed(trend, ".* target$")
    # cooling limits are the recorded per-site thresholds the alerts use
    temps = _panel("dcim-liquid-cooling.json", "Supply and return temperature")
    assert any("site:dcim_cdu_supply_temperature_high_celsius:threshold" in t["expr"]
               for t in temps["targets"])


def test_the_dashboards_cover_the_issue() -> None:
    text = {p.name: p.read_text() for p in FILES}
    for name in ("site:dcim_pue:ratio", "dcim_pue_target_ratio", "site:dcim_facility_power_watts:sum",
                 "site:dcim_it_power_watts:sum", "site:dcim_pue:ratio_increase30d",
                 "dcim_overhead_power_watts"):
        assert name in text["dcim-site-overview.json"], name
    for name in ("dcim_rack_power_watts", "dcim_rack_power_cap_watts", "dcim_rack_feed_power_watts",
                 "dcim_rack_failover_risk"):
        assert name in text["dcim-rack-power.json"], name
    for name in ("dcim_cdu_supply_temperature_celsius", "dcim_cdu_return_temperature_celsius",
                 "dcim_cdu_delta_temperature_kelvin", "dcim_cdu_flow_liters_per_minute",
                 "dcim_cdu_heat_removed_watts", "dcim_cdu_capture_ratio", "dcim_cdu_leak_detected"):
        assert name in text["dcim-liquid-cooling.json"], name
    for name in ("dcim_device_up", "dcim_device_poll_duration_seconds",
                 "dcim_device_poll_errors_total", "dcim_influx_points_queued",
                 "dcim_influx_spool_bytes"):
        assert name in text["dcim-collector-health.json"], name
    for name in ("dcim_tenant_power_watts", "dcim_tenant_contract_watts",
                 "dcim_tenant_utilization_ratio", "site_tenant:dcim_tenant_power_watts:avg15m",
                 "site_tenant:dcim_tenant_it_energy_joules:increase1h",
                 "site_tenant:dcim_tenant_facility_energy_joules:increase1h",
                 "dcim_tenant_missing_racks"):
        assert name in text["dcim-tenants.json"], name


def test_dashboards_read_only_series_that_exist() -> None:
    records: set[str] = set()
    for path in sorted((ROOT / "alerts" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            records |= {r["record"] for r in group["rules"] if "record" in r}
    known = exported_names() | records
    for where, expr in all_expressions():
        unknown = series_names(expr) - known
        assert unknown == set(), f"{where}: {unknown}"


# --- provisioning ------------------------------------------------------------------------------


def test_provisioning_files() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dcim.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert re.fullmatch(r"\d+[smh]", source["jsonData"]["timeInterval"])


# --- PromQL ------------------------------------------------------------------------------------


def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool parses and type-checks each expression (as a recording rule)."""
    exprs = all_expressions()
    assert len(exprs) > 60
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}:check", "expr": expr} for i, (_, expr) in enumerate(exprs)
    ]}]}
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = subprocess.run([promtool_binary(), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "expr_" in line]
        named = [f"{exprs[int(m.group(1))][0]}: {line}" for line in lines
                 if (m := re.search(r"expr_(\d+)", line))]
        pytest.fail("\n".join(named) or result.stdout + result.stderr)


def test_a_broken_expression_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y:z", "expr": substitute('sum by (site (dcim_rack_power_watts{site=~"$site"})')}]}]}))
    result = subprocess.run([promtool_binary(), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


@pytest.fixture
def empty_prometheus(prometheus_factory: Callable[..., PrometheusServer]) -> PrometheusServer:
    """A Prometheus with an empty TSDB and nothing to scrape."""
    return prometheus_factory()


def test_every_expression_runs_on_prometheus(empty_prometheus: PrometheusServer) -> None:
    """Each expression, sent by `promtool query instant`, is accepted by a real Prometheus."""
    promtool = promtool_binary()
    failures = []
    for where, expr in all_expressions():
        result = subprocess.run([promtool, "query", "instant", "-o", "json", empty_prometheus.url, expr],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            failures.append(f"{where}: {result.stderr.strip() or result.stdout.strip()}")
    assert failures == []
    # and the check can fail: Prometheus refuses an instant vector where a range is needed
    bad = subprocess.run([promtool, "query", "instant", empty_prometheus.url,
                          "rate(dcim_device_polls_total)"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0

"""Rules, dashboards and the Alertmanager example against the real thing.

Prometheus scrapes `dcim run` polling the `tiny` simulator (over real SNMP and Modbus) and
evaluates a copy of alerts/rules/*.yml; Alertmanager runs alertmanager.example.yml's routing
tree and inhibitions with every receiver pointed at a webhook in this test. Faults injected
through the simulator's control API must make ALERTS{alertname=...} fire and reach the right
receiver; every dashboard query must return data.

Only the test copy of the rules changes timing (a live test cannot wait 3 hours): every `for:`
becomes 0s except where the shipped rules rely on an order (the cause before the consequence it
inhibits), the long-window group runs every 2 s, the continuous-load window is 5 s instead of
10 min and the InfluxDB backlog age limit 5 s instead of 10 min. Everything else, the
expressions, labels, annotations, routing and inhibitions, is the shipped text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.dashboards import FILES as DASHBOARD_FILES
from support.dashboards import expressions, load, panels
from support.servers import (
    AlertmanagerServer,
    PrometheusServer,
    WebhookReceiver,
    free_port,
    wait_until,
)

from dcim.sim.child import SimulatorProcess

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "rules"
AM_EXAMPLE = ROOT / "alerts" / "alertmanager.example.yml"
SITE = "sim-tiny"

# `for:` of the test copy. The shipped rules let a cause fire before the alert it inhibits
# (DcimDeviceDown 2m before DcimPueWithheld 10m; DcimRackPowerOverCap 1m before
# DcimRackPowerNearCap 5m); the copy keeps that order.
TEST_FOR = {"DcimPueWithheld": "8s", "DcimRackPowerNearCap": "6s"}
# Windows and limits a live test cannot wait for: (rule, shipped text, test text).
TEST_EDITS = [
    ("DcimRackPowerContinuousHigh", "min_over_time(dcim_rack_power_watts[10m])",
     "min_over_time(dcim_rack_power_watts[5s])"),
    ("DcimInfluxSpoolGrowing", "dcim_influx_oldest_unsent_age_seconds > 600",
     "dcim_influx_oldest_unsent_age_seconds > 5"),
]

# Values the dashboards' variables take here ("All" is .* in Grafana).
LIVE_VARIABLES = {
    "$__rate_interval": "15s", "$__interval": "2s", "$__range": "5m",
    "$site": SITE, "$hall": "h1", "$rack": ".*", "$cdu": ".*", "$kind": ".*", "$tenant": ".*",
}
# Panels that cannot show data on the tiny preset; their queries still have to run.
NO_DATA_ON_TINY = {
    ("dcim / Liquid cooling", "Chiller power and cooling"): "the tiny preset has no chiller",
    ("dcim / Liquid cooling", "Chiller COP"): "the tiny preset has no chiller",
    ("dcim / Liquid cooling", "Chilled-water supply temperature"): "the tiny preset has no chiller",
    ("dcim / Liquid cooling", "Chiller faults"): "the tiny preset has no chiller",
    ("dcim / Rack power", "Shelf redundancy"): "the tiny preset has no power shelf",
    ("dcim / Rack power", "Shelf supplies healthy / installed"): "the tiny preset has no power shelf",
}


# --- the stack ---------------------------------------------------------------------------------


def rules_for_test() -> dict[str, str]:
    """The rule files as Prometheus loads them in this test: shipped text, test timing."""
    out = {}
    for path in sorted(RULES.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            if "interval" in group:
                group["interval"] = "2s"
            for rule in group["rules"]:
                name = rule.get("alert")
                if name is None:
                    continue
                if "for" in rule:
                    rule["for"] = TEST_FOR.get(name, "0s")
                for alert, shipped, test in TEST_EDITS:
                    if alert == name:
                        assert shipped in rule["expr"], f"{name}: the shipped rule changed"
                        rule["expr"] = rule["expr"].replace(shipped, test)
        out[path.name] = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return out


def alertmanager_config(webhook: WebhookReceiver) -> str:
    """The example's routing tree and inhibitions; every receiver posts to webhook/<name>."""
    config: dict[str, Any] = yaml.safe_load(AM_EXAMPLE.read_text())
    config.pop("templates", None)
    config["receivers"] = [
        {"name": r["name"],
         "webhook_configs": [{"url": f"{webhook.url}{r['name']}", "send_resolved": True}]}
        for r in config["receivers"]
    ]

    def fast(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s")):
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[SimulatorProcess]:
    """The tiny preset in real time (energy counters must advance for energy PUE)."""
    sim = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def daemon(tmp_path: Path, simulator: SimulatorProcess) -> Iterator[DaemonProcess]:
    # Steady loads well below the caps, so a healthy site raises no rack alert.
    simulator.post("/racks/r01/load", {"kw": 120})
    simulator.post("/racks/r02/load", {"kw": 130})
    workdir = tmp_path / "dcim"
    workdir.mkdir()
    dead_influx = free_port()  # nothing listens: the spool grows, retries are counted
    daemon = DaemonProcess(
        workdir, simulator.config,
        site={"pue_target": 1.1},  # below the simulated ~1.24: DcimPueAboveTarget fires
        polling={"interval": "2s", "timeout": "1s", "retries": 0, "max_age": "5s"},
        sinks={"influxdb": {"url": f"http://127.0.0.1:{dead_influx}", "org": "dc",
                            "bucket": "dcim", "token": "test-token", "flush_interval": "1s",
                            "max_backoff": "2s"}},
        args=["--shard", "0/1"])  # exported as one shard of one
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def stack(daemon: DaemonProcess, webhook: WebhookReceiver,
          prometheus_factory: Callable[..., PrometheusServer],
          alertmanager_factory: Callable[..., AlertmanagerServer],
          ) -> tuple[PrometheusServer, AlertmanagerServer]:
    alertmanager = alertmanager_factory(alertmanager_config(webhook))
    prometheus = prometheus_factory(targets=[daemon.address], job="dcim", rules=rules_for_test(),
                                    alertmanagers=[alertmanager.url])
    return prometheus, alertmanager


# --- helpers -----------------------------------------------------------------------------------


def firing(prometheus: PrometheusServer) -> list[dict[str, str]]:
    """Label sets of the firing alerts (the ALERTS series)."""
    return [r["metric"] for r in prometheus.query('ALERTS{alertstate="firing"}')]


def wait_firing(prometheus: PrometheusServer, alertname: str, timeout: float = 60,
                **labels: str) -> dict[str, str]:
    def check() -> dict[str, str] | None:
        for alert in firing(prometheus):
            if alert["alertname"] == alertname and all(alert.get(k) == v for k, v in labels.items()):
                return alert
        return None

    try:
        return wait_until(check, timeout, interval=0.5, what=f"{alertname} {labels} firing")
    except TimeoutError as exc:
        names = sorted({a["alertname"] for a in firing(prometheus)})
        raise TimeoutError(f"{exc}; firing: {names}") from None


def delivered(webhook: WebhookReceiver, receiver: str) -> list[dict[str, Any]]:
    """Every alert (status, labels, annotations) posted to one receiver so far."""
    alerts = []
    for request in list(webhook.requests):
        if request.path.rstrip("/") == f"/{receiver}":
            alerts += request.json()["alerts"]
    return alerts


def wait_delivered(webhook: WebhookReceiver, receiver: str, alertname: str, status: str = "firing",
                   timeout: float = 60, **labels: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        for alert in delivered(webhook, receiver):
            if alert["labels"].get("alertname") == alertname and alert["status"] == status and \
                    all(alert["labels"].get(k) == v for k, v in labels.items()):
                return alert
        return None

    try:
        return wait_until(check, timeout, interval=0.5,
                          what=f"{alertname} {labels} {status} at {receiver}")
    except TimeoutError as exc:
        got = sorted({(a["labels"]["alertname"], a["status"]) for a in delivered(webhook, receiver)})
        raise TimeoutError(f"{exc}; {receiver} got {got}") from None


def live_substitute(expr: str) -> str:
    for name in sorted(LIVE_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, LIVE_VARIABLES[name])
    assert "$" not in expr, expr
    return expr


def panel_queries() -> list[tuple[tuple[str, str], str, str]]:
    """((dashboard, panel), where, PromQL) of every panel target, annotation and variable."""
    out = []
    for path in DASHBOARD_FILES:
        dashboard = load(path)
        titles = {f"{dashboard['title']} / {p['title']} / {t['refId']}": p["title"]
                  for p in panels(dashboard) for t in p["targets"]}
        for where, expr in expressions(dashboard):
            key = (dashboard["title"], titles.get(where, where))
            out.append((key, where, live_substitute(expr)))
    return out


def queries_with_data(prometheus: PrometheusServer) -> set[str]:
    """The `where` of every dashboard query that returns data now (all must run)."""
    found = set()
    for _, where, expr in panel_queries():
        if prometheus.query(expr):
            found.add(where)
    return found


# --- the test ----------------------------------------------------------------------------------


def test_rules_dashboards_and_alertmanager_on_a_live_site(
        stack: tuple[PrometheusServer, AlertmanagerServer], simulator: SimulatorProcess,
        daemon: DaemonProcess, webhook: WebhookReceiver) -> None:
    prometheus, alertmanager = stack

    # 1. Healthy site: the recording rules agree with dcim, nothing but the PUE target fires.
    prometheus.wait_for(f'site:dcim_pue:ratio{{site="{SITE}"}}', timeout=60)
    prometheus.wait_for('campus:dcim_pue:ratio', timeout=30)
    prometheus.wait_for(f'site:dcim_pue:ratio_increase30d{{site="{SITE}"}}', timeout=30)
    prometheus.wait_for(f'cdu:dcim_cdu_flow_liters_per_minute:median_over_time1d{{site="{SITE}"}}',
                        timeout=30)
    assert prometheus.query(f'site:dcim_shards_reporting:complete{{site="{SITE}"}}')
    live = float(prometheus.query(f'dcim_pue_ratio{{site="{SITE}"}}')[0]["value"][1])
    from_rules = float(prometheus.query(f'site:dcim_pue:ratio{{site="{SITE}"}}')[0]["value"][1])
    # the shard-aware sum of one shard is dcim's own PUE (evaluated a scrape or so apart)
    assert from_rules == pytest.approx(live, rel=0.005)
    assert 1.15 < live < 1.35
    hall = prometheus.query(f'site_hall:dcim_rack_utilization:ratio{{site="{SITE}",hall="h1"}}')
    assert float(hall[0]["value"][1]) == pytest.approx(250 / 380, rel=0.02)

    above = wait_firing(prometheus, "DcimPueAboveTarget", site=SITE)
    assert above["severity"] == "warning"
    wait_delivered(webhook, "dcim-tickets", "DcimPueAboveTarget", site=SITE)
    time.sleep(3)  # let every rule see the healthy site a few times
    quiet_ok = {"DcimPueAboveTarget", "DcimInfluxSpoolGrowing"}
    assert {a["alertname"] for a in firing(prometheus)} <= quiet_ok
    with_data = queries_with_data(prometheus)

    # 2. Faults: a rack over its cap, one above the continuous-load limit, a leak, a dead meter.
    simulator.post("/racks/r02/load", {"kw": 200})   # 105 % of its 190 kW cap, over one feed
    simulator.post("/racks/r01/load", {"kw": 160})   # 84 %: continuous-load only
    simulator.post("/cdus/cdu-1/leak", {"active": True})
    simulator.post("/devices/main-1/fail", {"mode": "timeout"})

    over = wait_firing(prometheus, "DcimRackPowerOverCap", rack="r02")
    assert (over["severity"], over["site"], over["hall"], over["row"]) == ("critical", SITE, "h1", "a")
    wait_firing(prometheus, "DcimRackFailoverRisk", rack="r02", hall="h1")
    wait_firing(prometheus, "DcimRackPowerContinuousHigh", rack="r01", hall="h1")
    wait_firing(prometheus, "DcimRackPowerNearCap", rack="r02")
    leak = wait_firing(prometheus, "DcimCduLeak", cdu="cdu-1")
    assert leak["severity"] == "critical"
    down = wait_firing(prometheus, "DcimDeviceDown", device="main-1")
    assert (down["pue_input"], down["kind"], down["profile"]) == ("true", "meter", "schneider-pm5500")
    wait_firing(prometheus, "DcimPueWithheld", site=SITE)
    wait_firing(prometheus, "DcimInfluxSpoolGrowing", site=SITE)
    names = {(a["alertname"], a.get("rack")) for a in firing(prometheus)}
    assert ("DcimRackPowerNearCap", "r01") not in names  # 84 % is not near the cap
    assert ("DcimRackPowerOverCap", "r01") not in names

    # Routing: pages to PagerDuty's receiver, everything to chat, warnings to tickets.
    page = wait_delivered(webhook, "dcim-pager", "DcimRackPowerOverCap", rack="r02")
    assert page["labels"]["hall"] == "h1"
    assert page["annotations"]["runbook_url"] == "docs/runbooks/DcimRackPowerOverCap.md"
    assert "over its power cap" in page["annotations"]["summary"]
    assert "(190kW)" in page["annotations"]["description"]
    wait_delivered(webhook, "dcim-pager", "DcimCduLeak", cdu="cdu-1")
    wait_delivered(webhook, "dcim-chat", "DcimCduLeak", cdu="cdu-1")
    wait_delivered(webhook, "dcim-tickets", "DcimRackFailoverRisk", rack="r02")
    wait_delivered(webhook, "dcim-tickets", "DcimRackPowerContinuousHigh", rack="r01")
    wait_delivered(webhook, "dcim-tickets", "DcimDeviceDown", device="main-1")
    wait_delivered(webhook, "dcim-tickets", "DcimInfluxSpoolGrowing", site=SITE)
    assert not [a for a in delivered(webhook, "dcim-pager")
                if a["labels"]["severity"] != "critical"]
    assert not [a for a in delivered(webhook, "dcim-tickets")
                if a["labels"]["severity"] != "warning"]

    # Inhibitions: the dead meter explains the withheld PUE, the cap breach the near-cap alert.
    time.sleep(4)  # several group intervals after both fired
    for receiver in ("dcim-pager", "dcim-chat", "dcim-tickets"):
        sent = {a["labels"]["alertname"] for a in delivered(webhook, receiver)}
        assert "DcimPueWithheld" not in sent, receiver
        assert "DcimRackPowerNearCap" not in sent, receiver
    held = {a["labels"]["alertname"]: a for a in alertmanager.alerts()}
    for name in ("DcimPueWithheld", "DcimRackPowerNearCap"):
        assert held[name]["status"]["state"] == "suppressed", name
        assert held[name]["status"]["inhibitedBy"], name
    with_data |= queries_with_data(prometheus)

    # 3. A PDU that stops answering leaves its rack's power unknown.
    simulator.post("/devices/r01-pdu-a/fail", {"mode": "exception"})
    wait_firing(prometheus, "DcimRackPowerUnknown", rack="r01", hall="h1")
    wait_delivered(webhook, "dcim-tickets", "DcimRackPowerUnknown", rack="r01")

    # 4. Recovery is delivered as resolved.
    simulator.post("/devices/main-1/recover")
    wait_delivered(webhook, "dcim-tickets", "DcimDeviceDown", status="resolved", device="main-1")
    with_data |= queries_with_data(prometheus)

    # 5. The facility meter answers but lies: 0 W while its current flows. dcim refuses the
    # reading as implausible, counts it with that reason, and withholds PUE, never a wrong one.
    simulator.post("/devices/r01-pdu-a/recover")
    prometheus.wait_for(f'dcim_pue_ratio{{site="{SITE}"}}', timeout=60)
    simulator.post("/devices/main-1/fail", {"mode": "zero-power"})
    lie = wait_firing(prometheus, "DcimDeviceInvalidReadings", device="main-1",
                      reason="implausible")
    assert lie["severity"] == "warning"
    wait_firing(prometheus, "DcimPueWithheld", site=SITE)
    assert not prometheus.query(f'dcim_pue_ratio{{site="{SITE}"}}')
    sent = wait_delivered(webhook, "dcim-tickets", "DcimDeviceInvalidReadings", device="main-1")
    assert sent["annotations"]["summary"].endswith("dcim refuses: implausible")
    assert "(points: current_a power_w)" in sent["annotations"]["description"]
    with_data |= queries_with_data(prometheus)  # the rejected-readings panel has data now
    simulator.post("/devices/main-1/recover")
    prometheus.wait_for(f'dcim_pue_ratio{{site="{SITE}"}}', timeout=60)

    # Every dashboard query returned data at some point, except where the preset has nothing.
    empty = {}
    for key, where, _ in panel_queries():
        if where not in with_data:
            empty.setdefault(key, []).append(where)
    assert set(empty) == set(NO_DATA_ON_TINY), {k: v for k, v in empty.items()
                                                 if k not in NO_DATA_ON_TINY}

    # 6. dcim itself goes away: its target is down, then nothing reports for the site.
    assert daemon.stop() == 0
    dcim_down = wait_firing(prometheus, "DcimDown", instance=daemon.address)
    assert dcim_down["severity"] == "critical"
    wait_delivered(webhook, "dcim-pager", "DcimDown", instance=daemon.address)
    wait_firing(prometheus, "DcimAbsent", job="dcim")
    wait_firing(prometheus, "DcimSiteNotReporting", site=SITE)
    # A leak sensor that stops reporting keeps the page open (max_over_time over 15 minutes).
    assert any(a["alertname"] == "DcimCduLeak" for a in firing(prometheus))


def test_the_test_copy_only_changes_timing() -> None:
    """Guard for the test above: the rule copy differs from the shipped rules in timing only."""
    for name, text in rules_for_test().items():
        shipped = yaml.safe_load((RULES / name).read_text())
        copy = yaml.safe_load(text)
        for group_s, group_c in zip(shipped["groups"], copy["groups"], strict=True):
            for rule_s, rule_c in zip(group_s["rules"], group_c["rules"], strict=True):
                for key in ("alert", "record", "labels", "annotations"):
                    assert rule_s.get(key) == rule_c.get(key)
                expr = rule_s["expr"]
                for alert, shipped_text, test_text in TEST_EDITS:
                    if rule_s.get("alert") == alert:
                        expr = expr.replace(shipped_text, test_text)
                assert expr == rule_c["expr"]
                if "for" in rule_s:
                    assert re.fullmatch(r"\d+s", rule_c["for"])

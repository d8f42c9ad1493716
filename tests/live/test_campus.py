"""A campus on real engines: two halls, one split into two shards, an HA pair of Prometheus
servers remote-writing into VictoriaMetrics, and the shipped recording rules.

    hall-a (tiny simulator)  -> dcim                         \\
    hall-b (tiny simulator)  -> dcim --shard 0/2, 1/2  -------> Prometheus a, b (replica a|b)
                                                               -> VictoriaMetrics (dedup)

Each Prometheus scrapes every dcim and runs alerts/rules (as docs/scale.md says: the rules run
in the Prometheus that scrapes the halls); both remote-write to one VictoriaMetrics, which
deduplicates the pair the way its documentation asks (identical series: the `replica` label
dropped on write; `-dedup.minScrapeInterval` equal to the scrape interval).

Checks: site and campus PUE from the rules equal dcim's own figure and the simulators' truth,
in Prometheus and in the store; killing a shard makes its site's PUE and the campus PUE absent
(never a partial sum) and fires DcimShardMissing; restarting it restores both; the store holds
one copy of every series and one sample per scrape interval, not two.

The simulators run `--frozen`, so truth holds still while the chain catches up; only the test
copy of the rules changes timing (every `for:` is 0 s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.servers import PrometheusServer, VictoriaMetricsServer, http_json, wait_until

from dcim.sim.child import SimulatorProcess
from dcim.site import load_site, restrict_to_shard

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "rules"
SCRAPE_S = 1
# Truth and dcim agree to the meters' resolution; the rules add nothing but sums and ratios.
REL = 2e-3


def rules_without_waits() -> dict[str, str]:
    """The shipped rule files with every `for:` at 0 s (a live test cannot wait 5 minutes)."""
    out = {}
    for path in sorted(RULES.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "0s"
        out[path.name] = yaml.safe_dump(data, sort_keys=False)
    return out


@pytest.fixture
def halls(tmp_path: Path) -> Iterator[dict[str, SimulatorProcess]]:
    sims: dict[str, SimulatorProcess] = {}
    try:
        for seed, name in ((1, "hall-a"), (2, "hall-b")):
            sims[name] = SimulatorProcess.start("tiny", tmp_path / f"{name}.yaml", seed=seed,
                                                extra=("--frozen",))
        yield sims
    finally:
        for sim in sims.values():
            sim.stop()


@pytest.fixture
def pollers(tmp_path: Path, halls: dict[str, SimulatorProcess]) -> Iterator[dict[str, DaemonProcess]]:
    """dcim for hall-a, and two shards of dcim for hall-b."""
    polling = {"interval": "1s", "timeout": "500ms", "retries": 0, "max_age": "5s"}
    plan = {"hall-a": ("hall-a", []), "hall-b/0": ("hall-b", ["--shard", "0/2"]),
            "hall-b/1": ("hall-b", ["--shard", "1/2"])}
    daemons: dict[str, DaemonProcess] = {}
    try:
        for key, (site, args) in plan.items():
            workdir = tmp_path / key.replace("/", "-")
            workdir.mkdir()
            daemons[key] = DaemonProcess(workdir, halls[site].config, site={"name": site},
                                         polling=polling, args=args)
        # Both shards must hold PUE inputs of hall-b, or the site PUE would not need both.
        hall_b = load_site(daemons["hall-b/0"].config)
        parts = [restrict_to_shard(hall_b, i, 2) for i in range(2)]
        assert all(p.pue and (p.pue.facility or p.pue.it) for p in parts), \
            "one shard of hall-b holds every PUE input"
        for daemon in daemons.values():
            daemon.start()
        yield daemons
    finally:
        for daemon in daemons.values():
            daemon.close()


@pytest.fixture
def store(victoria_metrics_factory: Callable[..., VictoriaMetricsServer]) -> VictoriaMetricsServer:
    return victoria_metrics_factory(extra_args=[f"-dedup.minScrapeInterval={SCRAPE_S}s"])


@pytest.fixture
def pair(pollers: dict[str, DaemonProcess], store: VictoriaMetricsServer,
         prometheus_factory: Callable[..., PrometheusServer]) -> list[PrometheusServer]:
    """The HA pair: same targets, same rules, distinct `replica` external labels."""
    rules = rules_without_waits()
    write = {"url": f"{store.url}/api/v1/write",
             "write_relabel_configs": [{"action": "labeldrop", "regex": "replica"}]}
    return [prometheus_factory(targets=[d.address for d in pollers.values()], job="dcim",
                               scrape_interval=f"{SCRAPE_S}s", evaluation_interval=f"{SCRAPE_S}s",
                               rules=rules, external_labels={"replica": replica},
                               remote_write=[write])
            for replica in ("a", "b")]


def store_query(store: VictoriaMetricsServer, promql: str) -> list[dict[str, Any]]:
    answer = http_json(f"{store.url}/api/v1/query?" + _params(query=promql))
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _params(**params: str) -> str:
    import urllib.parse

    return urllib.parse.urlencode(params)


def one_value(result: list[dict[str, Any]], what: str) -> float:
    assert len(result) == 1, f"{what}: {result}"
    return float(result[0]["value"][1])


def truth_pue(halls: dict[str, SimulatorProcess], *names: str) -> float:
    truths = [halls[n].get("/truth") for n in names]
    return sum(t["facility_w"] for t in truths) / sum(t["it_w"] for t in truths)


def wait_absent(prometheus: PrometheusServer, promql: str, timeout: float) -> None:
    wait_until(lambda: True if not prometheus.query(promql) else None, timeout,
               what=f"{promql} absent")


def firing(prometheus: PrometheusServer, alertname: str) -> list[dict[str, str]]:
    return [r["metric"] for r in prometheus.query(f'ALERTS{{alertname="{alertname}",'
                                                  'alertstate="firing"}')]


def test_campus_of_two_halls_one_sharded(halls: dict[str, SimulatorProcess],
                                         pollers: dict[str, DaemonProcess],
                                         pair: list[PrometheusServer],
                                         store: VictoriaMetricsServer) -> None:
    # 1. Every number from the rules equals dcim's own and the truth, on both replicas.
    for prometheus in pair:
        for site in ("hall-a", "hall-b"):
            prometheus.wait_for(f'site:dcim_pue:ratio{{site="{site}"}}', timeout=60)
        prometheus.wait_for("campus:dcim_pue:ratio", timeout=30)
        a = one_value(prometheus.query('site:dcim_pue:ratio{site="hall-a"}'), "hall-a")
        own_a = one_value(prometheus.query('dcim_pue_ratio{site="hall-a"}'), "dcim hall-a")
        assert a == pytest.approx(own_a, rel=1e-9)
        assert a == pytest.approx(truth_pue(halls, "hall-a"), rel=REL)
        # A shard publishes no PUE of its own (it holds part of the inputs), only its sums.
        assert prometheus.query('dcim_pue_ratio{site="hall-b"}') == []
        b = one_value(prometheus.query('site:dcim_pue:ratio{site="hall-b"}'), "hall-b")
        assert b == pytest.approx(truth_pue(halls, "hall-b"), rel=REL)
        campus = one_value(prometheus.query("campus:dcim_pue:ratio"), "campus")
        assert campus == pytest.approx(truth_pue(halls, "hall-a", "hall-b"), rel=REL)

    # 2. The store has the same numbers, once: the replica label is gone and the pair's two
    # copies of each series are one.
    wait_until(lambda: store_query(store, "campus:dcim_pue:ratio"), 60, what="campus PUE in VM")
    campus = one_value(store_query(store, "campus:dcim_pue:ratio"), "campus in VM")
    assert campus == pytest.approx(truth_pue(halls, "hall-a", "hall-b"), rel=REL)
    assert store_query(store, 'count({__name__=~"dcim_.+", replica!=""})') == []
    # One series per dcim instance (each shard exports its part), not one per replica. (The
    # store shows a new series once its index entry is flushed: wait for all three.)
    want = sorted((site, d.address) for site, d in (
        ("hall-a", pollers["hall-a"]), ("hall-b", pollers["hall-b/0"]),
        ("hall-b", pollers["hall-b/1"])))

    def instances() -> list[tuple[str, str]] | None:
        got = sorted((r["metric"]["site"], r["metric"]["instance"])
                     for r in store_query(store, "dcim_facility_power_watts"))
        return got if len(got) >= len(want) else None

    assert wait_until(instances, 30, what="every dcim's facility series in VM") == want
    # One sample per scrape interval per series, though two Prometheus servers wrote it.
    window = 20
    counts = [float(r["value"][1]) for r in store_query(
        store, f'count_over_time(dcim_facility_power_watts{{site="hall-a"}}[{window}s])')]
    assert len(counts) == 1 and counts[0] <= window / SCRAPE_S + 2, counts
    single = [float(r["value"][1]) for r in pair[0].query(
        f'count_over_time(dcim_facility_power_watts{{site="hall-a"}}[{window}s])')]
    assert counts[0] <= single[0] + 2, (counts, single)

    # 3. A shard dies: its site's PUE and the campus PUE vanish (no partial sum), and the
    # shard-missing alert fires; hall-a is untouched.
    pollers["hall-b/1"].close()
    for prometheus in pair:
        wait_absent(prometheus, 'site:dcim_pue:ratio{site="hall-b"}', timeout=60)
        wait_absent(prometheus, "campus:dcim_pue:ratio", timeout=30)
        assert prometheus.query('site:dcim_facility_power_watts:sum{site="hall-b"}') == []
        assert prometheus.query('site:dcim_it_power_watts:sum{site="hall-b"}') == []
        assert prometheus.query('site:dcim_pue:ratio{site="hall-a"}')
        wait_until(lambda p=prometheus: firing(p, "DcimShardMissing") or None,  # type: ignore[misc]
                   60, what="DcimShardMissing firing")
        (alert,) = firing(prometheus, "DcimShardMissing")
        assert (alert["site"], alert["shards"]) == ("hall-b", "2")

    # 4. It comes back: both numbers return and the alert resolves.
    pollers["hall-b/1"].start()
    for prometheus in pair:
        prometheus.wait_for('site:dcim_pue:ratio{site="hall-b"}', timeout=60)
        prometheus.wait_for("campus:dcim_pue:ratio", timeout=30)
        wait_until(lambda p=prometheus: True if not firing(p, "DcimShardMissing") else None,  # type: ignore[misc]
                   60, what="DcimShardMissing resolved")
    campus = one_value(pair[1].query("campus:dcim_pue:ratio"), "campus after the restart")
    assert campus == pytest.approx(truth_pue(halls, "hall-a", "hall-b"), rel=REL)

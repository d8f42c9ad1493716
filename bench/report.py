"""Print the results table from bench/out/*.json (what bench/run writes), as Markdown."""

from __future__ import annotations

import json
from typing import Any

import benchlib as bl


def _load(name: str) -> dict[str, Any] | None:
    path = bl.OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def _ok(good: bool) -> str:
    return "met" if good else "**missed**"


def rows() -> list[tuple[str, str, str, str]]:
    """(figure, target, measured, verdict) for every result present."""
    out: list[tuple[str, str, str, str]] = []
    cost = _load("snmp_cost.json")
    if cost:
        s = cost["summary"]
        exp = s.get("snmp_exporter")
        if exp:
            out.append(("poll cost, snmp_exporter 0.21 (Go)", "",
                        f"{exp['us_per_varbind']:.1f} µs/varbind", ""))
        for name, v in s.items():
            if name == "snmp_exporter":
                continue
            label = name.removeprefix("dcim-")
            if label in ("fast", "pysnmp"):
                tag = ""
            elif label.endswith("-control"):
                tag = " (noise control: a 2nd identical process)"
            elif label.startswith("floor"):
                tag = " (floor, bench/floor.py)"
            else:
                tag = " (modelled change, bench/patches.py)"
            if name.startswith("snmp_exporter@"):
                out.append((f"poll cost, snmp_exporter v3 {name.partition('@')[2]}", "",
                            f"{v['us_per_varbind']:.1f} µs/varbind; "
                            f"vs its v2c {v['paired_vs_snmp_exporter']:.2f}", ""))
                continue
            paired = v["paired_vs_snmp_exporter"]
            fast = v["paired_vs_dcim_fast"]
            same = v.get("paired_vs_exporter_same_auth")
            if "@" in label:
                measured = (f"{v['us_per_varbind']:.1f} µs/varbind; vs snmp_exporter v3 "
                            f"{same if same is not None else float('nan'):.2f}; vs dcim v2c "
                            f"{fast if fast is not None else float('nan'):.2f}")
                ok = same is not None and fast is not None and same <= 1.0 and fast <= 1.5
                out.append((f"poll cost, dcim {label.replace('@', ' v3 ')}",
                            "<= snmp_exporter v3, <= 1.5x dcim v2c", measured,
                            _ok(ok) if label.startswith("fast") else ""))
                continue
            measured = (f"{v['us_per_varbind']:.1f} µs/varbind; vs snmp_exporter "
                        f"{v['ratio_vs_snmp_exporter']:.2f} (paired {paired:.2f})")
            if label != "fast" and fast is not None:
                measured += f"; vs dcim fast {fast:.2f}"
            verdict = _ok(paired <= 1.0) if label == "fast" else ""
            out.append((f"poll cost, dcim {label}{tag}", "ratio <= 1.0" if label == "fast" else "",
                        measured, verdict))
        agents = max(v["agents_util"] for v in s.values())
        busiest = max(v["busiest_agent_util"] for v in s.values())
        out.append((f"agents ({cost['agents']} snmpd) CPU during a round", "not the bottleneck",
                    f"all together <= {agents:.0%} of one core, the busiest {busiest:.1%}",
                    _ok(agents < 0.9)))
    rates = _load("snmp_cost_rates.json")
    if rates:
        targets = {"50": 1.0, "200": 0.5}  # issue 18: what a site polling on a schedule needs
        for rate, res in sorted(rates["rates"].items(), key=lambda kv: float(kv[0])):
            fast = res["summary"].get("dcim-fast", {})
            paired = fast.get("paired_vs_snmp_exporter")
            if paired is None:
                continue
            limit = targets.get(rate)
            out.append((f"poll cost at {rate} polls/s offered, dcim fast vs snmp_exporter",
                        f"ratio <= {limit:g}" if limit else "",
                        f"paired {paired:.2f} ({fast['us_per_varbind']:.1f} µs/varbind against "
                        f"{res['summary']['snmp_exporter']['us_per_varbind']:.1f})",
                        _ok(paired <= limit) if limit else ""))
    scale = _load("scale.json")
    if scale:
        misses = scale["overruns"] + scale["errors"]
        out += [
            (f"scale {scale['devices']} devices / 10 s: dcim CPU", "< 50% of one core",
             f"{scale['dcim_cpu_pct']:.1f}% ({scale['dcim_cpu_pct_without_scrapes']:.1f}% "
             "without scrapes)", _ok(scale["dcim_cpu_pct"] < 50)),
            ("scale: dcim RSS", "< 200 MB", f"{scale['rss_max_mb']:.0f} MB max",
             _ok(scale["rss_max_mb"] < 200)),
            ("scale: missed deadlines (overruns + errors)", "0",
             f"{misses:.0f} ({scale['polls']:.0f} of {scale['polls_expected']:.0f} polls)",
             _ok(misses == 0)),
            ("scale: poll duration p50 / p99", "", f"{scale['poll_duration_p50_s'] * 1000:.0f} / "
             f"{scale['poll_duration_p99_s'] * 1000:.0f} ms", ""),
            ("scale: data age p50 / p99 / max", "<= interval + deadline",
             f"{scale['data_age_p50_s']:.1f} / {scale['data_age_p99_s']:.1f} / "
             f"{scale['data_age_max_s']:.1f} s", _ok(scale["data_age_max_s"] <= 12.5)),
        ]
        if scale.get("start_lateness_samples"):
            out.append((f"scale: poll start lateness p50 / p99 / max (scrapes every "
                        f"{scale['scrape_interval_s']:g} s)", "",
                        f"{scale['start_lateness_p50_s'] * 1000:.0f} / "
                        f"{scale['start_lateness_p99_s'] * 1000:.0f} / "
                        f"{scale['start_lateness_max_s'] * 1000:.0f} ms"
                        + (f"; due during a scrape p99 {in_p99 * 1000:.0f} ms"
                           if (in_p99 := scale.get("start_lateness_in_scrape_p99_s")) is not None
                           else ""), ""))
        if "scrape_us_per_series" in scale:
            per_series = scale["scrape_us_per_series"]
            out.append((f"scale: a /metrics scrape ({scale['scrape_series']} series, gzip)",
                        "<= 2 µs CPU per series",
                        f"{per_series:.2f} µs/series ({scale['scrape_cpu_p50_s']:.3f} s), render "
                        f"+ gzip alone {scale['render_us_per_series'] or float('nan'):.2f}",
                        _ok(per_series <= 2.0)))
        out += [
            ("scale: simulator CPU", "not the bottleneck", f"{scale['sim_cpu_pct']:.1f}% of one core",
             _ok(scale["sim_cpu_pct"] < 90)),
        ]
    spot = _load("spotcheck.json")
    if spot:
        t = spot["timing"]
        out += [
            (f"spot check `dcim pue` ({spot['devices']} devices), wall", "< 1.5 s",
             f"{t['mean_s']:.2f} s mean, {t['max_s']:.2f} s max", _ok(t["max_s"] < 1.5)),
            ("spot check: imports (`-X importtime`)", "",
             f"{spot['imports_pue']['total_ms']:.0f} ms (pue), "
             f"{spot['imports_help']['total_ms']:.0f} ms (--help)", ""),
        ]
    fresh = _load("freshness.json")
    if fresh and fresh["median_s"] is not None:
        limit = fresh["interval_s"] + 1
        out.append(("freshness: load change -> /metrics", f"<= {limit:g} s",
                    f"median {fresh['median_s']:.1f} s, max {fresh['max_s']:.1f} s "
                    f"({len(fresh['trials'])} trials)",
                    _ok(fresh["max_s"] <= limit and not fresh["missed"])))
    return out


def table() -> str:
    """The Markdown table, with the machine it ran on."""
    m = next((d["machine"] for n in ("snmp_cost.json", "scale.json", "spotcheck.json",
                                     "freshness.json") if (d := _load(n))), bl.machine())
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}; "
             f"{m['date']}", "", "| figure | target | measured | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows()]
    return "\n".join(lines)


def main() -> None:
    """Print the table and store it as bench/out/results.md."""
    text = table()
    print(text)
    (bl.OUT / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()


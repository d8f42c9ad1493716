"""Part 2, scale: `dcim run` polling the bench-2000 simulated site every 10 s for 5 minutes.

The simulator (with --workers) is pinned to CPU 0 and dcim to CPU 1, so dcim's CPU is its own
and the simulator cannot starve it. After a warm-up (first polls, then each device settles on
its random phase) the daemon is measured: CPU from /proc/PID/stat, RSS sampled every second,
and /metrics scraped every 15 s like Prometheus would. From the scrapes:

    poll duration   dcim_device_poll_duration_seconds of every device at every scrape (the
                    latest poll of each device: an unbiased sample of all polls)
    data age        scrape time - dcim_device_last_success_timestamp_seconds, every device:
                    above interval + poll deadline means a device missed its cycle
    missed          increase of dcim_device_poll_overruns_total and _poll_errors_total
    polls           increase of dcim_device_polls_total against 2000 x duration / interval
    start lateness  when a device's poll began (its last success timestamp - its poll duration)
                    minus dcim_device_next_poll_timestamp_seconds read at the scrape before, for
                    devices polled exactly once in between: how late the scheduler started the
                    poll it had planned (a scrape that holds the event loop shows here)
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

import benchlib as bl
import pyspy_top
import simproc

FAMILIES = {"dcim_device_polls_total", "dcim_device_poll_errors_total",
            "dcim_device_poll_overruns_total", "dcim_device_poll_duration_seconds",
            "dcim_device_last_success_timestamp_seconds", "dcim_device_up",
            "dcim_device_next_poll_timestamp_seconds"}


def start_lateness(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                   since: float) -> list[tuple[float, float]]:
    """Seconds each device's poll started after the time the scheduler had planned for it
    (`before`'s next-poll timestamp), for devices that succeeded exactly once after `since`
    (wall clock of `before`), so the duration and success time belong to that one poll.
    Returns (planned start, lateness) pairs."""
    planned = before["dcim_device_next_poll_timestamp_seconds"]
    polls0, polls1 = before["dcim_device_polls_total"], after["dcim_device_polls_total"]
    stamps = after["dcim_device_last_success_timestamp_seconds"]
    durations = after["dcim_device_poll_duration_seconds"]
    out = []
    for dev, due in planned.items():
        if (polls1.get(dev, 0) - polls0.get(dev, 0) == 1 and stamps.get(dev, 0) > since
                and dev in durations):
            out.append((due, stamps[dev] - durations[dev] - due))
    return out


def totals(m: dict[str, dict[str, float]], name: str) -> float:
    """Sum of one family over devices."""
    return sum(m[name].values())


def render_us_per_series(body: str, series: int) -> float | None:
    """dcim_metrics_render_cpu_seconds_total / dcim_metrics_renders_total per series."""
    values = {name: float(value) for name, _, value in
              (line.partition(" ") for line in body.splitlines()
               if line.startswith("dcim_metrics_"))}
    cpu = values.get("dcim_metrics_render_cpu_seconds_total")
    renders = values.get("dcim_metrics_renders_total")
    if cpu is None or not renders:
        return None
    return 1e6 * cpu / renders / series


def profile_daemon(pid: int, seconds: float, workdir: Path) -> None:
    """Sample the daemon with py-spy after the measured window (it would perturb it)."""
    pyspy = Path(bl.PYTHON).parent / "py-spy"
    if not pyspy.exists():
        print("  (py-spy is not installed in the venv: no profile)")
        return
    out = workdir / "profile-dcim-run.txt"
    out.unlink(missing_ok=True)
    subprocess.run([str(pyspy), "record", "--format", "raw", "--rate", "200", "--nonblocking",
                    "--pid", str(pid), "--duration", str(int(seconds)), "--output", str(out)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if out.exists():
        report = pyspy_top.report(out, 30)
        (workdir / "profile-dcim-run.summary.txt").write_text(report + "\n")
        print("\n".join("    " + line for line in report.splitlines()[:16]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run simulator and daemon, measure the window, return the figures."""
    workdir = bl.OUT / "scale"
    sim_cpu, dcim_cpu = (0, 1) if bl.NCPU >= 2 else (None, None)
    config = workdir / "site.yaml"
    with simproc.simulator(args.preset, config, args.workers, sim_cpu) as sim:
        devices = len(sim.get("/truth")["devices"])
        with simproc.daemon(config, workdir, dcim_cpu) as d:
            pid = d.proc.pid
            t_start = time.monotonic()
            # warm-up: every device answered once and settled on its phase
            while time.monotonic() - t_start < args.warmup:
                time.sleep(1)
            t_first = time.monotonic()
            first = simproc.per_device(d.metrics(), FAMILIES)
            up = totals(first, "dcim_device_up")
            print(f"  warm-up {args.warmup:g}s: {up:.0f}/{devices} devices up", flush=True)
            sim_pids = sim.pids()
            c0, s0, w0 = bl.cpu_seconds(pid), bl.total_cpu(sim_pids), time.monotonic()
            rss: list[int] = []
            durations: list[float] = []
            ages: list[float] = []
            lateness: list[tuple[float, float]] = []
            last, t_prev = first, time.time()
            last_body = ""
            next_scrape = w0 + args.scrape_interval
            t_last = t_first
            while (now := time.monotonic()) - w0 < args.duration + 0.5:
                rss.append(bl.rss_bytes(pid))
                if now >= next_scrape:
                    next_scrape += args.scrape_interval
                    t_wall, t_last = time.time(), time.monotonic()
                    last_body = d.metrics()
                    prev, last = last, simproc.per_device(last_body, FAMILIES)
                    lateness += start_lateness(prev, last, t_prev)
                    t_prev = t_wall
                    durations += last["dcim_device_poll_duration_seconds"].values()
                    stamps = last["dcim_device_last_success_timestamp_seconds"]
                    ages += [t_wall - ts for ts in stamps.values()]
                    # a device that never answered has no timestamp: infinitely old
                    ages += [float("inf")] * (devices - len(stamps))
                time.sleep(1)
            c1, s1, w1 = bl.cpu_seconds(pid), bl.total_cpu(sim_pids), time.monotonic()
            if args.profile:
                profile_daemon(pid, args.profile, workdir)
            scrapes = d.scrapes[1:]  # the warm-up scrape is outside the window
            rss_end = bl.rss_bytes(pid)
    window = w1 - w0
    interval = 10.0
    polls = totals(last, "dcim_device_polls_total") - totals(first, "dcim_device_polls_total")
    overruns = (totals(last, "dcim_device_poll_overruns_total")
                - totals(first, "dcim_device_poll_overruns_total"))
    errors = (totals(last, "dcim_device_poll_errors_total")
              - totals(first, "dcim_device_poll_errors_total"))
    scrape_cpu = sum(s["cpu_s"] for s in scrapes)
    # polls due while a scrape was being rendered and sent, against all the others: what a
    # scrape does to polling shows as the first group being later than the second
    windows = [(s["start"], s["start"] + s["wall_s"]) for s in d.scrapes]
    in_scrape: list[float] = []
    outside: list[float] = []
    for due, late in lateness:
        during = any(t0 <= due <= t1 for t0, t1 in windows)
        (in_scrape if during else outside).append(late)
    late_all = in_scrape + outside
    return {
        "machine": bl.machine(), "preset": args.preset, "devices": devices,
        "sim_workers": args.workers, "window_s": window, "interval_s": interval,
        "pinned": bl.NCPU >= 2,
        "dcim_cpu_pct": 100 * (c1 - c0) / window,
        "dcim_cpu_pct_without_scrapes": 100 * (c1 - c0 - scrape_cpu) / window,
        "sim_cpu_pct": 100 * (s1 - s0) / window,
        "rss_max_mb": max(rss) / 2**20, "rss_end_mb": rss_end / 2**20,
        # counters are read at the first and last scrape: expect polls over that span
        "polls": polls, "polls_expected": devices * (t_last - t_first) / interval,
        "overruns": overruns, "errors": errors,
        "up_at_end": totals(last, "dcim_device_up"),
        "poll_duration_p50_s": bl.percentile(durations, 50),
        "poll_duration_p99_s": bl.percentile(durations, 99),
        "poll_duration_max_s": max(durations),
        "data_age_p50_s": bl.percentile(ages, 50), "data_age_p99_s": bl.percentile(ages, 99),
        "data_age_max_s": max(ages),
        # None: this dcim does not export dcim_device_next_poll_timestamp_seconds
        "start_lateness_samples": len(late_all),
        "start_lateness_p50_s": bl.percentile(late_all, 50) if late_all else None,
        "start_lateness_p99_s": bl.percentile(late_all, 99) if late_all else None,
        "start_lateness_max_s": max(late_all) if late_all else None,
        "start_lateness_in_scrape_samples": len(in_scrape),
        "start_lateness_in_scrape_p99_s": bl.percentile(in_scrape, 99) if in_scrape else None,
        "start_lateness_in_scrape_max_s": max(in_scrape) if in_scrape else None,
        "start_lateness_outside_p99_s": bl.percentile(outside, 99) if outside else None,
        "start_lateness_outside_max_s": max(outside) if outside else None,
        "scrapes": len(scrapes), "scrape_interval_s": args.scrape_interval,
        "scrape_wall_p50_s": bl.median([s["wall_s"] for s in scrapes]),
        "scrape_cpu_p50_s": bl.median([s["cpu_s"] for s in scrapes]),
        "scrape_mb": scrapes[-1]["bytes"] / 2**20,
        "scrape_gzip_mb": scrapes[-1]["wire_bytes"] / 2**20,
        "scrape_series": scrapes[-1]["series"],
        # CPU of the whole daemon during a scrape, minus what it spends anyway in that time
        # (its rate without scrapes x the scrape's wall time), per series
        "scrape_us_per_series": 1e6 * bl.median(
            [s["cpu_s"] - s["wall_s"] * (c1 - c0 - scrape_cpu) / window for s in scrapes]
        ) / scrapes[-1]["series"],
        # the exporter's own account: thread CPU of rendering and gzipping, per render
        "render_us_per_series": render_us_per_series(last_body, scrapes[-1]["series"]),
    }


def _ms_pair(r: dict[str, Any], group: str) -> str:
    p99, top = r.get(f"start_lateness_{group}_p99_s"), r.get(f"start_lateness_{group}_max_s")
    if p99 is None or top is None:
        return "none"
    n = r.get(f"start_lateness_{group}_samples")
    return f"{p99 * 1000:.0f} / {top * 1000:.0f} ms" + (f" ({n} polls)" if n else "")


def print_table(r: dict[str, Any]) -> None:
    """The scale figures."""
    print(f"\nscale: {r['preset']} ({r['devices']} devices) every {r['interval_s']:g}s for "
          f"{r['window_s']:.0f}s, simulator --workers {r['sim_workers']}")
    rows = [
        ("dcim CPU (% of one core)", f"{r['dcim_cpu_pct']:.1f}%  "
         f"({r['dcim_cpu_pct_without_scrapes']:.1f}% without the /metrics scrapes)"),
        ("dcim RSS max / end", f"{r['rss_max_mb']:.0f} MB / {r['rss_end_mb']:.0f} MB"),
        ("polls done / expected", f"{r['polls']:.0f} / {r['polls_expected']:.0f}"),
        ("missed: overruns, errors", f"{r['overruns']:.0f}, {r['errors']:.0f}"),
        ("poll duration p50 / p99 / max", f"{r['poll_duration_p50_s'] * 1000:.0f} / "
         f"{r['poll_duration_p99_s'] * 1000:.0f} / {r['poll_duration_max_s'] * 1000:.0f} ms"),
        ("data age p50 / p99 / max", f"{r['data_age_p50_s']:.1f} / {r['data_age_p99_s']:.1f} / "
         f"{r['data_age_max_s']:.1f} s"),
        ("poll start lateness p50/p99/max",
         f"{r['start_lateness_p50_s'] * 1000:.0f} / {r['start_lateness_p99_s'] * 1000:.0f} / "
         f"{r['start_lateness_max_s'] * 1000:.0f} ms ({r['start_lateness_samples']} polls)"
         if r["start_lateness_samples"] else
         "not measured: this dcim does not export dcim_device_next_poll_timestamp_seconds"),
        ("  due during a scrape p99/max", _ms_pair(r, "in_scrape")),
        ("  due at other times p99/max", _ms_pair(r, "outside")),
        (f"/metrics scrape (every {r['scrape_interval_s']:g} s, gzip)",
         f"{r['scrape_series']} series, {r['scrape_mb']:.1f} MB ({r['scrape_gzip_mb']:.1f} MB "
         f"gzipped), {r['scrape_wall_p50_s']:.2f}s wall, {r['scrape_cpu_p50_s']:.3f}s CPU "
         f"(p50 of {r['scrapes']}): {r['scrape_us_per_series']:.2f} µs/series beyond the "
         f"daemon's own rate; render+gzip {r['render_us_per_series'] or float('nan'):.2f} µs/series"),
        ("simulator CPU (% of one core)", f"{r['sim_cpu_pct']:.1f}%"),
    ]
    for k, v in rows:
        print(f"  {k:32} {v}")


def main() -> None:
    """Parse options, measure, print and store."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="bench-2000")
    parser.add_argument("--workers", type=int, default=2, help="simulator worker processes")
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--scrape-interval", type=float, default=15)
    parser.add_argument("--profile", type=float, default=0,
                        help="seconds of py-spy sampling of the daemon after the window")
    args = parser.parse_args()
    res = measure(args)
    print_table(res)
    print(f"stored: {bl.write_json('scale.json', res)}")


if __name__ == "__main__":
    main()


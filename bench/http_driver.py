"""snmp_exporter's side of the poll-cost benchmark: concurrent /snmp scrapes on command.

Plays Prometheus: keep-alive HTTP connections, `concurrency` scrapes in flight, targets
round-robin. Its own CPU is not snmp_exporter's; the orchestrator reads only the exporter's.
Same stdin/stdout protocol as dcim_worker.py; each reply is checked to carry every sample.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time


def scrape_samples(body: str, prefix: str = "bench") -> int:
    """Samples of the bench module in an exposition body (comments and snmp_* excluded)."""
    return sum(1 for line in body.splitlines() if line.startswith(prefix))


def run_round(exporter_port: int, module: str, ports: list[int], polls: int,
              concurrency: int, expect: int, rate: float) -> dict[str, object]:
    """Scrape targets round-robin `polls` times over `concurrency` connections, at most `rate`/s."""
    lock = threading.Lock()
    started = time.monotonic()
    batch = max(1, round(rate / 20))  # released in 50 ms ticks, as dcim_worker.pacer does
    state = {"next": 0, "ok": 0, "failed": 0, "values": 0}
    errors: dict[str, int] = {}

    def lane() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", exporter_port, timeout=30)
        while True:
            with lock:
                i = state["next"]
                if i >= polls:
                    break
                state["next"] = i + 1
            if rate > 0:
                delay = started + (i // batch) * batch / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            path = f"/snmp?target=127.0.0.1:{ports[i % len(ports)]}&module={module}"
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read().decode()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", exporter_port, timeout=30)
                body, status = str(exc), 0
            n = scrape_samples(body) if status == 200 else 0
            with lock:
                state["values"] += n
                if status == 200 and n == expect:
                    state["ok"] += 1
                else:
                    state["failed"] += 1
                    key = f"HTTP {status}: {body[:200]}"
                    errors[key] = errors.get(key, 0) + 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=lane) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"wall": time.perf_counter() - started, "ok": state["ok"], "failed": state["failed"],
            "values": state["values"], "errors": errors}


def main() -> None:
    """Say ready, then answer round commands until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exporter-port", type=int, required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--expect", type=int, required=True, help="samples in a complete scrape")
    parser.add_argument("ports", type=int, nargs="+")
    args = parser.parse_args()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        result = run_round(args.exporter_port, args.module, args.ports, int(cmd["polls"]),
                           int(cmd["concurrency"]), args.expect, float(cmd.get("rate", 0)))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""`dcim run` as a child process for end-to-end tests, on a config derived from a simulator's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from support.servers import free_port, http_request, wait_until


class Metrics(dict[str, float]):
    """Samples by series name; a lookup may give the labels in any order.

    The exposition does not promise an order of labels, so `m['x{b="2",a="1"}']` finds the
    series exposed as `x{a="1",b="2"}`; iteration yields each series once, as exposed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sorted: dict[str, str] = {}

    def add(self, name: str, value: float) -> None:
        self[name] = value
        self._sorted.setdefault(_normal(name), name)

    def _key(self, name: object) -> object:
        if isinstance(name, str) and not dict.__contains__(self, name):
            return self._sorted.get(_normal(name), name)
        return name

    def __getitem__(self, name: str) -> float:
        return super().__getitem__(self._key(name))  # type: ignore[arg-type]

    def __contains__(self, name: object) -> bool:
        return super().__contains__(self._key(name))

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(self._key(name), default)  # type: ignore[call-overload]


def sample(metrics: Metrics, name: str, *labels: str) -> float | None:
    """The value of the first series of `name` whose labels include all of `labels`
    (each written `key="value"`), None if there is none."""
    for series, value in metrics.items():
        if series.startswith(name + "{") and all(label in series for label in labels):
            return value
    return None


def total(metrics: Metrics, name: str, *labels: str) -> float:
    """The sum over the series of `name` whose labels include all of `labels`."""
    return sum(v for series, v in metrics.items()
               if series.startswith(name + "{") and all(label in series for label in labels))


def _normal(name: str) -> str:
    bare, brace, labels = name.partition("{")
    if not brace:
        return name
    return f"{bare}{{{','.join(sorted(_split_labels(labels.removesuffix('}'))))}}}"


def parse_metrics(text: str) -> Metrics:
    """Samples by full series name (`name{labels}`), plus the first sample under the bare name."""
    out = Metrics()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        bare = name.split("{")[0]
        if bare not in out:
            out.add(bare, float(value))
        out.add(name, float(value))
    return out


def _split_labels(text: str) -> list[str]:
    """`a="x",b="y,z"` -> ['a="x"', 'b="y,z"'] (commas inside quoted values kept)."""
    parts, current, quoted, escaped = [], "", False, False
    for ch in text:
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += ch
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
    if current:
        parts.append(current)
    return parts


class DaemonProcess:
    """A `dcim run` child polling a site config; /metrics on a free loopback port."""

    def __init__(self, workdir: Path, site_config: Path, *,
                 polling: Mapping[str, Any] | None = None,
                 sinks: Mapping[str, Any] | None = None,
                 sources: Mapping[str, Any] | None = None,
                 state_dir: Path | None = None, env: Mapping[str, str] | None = None,
                 site: Mapping[str, Any] | None = None, args: Sequence[str] = (),
                 devices: Sequence[Mapping[str, Any]] = ()):
        data: dict[str, Any] = yaml.safe_load(site_config.read_text())
        data["site"] = {**data["site"], **(site or {})}
        # Extra devices (e.g. hostile peers from support/hostile_peers.py) next to the site's.
        data["devices"] = [*data.get("devices", []), *(dict(d) for d in devices)]
        self.port = free_port()
        if polling is not None:
            data["polling"] = dict(polling)
        data["state_dir"] = str(state_dir or workdir / "state")
        data["sinks"] = {"prometheus": {"listen": f"127.0.0.1:{self.port}"}, **(sinks or {})}
        if sources is not None:
            data["sources"] = dict(sources)
        self.workdir = workdir
        self.config = workdir / "site.yaml"
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        self.env = dict(env or {})
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        """host:port of /metrics."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.workdir / f"dcim-{self.starts}.log"

    def log(self) -> str:
        """What the latest start printed so far."""
        return self.log_path.read_text(errors="replace")

    def start(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Start `dcim run`; with wait, until /metrics answers."""
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dcim", "run", "--config", str(self.config), *self.args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **self.env})
        if wait:
            wait_until(self._serving, timeout, what=f"dcim /metrics on {self.address}")

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"dcim exited {self.proc.returncode}:\n{self.log()}")
        try:
            status, _ = http_request(f"http://{self.address}/metrics", timeout=2)
        except OSError:
            return False
        return status == 200

    def metrics(self) -> dict[str, float]:
        """One scrape, parsed."""
        status, body = http_request(f"http://{self.address}/metrics", timeout=5)
        assert status == 200
        return parse_metrics(body.decode())

    def rss_bytes(self) -> int:
        """The child's resident memory now (VmRSS)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def signal(self, sig: int) -> None:
        """Send a signal (SIGHUP reloads, SIGTERM stops)."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def kill9(self) -> None:
        """Crash it: no chance to flush or save."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        """Make sure nothing is left running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

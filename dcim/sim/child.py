"""Running `dcim simulate` as a child process and talking to its control API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SimulatorFailed(RuntimeError):
    """The child simulator exited or never became ready."""


@dataclass
class SimulatorProcess:
    """A running simulator child: its process, control API URL and written config."""

    process: subprocess.Popen[str]
    control_url: str
    config: Path

    @classmethod
    def start(cls, preset: str, config: Path, seed: int = 1, extra: tuple[str, ...] = (),
              ready_timeout: float = 60.0) -> SimulatorProcess:
        """Start `python -m dcim simulate` and wait until it serves and wrote its config."""
        cmd = [sys.executable, "-m", "dcim", "simulate", "--preset", preset, "--seed", str(seed),
               "--write-config", str(config), "--control", "127.0.0.1:0", *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # our Ctrl-C is ours to relay
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + ready_timeout
        for line in proc.stdout:
            if line.startswith("control: "):
                url = line.split(" ", 1)[1].strip()
            if line.startswith("ready"):
                break
            if time.monotonic() > deadline:
                break
        if url is None or proc.poll() is not None:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise SimulatorFailed(f"simulator did not start: {err.strip() or 'no output'}")
        return cls(proc, url, config)

    def get(self, path: str, timeout: float = 5.0) -> Any:
        """GET a control API path and return its JSON."""
        with urllib.request.urlopen(self.control_url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        """POST JSON to a control API path and return its JSON (HTTPError on 4xx)."""
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(self.control_url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the simulator and wait for it; its exit code."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode

"""Deterministic signals: hashed noise, smooth noise, training-job bursts, outdoor temperature.

Every function is a pure function of (seed, key, t), so a test can recompute any value the
simulator served from the seed and the time alone.
"""

from __future__ import annotations

import math
import zlib

_MASK = (1 << 64) - 1


def key_of(text: str) -> int:
    """A stable integer for a name (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode())


def _mix(x: int) -> int:
    # splitmix64 finalizer: cheap, well spread, identical on every platform
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uniform(seed: int, key: int, n: int, salt: int = 0) -> float:
    """A uniform number in [0, 1) determined by its arguments."""
    h = _mix((seed * 0x100000001B3) ^ _mix(key * 31 + salt) ^ _mix(n + 0x5BD1E995))
    return (h >> 11) / float(1 << 53)


def signed(seed: int, key: int, n: int, salt: int = 0) -> float:
    """A uniform number in [-1, 1) determined by its arguments."""
    return 2.0 * uniform(seed, key, n, salt) - 1.0


def smooth(seed: int, key: int, t: float, period: float, salt: int = 0) -> float:
    """Value noise in [-1, 1]: random knots every `period` seconds, cosine-interpolated."""
    x = t / period
    n = math.floor(x)
    frac = x - n
    a = signed(seed, key, n, salt)
    b = signed(seed, key, n + 1, salt)
    w = (1.0 - math.cos(math.pi * frac)) * 0.5
    return a + (b - a) * w


# Training jobs: in each window a job may run a burst (all-reduce heavy phase, checkpoint
# restore ...) that lifts its racks toward the cap, ramping in and out smoothly.
BURST_WINDOW_S = 900
BURST_PROBABILITY = 0.4
BURST_RAMP_S = 30.0


def burst(seed: int, job: int, t: float) -> tuple[float, float]:
    """(envelope 0..1, peak kW) of job `job` at time t."""
    window = math.floor(t / BURST_WINDOW_S)
    for w in (window, window - 1):  # a burst may run over into the next window
        if uniform(seed, job, w, 1) >= BURST_PROBABILITY:
            continue
        start = w * BURST_WINDOW_S + 400.0 * uniform(seed, job, w, 2)
        length = 120.0 + 420.0 * uniform(seed, job, w, 3)
        peak = 172.0 + 16.0 * uniform(seed, job, w, 4)
        env = _envelope(t - start, length)
        if env > 0.0:
            return env, peak
    return 0.0, 0.0


def _envelope(dt: float, length: float) -> float:
    if dt <= 0.0 or dt >= length + BURST_RAMP_S:
        return 0.0
    if dt < BURST_RAMP_S:
        return (1.0 - math.cos(math.pi * dt / BURST_RAMP_S)) * 0.5
    if dt > length:
        return (1.0 + math.cos(math.pi * (dt - length) / BURST_RAMP_S)) * 0.5
    return 1.0


def outdoor_temp_c(seed: int, t: float, mean_c: float, swing_c: float) -> float:
    """Outdoor dry-bulb temperature: a daily cycle (warmest at 15:00 UTC) plus weather drift."""
    day = 2.0 * math.pi * ((t % 86400.0) / 86400.0 - 15.0 / 24.0)
    weather = 2.5 * smooth(seed, 7, t, 5400.0) + 0.3 * smooth(seed, 8, t, 300.0)
    return mean_c + swing_c * math.cos(day) + weather

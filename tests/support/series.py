"""The series names dcim exports and the names a PromQL expression reads (for rule/dashboard checks)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def exported_names() -> set[str]:
    """Every series name dcim can export (counters with their _total), from the exporter code."""
    from dcim.points import Kind
    from dcim.sinks import prometheus_metrics

    names: set[str] = {"dcim_build_info"}
    sources = [Path(prometheus_metrics.__file__), ROOT / "dcim" / "sinks" / "influx.py"]
    for source in sources:
        text = source.read_text()
        names |= set(re.findall(r'_g\(\s*"(dcim_[a-z0-9_]+)"', text))
        names |= set(re.findall(r'\(\s*"(dcim_[a-z0-9_]+)",\s*[a-z_.]+,\s*"', text))
        names |= set(re.findall(r'gauge\(\s*"(dcim_[a-z0-9_]+)"', text))
        names |= {f"{n}_total" for n in re.findall(r'(?:_c|counter)\(\s*"(dcim_[a-z0-9_]+)"', text)}
    for kind in Kind:
        for spec in prometheus_metrics.POINT_METRICS.values():  # (suffix, factor, ...)
            names.add(f"dcim_{kind}_{spec[0]}")
    return names


def series_names(expr: str) -> set[str]:
    """dcim_* and recorded (a:b:c) series names an expression reads."""
    return set(re.findall(r"\b(dcim_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b", expr))

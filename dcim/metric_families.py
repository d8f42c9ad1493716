"""Building the self-health series that sinks and sources export beside the site's own."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


def gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    """A single-sample gauge."""
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def counter(name: str, doc: str, samples: Mapping[tuple[str, ...], float],
            labels: list[str]) -> CounterMetricFamily:
    """A counter with one sample per label tuple."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in samples.items():
        family.add_metric(list(label_values), value)
    return family

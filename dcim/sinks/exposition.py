"""Prometheus text exposition (format 0.0.4) written straight from rows, for cheap scrapes.

prometheus_client builds a Sample namedtuple and a label dict per series and then formats each
one (about 13 µs a series); a bench-2000 scrape has 62k series. A `Family` keeps its rows flat
and `write` formats each family with one %-format of a repeated line template, so a series
costs well under a microsecond. A Family is still a prometheus_client Metric (its `samples` are
made on demand), so tests and anything else that reads metric objects keep working, and
`write` also accepts plain prometheus_client Metrics (the sinks' own few counters).

tests/unit/test_exposition.py parses this output and prometheus_client's with
prometheus_client.parser and checks that they are the same families and samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.samples import Sample

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_TYPES: Final = {"gauge": "gauge", "counter": "counter", "info": "gauge"}
_SUFFIX: Final = {"gauge": "", "counter": "_total", "info": "_info"}
_SPECIAL: Final = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Family(Metric):
    """A gauge, counter or info family: label names fixed, rows added with add_metric.

    Rows are kept flat (label values then value, row after row) so that `lines` formats the
    whole family with one %-format of a repeated line template, in C, not row by row.
    """

    def __init__(self, name: str, documentation: str, typ: str, labels: Sequence[str] = ()):
        if typ not in _TYPES:
            raise ValueError(f"unsupported metric type {typ!r}")
        # Metric.__init__ would validate the name again and make `samples` a plain list
        self.name = name.removesuffix("_total") if typ == "counter" else name
        self.documentation = documentation
        self.type = typ
        self.unit = ""
        self.labels = tuple(labels)
        self.flat: list[Any] = []
        self.sample_name = sample = self.name + _SUFFIX[typ]
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.header = f"# HELP {sample} {doc}\n# TYPE {sample} {_TYPES[typ]}\n"
        if self.labels:
            pairs = ",".join(f'{label}="%s"' for label in self.labels)
            self.template = f"{sample}{{{pairs}}} %s\n"
        else:
            self.template = f"{sample} %s\n"

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """One series: its label values in the family's label order, and its value."""
        if len(labels) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values expected")
        self.flat += labels
        self.flat.append(value)

    @property
    def rows(self) -> list[tuple[tuple[str, ...], float]]:
        """(label values, value) of every series."""
        width = len(self.labels) + 1
        flat = self.flat
        return [(tuple(flat[i:i + width - 1]), float(flat[i + width - 1]))
                for i in range(0, len(flat), width)]

    @property
    def samples(self) -> list[Sample]:
        """prometheus_client samples, made on demand (for readers of Metric objects)."""
        return [Sample(self.sample_name, dict(zip(self.labels, values, strict=True)), value)
                for values, value in self.rows]

    @samples.setter
    def samples(self, _: list[Sample]) -> None:
        raise AttributeError("add rows with add_metric")

    def text(self) -> str:
        """The family's exposition text, header first."""
        flat = self.flat
        if not flat:
            return self.header
        width = len(self.labels) + 1
        args = flat.copy()
        # the shortest text that reads back as the same float; only inf and nan have an "n"
        numbers = list(map(repr, map(float, flat[width - 1::width])))
        if "n" in "".join(numbers):
            numbers = [_SPECIAL.get(n, n) for n in numbers]
        args[width - 1::width] = numbers
        if width > 1:
            labels = "".join(args)  # numbers never hold a quote, backslash or newline
            if "\\" in labels or '"' in labels or "\n" in labels:
                for i in range(len(args)):
                    if i % width != width - 1:
                        args[i] = _escape(args[i])
        return self.header + (self.template * (len(flat) // width)) % tuple(args)


class _One:
    def __init__(self, metric: Metric):
        self._metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self._metric


def text(family: Metric) -> str:
    """One family's exposition text (Family fast, any other Metric as prometheus_client
    writes it)."""
    if isinstance(family, Family):
        return family.text()
    return generate_latest(_One(family)).decode()


def write(families: Iterable[Metric]) -> bytes:
    """The text exposition of these families."""
    return "".join(map(text, families)).encode()

"""Metric families built at scrape time, and a histogram cheap enough to
fill on the session thread.

Nothing here keeps prometheus_client's own metric objects: the collector
builds fresh families from plain counters on every scrape, so the hot path
never takes a prometheus_client lock.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable, Iterable, Sequence, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

F = TypeVar("F", GaugeMetricFamily, CounterMetricFamily)


class Histogram:
    """Bucket counts without a lock: one writer (the session thread), and
    ``observe`` is a bisect and two additions."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds + (math.inf,), list(self.counts)):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


def gauge(name: str, documentation: str, value: float | None = None, labels: Sequence[str] = (),
          samples: Iterable[tuple[Sequence[str], float]] = ()) -> GaugeMetricFamily:
    return _filled(GaugeMetricFamily, name, documentation, value, labels, samples)


def counter(name: str, documentation: str, value: float | None = None, labels: Sequence[str] = (),
            samples: Iterable[tuple[Sequence[str], float]] = ()) -> CounterMetricFamily:
    return _filled(CounterMetricFamily, name, documentation, value, labels, samples)


def _filled(kind: Callable[..., F], name: str, documentation: str, value: float | None, labels: Sequence[str],
            samples: Iterable[tuple[Sequence[str], float]]) -> F:
    # A single unlabelled value, or labelled samples: prometheus_client refuses both at once.
    family = kind(name, documentation, value=value, labels=None if value is not None else labels)
    for label_values, sample in samples:
        family.add_metric(list(label_values), sample)
    return family

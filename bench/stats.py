"""Latencies: recorded cheaply in the generators, merged and summarised by the runner.

A generator appends raw seconds to a list (the cheapest thing in the hot path) and
sends a log-scale histogram (2 % wide buckets) at the end; histograms from several
processes add up, and percentiles are read from the sum.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

_BUCKETS_PER_E = 50  # bucket width: a factor of e**(1/50), about 2 %


def histogram(latencies_s: Iterable[float]) -> dict[str, int]:
    """Counts per log bucket of microseconds; JSON-friendly (string keys)."""
    counts: Counter[int] = Counter()
    log = math.log
    for latency in latencies_s:
        microseconds = latency * 1e6
        counts[int(log(microseconds) * _BUCKETS_PER_E) if microseconds > 1.0 else 0] += 1
    return {str(bucket): count for bucket, count in counts.items()}


def merge(histograms: Iterable[Mapping[str, int]]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for part in histograms:
        for bucket, count in part.items():
            total[int(bucket)] += count
    return dict(total)


def percentile_ms(merged: Mapping[int, int], fraction: float) -> float | None:
    """The latency below which ``fraction`` of the samples fall, in milliseconds."""
    count = sum(merged.values())
    if not count:
        return None
    rank = fraction * count
    seen = 0
    for bucket in sorted(merged):
        seen += merged[bucket]
        if seen >= rank:
            return math.exp((bucket + 0.5) / _BUCKETS_PER_E) / 1000.0
    return None  # pragma: no cover


def summary(histograms: Iterable[Mapping[str, int]], *fractions: float) -> dict[str, float | None]:
    """``{"p50_ms": ..., "p99_ms": ...}`` for the given fractions (0.5, 0.99)."""
    merged = merge(histograms)
    return {f"p{round(f * 100):d}_ms": percentile_ms(merged, f) for f in fractions} | {
        "samples": float(sum(merged.values()))
    }

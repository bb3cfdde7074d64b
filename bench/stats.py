"""Small statistics helpers: percentiles of latencies and medians of runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Returns the `q`-th percentile (0-100) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: Sequence[float], prefix: str = "") -> dict[str, float]:
    """Returns p50/p90/p99/max of `seconds` in milliseconds, keys prefixed by `prefix`."""
    millis = [s * 1000 for s in seconds]
    summary = {f"p{q}_ms": percentile(millis, q) for q in (50, 90, 99)}
    summary["max_ms"] = max(millis) if millis else math.nan
    return {prefix + key: value for key, value in summary.items()}


def median(values: Sequence[float]) -> float:
    """Returns the median of the finite values; NaN when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan

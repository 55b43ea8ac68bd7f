"""The exchange's metrics: call latency by outcome, and the balance cache's hits and misses."""

from __future__ import annotations

from prometheus_client import Histogram

from tapedeck_common.metrics import hits_and_misses

EXCHANGE_CALLS = Histogram(
    "tapedeck_exchange_call_duration_seconds",
    "Time of one balance fetch from the exchange, by outcome (ok or the failure's kind).",
    ("outcome",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CACHE_HIT, CACHE_MISS = hits_and_misses(
    "tapedeck_balance_cache_lookups",
    "Balance cache lookups by result: hit (fresh enough) or miss (fetched or joined a fetch).",
)

"""The exchange's metrics: call latency by outcome, and the balance cache's hits and misses."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EXCHANGE_CALLS = Histogram(
    "tapedeck_exchange_call_duration_seconds",
    "Time of one balance fetch from the exchange, by outcome (ok or the failure's kind).",
    ("outcome",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BALANCE_CACHE_LOOKUPS = Counter(
    "tapedeck_balance_cache_lookups",
    "Balance cache lookups by result: hit (fresh enough) or miss (fetched or joined a fetch).",
    ("result",),
)
CACHE_HIT = BALANCE_CACHE_LOOKUPS.labels("hit")
CACHE_MISS = BALANCE_CACHE_LOOKUPS.labels("miss")

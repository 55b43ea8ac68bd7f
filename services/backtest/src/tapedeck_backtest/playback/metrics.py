"""The playback cache's metrics: bytes of result files kept mapped, lookups by hit or miss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tapedeck_common.metrics import Probe, Sample, hits_and_misses

if TYPE_CHECKING:
    from tapedeck_backtest.playback.store import ResultStore

CACHE_HIT, CACHE_MISS = hits_and_misses(
    "tapedeck_playback_cache_lookups",
    "Opens of a run's result files by result: hit (already mapped) or miss (mapped now).",
)


def playback_probes(store: ResultStore) -> list[Probe]:
    """Return the probe of the bytes the playback cache keeps mapped."""

    async def mapped() -> list[Sample]:
        return [((), float(store.open_bytes))]

    return [
        Probe(
            "tapedeck_playback_cache_bytes",
            "Bytes of result files the playback cache keeps mapped.",
            (),
            mapped,
        )
    ]

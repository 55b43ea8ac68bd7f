"""The bridge's cost to the trading loop: time in its handlers per event, in a real engine.

`.venv/bin/python -m bench.bridge` runs the engine test's strategy (the real BTCUSDT trades,
tests/bridge/engine_child.py) against the live service in its own process (SQLite), twice:
- queue: the bridge as shipped (each handler appends to the local SQLite queue; a thread sends);
- naive: the same handlers sending each event with a synchronous AppendEvents (the baseline);
- unsent: the bridge as shipped with Tapedeck unreachable (the drainer thread idles in backoff):
  what the handlers cost without a busy thread beside the trading loop.
It prints p50 / p99 / max of the handler time per event and how many events took over 1 ms.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bench.services import service_process
from tests.bridge.support import EngineChild, spec


def _summary(name: str, timings: list[int]) -> dict[str, float]:
    ordered = sorted(timings)
    row = {
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "max_us": ordered[-1] / 1000,
        "over_1ms": sum(1 for t in ordered if t > 1_000_000),
    }
    print(
        f"{name:6} events {len(ordered):5}  p50 {row['p50_us']:8.1f} us  p99 {row['p99_us']:8.1f} us"
        f"  max {row['max_us']:8.1f} us  over 1 ms {row['over_1ms']:3.0f}"
    )
    return row


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        database = f"sqlite+aiosqlite:///{directory / 'live.db'}"
        env = {"LIVE_DATABASE_URL": database, "TAPEDECK_ENV": "development"}
        async with service_process(
            "tapedeck_live", prefix="LIVE_", directory=directory / "live", env=env
        ) as (port, _pid):
            rows = {}
            for variant in ("queue", "naive", "unsent", "queue"):
                run_dir = directory / f"{variant}-{len(rows)}"
                run_dir.mkdir()
                child_spec = spec(run_dir, port=port, naive=variant == "naive")
                if variant == "unsent":
                    child_spec |= {"address": "127.0.0.1:1", "flush_timeout": 0}
                child = await EngineChild.start(child_spec, run_dir)
                seen = await child.result(timeout=600)
                rows[f"{variant}-{len(rows)}"] = _summary(variant, seen["handler_ns"])
    queue, naive = rows["queue-0"], rows["naive-1"]
    print(
        f"naive / queue: p50 x{naive['p50_us'] / queue['p50_us']:.1f}, "
        f"p99 x{naive['p99_us'] / queue['p99_us']:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())

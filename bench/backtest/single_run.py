"""One backtest at scale: ticks/s and the worker's peak RSS at 1M and 5M generated trade ticks.

Run: `.venv/bin/python -m bench.backtest.single_run [--ticks 1000000 5000000]`

For each size: generate trade ticks (see `bench.backtest.runs`), import them through the
service, run one EMA-cross backtest on 1-minute bars with one worker, and print the engine's
seconds (strategy, matching, bar aggregation), the whole run's seconds (worker start, data load,
results and stats written), ticks/s and the worker process's peak RSS. Windows above
BACKTEST_RUN_IN_MEMORY_ROWS (1M) stream from the catalog; the baseline is the in-memory path
forced on the same data (`--in-memory`), as a plain NautilusTrader engine holds all data.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.backtest.runs import import_ticks, write_ticks
from tests.backtest.runs_support import worker_pool


async def _one(ticks: int, in_memory_rows: int) -> tuple[float, float, float]:
    import grpc
    from google.protobuf.duration_pb2 import Duration

    from tapedeck.backtest.v1 import backtest_pb2 as pb
    from tapedeck.backtest.v1 import backtest_pb2_grpc
    from tapedeck.common.v1 import common_pb2
    from tapedeck_backtest import server
    from tapedeck_backtest.settings import BacktestSettings

    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-run-") as tmp:
        root = Path(tmp)
        write_ticks(root / "raw" / "ticks.parquet", ticks)
        settings = BacktestSettings(
            port=0,
            data_dir=root / "data",
            data_root=root / "raw",
            workers=1,
            run_in_memory_rows=in_memory_rows,
            live_address="",  # no live service: run events stay in the outbox
        )
        app = await server.start(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = backtest_pb2_grpc.BacktestServiceStub(channel)
                dataset = await import_ticks(stub)
                started = time.perf_counter()
                created = await stub.CreateBacktest(
                    pb.CreateBacktestRequest(
                        spec=pb.BacktestSpec(
                            dataset=dataset,
                            strategy="strategies/ema_cross",
                            parameters={"trade_size": pb.ParameterValue(double_value=0.1)},
                            starting_balances=[common_pb2.Money(currency="USDT", amount="1000000")],
                            account_type=pb.ACCOUNT_TYPE_CASH,
                            bar_interval=Duration(seconds=60),
                        )
                    )
                )
                final = None
                async for message in stub.WatchBacktest(
                    pb.WatchBacktestRequest(name=created.backtest.name)
                ):
                    final = message.backtest
                wall = time.perf_counter() - started
                assert final is not None
                assert final.state == pb.BACKTEST_STATE_SUCCEEDED, final.error_message
                rss = max(worker_pool(app).peak_rss_mb().values(), default=0.0)
                return final.stats.run_seconds, wall, rss
        finally:
            await app.stop()


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--in-memory", action="store_true", help="keep all data loaded")
    args = parser.parse_args()
    for ticks in args.ticks:
        limit = ticks + 1 if args.in_memory else 1_000_000
        engine, wall, rss = asyncio.run(_one(ticks, limit))
        mode = "in memory" if ticks <= limit else "streamed"
        print(
            f"{ticks:>10,} ticks ({mode}): engine {engine:6.2f} s ({ticks / engine:,.0f} ticks/s),"
            f" whole run {wall:6.2f} s, worker peak RSS {rss:.0f} MB"
        )


if __name__ == "__main__":
    main()

"""`make run`'s demo: the launcher seeds every service through the gateway."""

from __future__ import annotations

from pathlib import Path

import grpc

from tapedeck.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tests.gateway.stack import start_stack
from tests.support import eventually


async def test_demo_seeds_events_wallets_a_dataset_and_runs(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, extra_args=("--demo",))
    try:

        async def seeded() -> bool:
            return "press Ctrl-C" in stack.log()

        await eventually(seeded, timeout=240, interval=0.5, message="demo seeded")
        log = stack.log()
        assert "failed" not in log, log
        assert "skipped" not in log, log
        metadata = (("authorization", f"Bearer {stack.admin_token()}"),)
        async with grpc.aio.insecure_channel(stack.address) as channel:
            live = live_pb2_grpc.LiveServiceStub(channel)
            blocks = await live.ListBlocks(live_pb2.ListBlocksRequest(), metadata=metadata)
            assert sum(count.count for count in blocks.reason_counts) >= 4

            wallets = wallets_pb2_grpc.WalletServiceStub(channel)

            async def reconciled() -> wallets_pb2.Reconciliation | None:
                reply = await wallets.ListReconciliations(
                    wallets_pb2.ListReconciliationsRequest(), metadata=metadata
                )
                done = [
                    r
                    for r in reply.reconciliations
                    if r.state == wallets_pb2.RECONCILIATION_STATE_SUCCEEDED
                ]
                return done[0] if done else None

            report = await eventually(reconciled, timeout=60, message="demo reconciliation")
            assert report.mismatched_count == 2

            backtest = backtest_pb2_grpc.BacktestServiceStub(channel)
            datasets = await backtest.ListDatasets(
                backtest_pb2.ListDatasetsRequest(), metadata=metadata
            )
            assert datasets.datasets[0].row_count > 100_000

            async def finished() -> bool:
                runs = await backtest.ListBacktests(
                    backtest_pb2.ListBacktestsRequest(), metadata=metadata
                )
                states = {run.state for run in runs.backtests}
                assert backtest_pb2.BACKTEST_STATE_FAILED not in states
                return len(runs.backtests) >= 5 and states == {
                    backtest_pb2.BACKTEST_STATE_SUCCEEDED
                }

            await eventually(finished, timeout=300, interval=1, message="demo runs finished")
    finally:
        stack.stop()

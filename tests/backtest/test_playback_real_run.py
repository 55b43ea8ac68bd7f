"""Playback of a real NautilusTrader run, end to end: import, run, then every playback RPC."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from google.protobuf.timestamp_pb2 import Timestamp

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.runs.domain import AccountKind
from tests.backtest.playback_support import all_fills, replay
from tests.backtest.runs_support import running_service, spec


def ts(nanos: int) -> Timestamp:
    return Timestamp(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


async def test_a_finished_nautilus_run_plays_back_consistently(
    database_url: str, data_dir: Path
) -> None:
    async with running_service(database_url, data_dir, workers=1) as service:
        dataset = await service.import_trades(rows=4000)
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        run = await service.wait(created.backtest.name, seconds=120)
        assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
        name, version = run.name, run.content_version
        results = data_dir / "runs" / name.split("/")[1]

        # Candles and indicators are the stored ones, untouched.
        raw = pq.read_table(results / "candles.parquet").to_pandas()
        messages = [
            m
            async for m in service.stub.StreamCandles(
                pb.StreamCandlesRequest(
                    backtest=name, indicators=[pb.INDICATOR_EMA_20, pb.INDICATOR_ATR_14]
                )
            )
        ]
        assert {m.content_version for m in messages} == {version}
        assert [t for m in messages for t in m.chunk.times] == raw.time.tolist()
        ema = [v for m in messages for v in m.chunk.indicators[0].values]
        np.testing.assert_array_equal(ema, raw.ema_20.to_numpy())
        zoomed = [
            m
            async for m in service.stub.StreamCandles(
                pb.StreamCandlesRequest(backtest=name, max_candles=20)
            )
        ]
        assert sum(len(m.chunk.times) for m in zoomed) <= 20
        assert (
            max(m.chunk.high[i] for m in zoomed for i in range(len(m.chunk.high))) == raw.high.max()
        )

        # The portfolio at any instant is the replay of the run's own fills.
        fills = await all_fills(service.stub, name, page_size=3)
        assert len(fills) == run.stats.fill_count > 0
        balances = {"USDT": Decimal("100000")}
        fill_times = [f.time.seconds * 10**9 + f.time.nanos for f in fills]
        probes = [*fill_times, *(t - 1 for t in fill_times), int(raw.time.iloc[len(raw) // 2])]
        for probe in probes:
            state = (
                await service.stub.GetPortfolioState(
                    pb.GetPortfolioStateRequest(backtest=name, time=ts(probe))
                )
            ).state
            expected = replay(fills, until_ns=probe, account=AccountKind.CASH, balances=balances)
            assert state.fill_count == expected.fill_count
            assert Decimal(state.realized_pnl) == expected.realized_pnl
            assert Decimal(state.fees) == expected.fees
            cash = {m.currency: Decimal(m.amount) for m in state.cash}
            assert cash["USDT"] == expected.cash
            assert cash["BTC"] == expected.base

        # At the end, equity is the run's ending equity.
        end = await service.stub.GetPortfolioState(
            pb.GetPortfolioStateRequest(
                backtest=name, time=ts(int(raw.time.iloc[-1]) + 86_400 * 10**9)
            )
        )
        assert Decimal(end.state.equity) == Decimal(run.stats.ending_equity)
        assert end.content_version == version

        # The equity curve: whole, and downsampled keeping its ends.
        curve = pq.read_table(results / "equity.parquet").to_pandas()
        whole = [m async for m in service.stub.StreamEquity(pb.StreamEquityRequest(backtest=name))]
        assert [t for m in whole for t in m.chunk.times] == curve.time.tolist()
        small = [
            m
            async for m in service.stub.StreamEquity(
                pb.StreamEquityRequest(backtest=name, max_points=30)
            )
        ]
        points = [t for m in small for t in m.chunk.times]
        assert len(points) == 30
        assert points[0] == curve.time.iloc[0]
        assert points[-1] == curve.time.iloc[-1]

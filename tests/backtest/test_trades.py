"""ListTrades: a finished run's round trips reconcile with its fills and prices, paged and
filtered by exit window and side, through the real service on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import grpc
import pyarrow.parquet as pq
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck.common.v1 import common_pb2
from tests.backtest.runs_support import running_service, spec
from tests.support import field_violations


async def list_all(stub, **request) -> list[pb.Trade]:
    trades: list[pb.Trade] = []
    token = ""
    while True:
        page = await stub.ListTrades(pb.ListTradesRequest(page_token=token, **request))
        trades += page.trades
        token = page.next_page_token
        if not token:
            return trades


async def test_trades_reconcile_with_fills_and_page_by_window_and_side(
    database_url: str, data_dir: Path
):
    async with running_service(database_url, data_dir) as service:
        dataset = await service.import_trades()
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=spec(dataset)))
        run = await service.wait(created.backtest.name)
        assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
        trades = await list_all(service.stub, backtest=run.name, page_size=3)
        fills = (await service.stub.ListFills(pb.ListFillsRequest(backtest=run.name))).fills

        # Every closed position is one trade, by exit time, the same as one big page.
        assert len(trades) == run.stats.trade_count > 3
        whole = await service.stub.ListTrades(pb.ListTradesRequest(backtest=run.name))
        assert list(whole.trades) == trades
        exits = [t.exit_time.ToNanoseconds() for t in trades]
        assert exits == sorted(exits)

        # Each trade is exactly its fills: flat after, fees and PnL are theirs (long only, CASH).
        for trade in trades:
            entry, exit_ = trade.entry_time.ToNanoseconds(), trade.exit_time.ToNanoseconds()
            own = [
                f
                for f in fills
                if f.position_id == trade.position_id and entry <= f.time.ToNanoseconds() <= exit_
            ]
            signed = [Decimal(f.quantity) * (1 if f.side == pb.ORDER_SIDE_BUY else -1) for f in own]
            assert sum(signed) == 0
            assert trade.side == pb.TRADE_SIDE_LONG
            assert Decimal(trade.quantity) == sum(q for q in signed if q > 0)
            fees = sum(Decimal(f.commission) for f in own)
            assert Decimal(trade.fees) == fees
            cash = sum(-q * Decimal(f.price) for q, f in zip(signed, own, strict=True))
            assert Decimal(trade.realized_pnl) == cash - fees
            assert trade.holding_time.ToNanoseconds() == exit_ - entry > 0
        positions = pq.read_table(
            data_dir / "runs" / run.name.split("/")[1] / "positions.parquet"
        ).to_pandas()
        closed = positions[positions["closed"] > 0]
        assert sum(Decimal(t.realized_pnl) for t in trades) == sum(
            Decimal(p) for p in closed["realized_pnl"]
        )

        # Excursions: the extreme trade prices while each trade was open, from its entry.
        prices = pq.read_table(service.raw_dir / "trades.parquet").to_pandas()
        times = prices["ts"].astype("int64").to_numpy()
        for trade in trades:
            entry, exit_ = trade.entry_time.ToNanoseconds(), trade.exit_time.ToNanoseconds()
            seen = prices["price"].to_numpy()[(times >= entry) & (times <= exit_)]
            quantity, opened = float(trade.quantity), float(trade.average_entry_price)
            assert trade.mfe == pytest.approx(max(seen.max() - opened, 0) * quantity, rel=1e-6)
            assert trade.mae == pytest.approx(max(opened - seen.min(), 0) * quantity, rel=1e-6)

        # A half-open window of exit times, and a side filter.
        start, end = exits[1], exits[-1]
        window = common_pb2.TimeRange()
        window.start_time.FromNanoseconds(start)
        window.end_time.FromNanoseconds(end)
        inside = await list_all(service.stub, backtest=run.name, time_range=window, page_size=2)
        assert inside == [t for t in trades if start <= t.exit_time.ToNanoseconds() < end]
        longs = await list_all(service.stub, backtest=run.name, side=pb.TRADE_SIDE_LONG)
        shorts = await list_all(service.stub, backtest=run.name, side=pb.TRADE_SIDE_SHORT)
        assert (longs, shorts) == (trades, [])

        # Bad input names the field.
        with pytest.raises(grpc.aio.AioRpcError) as bad_side:
            await service.stub.ListTrades(pb.ListTradesRequest(backtest=run.name, side=999))
        assert bad_side.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "side" in field_violations(bad_side.value)
        first = await service.stub.ListTrades(pb.ListTradesRequest(backtest=run.name, page_size=2))
        with pytest.raises(grpc.aio.AioRpcError) as other_query:
            await service.stub.ListTrades(
                pb.ListTradesRequest(
                    backtest=run.name, side=pb.TRADE_SIDE_LONG, page_token=first.next_page_token
                )
            )
        assert other_query.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(other_query.value)

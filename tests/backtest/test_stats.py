"""A run's statistics are the field's: daily figures equal empyrical's on the run's own equity
curve, trade figures equal NautilusTrader's PortfolioAnalyzer called directly on the same run, on
the real BTC perpetual bars; a run shorter than a few days says n/a."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.datasets.instruments import InstrumentKind
from tapedeck_backtest.runs import stats
from tests.backtest.reference import BTC_PERP_BARS, BTCUSDT_PERP, REAL
from tests.backtest.runs_support import run_in_child, running_service, spec, worker_job
from tests.support import missing_dependency

BARS = BTC_PERP_BARS

# Runs the same job in a fresh interpreter (one engine per process) and asks a PortfolioAnalyzer
# of its own, with NautilusTrader's statistics registered, about the run's closed positions.
CHILD = """
import json, pickle, sys, threading
from nautilus_trader.analysis import PortfolioAnalyzer
from nautilus_trader.core import nautilus_pyo3 as stats
from nautilus_trader.model.objects import Currency
from tapedeck_backtest.runs.engine import execute, load_engine, strategy_builder

job = pickle.loads(open(sys.argv[1], "rb").read())
loaded = load_engine(job)
execute(loaded, job, build_strategy=strategy_builder(()), report=lambda _: None,
        cancel=threading.Event())
cache = loaded.engine.cache
closed = [p for p in cache.positions() + cache.position_snapshots() if p.is_closed]
analyzer = PortfolioAnalyzer()
for statistic in (stats.WinRate(), stats.Expectancy(), stats.AvgWinner(), stats.AvgLoser(),
                  stats.ProfitFactor()):
    analyzer.register_statistic(statistic)
analyzer.calculate_statistics(cache.account_for_venue(loaded.venue), closed)
figures = analyzer.get_performance_stats_pnls(Currency.from_str("USDT"))
figures.update(analyzer.get_performance_stats_returns())
figures["closed"] = len(closed)
figures["pnl_sum"] = float(analyzer.realized_pnls(Currency.from_str("USDT")).sum())
print(json.dumps(figures))
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory):
    """The EMA cross over a month of real BTC perpetual bars, through the service and in a child."""
    if not (REAL / BARS).exists():
        missing_dependency(f"the shared real data at {REAL}")
    tmp = tmp_path_factory.mktemp("stats")
    return asyncio.run(_real_run(tmp))


async def _real_run(tmp: Path) -> tuple[pb.Backtest, Path, dict[str, float]]:
    data_dir = tmp / "data"
    data_dir.mkdir()
    async with running_service(
        f"sqlite+aiosqlite:///{tmp / 'stats.db'}", data_dir, data_root=REAL
    ) as service:
        imported = await service.import_file(BARS, kind=pb.DATA_KIND_BARS, instrument=BTCUSDT_PERP)
        request = spec(
            imported.dataset.name,
            account_type=pb.ACCOUNT_TYPE_MARGIN,
            bar_seconds=900,
            parameters={
                "fast_period": pb.ParameterValue(int_value=10),
                "slow_period": pb.ParameterValue(int_value=30),
                "trade_size": pb.ParameterValue(double_value=0.5),
                "allow_short": pb.ParameterValue(bool_value=True),
            },
        )
        created = await service.stub.CreateBacktest(pb.CreateBacktestRequest(spec=request))
        await service.wait(created.backtest.name, seconds=240)
        got = await service.stub.GetBacktest(pb.GetBacktestRequest(name=created.backtest.name))
        run = got.backtest
        job = await worker_job(service, request, "child", tmp / "child")
    assert run.state == pb.BACKTEST_STATE_SUCCEEDED, run.error_message
    analyzer = json.loads(await run_in_child(CHILD, job, tmp, seconds=300))
    return run, data_dir / "runs" / run.name.split("/")[1], analyzer


def test_daily_figures_equal_empyrical_on_the_runs_equity_curve(real_run):
    run, directory, _ = real_run
    figures = run.stats
    equity = pq.read_table(directory / "equity.parquet").to_pandas()
    curve = pd.Series(
        equity["equity"].to_numpy(), index=pd.to_datetime(equity["time"], unit="ns", utc=True)
    )
    closes = curve.groupby(curve.index.floor("D")).last()
    returns = closes.pct_change()
    returns.iloc[0] = closes.iloc[0] / float(figures.starting_equity) - 1
    assert figures.periods_per_year == 365  # crypto trades every day
    assert figures.daily_figures_available
    assert figures.daily_return_count == len(returns) >= 30
    year = {"annualization": 365}
    assert figures.sharpe_ratio == pytest.approx(empyrical.sharpe_ratio(returns, **year), rel=1e-9)
    assert figures.sortino_ratio == pytest.approx(
        empyrical.sortino_ratio(returns, **year), rel=1e-9
    )
    assert figures.cagr == pytest.approx(empyrical.cagr(returns, **year), rel=1e-9)
    assert figures.annual_volatility == pytest.approx(
        empyrical.annual_volatility(returns, **year), rel=1e-9
    )
    assert figures.calmar_ratio == pytest.approx(empyrical.calmar_ratio(returns, **year), rel=1e-9)
    assert figures.best_day == pytest.approx(returns.max(), rel=1e-12)
    assert figures.worst_day == pytest.approx(returns.min(), rel=1e-12)
    # A month of daily returns: a Sharpe ratio a quant recognises, not a per-minute one.
    assert abs(figures.sharpe_ratio) < 20


def test_max_drawdown_and_its_duration_from_the_whole_curve(real_run):
    run, directory, _ = real_run
    equity = pq.read_table(directory / "equity.parquet").to_pandas()
    values, times = equity["equity"].to_numpy(), equity["time"].to_numpy()
    peaks = np.maximum.accumulate(values)
    drawdown = 1 - values / peaks
    assert run.stats.max_drawdown == pytest.approx(drawdown.max(), rel=1e-12)
    trough = int(drawdown.argmax())
    peak_time = times[: trough + 1][values[: trough + 1] == peaks[trough]][0]
    after = times[trough:][values[trough:] >= peaks[trough]]
    end_time = after[0] if after.size else times[-1]
    assert run.stats.max_drawdown_duration.ToNanoseconds() == end_time - peak_time > 0


def test_trade_figures_equal_the_portfolio_analyzer_on_the_same_run(real_run):
    run, directory, analyzer = real_run
    figures = run.stats
    assert figures.trade_count == analyzer["closed"] > 5
    assert figures.win_rate == pytest.approx(analyzer["Win Rate"], rel=1e-12)
    assert figures.expectancy == pytest.approx(analyzer["Expectancy"], rel=1e-12)
    assert figures.average_win == pytest.approx(analyzer["Avg Winner"], rel=1e-12)
    assert figures.average_loss == pytest.approx(analyzer["Avg Loser"], rel=1e-12)
    assert figures.profit_factor == pytest.approx(analyzer["Profit Factor"], rel=1e-12)
    positions = pq.read_table(directory / "positions.parquet").to_pandas()
    closed = positions[positions["closed"] > 0]
    held = (closed["closed"] - closed["opened"]).mean()
    assert figures.average_holding_time.ToNanoseconds() == pytest.approx(held, rel=1e-9)
    # Every round trip is a trade, those of flipped NETTING positions (snapshots) included.
    trades = pq.read_table(directory / "trades.parquet").to_pandas()
    assert len(trades) == analyzer["closed"]
    assert set(trades["side"]) == {"LONG", "SHORT"}
    assert trades["realized_pnl"].astype(float).sum() == pytest.approx(analyzer["pnl_sum"])


def test_a_run_of_a_few_days_has_no_daily_figures():
    times = np.arange(4, dtype=np.int64) * 86_400 * 10**9 + 3_600 * 10**9
    returns = stats.daily_returns(times, np.array([101.0, 99.0, 103.0, 104.0]), starting_equity=100)
    assert list(returns.round(6)) == [
        0.01,
        round(99 / 101 - 1, 6),
        round(103 / 99 - 1, 6),
        round(104 / 103 - 1, 6),
    ]
    figures = stats.daily_figures(returns, periods_per_year=252)
    assert figures.daily_returns == 4
    for name in ("sharpe_ratio", "sortino_ratio", "cagr", "annual_volatility", "calmar_ratio"):
        assert math.isnan(getattr(figures, name)), name


def test_fx_is_annualised_over_trading_days_and_crypto_over_calendar_days():
    assert stats.periods_per_year(InstrumentKind.FX) == 252
    assert stats.periods_per_year(InstrumentKind.SPOT) == 365
    assert stats.periods_per_year(InstrumentKind.PERPETUAL) == 365

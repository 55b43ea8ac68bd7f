// A finished run's statistics as label/value rows, the same figures GetBacktest returns.
import type { BacktestStats } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatDecimal } from "./decimal";
import { formatDuration, formatNumber, formatPercent } from "./time";

type DurationLike = { seconds: bigint; nanos: number } | undefined;

const NOT_AVAILABLE = "n/a";

function seconds(d: DurationLike): number {
  return d === undefined ? Number.NaN : Number(d.seconds) + d.nanos / 1e9;
}

// Daily figures: "n/a" when the run has too few daily returns to annualise them.
export function dailyFigure(s: BacktestStats, value: number, format = formatNumber): string {
  return s.dailyFiguresAvailable ? format(value) : NOT_AVAILABLE;
}

export function statsRows(s: BacktestStats): Array<[string, string]> {
  const year = s.periodsPerYear > 0 ? ` (${s.periodsPerYear} d/yr)` : "";
  const percent = (n: number) => formatPercent(n);
  return [
    ["Return", formatPercent(s.totalReturn)],
    ["PnL", formatDecimal(s.pnl, { maxFractionDigits: 2 })],
    [`Sharpe${year}`, dailyFigure(s, s.sharpeRatio)],
    [`Sortino${year}`, dailyFigure(s, s.sortinoRatio)],
    ["CAGR", dailyFigure(s, s.cagr, percent)],
    ["Volatility (ann.)", dailyFigure(s, s.annualVolatility, percent)],
    ["Calmar", dailyFigure(s, s.calmarRatio)],
    ["Best day", dailyFigure(s, s.bestDay, percent)],
    ["Worst day", dailyFigure(s, s.worstDay, percent)],
    ["Max drawdown", formatPercent(s.maxDrawdown)],
    ["Drawdown duration", formatDuration(seconds(s.maxDrawdownDuration))],
    ["Trades", s.tradeCount.toString()],
    ["Win rate", formatPercent(s.winRate)],
    ["Profit factor", formatNumber(s.profitFactor)],
    ["Expectancy", formatNumber(s.expectancy)],
    ["Avg win", formatNumber(s.averageWin)],
    ["Avg loss", formatNumber(s.averageLoss)],
    ["Avg holding", formatDuration(seconds(s.averageHoldingTime))],
    ["Fees", formatDecimal(s.fees, { maxFractionDigits: 2 })],
  ];
}

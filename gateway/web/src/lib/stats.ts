// A finished run's statistics as label/value rows, the same figures GetBacktest returns.
import type { BacktestStats } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatMoney } from "./decimal";
import { formatDuration, formatNumber, formatPercent } from "./time";

type DurationLike = { seconds: bigint; nanos: number } | undefined;

const NOT_AVAILABLE = "n/a";

function seconds(d: DurationLike): number {
  return d === undefined ? Number.NaN : Number(d.seconds) + d.nanos / 1e9;
}

// A figure the server leaves undefined (NaN, or an unset duration) is "n/a".
function figure(value: number, format: (n: number) => string = formatNumber): string {
  return Number.isFinite(value) ? format(value) : NOT_AVAILABLE;
}

// Daily figures: "n/a" when the run has too few daily returns to annualise them.
function dailyFigure(s: BacktestStats, value: number, format = formatNumber): string {
  return s.dailyFiguresAvailable ? figure(value, format) : NOT_AVAILABLE;
}

// Every figure of BacktestStats, labelled, in the order a trader reads them.
export function statsRows(s: BacktestStats): Array<[string, string]> {
  const year = s.periodsPerYear > 0 ? ` (${s.periodsPerYear} d/yr)` : "";
  const percent = (n: number) => formatPercent(n);
  const count = (n: bigint | number) => n.toLocaleString("en-US");
  return [
    ["Return", figure(s.totalReturn, percent)],
    ["PnL", formatMoney(s.pnl)],
    ["Starting equity", formatMoney(s.startingEquity)],
    ["Ending equity", formatMoney(s.endingEquity)],
    [`Sharpe${year}`, dailyFigure(s, s.sharpeRatio)],
    [`Sortino${year}`, dailyFigure(s, s.sortinoRatio)],
    ["CAGR", dailyFigure(s, s.cagr, percent)],
    ["Volatility (ann.)", dailyFigure(s, s.annualVolatility, percent)],
    ["Calmar", dailyFigure(s, s.calmarRatio)],
    ["Best day", dailyFigure(s, s.bestDay, percent)],
    ["Worst day", dailyFigure(s, s.worstDay, percent)],
    ["Daily returns", count(s.dailyReturnCount)],
    ["Max drawdown", figure(s.maxDrawdown, percent)],
    ["Drawdown duration", figure(seconds(s.maxDrawdownDuration), formatDuration)],
    ["Exposure", figure(s.exposure, percent)],
    ["Trades", count(s.tradeCount)],
    ["Fills", count(s.fillCount)],
    ["Win rate", figure(s.winRate, percent)],
    ["Profit factor", figure(s.profitFactor)],
    ["Expectancy", figure(s.expectancy)],
    ["Avg win", figure(s.averageWin)],
    ["Avg loss", figure(s.averageLoss)],
    ["Avg holding", figure(seconds(s.averageHoldingTime), formatDuration)],
    ["Fees", formatMoney(s.fees)],
    ["Engine time", figure(s.runSeconds, (n) => `${formatNumber(n)} s`)],
  ];
}

// A finished sweep's overfitting figures (AnalyzeSweep's OverfittingOdds), each with what it means
// in one plain line.
import type { OverfittingOdds } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatNumber, formatPercent } from "./time";

export interface Figure {
  readonly key: string;
  readonly label: string;
  readonly text: string; // "—" when undefined
  readonly meaning: string;
}

const optional = (value: number | undefined, format: (n: number) => string) =>
  value === undefined ? "—" : format(value);

export function overfittingFigures(odds: OverfittingOdds): Figure[] {
  const period = odds.period.toLowerCase();
  return [
    {
      key: "dsr",
      label: "Deflated Sharpe Ratio",
      text: optional(odds.deflatedSharpeRatio, (n) => formatPercent(n, 1)),
      meaning:
        "The probability that the best run's true Sharpe ratio beats what the best of this many " +
        "luck-only trials would reach; near 100% means the edge is unlikely to be luck.",
    },
    {
      key: "pbo",
      label: "Probability of backtest overfitting",
      text: optional(odds.probabilityOfBacktestOverfitting, (n) => formatPercent(n, 1)),
      meaning:
        "How often the parameters that were best in one half of the data ranked below the median " +
        "in the other half; above 50% the winner is more likely chosen by luck than by skill.",
    },
    {
      key: "best",
      label: `Best Sharpe ratio (per ${period})`,
      text: formatNumber(odds.bestSharpeRatio, 3),
      meaning: "The best run's Sharpe ratio on the aligned returns, not annualised.",
    },
    {
      key: "expected",
      label: `Expected best by luck (per ${period})`,
      text: formatNumber(odds.expectedMaxSharpeRatio, 3),
      meaning:
        "The Sharpe ratio the best of this many trials with no real edge would be expected to show.",
    },
    {
      key: "trials",
      label: "Trials",
      text: String(odds.trials),
      meaning: "Runs that succeeded: the more are tried, the higher the best one scores by chance.",
    },
    {
      key: "variance",
      label: "Variance of the trials' Sharpe ratios",
      text: formatNumber(odds.sharpeRatioVariance, 4),
      meaning: "How far the trials' Sharpe ratios spread; a wider spread raises the luck bar.",
    },
    {
      key: "observations",
      label: "Returns per run",
      text: `${odds.observations} ${period} returns`,
      meaning: "The aligned period returns every figure here is computed from.",
    },
    {
      key: "cscv",
      label: "CSCV splits",
      text: `${odds.cscvSplits} blocks, ${odds.cscvCombinations} combinations`,
      meaning: "The returns are cut into blocks and every half/half split is tested for the PBO.",
    },
  ];
}

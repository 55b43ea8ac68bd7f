// A sweep's results as a table: one column per swept parameter and per statistic, sortable.
import {
  BacktestState,
  RankMetric,
  type Backtest,
  type SweepResult,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatDecimal } from "./decimal";
import { valueText } from "./launch";
import { isFinal, stateName } from "./runs";
import { sortRows, type Direction, type SortKey } from "./sort";
import { formatNumber, formatPercent } from "./time";

export interface SweepSort {
  readonly key: string | null; // null: the service's order
  readonly direction: Direction;
}

export interface SweepColumn {
  key: string;
  title: string;
  sortKey: (r: SweepResult) => SortKey;
  text: (r: SweepResult) => string;
}

const stateText = (r: SweepResult): string => stateName(r.state);

function parameterKey(r: SweepResult, axis: string): SortKey {
  const v = r.parameters[axis]?.kind;
  if (v === undefined || v.case === undefined) return null;
  if (typeof v.value === "bigint") return Number(v.value);
  if (typeof v.value === "boolean") return String(v.value);
  return v.value;
}

function stat(
  key: string,
  title: string,
  value: (s: NonNullable<SweepResult["stats"]>) => number,
  format: (n: number) => string,
): SweepColumn {
  return {
    key,
    title,
    sortKey: (r) => (r.stats ? value(r.stats) : null),
    text: (r) => (r.stats ? format(value(r.stats)) : ""),
  };
}

type Stats = NonNullable<SweepResult["stats"]>;

// The statistic a metric ranks by, and whether higher is better.
const METRIC: ReadonlyMap<RankMetric, readonly [(s: Stats) => number, boolean]> = new Map([
  [RankMetric.UNSPECIFIED, [(s: Stats) => s.sharpeRatio, true]],
  [RankMetric.SHARPE_RATIO, [(s: Stats) => s.sharpeRatio, true]],
  [RankMetric.SORTINO_RATIO, [(s: Stats) => s.sortinoRatio, true]],
  [RankMetric.TOTAL_RETURN, [(s: Stats) => s.totalReturn, true]],
  [RankMetric.PROFIT_FACTOR, [(s: Stats) => s.profitFactor, true]],
  [RankMetric.MAX_DRAWDOWN, [(s: Stats) => s.maxDrawdown, false]],
  [RankMetric.WIN_RATE, [(s: Stats) => s.winRate, true]],
]);

// Ranks (1 = best; ties share a rank) among the runs that have succeeded, by run name: while a
// sweep runs, the unfinished runs have none.
export function liveRanks(
  results: readonly SweepResult[],
  metric: RankMetric,
): ReadonlyMap<string, number> {
  const [value, higherIsBetter] = METRIC.get(metric) ?? METRIC.get(RankMetric.UNSPECIFIED)!;
  const scored = results
    .filter((r) => r.state === BacktestState.SUCCEEDED && r.stats !== undefined)
    .map((r) => ({ name: r.backtest, score: value(r.stats!) }))
    .filter((r) => Number.isFinite(r.score))
    .sort((a, b) => (higherIsBetter ? b.score - a.score : a.score - b.score));
  const ranks = new Map<string, number>();
  scored.forEach((r, i) => {
    const previous = scored[i - 1];
    const tied = previous !== undefined && previous.score === r.score;
    ranks.set(r.name, tied ? ranks.get(previous.name)! : i + 1);
  });
  return ranks;
}

// A sweep's results with each run's state (and statistics) as the runs list knows them when it
// knows more: a result says "queued" until the sweep reports again, the run itself says running.
export function withRunStates(
  results: readonly SweepResult[],
  runs: ReadonlyMap<string, Backtest>,
): readonly SweepResult[] {
  return results.map((r) => {
    const run = runs.get(r.backtest);
    if (run === undefined || isFinal(r.state) || run.state <= r.state) return r;
    return { ...r, state: run.state, stats: run.stats ?? r.stats };
  });
}

export function sweepColumns(
  axes: readonly string[],
  ranks: ReadonlyMap<string, number> = new Map(),
): SweepColumn[] {
  return [
    {
      key: "rank",
      title: "Rank",
      sortKey: (r) => ranks.get(r.backtest) ?? null,
      text: (r) => String(ranks.get(r.backtest) ?? ""),
    },
    ...axes.map((axis): SweepColumn => ({
      key: `p:${axis}`,
      title: axis,
      sortKey: (r) => parameterKey(r, axis),
      text: (r) => valueText(r.parameters[axis]),
    })),
    { key: "state", title: "State", sortKey: stateText, text: stateText },
    stat(
      "return",
      "Return",
      (s) => s.totalReturn,
      (n) => formatPercent(n),
    ),
    stat(
      "sharpe",
      "Sharpe",
      (s) => s.sharpeRatio,
      (n) => formatNumber(n),
    ),
    stat(
      "sortino",
      "Sortino",
      (s) => s.sortinoRatio,
      (n) => formatNumber(n),
    ),
    stat(
      "cagr",
      "CAGR",
      (s) => s.cagr,
      (n) => formatPercent(n),
    ),
    stat(
      "calmar",
      "Calmar",
      (s) => s.calmarRatio,
      (n) => formatNumber(n),
    ),
    stat(
      "dd",
      "Max DD",
      (s) => s.maxDrawdown,
      (n) => formatPercent(n),
    ),
    stat(
      "win",
      "Win rate",
      (s) => s.winRate,
      (n) => formatPercent(n),
    ),
    stat(
      "pf",
      "Profit factor",
      (s) => s.profitFactor,
      (n) => formatNumber(n),
    ),
    stat(
      "expectancy",
      "Expectancy",
      (s) => s.expectancy,
      (n) => formatNumber(n),
    ),
    stat(
      "trades",
      "Trades",
      (s) => Number(s.tradeCount),
      (n) => String(n),
    ),
    {
      key: "pnl",
      title: "PnL",
      sortKey: (r) => (r.stats ? Number(r.stats.pnl) : null),
      text: (r) =>
        r.stats ? formatDecimal(r.stats.pnl, { maxFractionDigits: 2, minFractionDigits: 2 }) : "",
    },
  ];
}

export function sortedResults(
  results: readonly SweepResult[],
  columns: readonly SweepColumn[],
  sort: SweepSort,
): readonly SweepResult[] {
  const column = columns.find((c) => c.key === sort.key);
  return column === undefined ? results : sortRows(results, column.sortKey, sort.direction);
}

// The statistics a heatmap can colour by (keys of sweepColumns), and whether lower is better.
export const HEATMAP_METRICS: ReadonlyArray<readonly [string, string, boolean]> = [
  ["sharpe", "Sharpe", false],
  ["return", "Return", false],
  ["sortino", "Sortino", false],
  ["dd", "Max drawdown", true],
  ["win", "Win rate", false],
  ["pf", "Profit factor", false],
];

export interface HeatmapCell {
  readonly backtest: string;
  readonly text: string; // the metric as the table shows it; "" without a value
  readonly shade: number | null; // 0 worst .. 1 best among the cells with a value
  readonly succeeded: boolean;
}

export interface Heatmap {
  readonly x: string; // the parameters on the axes
  readonly y: string;
  readonly xs: readonly string[]; // their values, in order
  readonly ys: readonly string[];
  readonly cells: ReadonlyArray<ReadonlyArray<HeatmapCell | null>>; // [y][x]; null: no such run
}

// A two-parameter sweep's results as a grid coloured by `metric`, built from its rows (so it fills
// in while the sweep runs); null unless the sweep has exactly two axes.
export function sweepHeatmap(
  axes: readonly string[],
  results: readonly SweepResult[],
  metric: string,
): Heatmap | null {
  if (axes.length !== 2) return null;
  const [x, y] = axes as [string, string];
  const column = sweepColumns(axes).find((c) => c.key === metric);
  const lowerIsBetter = HEATMAP_METRICS.find(([key]) => key === metric)?.[2] ?? false;
  if (column === undefined) return null;
  const values = (axis: string) => {
    const seen = new Map<string, SortKey>();
    for (const r of results) seen.set(valueText(r.parameters[axis]), parameterKey(r, axis));
    return sortRows([...seen.keys()], (text) => seen.get(text), "asc");
  };
  const xs = values(x);
  const ys = values(y);
  const scores = results
    .map((r) => column.sortKey(r))
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const low = Math.min(...scores);
  const high = Math.max(...scores);
  const cells = ys.map(() => xs.map((): HeatmapCell | null => null));
  for (const r of results) {
    const xi = xs.indexOf(valueText(r.parameters[x]));
    const yi = ys.indexOf(valueText(r.parameters[y]));
    const score = column.sortKey(r);
    let shade: number | null = null;
    if (typeof score === "number" && Number.isFinite(score)) {
      const position = high > low ? (score - low) / (high - low) : 1;
      shade = lowerIsBetter ? 1 - position : position;
    }
    const succeeded = r.state === BacktestState.SUCCEEDED;
    cells[yi]![xi] = { backtest: r.backtest, text: column.text(r), shade, succeeded };
  }
  return { x, y, xs, ys, cells };
}

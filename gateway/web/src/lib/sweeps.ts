// A sweep's results as a table: one column per swept parameter and per statistic, sortable.
import {
  BacktestState,
  RankMetric,
  SearchAlgorithm,
  type Backtest,
  type SearchSpec,
  type SweepHeatmap,
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
  [RankMetric.CAGR, [(s: Stats) => s.cagr, true]],
  [RankMetric.CALMAR_RATIO, [(s: Stats) => s.calmarRatio, true]],
  [RankMetric.EXPECTANCY, [(s: Stats) => s.expectancy, true]],
]);

// The metrics a user can rank, map or score by.
export const METRICS: readonly RankMetric[] = [...METRIC.keys()].filter(
  (m) => m !== RankMetric.UNSPECIFIED,
);

export function metricName(metric: RankMetric): string {
  const known = metric === RankMetric.UNSPECIFIED ? RankMetric.SHARPE_RATIO : metric;
  return (RankMetric[known] ?? "").toLowerCase().replace(/_/g, " ");
}

const SEARCHES: ReadonlyMap<SearchAlgorithm, string> = new Map([
  [SearchAlgorithm.GRID, "grid"],
  [SearchAlgorithm.RANDOM, "random search"],
  [SearchAlgorithm.TPE, "TPE search"],
  [SearchAlgorithm.NSGA2, "NSGA-II search"],
]);

// How a sweep picks its points: "grid" or the search's sampler, budget and objectives.
export function sweepKind(search: SearchSpec | undefined): string {
  if (search === undefined) return "grid";
  const name = SEARCHES.get(search.algorithm) ?? "search";
  const objectives =
    search.objectives.length > 1
      ? ` of ${search.objectives.map(metricName).join(" against ")}`
      : "";
  return `${name}${objectives}, budget ${search.trialBudget}`;
}

export function higherIsBetter(metric: RankMetric): boolean {
  return (METRIC.get(metric) ?? METRIC.get(RankMetric.UNSPECIFIED)!)[1];
}

const FRACTIONS: ReadonlySet<RankMetric> = new Set([
  RankMetric.TOTAL_RETURN,
  RankMetric.MAX_DRAWDOWN,
  RankMetric.WIN_RATE,
  RankMetric.CAGR,
]);

// A metric's value as the results table shows it: fractions as percentages.
export function metricText(metric: RankMetric, value: number): string {
  return FRACTIONS.has(metric) ? formatPercent(value) : formatNumber(value);
}

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

// A search's progress: after each finished trial, the metric of the best result so far (WatchSweep's
// best_so_far); null while no trial has a value. One value per finished trial, in the order the
// trials finished.
export function bestSoFarValue(best: SweepResult | undefined, metric: RankMetric): number | null {
  if (best === undefined || best.state !== BacktestState.SUCCEEDED || best.stats === undefined)
    return null;
  const value = (METRIC.get(metric) ?? METRIC.get(RankMetric.UNSPECIFIED)!)[0](best.stats);
  return Number.isFinite(value) ? value : null;
}

// The curve's points in a width x height box (y down), the box `slots` trials wide (a search's
// budget: the curve fills it as trials finish); null values are skipped.
export function curvePoints(
  values: readonly (number | null)[],
  width: number,
  height: number,
  slots = values.length,
): Array<{ trial: number; x: number; y: number }> {
  const known = values.filter((v): v is number => v !== null);
  const low = Math.min(...known);
  const high = Math.max(...known);
  const span = high - low;
  const across = Math.max(slots, values.length);
  const step = across > 1 ? width / (across - 1) : 0;
  const points: Array<{ trial: number; x: number; y: number }> = [];
  values.forEach((value, i) => {
    if (value === null) return;
    const y = span > 0 ? height * (1 - (value - low) / span) : height / 2;
    points.push({ trial: i + 1, x: i * step, y });
  });
  return points;
}

// What a heatmap cell shows: the metric or its neighbourhood score (the metric averaged over the
// points within one step on every axis).
export type HeatmapScore = "value" | "neighbourhood";

export interface HeatmapCell {
  readonly backtest: string;
  readonly value: number | null; // the score shown
  readonly text: string; // "" without a value
  readonly rank: number; // by the score shown; 0 without one
  readonly shade: number | null; // 0 worst .. 1 best among the cells with a value
}

export interface Heatmap {
  readonly x: string; // the parameters on the axes
  readonly y: string;
  readonly xs: readonly string[]; // their values, in the sweep's order
  readonly ys: readonly string[];
  readonly cells: ReadonlyArray<ReadonlyArray<HeatmapCell | null>>; // [y][x]; null: no such point
}

// AnalyzeSweep's matrix laid out as rows, coloured by the metric or its neighbourhood score; null
// when the sweep has one axis.
export function heatmapGrid(
  map: SweepHeatmap,
  metric: RankMetric,
  score: HeatmapScore,
): Heatmap | null {
  if (map.yParameter === "") return null;
  const xs = map.xValues.map((v) => valueText(v));
  const ys = map.yValues.map((v) => valueText(v));
  const scoreOf = (cell: SweepHeatmap["cells"][number]) => {
    const point = cell.point;
    const value = score === "value" ? point?.value : point?.neighbourhoodScore;
    return value !== undefined && Number.isFinite(value) ? value : null;
  };
  const scores = map.cells.map(scoreOf).filter((v): v is number => v !== null);
  const low = Math.min(...scores);
  const high = Math.max(...scores);
  const higher = higherIsBetter(metric);
  const cells = ys.map(() => xs.map((): HeatmapCell | null => null));
  for (const cell of map.cells) {
    const row = cells[cell.yIndex];
    if (row === undefined || cell.xIndex >= xs.length) continue;
    const value = scoreOf(cell);
    let shade: number | null = null;
    if (value !== null) {
      const position = high > low ? (value - low) / (high - low) : 1;
      shade = higher ? position : 1 - position;
    }
    const point = cell.point;
    row[cell.xIndex] = {
      backtest: point?.backtest ?? "",
      value,
      text: value === null ? "" : metricText(metric, value),
      rank: (score === "value" ? point?.rank : point?.neighbourhoodRank) ?? 0,
      shade,
    };
  }
  return { x: map.xParameter, y: map.yParameter, xs, ys, cells };
}

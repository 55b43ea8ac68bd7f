// The runs view: its state (runs, catalog, sweeps) and how a run reads in the list: short ids,
// parameters, and the progress label.
import {
  BacktestState,
  RankMetric,
  type AnalyzeSweepResponse,
  type Backtest,
  type Dataset,
  type Strategy,
  type Sweep,
  type SweepResult,
  type WalkForward,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { nextDirection, sortRows, type Direction, type SortKey } from "./sort";
import { bestSoFarValue, type HeatmapScore, type SweepSort } from "./sweeps";
import { formatDuration, timestampSeconds } from "./time";

export type RunPhase = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "unspecified";

export function stateName(state: BacktestState): RunPhase {
  return (BacktestState[state] ?? "unspecified").toLowerCase() as RunPhase;
}

export function shortId(name: string): string {
  const id = name.split("/").pop() ?? name;
  return id.length > 10 ? id.slice(0, 8) : id;
}

export function paramsText(params: Record<string, string>): string {
  return Object.entries(params)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

// Percent to draw (a succeeded run is full whatever its last progress said) and its label.
export function progressView(
  phase: RunPhase,
  percent: number,
  etaSeconds: number | null,
): { percent: number; label: string } {
  const shown =
    phase === "succeeded"
      ? 100
      : Math.max(0, Math.min(100, Number.isFinite(percent) ? percent : 0));
  if (phase === "queued") return { percent: 0, label: "queued" };
  if (phase === "running") {
    const left = etaSeconds === null ? "" : ` · ${formatDuration(etaSeconds)} left`;
    return { percent: shown, label: `${shown.toFixed(0)}%${left}` };
  }
  return { percent: shown, label: `${shown.toFixed(0)}%` };
}

const FINAL = new Set([BacktestState.SUCCEEDED, BacktestState.FAILED, BacktestState.CANCELLED]);

export function isFinal(state: BacktestState): boolean {
  return FINAL.has(state);
}

// The runs view's one state object (the launch form keeps its inputs in the form itself).
export interface RunsState {
  readonly runs: ReadonlyMap<string, Backtest>; // by name: the newest page, older pages on demand
  // Token of the next older page; null before the first page, "" after the last.
  readonly olderPage: string | null;
  readonly datasets: readonly Dataset[];
  readonly strategies: readonly Strategy[];
  readonly sweeps: readonly Sweep[];
  readonly sweep: Sweep | null; // the sweep whose results are open
  readonly sweepSort: SweepSort;
  // After each finished trial of the open sweep, its best value so far (null: none yet).
  readonly bestSoFar: readonly (number | null)[];
  readonly analysis: AnalyzeSweepResponse | null; // AnalyzeSweep of the open sweep
  readonly analysisMetric: RankMetric; // what the heatmap maps and scores
  readonly heatmapScore: HeatmapScore;
  // The heatmap's parameters (across, down); null: the sweep's first two axes.
  readonly heatmapAxes: readonly [string, string] | null;
  readonly walkForwards: readonly WalkForward[]; // the newest, newest first
  readonly walkForward: WalkForward | null; // the open walk-forward
  readonly runSort: { readonly key: RunColumn; readonly direction: Direction };
  readonly runFilter: RunFilter;
}

// The runs table's sortable columns.
export type RunColumn =
  "created" | "strategy" | "dataset" | "state" | "return" | "sharpe" | "trades";

// What the runs table shows: "" matches any strategy, dataset or state.
export interface RunFilter {
  readonly strategy: string; // "strategies/..."
  readonly dataset: string; // "datasets/..."
  readonly state: RunPhase | "";
}

export function initialRuns(): RunsState {
  return {
    runs: new Map(),
    olderPage: null,
    datasets: [],
    strategies: [],
    sweeps: [],
    sweep: null,
    sweepSort: { key: null, direction: "desc" },
    bestSoFar: [],
    analysis: null,
    analysisMetric: RankMetric.SHARPE_RATIO,
    heatmapScore: "value",
    heatmapAxes: null,
    walkForwards: [],
    walkForward: null,
    runSort: { key: "created", direction: "desc" },
    runFilter: { strategy: "", dataset: "", state: "" },
  };
}

function merged(runs: ReadonlyMap<string, Backtest>, more: readonly Backtest[]) {
  const next = new Map(runs);
  for (const run of more) next.set(run.name, run);
  return next;
}

// The newest page again: runs merge in; the older-page token is the first page's.
export function newestListed(state: RunsState, runs: readonly Backtest[], next: string): RunsState {
  return { ...state, runs: merged(state.runs, runs), olderPage: state.olderPage ?? next };
}

export function olderListed(state: RunsState, runs: readonly Backtest[], next: string): RunsState {
  return { ...state, runs: merged(state.runs, runs), olderPage: next };
}

export function runUpdated(state: RunsState, run: Backtest): RunsState {
  return { ...state, runs: merged(state.runs, [run]) };
}

export function newestFirst(runs: ReadonlyMap<string, Backtest>): Backtest[] {
  const created = (run: Backtest) => timestampSeconds(run.createTime) ?? 0;
  return [...runs.values()].sort((a, b) => created(b) - created(a));
}

function runValue(state: RunsState, key: RunColumn): (run: Backtest) => SortKey {
  switch (key) {
    case "created":
      return (run) => timestampSeconds(run.createTime);
    case "strategy":
      return (run) => run.spec?.strategy;
    case "dataset":
      return (run) => datasetLabel(state, run.spec?.dataset ?? "");
    case "state":
      return (run) => stateName(run.state);
    case "return":
      return (run) => run.stats?.totalReturn;
    case "sharpe":
      return (run) => run.stats?.sharpeRatio;
    case "trades":
      return (run) => (run.stats === undefined ? null : Number(run.stats.tradeCount));
  }
}

// The rows of the runs table: the runs that pass the filter, in the chosen order.
export function runRows(state: RunsState): Backtest[] {
  const { strategy, dataset, state: phase } = state.runFilter;
  const passing = newestFirst(state.runs).filter(
    (run) =>
      (strategy === "" || run.spec?.strategy === strategy) &&
      (dataset === "" || run.spec?.dataset === dataset) &&
      (phase === "" || stateName(run.state) === phase),
  );
  const { key, direction } = state.runSort;
  return sortRows(passing, runValue(state, key), direction);
}

export function runsSortedBy(state: RunsState, key: RunColumn): RunsState {
  const { key: current, direction } = state.runSort;
  return { ...state, runSort: { key, direction: nextDirection(current, direction, key) } };
}

export function runsFiltered(state: RunsState, filter: Partial<RunFilter>): RunsState {
  return { ...state, runFilter: { ...state.runFilter, ...filter } };
}

// Unfinished runs to start watching, so that at most `max` are watched at once.
export function runsToWatch(
  runs: ReadonlyMap<string, Backtest>,
  watching: ReadonlySet<string>,
  max: number,
): string[] {
  const free = Math.max(0, max - watching.size);
  return [...runs.values()]
    .filter((run) => !isFinal(run.state) && !watching.has(run.name))
    .slice(0, free)
    .map((run) => run.name);
}

// Whether an unfinished run is not watched (it is polled instead).
export function needsPolling(runs: ReadonlyMap<string, Backtest>, watching: ReadonlySet<string>) {
  return [...runs.values()].some((run) => !isFinal(run.state) && !watching.has(run.name));
}

export function catalogLoaded(
  state: RunsState,
  datasets: readonly Dataset[],
  strategies: readonly Strategy[],
): RunsState {
  return { ...state, datasets, strategies };
}

export function datasetLabel(state: RunsState, name: string): string {
  return state.datasets.find((d) => d.name === name)?.displayName ?? shortId(name);
}

export function sweepsListed(state: RunsState, sweeps: readonly Sweep[]): RunsState {
  return { ...state, sweeps };
}

// The open sweep, new or newer; its button in the list says the same.
export function sweepOpened(state: RunsState, sweep: Sweep): RunsState {
  const sweeps = state.sweeps.map((s) =>
    s.name === sweep.name ? { ...s, finishedRuns: sweep.finishedRuns, state: sweep.state } : s,
  );
  return { ...state, sweep, sweeps };
}

// One result of the open sweep arrived (a run finished, failed or moved on).
export function sweepResultArrived(state: RunsState, result: SweepResult): RunsState {
  const sweep = state.sweep;
  if (sweep === null) return state;
  const results = sweep.results.filter((r) => r.backtest !== result.backtest).concat(result);
  const finishedRuns = results.filter((r) => isFinal(r.state)).length;
  return sweepOpened(state, { ...sweep, results, finishedRuns });
}

// A sweep opened afresh: its progress is replayed by WatchSweep and analysed again; another sweep
// is mapped by its own metric.
export function sweepLoaded(state: RunsState, sweep: Sweep): RunsState {
  const same = state.sweep?.name === sweep.name;
  const own = sweep.metric === RankMetric.UNSPECIFIED ? RankMetric.SHARPE_RATIO : sweep.metric;
  return {
    ...sweepOpened(state, sweep),
    bestSoFar: [],
    analysis: same ? state.analysis : null,
    analysisMetric: same ? state.analysisMetric : own,
    heatmapAxes: same ? state.heatmapAxes : null,
  };
}

// A trial finished (WatchSweep's result) with `best` the best result so far.
export function trialFinished(
  state: RunsState,
  result: SweepResult,
  best: SweepResult | undefined,
) {
  const sweep = state.sweep;
  if (sweep === null) return state;
  const bestSoFar = [...state.bestSoFar, bestSoFarValue(best, sweep.metric)];
  return { ...sweepResultArrived(state, result), bestSoFar };
}

// An analysis arrived; it is kept if it is of the open sweep, the chosen metric and parameters.
export function sweepAnalyzed(
  state: RunsState,
  name: string,
  analysis: AnalyzeSweepResponse,
): RunsState {
  const axes = state.heatmapAxes;
  const map = analysis.heatmap;
  const current =
    state.sweep?.name === name &&
    analysis.metric === state.analysisMetric &&
    (axes === null || (map?.xParameter === axes[0] && map?.yParameter === axes[1]));
  return current ? { ...state, analysis } : state;
}

// The heatmap's parameters: choosing one that is on the other axis swaps them.
export function heatmapAxisChosen(state: RunsState, axis: "x" | "y", name: string): RunsState {
  const [x = "", y = ""] = state.heatmapAxes ?? state.sweep?.axes.map((a) => a.name) ?? [];
  const next: [string, string] =
    axis === "x" ? [name, name === y ? x : y] : [name === x ? y : x, name];
  return { ...state, heatmapAxes: next };
}

export function analysisMetricChosen(state: RunsState, metric: RankMetric): RunsState {
  return metric === state.analysisMetric ? state : { ...state, analysisMetric: metric };
}

export function heatmapScoreChosen(state: RunsState, score: HeatmapScore): RunsState {
  return score === state.heatmapScore ? state : { ...state, heatmapScore: score };
}

export function walkForwardsListed(
  state: RunsState,
  walkForwards: readonly WalkForward[],
): RunsState {
  return { ...state, walkForwards };
}

// The open walk-forward, new or newer; its row in the list says the same.
export function walkForwardOpened(state: RunsState, walkForward: WalkForward): RunsState {
  const walkForwards = state.walkForwards.map((w) =>
    w.name === walkForward.name ? walkForward : w,
  );
  return { ...state, walkForward, walkForwards };
}

export function sweepSortedBy(state: RunsState, key: string): RunsState {
  const { key: current, direction } = state.sweepSort;
  return { ...state, sweepSort: { key, direction: nextDirection(current, direction, key) } };
}

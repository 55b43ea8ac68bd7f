import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  AnalyzeSweepResponseSchema,
  BacktestSchema,
  BacktestState,
  DatasetSchema,
  RankMetric,
  SweepResultSchema,
  SweepSchema,
  WalkForwardSchema,
  WalkForwardState,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import {
  catalogLoaded,
  datasetLabel,
  initialRuns,
  needsPolling,
  newestFirst,
  newestListed,
  olderListed,
  runRows,
  runsFiltered,
  runsSortedBy,
  runsToWatch,
  runUpdated,
  analysisMetricChosen,
  heatmapAxisChosen,
  sweepAnalyzed,
  sweepLoaded,
  sweepOpened,
  sweepResultArrived,
  trialFinished,
  sweepsListed,
  sweepSortedBy,
  walkForwardOpened,
  walkForwardsListed,
} from "./runs";

function run(id: string, state: BacktestState, created: number) {
  return create(BacktestSchema, {
    name: `backtests/${id}`,
    state,
    createTime: { seconds: BigInt(created), nanos: 0 },
  });
}

describe("runs state", () => {
  it("keeps the first page's older-page token while the newest page is refreshed", () => {
    const first = newestListed(initialRuns(), [run("a", BacktestState.RUNNING, 1)], "t1");
    expect(first.olderPage).toBe("t1");
    const again = newestListed(first, [run("b", BacktestState.QUEUED, 2)], "t2");
    expect(again.olderPage).toBe("t1");
    expect([...again.runs.keys()]).toEqual(["backtests/a", "backtests/b"]);
    const older = olderListed(again, [run("z", BacktestState.SUCCEEDED, 0)], "");
    expect(older.olderPage).toBe("");
    expect(older.runs.size).toBe(3);
  });

  it("lists runs newest first and replaces a run that changed", () => {
    let state = newestListed(
      initialRuns(),
      [run("old", BacktestState.SUCCEEDED, 10), run("new", BacktestState.RUNNING, 20)],
      "",
    );
    state = runUpdated(state, run("old", BacktestState.FAILED, 10));
    expect(newestFirst(state.runs).map((r) => [r.name, r.state])).toEqual([
      ["backtests/new", BacktestState.RUNNING],
      ["backtests/old", BacktestState.FAILED],
    ]);
  });

  it("watches at most `max` unfinished runs and polls the others", () => {
    const state = newestListed(
      initialRuns(),
      [
        run("a", BacktestState.RUNNING, 1),
        run("b", BacktestState.QUEUED, 2),
        run("c", BacktestState.SUCCEEDED, 3),
        run("d", BacktestState.RUNNING, 4),
      ],
      "",
    );
    expect(runsToWatch(state.runs, new Set(), 2)).toEqual(["backtests/a", "backtests/b"]);
    const watching = new Set(["backtests/a", "backtests/b"]);
    expect(runsToWatch(state.runs, watching, 2)).toEqual([]);
    expect(needsPolling(state.runs, watching)).toBe(true);
    watching.add("backtests/d");
    expect(needsPolling(state.runs, watching)).toBe(false);
  });

  it("names datasets by their display name once the catalog is in", () => {
    const datasets = [create(DatasetSchema, { name: "datasets/abc", displayName: "BTC ticks" })];
    const state = catalogLoaded(initialRuns(), datasets, []);
    expect(datasetLabel(state, "datasets/abc")).toBe("BTC ticks");
    expect(datasetLabel(state, "datasets/0123456789abcdef")).toBe("01234567");
  });
});

describe("sweep state", () => {
  const result = (id: string, state: BacktestState) =>
    create(SweepResultSchema, { backtest: `backtests/${id}`, state });

  it("replaces a streamed result and counts the finished runs", () => {
    const sweep = create(SweepSchema, {
      name: "sweeps/s",
      totalRuns: 2,
      results: [result("a", BacktestState.RUNNING), result("b", BacktestState.QUEUED)],
    });
    let state = sweepOpened(sweepsListed(initialRuns(), [sweep]), sweep);
    state = sweepResultArrived(state, result("a", BacktestState.SUCCEEDED));
    expect(state.sweep?.finishedRuns).toBe(1);
    // The sweep's button in the list counts it too.
    expect(state.sweeps[0]?.finishedRuns).toBe(1);
    expect(state.sweep?.results.map((r) => r.backtest)).toEqual(["backtests/b", "backtests/a"]);
    expect(sweepResultArrived(initialRuns(), result("a", BacktestState.FAILED)).sweep).toBeNull();
  });

  it("sorts by a column descending first, then flips", () => {
    let state = sweepSortedBy(initialRuns(), "sharpe");
    expect(state.sweepSort).toEqual({ key: "sharpe", direction: "desc" });
    state = sweepSortedBy(state, "sharpe");
    expect(state.sweepSort).toEqual({ key: "sharpe", direction: "asc" });
    expect(sweepSortedBy(state, "rank").sweepSort).toEqual({ key: "rank", direction: "desc" });
  });
});

describe("walk-forward state", () => {
  it("shows the open walk-forward's newer state in its row of the list", () => {
    const walk = (id: string, state: WalkForwardState) =>
      create(WalkForwardSchema, { name: `walkForwards/${id}`, state });
    const listed = walkForwardsListed(initialRuns(), [
      walk("b", WalkForwardState.RUNNING),
      walk("a", WalkForwardState.RUNNING),
    ]);
    const state = walkForwardOpened(listed, walk("a", WalkForwardState.SUCCEEDED));
    expect(state.walkForward?.state).toBe(WalkForwardState.SUCCEEDED);
    expect(state.walkForwards.map((w) => [w.name, w.state])).toEqual([
      ["walkForwards/b", WalkForwardState.RUNNING],
      ["walkForwards/a", WalkForwardState.SUCCEEDED],
    ]);
  });
});

describe("runs table rows", () => {
  function described(
    id: string,
    state: BacktestState,
    created: number,
    strategy: string,
    ret: number,
  ) {
    return create(BacktestSchema, {
      name: `backtests/${id}`,
      state,
      createTime: { seconds: BigInt(created), nanos: 0 },
      spec: { strategy: `strategies/${strategy}`, dataset: `datasets/${strategy}-data` },
      stats: state === BacktestState.SUCCEEDED ? { totalReturn: ret } : undefined,
    });
  }
  const runs = [
    described("a", BacktestState.SUCCEEDED, 1, "ema", 0.1),
    described("b", BacktestState.RUNNING, 2, "rsi", 0),
    described("c", BacktestState.SUCCEEDED, 3, "ema", -0.2),
  ];
  const state = newestListed(initialRuns(), runs, "");
  const ids = (s: typeof state) => runRows(s).map((r) => r.name.slice(-1));

  it("lists the newest first, then sorts by a column both ways, blanks last", () => {
    expect(ids(state)).toEqual(["c", "b", "a"]);
    const byReturn = runsSortedBy(state, "return");
    expect(ids(byReturn)).toEqual(["a", "c", "b"]);
    expect(ids(runsSortedBy(byReturn, "return"))).toEqual(["c", "a", "b"]);
  });

  it("filters by strategy, dataset and state", () => {
    expect(ids(runsFiltered(state, { strategy: "strategies/ema" }))).toEqual(["c", "a"]);
    expect(ids(runsFiltered(state, { dataset: "datasets/rsi-data" }))).toEqual(["b"]);
    expect(ids(runsFiltered(state, { state: "running" }))).toEqual(["b"]);
    const none = runsFiltered(state, { strategy: "strategies/ema", state: "running" });
    expect(ids(none)).toEqual([]);
  });
});

describe("a sweep's progress and analysis", () => {
  const scored = (id: string, ret: number | null) =>
    create(SweepResultSchema, {
      backtest: `backtests/${id}`,
      state: ret === null ? BacktestState.FAILED : BacktestState.SUCCEEDED,
      stats: ret === null ? undefined : { totalReturn: ret },
    });
  const sweep = create(SweepSchema, {
    name: "sweeps/s",
    metric: RankMetric.TOTAL_RETURN,
    totalRuns: 3,
  });

  it("appends the best value so far after each trial, and starts again when reopened", () => {
    let state = sweepLoaded(initialRuns(), sweep);
    expect(state.analysisMetric).toBe(RankMetric.TOTAL_RETURN);
    state = trialFinished(state, scored("a", null), scored("a", null));
    state = trialFinished(state, scored("b", 0.02), scored("b", 0.02));
    state = trialFinished(state, scored("c", 0.01), scored("b", 0.02));
    expect(state.bestSoFar).toEqual([null, 0.02, 0.02]);
    expect(state.sweep?.finishedRuns).toBe(3);
    expect(sweepLoaded(state, sweep).bestSoFar).toEqual([]);
  });

  it("keeps an analysis only of the open sweep and the chosen metric", () => {
    let state = sweepLoaded(initialRuns(), sweep);
    const analysis = create(AnalyzeSweepResponseSchema, { metric: RankMetric.TOTAL_RETURN });
    expect(sweepAnalyzed(state, "sweeps/other", analysis).analysis).toBeNull();
    state = sweepAnalyzed(state, "sweeps/s", analysis);
    expect(state.analysis).toBe(analysis);
    state = analysisMetricChosen(state, RankMetric.MAX_DRAWDOWN);
    expect(sweepAnalyzed(state, "sweeps/s", analysis).analysis).toBe(analysis);
    const stale = create(AnalyzeSweepResponseSchema, { metric: RankMetric.SHARPE_RATIO });
    expect(sweepAnalyzed(state, "sweeps/s", stale).analysis).toBe(analysis);
  });

  it("spreads out the two parameters chosen, swapping when one is taken by the other axis", () => {
    const three = create(SweepSchema, {
      name: "sweeps/t",
      axes: [{ name: "a" }, { name: "b" }, { name: "c" }],
    });
    let state = sweepLoaded(initialRuns(), three);
    state = heatmapAxisChosen(state, "y", "c");
    expect(state.heatmapAxes).toEqual(["a", "c"]);
    state = heatmapAxisChosen(state, "x", "c");
    expect(state.heatmapAxes).toEqual(["c", "a"]);
    const of = (x: string, y: string) =>
      create(AnalyzeSweepResponseSchema, {
        metric: RankMetric.SHARPE_RATIO,
        heatmap: { xParameter: x, yParameter: y },
      });
    expect(sweepAnalyzed(state, "sweeps/t", of("a", "b")).analysis).toBeNull();
    expect(sweepAnalyzed(state, "sweeps/t", of("c", "a")).analysis).not.toBeNull();
    expect(sweepLoaded(state, three).heatmapAxes).toEqual(["c", "a"]);
  });
});

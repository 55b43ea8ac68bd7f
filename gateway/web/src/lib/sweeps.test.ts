import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BacktestSchema,
  BacktestState,
  BacktestStatsSchema,
  ParameterValueSchema,
  RankMetric,
  ScoredPointSchema,
  SweepHeatmapSchema,
  SearchAlgorithm,
  SearchSpecSchema,
  SweepResultSchema,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import {
  bestSoFarValue,
  curvePoints,
  heatmapGrid,
  liveRanks,
  sortedResults,
  sweepColumns,
  sweepKind,
  withRunStates,
} from "./sweeps";

const result = (fast: number, sharpe: number | null, rank: number) =>
  create(SweepResultSchema, {
    backtest: `backtests/r${fast}`,
    state: sharpe === null ? BacktestState.RUNNING : BacktestState.SUCCEEDED,
    rank,
    parameters: { fast_period: { kind: { case: "intValue", value: BigInt(fast) } } },
    stats:
      sharpe === null
        ? undefined
        : create(BacktestStatsSchema, { sharpeRatio: sharpe, pnl: "12.345" }),
  });

describe("sweep table", () => {
  // The service's ranks (the last argument) are not what the table shows.
  const results = [result(5, 1.5, 1), result(3, null, 1), result(4, 2.25, 2)];
  const columns = sweepColumns(["fast_period"], liveRanks(results, RankMetric.SHARPE_RATIO));

  it("has a column per swept parameter between the rank and the statistics", () => {
    expect(columns.map((c) => c.key).slice(0, 4)).toEqual([
      "rank",
      "p:fast_period",
      "state",
      "return",
    ]);
    const text = (key: string, r = results[0]!) => columns.find((c) => c.key === key)!.text(r);
    expect([
      text("rank"),
      text("p:fast_period"),
      text("state"),
      text("sharpe"),
      text("pnl"),
    ]).toEqual(["2", "5", "succeeded", "1.50", "12.35"]);
    expect(text("sharpe", results[1])).toBe("");
  });

  it("sorts by a parameter or a statistic, runs without statistics last", () => {
    const by = (key: string | null, direction: "asc" | "desc") =>
      sortedResults(results, columns, { key, direction }).map((r) => r.backtest.slice(-2));
    expect(by(null, "desc")).toEqual(["r5", "r3", "r4"]);
    expect(by("p:fast_period", "asc")).toEqual(["r3", "r4", "r5"]);
    expect(by("sharpe", "desc")).toEqual(["r4", "r5", "r3"]);
    expect(by("sharpe", "asc")).toEqual(["r5", "r4", "r3"]);
  });
});

describe("a sweep while it runs", () => {
  it("ranks only the runs that have succeeded, ties sharing a rank, by the sweep's metric", () => {
    const results = [result(1, 0.5, 0), result(2, null, 0), result(3, 2, 0), result(4, 0.5, 0)];
    expect([...liveRanks(results, RankMetric.SHARPE_RATIO)]).toEqual([
      ["backtests/r3", 1],
      ["backtests/r1", 2],
      ["backtests/r4", 2],
    ]);
    const drawdowns = [result(1, 1, 0), result(2, 1, 0)];
    drawdowns[0]!.stats!.maxDrawdown = 0.3;
    drawdowns[1]!.stats!.maxDrawdown = 0.1;
    expect(liveRanks(drawdowns, RankMetric.MAX_DRAWDOWN).get("backtests/r2")).toBe(1);
  });

  it("shows a run's state as the runs list knows it when that is further along", () => {
    const queued = { ...result(1, null, 0), state: BacktestState.QUEUED };
    const running = create(BacktestSchema, {
      name: "backtests/r1",
      state: BacktestState.RUNNING,
    });
    const [shown] = withRunStates([queued], new Map([[running.name, running]]));
    expect(shown!.state).toBe(BacktestState.RUNNING);
    const done = result(2, 1, 0);
    const stale = create(BacktestSchema, { name: "backtests/r2", state: BacktestState.QUEUED });
    expect(withRunStates([done], new Map([[stale.name, stale]]))[0]).toBe(done);
  });
});

describe("sweep heatmap", () => {
  const point = (backtest: string, value?: number, neighbourhoodScore?: number, rank = 0) =>
    create(ScoredPointSchema, {
      backtest,
      value,
      neighbourhoodScore,
      rank,
      neighbourhoodRank: rank,
    });
  const int = (v: number) =>
    create(ParameterValueSchema, { kind: { case: "intValue", value: BigInt(v) } });
  const map = create(SweepHeatmapSchema, {
    xParameter: "fast_period",
    xValues: [int(5), int(10)],
    yParameter: "slow_period",
    yValues: [int(20), int(30)],
    cells: [
      { xIndex: 0, yIndex: 0, point: point("backtests/a", 0, 0.5, 2) },
      { xIndex: 1, yIndex: 0, point: point("backtests/b") },
      { xIndex: 0, yIndex: 1, point: point("backtests/c", -1, 0, 3) },
      { xIndex: 1, yIndex: 1, point: point("backtests/d", 1, 0.25, 1) },
    ],
  });

  it("lays AnalyzeSweep's matrix out by row, shaded best to worst, a missing value unshaded", () => {
    const grid = heatmapGrid(map, RankMetric.SHARPE_RATIO, "value")!;
    expect([grid.x, grid.y, grid.xs, grid.ys]).toEqual([
      "fast_period",
      "slow_period",
      ["5", "10"],
      ["20", "30"],
    ]);
    expect(grid.cells.map((row) => row.map((cell) => cell?.shade ?? null))).toEqual([
      [0.5, null],
      [0, 1],
    ]);
    expect(grid.cells[1]![1]).toEqual({
      backtest: "backtests/d",
      value: 1,
      text: "1.00",
      rank: 1,
      shade: 1,
    });
    expect(grid.cells[0]![1]!.text).toBe("");
  });

  it("shows the neighbourhood score, shades lower-is-better the other way, needs a y axis", () => {
    const plateau = heatmapGrid(map, RankMetric.SHARPE_RATIO, "neighbourhood")!;
    expect(plateau.cells[0]![0]!.value).toBe(0.5);
    expect(plateau.cells[0]![0]!.shade).toBe(1);
    const drawdown = heatmapGrid(map, RankMetric.MAX_DRAWDOWN, "value")!;
    expect(drawdown.cells[1]![1]!.shade).toBe(0);
    expect(drawdown.cells[1]![1]!.text).toBe("100.00%");
    expect(heatmapGrid({ ...map, yParameter: "" }, RankMetric.SHARPE_RATIO, "value")).toBeNull();
  });
});

describe("a search's progress", () => {
  it("is the best result's metric after each trial, null before any trial has a value", () => {
    const failed = create(SweepResultSchema, { state: BacktestState.FAILED });
    expect(bestSoFarValue(undefined, RankMetric.SHARPE_RATIO)).toBeNull();
    expect(bestSoFarValue(failed, RankMetric.SHARPE_RATIO)).toBeNull();
    expect(bestSoFarValue(result(1, 2.5, 1), RankMetric.SHARPE_RATIO)).toBe(2.5);
  });

  it("draws trial i at x = i step, the best at the top, skipping trials without a value", () => {
    expect(curvePoints([null, 1, 3], 100, 10)).toEqual([
      { trial: 2, x: 50, y: 10 },
      { trial: 3, x: 100, y: 0 },
    ]);
    expect(curvePoints([2], 100, 10)).toEqual([{ trial: 1, x: 0, y: 5 }]);
    // Two trials of a budget of five: the first two fifths of the box.
    expect(curvePoints([1, 2], 100, 10, 5).map((p) => p.x)).toEqual([0, 25]);
  });
});

describe("a sweep's kind", () => {
  it("names the grid, or the sampler with its budget and NSGA-II's objectives", () => {
    expect(sweepKind(undefined)).toBe("grid");
    const tpe = create(SearchSpecSchema, { algorithm: SearchAlgorithm.TPE, trialBudget: 30 });
    expect(sweepKind(tpe)).toBe("TPE search, budget 30");
    const nsga2 = create(SearchSpecSchema, {
      algorithm: SearchAlgorithm.NSGA2,
      trialBudget: 8,
      objectives: [RankMetric.SHARPE_RATIO, RankMetric.MAX_DRAWDOWN],
    });
    expect(sweepKind(nsga2)).toBe("NSGA-II search of sharpe ratio against max drawdown, budget 8");
  });
});

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BacktestSchema,
  BacktestState,
  BacktestStatsSchema,
  RankMetric,
  SweepResultSchema,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { liveRanks, sortedResults, sweepColumns, sweepHeatmap, withRunStates } from "./sweeps";

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
  const point = (fast: number, slow: number, sharpe: number | null) =>
    create(SweepResultSchema, {
      backtest: `backtests/f${fast}s${slow}`,
      state: sharpe === null ? BacktestState.RUNNING : BacktestState.SUCCEEDED,
      parameters: {
        fast_period: { kind: { case: "intValue", value: BigInt(fast) } },
        slow_period: { kind: { case: "intValue", value: BigInt(slow) } },
      },
      stats: sharpe === null ? undefined : create(BacktestStatsSchema, { sharpeRatio: sharpe }),
    });
  const results = [point(10, 30, 1), point(5, 30, -1), point(5, 20, 0), point(10, 20, null)];

  it("lays a two-parameter sweep out on a grid, in numeric order, shaded best to worst", () => {
    const map = sweepHeatmap(["fast_period", "slow_period"], results, "sharpe")!;
    expect([map.x, map.y, map.xs, map.ys]).toEqual([
      "fast_period",
      "slow_period",
      ["5", "10"],
      ["20", "30"],
    ]);
    const shades = map.cells.map((row) => row.map((cell) => cell?.shade ?? null));
    expect(shades).toEqual([
      [0.5, null],
      [0, 1],
    ]);
    expect(map.cells[1]![1]).toEqual({
      backtest: "backtests/f10s30",
      text: "1.00",
      shade: 1,
      succeeded: true,
    });
    expect(map.cells[0]![1]!.succeeded).toBe(false);
  });

  it("shades lower-is-better metrics the other way, and needs exactly two axes", () => {
    const drawdown = [point(5, 20, 1), point(10, 20, 1)];
    drawdown[0]!.stats!.maxDrawdown = 0.1;
    drawdown[1]!.stats!.maxDrawdown = 0.3;
    const map = sweepHeatmap(["fast_period", "slow_period"], drawdown, "dd")!;
    expect(map.cells[0]!.map((cell) => cell?.shade)).toEqual([1, 0]);
    expect(sweepHeatmap(["fast_period"], results, "sharpe")).toBeNull();
  });
});

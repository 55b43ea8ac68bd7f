import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BacktestSchema,
  BacktestState,
  BacktestStatsSchema,
  RankMetric,
  SweepResultSchema,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { liveRanks, sortedResults, sweepColumns, withRunStates } from "./sweeps";

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

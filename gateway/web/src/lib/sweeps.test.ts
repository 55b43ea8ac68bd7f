import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BacktestState,
  BacktestStatsSchema,
  SweepResultSchema,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { sortedResults, sweepColumns } from "./sweeps";

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
  const columns = sweepColumns(["fast_period"]);
  const results = [result(5, 1.5, 2), result(3, null, 0), result(4, 2.25, 1)];

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

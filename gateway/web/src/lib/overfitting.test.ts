import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { OverfittingOddsSchema } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { overfittingFigures } from "./overfitting";

describe("overfitting figures", () => {
  it("shows every figure AnalyzeSweep returns, each with a one-line meaning", () => {
    const odds = create(OverfittingOddsSchema, {
      period: "HOUR",
      observations: 120,
      bestSharpeRatio: 0.1234,
      trials: 9,
      sharpeRatioVariance: 0.00123,
      expectedMaxSharpeRatio: 0.0567,
      deflatedSharpeRatio: 0.9512,
      probabilityOfBacktestOverfitting: 0.25,
      cscvSplits: 16,
      cscvCombinations: 12870,
    });
    const figures = overfittingFigures(odds);
    expect(figures.map((f) => [f.key, f.text])).toEqual([
      ["dsr", "95.1%"],
      ["pbo", "25.0%"],
      ["best", "0.123"],
      ["expected", "0.057"],
      ["trials", "9"],
      ["variance", "0.0012"],
      ["observations", "120 hour returns"],
      ["cscv", "16 blocks, 12870 combinations"],
    ]);
    for (const figure of figures) expect(figure.meaning).toMatch(/^[^\n]+\.$/);
    expect(figures[2]!.label).toBe("Best Sharpe ratio (per hour)");
  });

  it("shows an undefined figure as a dash", () => {
    const figures = overfittingFigures(create(OverfittingOddsSchema, { period: "DAY" }));
    expect(figures.slice(0, 2).map((f) => f.text)).toEqual(["—", "—"]);
  });
});

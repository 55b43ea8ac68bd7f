import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BacktestStatsSchema } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { statsRows } from "./stats";

describe("run statistics", () => {
  it("shows the daily figures with their annualisation", () => {
    const rows = new Map(
      statsRows(
        create(BacktestStatsSchema, {
          pnl: "10",
          fees: "1",
          periodsPerYear: 365,
          dailyFiguresAvailable: true,
          sharpeRatio: 1.234,
          cagr: 0.5,
          maxDrawdownDuration: { seconds: 7200n, nanos: 0 },
          averageHoldingTime: { seconds: 90n, nanos: 0 },
        }),
      ),
    );
    expect(rows.get("Sharpe (365 d/yr)")).toBe("1.23");
    expect(rows.get("CAGR")).toBe("50.00%");
    expect(rows.get("Drawdown duration")).toBe("2 h 0 min");
    expect(rows.get("Avg holding")).toBe("1 min 30 s");
  });

  it("says n/a for daily figures of a run too short for them", () => {
    const rows = new Map(
      statsRows(create(BacktestStatsSchema, { pnl: "0", fees: "0", sharpeRatio: Number.NaN })),
    );
    expect(rows.get("Sharpe")).toBe("n/a");
    expect(rows.get("Calmar")).toBe("n/a");
    expect(rows.get("Avg holding")).toBe("—");
  });
});

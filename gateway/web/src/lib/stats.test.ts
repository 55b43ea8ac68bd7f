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
    expect(rows.get("Avg holding")).toBe("n/a");
  });

  it("shows every figure GetBacktest returns, each labelled once", () => {
    const rows = statsRows(
      create(BacktestStatsSchema, {
        pnl: "1234.5",
        fees: "0.123",
        startingEquity: "100000",
        endingEquity: "101234.5",
        totalReturn: 0.012345,
        maxDrawdown: 0.0321,
        exposure: 0.5,
        tradeCount: 1234n,
        fillCount: 2468n,
        runSeconds: 3.456,
        dailyReturnCount: 3,
        winRate: Number.NaN,
        profitFactor: Number.NaN,
      }),
    );
    const shown = new Map(rows);
    expect(shown.size).toBe(rows.length);
    // Every field of BacktestStats but the ones folded into another row's label or value.
    const folded = ["periodsPerYear", "dailyFiguresAvailable"];
    const fields = BacktestStatsSchema.fields.filter((f) => !folded.includes(f.localName));
    expect(rows).toHaveLength(fields.length);
    expect(shown.get("PnL")).toBe("1,234.50");
    expect(shown.get("Starting equity")).toBe("100,000.00");
    expect(shown.get("Ending equity")).toBe("101,234.50");
    expect(shown.get("Return")).toBe("1.23%");
    expect(shown.get("Max drawdown")).toBe("3.21%");
    expect(shown.get("Exposure")).toBe("50.00%");
    expect(shown.get("Trades")).toBe("1,234");
    expect(shown.get("Fills")).toBe("2,468");
    expect(shown.get("Daily returns")).toBe("3");
    expect(shown.get("Engine time")).toBe("3.46 s");
    expect(shown.get("Fees")).toBe("0.12");
    expect(shown.get("Win rate")).toBe("n/a");
    expect(shown.get("Profit factor")).toBe("n/a");
    expect(shown.get("Drawdown duration")).toBe("n/a");
  });
});

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TradeSchema, TradeSide } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { PageTokens, TRADE_COLUMNS, tradeReturn, tradeRow } from "./trades";

const trade = create(TradeSchema, {
  tradeId: "P-1#2",
  side: TradeSide.SHORT,
  quantity: "0.5",
  entryTime: { seconds: 1_767_225_600n, nanos: 0 },
  exitTime: { seconds: 1_767_229_230n, nanos: 0 },
  averageEntryPrice: "43210.5",
  averageExitPrice: "43000.123456",
  realizedPnl: "-1234.5678",
  holdingTime: { seconds: 3630n, nanos: 0 },
  mae: 1500.256,
  mfe: 12.5,
});

describe("trades table rows", () => {
  it("formats every column at the instrument's precision and the app's styles", () => {
    const row = tradeRow(trade, { price: 2, size: 6, quote: "USDT" });
    const cells = new Map(TRADE_COLUMNS.map(([title], i) => [title, row.cells[i]]));
    expect(row.cells).toHaveLength(TRADE_COLUMNS.length);
    expect(cells.get("Entry")).toBe("2026-01-01 00:00:00 UTC");
    expect(cells.get("Exit")).toBe("2026-01-01 01:00:30 UTC");
    expect(cells.get("Side")).toBe("Short");
    expect(cells.get("Quantity")).toBe("0.5");
    expect(cells.get("Entry price")).toBe("43,210.50");
    expect(cells.get("Exit price")).toBe("43,000.12");
    expect(cells.get("PnL")).toBe("-1,234.57");
    expect(cells.get("Return")).toBe("-5.71%");
    expect(cells.get("MAE")).toBe("1,500.26");
    expect(cells.get("MFE")).toBe("12.50");
    expect(cells.get("Duration")).toBe("1 h 1 min");
    expect(row.entry).toBe(1_767_225_600);
    expect(row.pnlSign).toBe(-1);
    expect(row.id).toBe("P-1#2");
  });

  it("has no return without an entry notional", () => {
    expect(tradeReturn(create(TradeSchema, { realizedPnl: "1", quantity: "0" }))).toBeNaN();
  });
});

describe("page tokens", () => {
  it("goes forward with the next token and back to the tokens seen", () => {
    const pages = new PageTokens();
    expect(pages.current).toBe("");
    pages.arrived("b");
    expect(pages.hasNext).toBe(true);
    expect(pages.hasPrevious).toBe(false);
    expect(pages.forward()).toBe("b");
    pages.arrived("");
    expect(pages.page).toBe(2);
    expect(pages.hasNext).toBe(false);
    expect(pages.forward()).toBe("b");
    expect(pages.back()).toBe("");
    expect(pages.back()).toBe("");
    expect(pages.page).toBe(1);
  });
});

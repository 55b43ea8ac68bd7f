import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DriftSummarySchema } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { MoneySchema } from "../gen/tapedeck/common/v1/common_pb";
import { EventSchema, EventType, EventTypeCountSchema } from "../gen/tapedeck/live/v1/live_pb";
import {
  driftProblem,
  fillMarks,
  fillOf,
  fillsOf,
  moneyText,
  parseGap,
  priceDigits,
  priceLine,
  signedDuration,
  typeCountsText,
  waterfall,
} from "./sessions";
import { secondsToTimestamp } from "./time";

function filled(sequence: number, seconds: number, side: string, price: string, extra = {}) {
  return create(EventSchema, {
    sequence: BigInt(sequence),
    type: EventType.ORDER_FILLED,
    time: secondsToTimestamp(seconds),
    payload: {
      side,
      quantity: "0.5",
      price,
      commission: { amount: "0.021", currency: "USDT" },
      position_id: "BTCUSDT.BINANCE-EMA-000",
      ...extra,
    },
  });
}

describe("session fills", () => {
  it("reads a fill as the bridge sends it", () => {
    expect(fillOf(filled(7, 100.25, "BUY", "42000.10"))).toEqual({
      sequence: 7n,
      time: 100.25,
      side: "buy",
      quantity: "0.5",
      price: "42000.10",
      commission: "0.021",
      currency: "USDT",
      positionId: "BTCUSDT.BINANCE-EMA-000",
    });
  });
  it("skips events that are not fills or lack a side or a price", () => {
    const closed = create(EventSchema, {
      type: EventType.POSITION_CLOSED,
      time: secondsToTimestamp(1),
      payload: { side: "FLAT", price: "1" },
    });
    expect(fillOf(closed)).toBeNull();
    expect(fillOf(filled(1, 1, "FLAT", "1"))).toBeNull();
    expect(fillOf(filled(1, 1, "BUY", ""))).toBeNull();
    expect(fillOf(filled(1, 1, "BUY", "abc"))).toBeNull();
    expect(fillOf(filled(1, 1, "SELL", "2", { commission: null }))?.commission).toBe("");
  });
  it("orders fills oldest first, by time then by sequence", () => {
    const events = [
      filled(3, 20, "SELL", "2"),
      filled(2, 10, "BUY", "1"),
      filled(1, 20, "BUY", "3"),
    ];
    expect(fillsOf(events).map((f) => f.sequence)).toEqual([2n, 1n, 3n]);
  });
  it("draws one point per second at its last price, and one marker per fill", () => {
    const fills = fillsOf([
      filled(1, 10.2, "BUY", "100"),
      filled(2, 10.7, "SELL", "101.5"),
      filled(3, 12, "BUY", "1234.5"),
    ]);
    expect(priceLine(fills)).toEqual([
      { time: 10, value: 101.5 },
      { time: 12, value: 1234.5 },
    ]);
    expect(fillMarks(fills)).toEqual([
      { time: 10, side: "buy", text: "B 0.5 @ 100" },
      { time: 10, side: "sell", text: "S 0.5 @ 101.5" },
      { time: 12, side: "buy", text: "B 0.5 @ 1,234.5" },
    ]);
  });
});

describe("price axis", () => {
  it("quotes prices as filled, up to eight significant figures", () => {
    const at = (...prices: string[]) =>
      priceDigits(fillsOf(prices.map((p, i) => filled(i, i, "BUY", p))));
    expect(at("42000.1", "42000.25")).toBe(2);
    expect(at("40675.619912229996")).toBe(3);
    expect(at("0.00012345", "0.0001")).toBe(7);
    expect(at("105", "104")).toBe(0);
  });
});

describe("session figures", () => {
  it("shows PnL per currency and counts per type", () => {
    const pnl = [
      create(MoneySchema, { currency: "USDT", amount: "1234.5" }),
      create(MoneySchema, { currency: "BTC", amount: "-0.5" }),
    ];
    expect(moneyText(pnl)).toBe("1,234.50 USDT · -0.50 BTC");
    expect(moneyText([])).toBe("—");
    const counts = [
      create(EventTypeCountSchema, { type: EventType.ORDER_FILLED, count: 12n }),
      create(EventTypeCountSchema, { type: EventType.POSITION_CLOSED, count: 6n }),
    ];
    expect(typeCountsText(counts)).toBe("order_filled 12 · position_closed 6");
  });
  it("signs delays: live later is positive", () => {
    expect(signedDuration({ seconds: 90n, nanos: 0 })).toBe("+1 min 30 s");
    expect(signedDuration({ seconds: -3n, nanos: 0 })).toBe("-3 s");
    expect(signedDuration({ seconds: 0n, nanos: 0 })).toBe("0 s");
    expect(signedDuration(undefined)).toBe("—");
  });
  it("takes a max entry gap in whole seconds, empty for the default", () => {
    expect(parseGap(" ")).toEqual({ seconds: null });
    expect(parseGap("300")).toEqual({ seconds: 300 });
    expect(parseGap("0")).toHaveProperty("error");
    expect(parseGap("1.5")).toHaveProperty("error");
    expect(parseGap("x")).toHaveProperty("error");
    expect(parseGap(String(31 * 86400))).toHaveProperty("error");
  });
});

describe("drift", () => {
  it("walks from the backtest's PnL through each cause to live's", () => {
    const summary = create(DriftSummarySchema, {
      backtestPnl: "100",
      livePnl: "40",
      pnlGap: "-60",
      missingTrades: "-50",
      slippage: "-15",
      fees: "-1",
      other: "6",
    });
    const { steps, min, max } = waterfall(summary);
    expect(steps.map((s) => [s.key, s.from, s.to, s.total])).toEqual([
      ["backtest", 0, 100, true],
      ["missing", 100, 50, false],
      ["slippage", 50, 35, false],
      ["fees", 35, 34, false],
      ["other", 34, 40, false],
      ["live", 0, 40, true],
    ]);
    expect([min, max]).toEqual([0, 100]);
  });
  it("includes losses below zero in the scale", () => {
    const summary = create(DriftSummarySchema, {
      backtestPnl: "10",
      livePnl: "-20",
      missingTrades: "-30",
      slippage: "0",
      fees: "0",
      other: "0",
    });
    expect(waterfall(summary)).toMatchObject({ min: -20, max: 10 });
  });
  it("says why a comparison could not be made", () => {
    const running = new ConnectError("the run has not succeeded", Code.FailedPrecondition);
    expect(driftProblem(running)).toBe("Cannot compare: the run has not succeeded");
    const unknown = new ConnectError("no session NOBODY:1", Code.NotFound);
    expect(driftProblem(unknown)).toBe("Not found: no session NOBODY:1");
  });
});

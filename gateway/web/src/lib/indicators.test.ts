import { describe, expect, it } from "vitest";
import { Indicator } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { legendBar, legendItems, readToggles, toggleParams } from "./indicators";
import { appendChunk, emptyColumns } from "./series";

describe("indicator toggles", () => {
  it("round-trip through the URL", () => {
    const toggles = readToggles(new URLSearchParams("overlays=ema20,bb&panes=atr,nonsense"));
    expect(toggleParams(toggles)).toEqual({ overlays: "ema20,bb", panes: "atr" });
  });
});

describe("legend", () => {
  const data = emptyColumns();
  appendChunk(data, {
    times: [0n, 60_000_000_000n],
    open: [10, 11],
    high: [12, 13],
    low: [9, 10],
    close: [11, 12.5],
    volume: [100, 200],
    indicators: [{ indicator: Indicator.SMA_20, values: [NaN, 11.25] }],
  });

  it("shows the bar under the pointer with the overlays that are on, in their colours", () => {
    const toggles = readToggles(new URLSearchParams("overlays=sma20"));
    const items = legendItems(data, 30, toggles);
    expect(items.map((i) => [i.label, i.value])).toEqual([
      ["", "1970-01-01 00:00 UTC"],
      ["O", "10.00"],
      ["H", "12.00"],
      ["L", "9.00"],
      ["C", "11.00"],
      ["V", "100.0000"],
      ["sma 20", "—"],
    ]);
    expect(items.at(-1)?.color).toBe("#f5a623");
  });

  it("shows the last bar when nothing is hovered, and nothing without bars", () => {
    const toggles = readToggles(new URLSearchParams("overlays="));
    // At the instrument's precision, with thousands separators.
    const precision = { price: 1, size: 0, quote: "USD" };
    expect(legendItems(data, null, toggles, precision).map((i) => i.value)).toEqual([
      "1970-01-01 00:01 UTC",
      "11.0",
      "13.0",
      "10.0",
      "12.5",
      "200",
    ]);
    expect(legendItems(emptyColumns(), null, toggles)).toEqual([]);
  });

  it("names the bar it shows: its open and its width", () => {
    expect(legendBar(data, 60)).toEqual({ time: 60, width: 0 });
    expect(legendBar(data, 59)).toEqual({ time: 0, width: 60 });
    expect(legendBar(emptyColumns(), 5)).toBeNull();
  });
});

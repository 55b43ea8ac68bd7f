import { describe, expect, it } from "vitest";
import {
  advanceCursor,
  alignWindow,
  appendChunk,
  bucketIndex,
  emptyColumns,
  fillMarkers,
  planWindow,
  spliceWindow,
  timeToX,
  timeToLogical,
  logicalToTime,
  barsUpTo,
  fillsUpTo,
  type CandleChunkLike,
  type RunSpan,
} from "./series";

const S = 1_000_000_000n;
function chunk(seconds: number[], indicator?: number): CandleChunkLike {
  return {
    times: seconds.map((s) => BigInt(s) * S),
    open: seconds.map((s) => s),
    high: seconds.map((s) => s + 1),
    low: seconds.map((s) => s - 1),
    close: seconds.map((s) => s + 0.5),
    volume: seconds.map(() => 1),
    indicators: indicator === undefined ? [] : [{ indicator, values: seconds.map((s) => s * 10) }],
  };
}
function columns(seconds: number[], indicator?: number) {
  const c = emptyColumns();
  appendChunk(c, chunk(seconds, indicator));
  return c;
}

describe("chunk merging", () => {
  it("appends chunks in order, dropping overlaps, with indicator columns aligned", () => {
    const c = emptyColumns();
    appendChunk(c, chunk([60, 120, 180], 1));
    appendChunk(c, chunk([180, 240], 1));
    expect(c.times).toEqual([60, 120, 180, 240]);
    expect(c.indicators.get(1)).toEqual([600, 1200, 1800, 2400]);
  });
  it("splices a fine window into the overview without gaps or overlaps", () => {
    const overview = columns([0, 100, 200, 300, 400], 1);
    const fine = columns([100, 125, 150, 175, 200, 225, 250, 275, 300]);
    const merged = spliceWindow(overview, fine, 100, 300);
    expect(merged.times).toEqual([0, 100, 125, 150, 175, 200, 225, 250, 275, 300, 400]);
    // The window lacked the indicator: NaN there, values kept outside.
    expect(merged.indicators.get(1)?.[0]).toBe(0);
    expect(Number.isNaN(merged.indicators.get(1)?.[1])).toBe(true);
    expect(merged.indicators.get(1)?.[9]).toBe(3000);
  });
  it("aligns windows to overview buckets", () => {
    expect(alignWindow(130, 260, 0, 100)).toEqual({ from: 100, to: 300 });
    expect(alignWindow(100, 300, 0, 100)).toEqual({ from: 100, to: 300 });
  });
  it("finds the candle containing an instant", () => {
    expect(bucketIndex([0, 60, 120], 59)).toBe(0);
    expect(bucketIndex([0, 60, 120], 60)).toBe(1);
    expect(bucketIndex([0, 60, 120], -1)).toBe(-1);
    expect(bucketIndex([0, 60, 120], 9999)).toBe(2);
  });
});

describe("planWindow", () => {
  // A 1M-minute run, shown on 1200 px: the overview has 2000 candles of 500 minutes.
  const run: RunSpan = { start: 0, end: 60_000_000, overviewBucket: 30_000, sourceBucket: 60 };
  it("keeps the overview when zoomed out", () => {
    expect(planWindow({ from: 0, to: 60_000_000, widthPx: 1200 }, run, null)).toEqual({
      kind: "overview",
    });
  });
  it("fetches a window sized to the viewport when zoomed in", () => {
    const plan = planWindow({ from: 30_000_000, to: 30_012_000, widthPx: 1200 }, run, null);
    expect(plan.kind).toBe("fetch");
    if (plan.kind !== "fetch") return;
    // 200 minutes on screen, at most 200 bars across 1200 px: 1-minute candles, three screens.
    expect(plan.from).toBe(29_970_000);
    expect(plan.to).toBe(30_030_000);
    expect(plan.maxCandles).toBeLessThanOrEqual(600);
    expect(plan.maxCandles).toBeGreaterThanOrEqual(200);
  });
  it("never asks for more candles than three screens hold", () => {
    for (const span of [1e3, 1e4, 1e5, 1e6, 1e7]) {
      const plan = planWindow({ from: 1_000_000, to: 1_000_000 + span, widthPx: 800 }, run, null);
      if (plan.kind === "fetch")
        expect(plan.maxCandles).toBeLessThanOrEqual(3 * Math.floor(800 / 6));
    }
  });
  it("keeps a window that still covers the screen at the right resolution", () => {
    const loaded = { from: 29_970_000, to: 30_030_000, bucket: 60 };
    expect(planWindow({ from: 30_001_000, to: 30_013_000, widthPx: 1200 }, run, loaded)).toEqual({
      kind: "keep",
    });
    expect(planWindow({ from: 30_025_000, to: 30_037_000, widthPx: 1200 }, run, loaded).kind).toBe(
      "fetch",
    );
    // Zoomed out 10x: the 1-minute window is now too fine.
    expect(planWindow({ from: 29_900_000, to: 30_020_000, widthPx: 1200 }, run, loaded).kind).toBe(
      "fetch",
    );
  });
});

describe("playback helpers", () => {
  it("places an instant in pixels on the visible range", () => {
    const times = [0, 60, 120, 180];
    // Bars 0..3 centred at logical 0..3, visible -0.5..3.5 over 400 px: 100 px per bar.
    expect(timeToX(times, 60, { from: -0.5, to: 3.5 }, 400)).toBe(100);
    expect(timeToX(times, 90, { from: -0.5, to: 3.5 }, 400)).toBe(150);
    expect(timeToX(times, 200, { from: -0.5, to: 3.5 }, 400, 60)).toBeCloseTo(333.33, 1);
    expect(timeToX(times, -1, { from: -0.5, to: 3.5 }, 400)).toBeNull();
  });
  it("maps times to logical indexes and back, beyond the bars too", () => {
    const times = [0, 60, 180];
    expect(timeToLogical(times, 0)).toBe(-0.5);
    expect(timeToLogical(times, 30)).toBe(0);
    expect(timeToLogical(times, 120)).toBe(1); // the middle of a 2-minute bar
    expect(timeToLogical(times, 240)).toBe(2.5); // the end of the last bar
    expect(timeToLogical(times, 300)).toBe(3.5);
    expect(timeToLogical(times, -60)).toBe(-1.5);
    for (const time of [-90, 0, 45, 100, 179, 200, 400])
      expect(logicalToTime(times, timeToLogical(times, time))).toBeCloseTo(time, 9);
    // A prefix of the bars puts the times it holds at the same logical indexes.
    expect(timeToLogical(times.slice(0, 2), 30)).toBe(timeToLogical(times, 30));
  });
  it("counts the bars and fills a replay has reached", () => {
    const times = [0, 60, 120];
    expect(barsUpTo(times, null)).toBe(0);
    expect(barsUpTo(times, -1)).toBe(0);
    expect(barsUpTo(times, 0)).toBe(1);
    expect(barsUpTo(times, 119)).toBe(2);
    expect(barsUpTo(times, 500)).toBe(3);
    // At epoch seconds too: a bar's own time is in that bar.
    expect(barsUpTo([1_704_066_000, 1_704_070_200], 1_704_066_000)).toBe(1);
    expect(timeToLogical([1_704_066_000, 1_704_070_200], 1_704_070_200)).toBe(0.5);
    const fills = [10, 60, 60, 90].map((time) => ({
      time,
      side: "buy" as const,
      quantity: "1",
      price: "1",
    }));
    expect(fillsUpTo(fills, 59)).toBe(1);
    expect(fillsUpTo(fills, 60)).toBe(3);
    expect(fillsUpTo(fills, null)).toBe(0);
  });
  it("advances the cursor at the chosen speed and stops at the end", () => {
    expect(advanceCursor(1000, 500, 60, 10_000)).toBe(1030);
    expect(advanceCursor(9990, 1000, 3600, 10_000)).toBe(10_000);
  });
  it("puts one marker per candle and side", () => {
    const markers = fillMarkers(
      [
        { time: 61, side: "buy", quantity: "1", price: "100" },
        { time: 62, side: "buy", quantity: "2", price: "101" },
        { time: 130, side: "sell", quantity: "3", price: "99" },
        { time: -5, side: "sell", quantity: "3", price: "99" },
      ],
      [0, 60, 120],
    );
    expect(markers).toEqual([
      { time: 60, side: "buy", count: 2, text: "B ×2" },
      { time: 120, side: "sell", count: 1, text: "S 3 @ 99" },
    ]);
  });
});

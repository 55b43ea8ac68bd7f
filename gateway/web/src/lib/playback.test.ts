import { describe, expect, it } from "vitest";
import {
  advance,
  backToOverview,
  compareLoaded,
  compareProblem,
  equityOverviewLoaded,
  equityWindowLoaded,
  initialPlayback,
  moveCursor,
  overviewArriving,
  overviewLoaded,
  pause,
  play,
  rangeFollowing,
  openingCursor,
  openingView,
  OPENING_BARS,
  setMode,
  overviewReplaced,
  timeframeChosen,
  timeframeFits,
  runUnfinished,
  setSpeed,
  stepCursor,
  toggleOverlay,
  togglePane,
  windowLoaded,
  type PlaybackState,
} from "./playback";
import { appendChunk, emptyColumns, type CandleColumns } from "./series";

function columns(seconds: number[]): CandleColumns {
  const c = emptyColumns();
  appendChunk(c, {
    times: seconds.map((s) => BigInt(s) * 1_000_000_000n),
    open: seconds.map(() => 1),
    high: seconds.map(() => 2),
    low: seconds.map(() => 0.5),
    close: seconds.map((s) => s),
    volume: seconds.map(() => 1),
    indicators: [],
  });
  return c;
}

// A run of one hour of one-minute bars, shown as 10-minute overview candles.
function loaded(params = ""): PlaybackState {
  const overview = columns([0, 600, 1200, 1800, 2400, 3000]);
  return overviewLoaded(initialPlayback(new URLSearchParams(params)), overview, 600, 60);
}

describe("playback state: opening", () => {
  it("reads speed and toggles from the URL, with defaults", () => {
    const fresh = initialPlayback(new URLSearchParams(""));
    expect(fresh.speed).toBe(3600);
    expect([...fresh.toggles.overlays]).toEqual(["sma20", "sma50", "bb"]);
    expect([...fresh.toggles.panes]).toEqual(["rsi", "macd"]);
    expect(fresh.run).toBeNull();
    const custom = initialPlayback(new URLSearchParams("speed=86400&overlays=ema20&panes="));
    expect(custom.speed).toBe(86400);
    expect([...custom.toggles.overlays]).toEqual(["ema20"]);
    expect(custom.toggles.panes.size).toBe(0);
    expect(initialPlayback(new URLSearchParams("speed=7")).speed).toBe(3600);
  });

  it("shows each streamed part of the overview as a new object", () => {
    const state = initialPlayback(new URLSearchParams());
    const data = columns([0, 600]);
    const first = overviewArriving(state, data);
    appendChunk(data, {
      ...columns([]),
      times: [1200n * 1_000_000_000n],
      open: [1],
      high: [1],
      low: [1],
      close: [1],
      volume: [1],
      indicators: [],
    });
    const second = overviewArriving(first, data);
    expect(second.candles).not.toBe(first.candles);
    expect(second.candles.times).toEqual([0, 600, 1200]);
    expect(second.run).toBeNull();
  });

  it("knows the run's span once the overview is in, and opens the cursor the same way", () => {
    const state = loaded();
    const run = { start: 0, end: 3600, overviewBucket: 600, sourceBucket: 60 };
    expect(state.run).toEqual(run);
    // OPENING_BARS bars in, kept inside this one-hour run.
    expect(state.cursor).toBe(3600);
    expect(openingCursor({ ...run, end: 86_400 }, null)).toBe(OPENING_BARS * 60);
    expect(openingView({ ...run, end: 86_400 }, OPENING_BARS * 60)).toEqual({
      from: 0,
      to: OPENING_BARS * 72,
    });
    expect(state.candles).toBe(state.overview);
    expect(state.mode).toBe("replay");
  });

  it("opens at the URL's time and mode", () => {
    const state = loaded("t=1234&mode=analysis");
    expect(state.cursor).toBe(1234);
    expect(state.mode).toBe("analysis");
    expect(loaded("t=-5").cursor).toBe(0);
    expect(setMode(state, "replay").mode).toBe("replay");
    expect(setMode(state, "analysis")).toBe(state);
  });

  it("has no run and no cursor when the overview is empty", () => {
    const state = overviewLoaded(initialPlayback(new URLSearchParams()), emptyColumns(), 600, 60);
    expect(state.run).toBeNull();
    expect(state.cursor).toBeNull();
    expect(moveCursor(state, 100)).toBe(state);
    expect(play(state)).toBe(state);
  });
});

describe("playback state: windows", () => {
  it("splices a finer window into the overview and drops it when zoomed out", () => {
    const state = loaded();
    const fine = columns([1200, 1260, 1320, 1380, 1740]);
    const zoomed = windowLoaded(state, { from: 1200, to: 1800, bucket: 60 }, fine);
    expect(zoomed.candles.times).toEqual([0, 600, 1200, 1260, 1320, 1380, 1740, 1800, 2400, 3000]);
    expect(zoomed.window).toEqual({ from: 1200, to: 1800, bucket: 60 });
    expect(zoomed.overview).toBe(state.overview);
    const out = backToOverview(zoomed);
    expect(out.window).toBeNull();
    expect(out.candles).toBe(state.overview);
    expect(backToOverview(out)).toBe(out);
  });

  it("splices the equity window into its overview, and goes back with the candles", () => {
    const state = equityOverviewLoaded(loaded(), columns([0, 1800, 3600]));
    const zoomed = equityWindowLoaded(
      windowLoaded(state, { from: 1200, to: 2400, bucket: 60 }, columns([1200, 1260])),
      columns([1200, 1500, 2100]),
      1200,
      2400,
    );
    expect(zoomed.equity.times).toEqual([0, 1200, 1500, 2100, 3600]);
    expect(backToOverview(zoomed).equity).toBe(state.equityOverview);
  });
});

describe("playback state: cursor and transport", () => {
  it("keeps the cursor inside the run", () => {
    const state = loaded();
    expect(moveCursor(state, -50).cursor).toBe(0);
    expect(moveCursor(state, 99999).cursor).toBe(3600);
    expect(moveCursor(state, 1234).cursor).toBe(1234);
    expect(moveCursor(state, 3600)).toBe(state); // already there
  });

  it("steps one bar of the run, or of the loaded window when zoomed in", () => {
    const state = moveCursor(loaded(), 1200);
    expect(stepCursor(state, 1).cursor).toBe(1260);
    expect(stepCursor(state, -1).cursor).toBe(1140);
    const zoomed = windowLoaded(state, { from: 1200, to: 1800, bucket: 5 }, columns([1200]));
    expect(stepCursor(zoomed, 1).cursor).toBe(1205);
  });

  it("plays from the cursor, or from the start once at the end", () => {
    const middle = play(moveCursor(loaded(), 1800));
    expect(middle.playing).toBe(true);
    expect(middle.cursor).toBe(1800);
    const fromEnd = play(moveCursor(loaded(), 3600));
    expect(fromEnd.cursor).toBe(0);
    expect(pause(fromEnd).playing).toBe(false);
    const paused = pause(loaded());
    expect(pause(paused)).toBe(paused);
  });

  it("advances by wall-clock time at the speed and stops at the run's end", () => {
    const playing = play(setSpeed(loaded(), 600));
    const next = advance(playing, 500); // half a second at 10 min/s
    expect(next.cursor).toBe(300);
    expect(next.playing).toBe(true);
    const end = advance(next, 60_000);
    expect(end.cursor).toBe(3600);
    expect(end.playing).toBe(false);
    expect(advance(end, 16)).toBe(end);
  });

  it("brings the cursor back into view only when it is leaving it", () => {
    const view = { from: 1000, to: 2000 };
    expect(rangeFollowing(view, 1500)).toBeNull();
    expect(rangeFollowing(view, 1950)).toEqual({ from: 1850, to: 2850 });
    expect(rangeFollowing(view, 500)).toEqual({ from: 400, to: 1400 });
    // Replay pages: the cursor goes back to 60% of the span, and stays put until the last tenth.
    expect(rangeFollowing(view, 1950, "replay")).toEqual({ from: 1350, to: 2350 });
    expect(rangeFollowing({ from: 1350, to: 2350 }, 2200, "replay")).toBeNull();
  });
});

describe("playback state: toggles", () => {
  it("turns overlays and panes on and off, and does nothing when already so", () => {
    const state = loaded("overlays=sma20&panes=rsi");
    const on = toggleOverlay(state, "bb", true);
    expect([...on.toggles.overlays]).toEqual(["sma20", "bb"]);
    expect(toggleOverlay(on, "bb", true)).toBe(on);
    const off = togglePane(on, "rsi", false);
    expect(off.toggles.panes.size).toBe(0);
    expect(togglePane(off, "rsi", false)).toBe(off);
    expect(state.toggles.overlays.has("bb")).toBe(false);
  });
});

describe("playback state: notices", () => {
  it("says what is loading, then what is missing, then nothing once data is shown", () => {
    const fresh = initialPlayback(new URLSearchParams());
    expect(fresh.notices.candles?.kind).toBe("loading");
    expect(fresh.notices.equity?.kind).toBe("loading");
    expect(overviewArriving(fresh, columns([0])).notices.candles).toBeNull();
    const none = overviewLoaded(fresh, emptyColumns(), 60, 60);
    expect(none.notices.candles).toEqual({ kind: "empty", text: "This run has no candles." });
    expect(equityOverviewLoaded(fresh, emptyColumns()).notices.equity?.kind).toBe("empty");
    expect(equityOverviewLoaded(fresh, columns([0])).notices.equity).toBeNull();
  });

  it("explains that an unfinished run cannot be played yet, with no equity notice", () => {
    const state = runUnfinished(initialPlayback(new URLSearchParams()), "running");
    expect(state.notices.candles).toEqual({
      kind: "info",
      text: "This run is running: playback opens once it has succeeded.",
    });
    expect(state.notices.equity).toBeNull();
  });
});

describe("playback state: timeframe", () => {
  it("reads a standard timeframe from the URL, replaces the overview and keeps the cursor", () => {
    expect(loaded("tf=3600").timeframe).toBe(3600);
    expect(loaded("tf=61").timeframe).toBeNull();
    const state = moveCursor(loaded(), 1234);
    const hourly = overviewReplaced(timeframeChosen(state, 3600), columns([0]), 3600);
    expect(hourly.timeframe).toBe(3600);
    expect(hourly.cursor).toBe(1234);
    expect(hourly.candles.times).toEqual([0]);
    expect(hourly.run?.overviewBucket).toBe(3600);
    expect(timeframeChosen(hourly, 3600)).toBe(hourly);
  });

  it("offers only timeframes the whole run fits at", () => {
    const run = { start: 0, end: 86_400 * 365, overviewBucket: 86_400, sourceBucket: 300 };
    expect(timeframeFits(run, 60)).toBe(false); // finer than the run's bars
    expect(timeframeFits(run, 300)).toBe(false); // 105,120 candles
    expect(timeframeFits(run, 3600)).toBe(true);
    expect(timeframeFits(null, 60)).toBe(true);
  });
});

describe("comparing with another run", () => {
  const own = equityOverviewLoaded(initialPlayback(new URLSearchParams()), columns([60, 120]));

  it("draws a run of the same market that shares time with this one", () => {
    expect(compareProblem(own)).toBeNull();
    expect(compareProblem(compareLoaded(own, "other", columns([90, 300]), null))).toBeNull();
  });

  it("says why a run cannot be drawn: another market, or no time in common", () => {
    const market = "Cannot compare: this run trades A (a), run other trades B (b).";
    expect(compareProblem(compareLoaded(own, "other", emptyColumns(), market))).toBe(market);
    expect(compareProblem(compareLoaded(own, "later-run", columns([600, 660]), null))).toBe(
      "Cannot compare: run later-ru covers no time of this run.",
    );
  });
});

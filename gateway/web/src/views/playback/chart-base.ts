// What both playback charts share: options that follow the system's colour scheme, candle colours,
// fitting once the chart knows its width, and where the cursor falls.
import { ColorType, type IChartApi, type UTCTimestamp } from "lightweight-charts";
import { lastBucket, type PlaybackState } from "../../lib/playback";
import { logicalToTime, timeToLogical, timeToX } from "../../lib/series";
import type { TimeRange } from "../../lib/timelink";

export const UP = "#26a69a";
export const DOWN = "#ef5350";

const PRICE_SCALE_PX = 84;

export const t = (seconds: number): UTCTimestamp => seconds as UTCTimestamp;

function dark(): boolean {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

export function chartOptions(height: number) {
  const isDark = dark();
  const grid = isDark ? "#1e2530" : "#f0f2f5";
  return {
    height,
    layout: {
      background: { type: ColorType.Solid, color: isDark ? "#12161c" : "#ffffff" },
      textColor: isDark ? "#d8dde4" : "#1d232b",
      fontSize: 11,
      panes: { separatorColor: isDark ? "#2b3340" : "#dde1e6" },
    },
    grid: { vertLines: { color: grid }, horzLines: { color: grid } },
    // The view moves only when Tapedeck moves it (see lib/playback.ts rangeFollowing).
    timeScale: {
      timeVisible: true,
      secondsVisible: false,
      rightOffset: 2,
      minBarSpacing: 0.5,
      shiftVisibleRangeOnNewBar: false,
    },
    // One width on every chart, so stacked charts put the same time at the same x.
    rightPriceScale: { borderVisible: false, minimumWidth: PRICE_SCALE_PX },
    autoSize: true,
  } as const;
}

// The time span in view on a chart whose data is `times` or a prefix of it (see timeToLogical).
export function visibleTimes(
  api: IChartApi,
  times: readonly number[],
  lastBucket: number,
): TimeRange | null {
  const range = api.timeScale().getVisibleLogicalRange();
  if (range === null || times.length === 0) return null;
  return {
    from: logicalToTime(times, range.from, lastBucket),
    to: logicalToTime(times, range.to, lastBucket),
  };
}

// Shows the time span `range` on such a chart, to the fraction of a bar.
export function showTimes(
  api: IChartApi,
  times: readonly number[],
  lastBucket: number,
  range: TimeRange,
): void {
  if (times.length === 0 || !(range.to > range.from)) return;
  api.timeScale().setVisibleLogicalRange({
    from: timeToLogical(times, range.from, lastBucket),
    to: timeToLogical(times, range.to, lastBucket),
  });
}

// Pixel x of the cursor on a chart drawing `times`; null without a cursor or a visible range.
export function cursorX(
  api: IChartApi,
  times: readonly number[],
  state: PlaybackState,
): number | null {
  const range = api.timeScale().getVisibleLogicalRange();
  if (state.cursor === null || range === null) return null;
  const visible = { from: range.from, to: range.to };
  return timeToX(times, state.cursor, visible, api.timeScale().width(), lastBucket(state));
}

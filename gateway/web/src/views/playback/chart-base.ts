// What both playback charts share: options that follow the system's colour scheme, candle colours,
// fitting once the chart knows its width, and where the cursor falls.
import { ColorType, type IChartApi, type UTCTimestamp } from "lightweight-charts";
import type { PlaybackState } from "../../lib/playback";
import { timeToX } from "../../lib/series";

export const UP = "#26a69a";
export const DOWN = "#ef5350";

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
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 2, minBarSpacing: 0.5 },
    rightPriceScale: { borderVisible: false },
    autoSize: true,
  } as const;
}

// autoSize learns the chart's width on a later frame: fit now and again once it is known.
export function fit(api: IChartApi): void {
  api.timeScale().fitContent();
  requestAnimationFrame(() => requestAnimationFrame(() => api.timeScale().fitContent()));
}

// Pixel x of the cursor on a chart drawing `times`; null without a cursor or a visible range.
export function cursorX(
  api: IChartApi,
  times: readonly number[],
  state: PlaybackState,
): number | null {
  const range = api.timeScale().getVisibleLogicalRange();
  if (state.cursor === null || range === null) return null;
  const bucket = state.window?.bucket ?? state.run?.overviewBucket ?? 60;
  const visible = { from: range.from, to: range.to };
  return timeToX(times, state.cursor, visible, api.timeScale().width(), bucket);
}

// What both playback charts share: options that follow the system's colour scheme, candle colours,
// fitting once the chart knows its width, and where the cursor falls.
import {
  ColorType,
  TickMarkType,
  type IChartApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { formatNumber, formatTime, wallClock } from "../../lib/time";
import { lastBucket, type PlaybackState } from "../../lib/playback";
import { logicalToTime, timeToLogical, timeToX } from "../../lib/series";
import type { TimeRange } from "../../lib/timelink";

export const UP = "#26a69a";
export const DOWN = "#ef5350";

const PRICE_SCALE_PX = 84;

export const t = (seconds: number): UTCTimestamp => seconds as UTCTimestamp;

// Beyond this many fill markers their texts would overlap: only the arrows are drawn.
const MAX_LABELLED_MARKERS = 40;

// Fills as chart markers: a buy's arrow under its bar, a sell's over it.
export function fillSeriesMarkers(
  marks: readonly { time: number; side: "buy" | "sell"; text: string }[],
): SeriesMarker<Time>[] {
  const labelled = marks.length <= MAX_LABELLED_MARKERS;
  return marks.map((m) => ({
    time: t(m.time),
    position: m.side === "buy" ? "belowBar" : "aboveBar",
    shape: m.side === "buy" ? "arrowUp" : "arrowDown",
    color: m.side === "buy" ? UP : DOWN,
    text: labelled ? m.text : "",
    size: 0.8,
  }));
}

function dark(): boolean {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");

// Axis labels in the chosen zone (lib/time.ts); the crosshair's label names the zone.
function tickMark(time: Time, type: TickMarkType): string {
  const clock = wallClock(Number(time));
  switch (type) {
    case TickMarkType.Year:
      return clock.slice(0, 4);
    case TickMarkType.Month:
      return MONTHS[Number(clock.slice(5, 7)) - 1]!;
    case TickMarkType.DayOfMonth:
      return `${Number(clock.slice(8, 10))} ${MONTHS[Number(clock.slice(5, 7)) - 1]}`;
    case TickMarkType.TimeWithSeconds:
      return clock.slice(11, 19);
    default:
      return clock.slice(11, 16);
  }
}

// Prices on the axis and the crosshair at `digits` decimals with thousands separators.
export function priceLocalization(digits: number) {
  return {
    priceFormatter: (price: number) => formatNumber(price, digits),
    timeFormatter: (time: Time) => formatTime(Number(time), false),
  };
}

export function chartOptions(height: number, priceDigits: number) {
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
      lockVisibleTimeRangeOnResize: true,
      tickMarkFormatter: tickMark,
    },
    localization: priceLocalization(priceDigits),
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

// A chart's span of time. lightweight-charts applies a new range on its next frame: until then
// the span set is the one in view (reads of the chart would see the old one).
export class Span {
  private pending: TimeRange | null = null;

  constructor(private readonly api: () => IChartApi) {}

  // Shows `range` on a chart drawing `times` or a prefix of it, to the fraction of a bar.
  show(times: readonly number[], lastBucket: number, range: TimeRange): void {
    if (times.length === 0 || !(range.to > range.from)) return;
    this.pending = range;
    this.api()
      .timeScale()
      .setVisibleLogicalRange({
        from: timeToLogical(times, range.from, lastBucket),
        to: timeToLogical(times, range.to, lastBucket),
      });
    // Cleared after the chart's frame that applies it.
    requestAnimationFrame(() =>
      requestAnimationFrame(() => {
        if (this.pending === range) this.pending = null;
      }),
    );
  }

  current(times: readonly number[], lastBucket: number): TimeRange | null {
    return this.pending ?? visibleTimes(this.api(), times, lastBucket);
  }
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

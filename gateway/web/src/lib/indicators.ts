// What the price chart can draw besides candles: overlays on the price pane, indicator panes below
// it, which of them are on (kept in the URL), and the legend of the bar under the pointer.
import { Indicator } from "../gen/tapedeck/backtest/v1/backtest_pb";
import { formatNumber, formatTime } from "./time";
import { bucketIndex, type CandleColumns } from "./series";

// Every indicator the candles are asked with, drawn or not (toggling one needs no new request).
export const INDICATORS: readonly Indicator[] = [
  Indicator.SMA_20,
  Indicator.SMA_50,
  Indicator.EMA_20,
  Indicator.BOLLINGER_UPPER,
  Indicator.BOLLINGER_MIDDLE,
  Indicator.BOLLINGER_LOWER,
  Indicator.RSI_14,
  Indicator.MACD,
  Indicator.MACD_SIGNAL,
  Indicator.MACD_HISTOGRAM,
  Indicator.ATR_14,
];

export interface Overlay {
  key: string;
  title: string;
  lines: ReadonlyArray<readonly [Indicator, string]>; // indicator, colour
}

export const OVERLAYS: readonly Overlay[] = [
  { key: "sma20", title: "SMA 20", lines: [[Indicator.SMA_20, "#f5a623"]] },
  { key: "sma50", title: "SMA 50", lines: [[Indicator.SMA_50, "#9b51e0"]] },
  { key: "ema20", title: "EMA 20", lines: [[Indicator.EMA_20, "#00a3a3"]] },
  {
    key: "bb",
    title: "Bollinger",
    lines: [
      [Indicator.BOLLINGER_UPPER, "#7f8c8d"],
      [Indicator.BOLLINGER_MIDDLE, "#95a5a6"],
      [Indicator.BOLLINGER_LOWER, "#7f8c8d"],
    ],
  },
];

export const PANES = ["rsi", "macd", "atr"] as const;
export type Pane = (typeof PANES)[number];

export interface Toggles {
  readonly overlays: ReadonlySet<string>;
  readonly panes: ReadonlySet<Pane>;
}

const DEFAULT_OVERLAYS = ["sma20", "sma50", "bb"];
const DEFAULT_PANES: Pane[] = ["rsi", "macd"];

function isPane(name: string): name is Pane {
  return (PANES as readonly string[]).includes(name);
}

// `overlays=` and `panes=` of the URL; absent means the defaults, empty means none.
export function readToggles(params: URLSearchParams): Toggles {
  const overlays = params.get("overlays");
  const panes = params.get("panes");
  return {
    overlays: new Set(overlays === null ? DEFAULT_OVERLAYS : overlays.split(",").filter(Boolean)),
    panes: new Set(panes === null ? DEFAULT_PANES : panes.split(",").filter(isPane)),
  };
}

export function toggleParams(toggles: Toggles): { overlays: string; panes: string } {
  return { overlays: [...toggles.overlays].join(","), panes: [...toggles.panes].join(",") };
}

// `items` with `item` in it or not; the same set when nothing changes.
function toggled<T>(items: ReadonlySet<T>, item: T, on: boolean): ReadonlySet<T> {
  if (items.has(item) === on) return items;
  const next = new Set(items);
  if (on) next.add(item);
  else next.delete(item);
  return next;
}

export function withOverlay(toggles: Toggles, key: string, on: boolean): Toggles {
  const overlays = toggled(toggles.overlays, key, on);
  return overlays === toggles.overlays ? toggles : { ...toggles, overlays };
}

export function withPane(toggles: Toggles, pane: Pane, on: boolean): Toggles {
  const panes = toggled(toggles.panes, pane, on);
  return panes === toggles.panes ? toggles : { ...toggles, panes };
}

export interface LegendItem {
  label: string; // "" for the time
  value: string;
  color?: string;
}

// Decimals an instrument's prices and sizes are shown with, and the currency it is quoted in
// (money: two decimals).
export interface Precision {
  readonly price: number;
  readonly size: number;
  readonly quote: string;
}

// Until the instrument is known: enough for most quotes and crypto sizes.
export const DEFAULT_PRECISION: Precision = { price: 2, size: 4, quote: "" };

function shown(value: number | undefined, digits: number): string {
  return value === undefined ? "—" : formatNumber(value, digits);
}

function indicatorLabel(indicator: Indicator): string {
  return (Indicator[indicator] ?? "").replace(/_/g, " ").replace("BOLLINGER ", "BB ").toLowerCase();
}

function legendIndex(data: CandleColumns, time: number | null): number {
  return time === null ? data.times.length - 1 : Math.max(0, bucketIndex(data.times, time));
}

// The open and width (to the next bar) of the bar the legend shows for `time`: the crosshair's
// bar when it is on one. Null without bars; the last bar has no width (0).
export function legendBar(
  data: CandleColumns,
  time: number | null,
): { time: number; width: number } | null {
  const i = legendIndex(data, time);
  const open = data.times[i];
  if (open === undefined) return null;
  return { time: open, width: (data.times[i + 1] ?? open) - open };
}

// OHLCV and the overlays' values of the bar at `time` (the last bar when null); none without bars.
export function legendItems(
  data: CandleColumns,
  time: number | null,
  toggles: Toggles,
  precision: Precision = DEFAULT_PRECISION,
): LegendItem[] {
  const price = (value: number | undefined) => shown(value, precision.price);
  if (data.times.length === 0) return [];
  const i = legendIndex(data, time);
  const items: LegendItem[] = [
    { label: "", value: formatTime(data.times[i]!, false) },
    { label: "O", value: price(data.open[i]) },
    { label: "H", value: price(data.high[i]) },
    { label: "L", value: price(data.low[i]) },
    { label: "C", value: price(data.close[i]) },
    { label: "V", value: shown(data.volume[i], precision.size) },
  ];
  for (const overlay of OVERLAYS) {
    if (!toggles.overlays.has(overlay.key)) continue;
    for (const [indicator, color] of overlay.lines)
      items.push({
        label: indicatorLabel(indicator),
        value: price(data.indicators.get(indicator)?.[i]),
        color,
      });
  }
  return items;
}

// Columnar chart series: chunks appended as they stream, a coarse overview of the whole run
// spliced with a finer window around what is on screen, and the maths that sizes each request to
// the viewport.

export interface CandleColumns {
  times: number[]; // bucket open, seconds since the epoch
  open: number[];
  high: number[];
  low: number[];
  close: number[];
  volume: number[];
  indicators: Map<number, number[]>; // indicator enum -> values aligned with times (NaN: undefined)
}

export interface CandleChunkLike {
  times: bigint[];
  open: number[];
  high: number[];
  low: number[];
  close: number[];
  volume: number[];
  indicators: { indicator: number; values: number[] }[];
}

export function emptyColumns(): CandleColumns {
  return { times: [], open: [], high: [], low: [], close: [], volume: [], indicators: new Map() };
}

export function nanosToSeconds(nanos: bigint): number {
  // Whole seconds: lightweight-charts' time unit; sub-second buckets collapse (kept last).
  return Number(nanos / 1_000_000_000n);
}

// Appends a streamed chunk; rows not after the last time are dropped so times stay strictly
// increasing.
export function appendChunk(columns: CandleColumns, chunk: CandleChunkLike): void {
  let last = columns.times.length > 0 ? columns.times[columns.times.length - 1]! : -Infinity;
  for (let i = 0; i < chunk.times.length; i++) {
    const t = nanosToSeconds(chunk.times[i]!);
    if (t <= last) continue;
    last = t;
    columns.times.push(t);
    columns.open.push(chunk.open[i] ?? NaN);
    columns.high.push(chunk.high[i] ?? NaN);
    columns.low.push(chunk.low[i] ?? NaN);
    columns.close.push(chunk.close[i] ?? NaN);
    columns.volume.push(chunk.volume[i] ?? 0);
    for (const column of chunk.indicators) {
      let values = columns.indicators.get(column.indicator);
      if (values === undefined) {
        values = new Array<number>(columns.times.length - 1).fill(NaN);
        columns.indicators.set(column.indicator, values);
      }
      values.push(column.values[i] ?? NaN);
    }
  }
}

// First index whose time is >= t.
export function lowerBound(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (times[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Index of the bucket containing t (the last time <= t), or -1 before the first. (Exact: at epoch
// seconds a nudge such as t + 1e-9 is lost to rounding, which put a bar's own time in the bar
// before it.)
export function bucketIndex(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (times[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

function slice(columns: CandleColumns, start: number, end: number): CandleColumns {
  const indicators = new Map<number, number[]>();
  for (const [key, values] of columns.indicators) indicators.set(key, values.slice(start, end));
  return {
    times: columns.times.slice(start, end),
    open: columns.open.slice(start, end),
    high: columns.high.slice(start, end),
    low: columns.low.slice(start, end),
    close: columns.close.slice(start, end),
    volume: columns.volume.slice(start, end),
    indicators,
  };
}

function concat(parts: CandleColumns[]): CandleColumns {
  const out = emptyColumns();
  const keys = new Set(parts.flatMap((p) => [...p.indicators.keys()]));
  for (const key of keys) out.indicators.set(key, []);
  for (const part of parts) {
    out.times.push(...part.times);
    out.open.push(...part.open);
    out.high.push(...part.high);
    out.low.push(...part.low);
    out.close.push(...part.close);
    out.volume.push(...part.volume);
    for (const key of keys) {
      const values = part.indicators.get(key) ?? new Array<number>(part.times.length).fill(NaN);
      out.indicators.get(key)!.push(...values);
    }
  }
  return out;
}

// The overview outside [from, to), the fine window inside it. `from`/`to` must be overview bucket
// boundaries (see alignWindow) so no time is covered twice or left uncovered.
export function spliceWindow(
  overview: CandleColumns,
  fine: CandleColumns,
  from: number,
  to: number,
): CandleColumns {
  const before = slice(overview, 0, lowerBound(overview.times, from));
  const inside = slice(fine, lowerBound(fine.times, from), lowerBound(fine.times, to));
  const after = slice(overview, lowerBound(overview.times, to), overview.times.length);
  return concat([before, inside, after]);
}

// Expands [from, to) outwards to bucket boundaries of a series starting at `origin`.
export function alignWindow(
  from: number,
  to: number,
  origin: number,
  bucket: number,
): { from: number; to: number } {
  if (bucket <= 0) return { from, to };
  return {
    from: origin + Math.floor((from - origin) / bucket) * bucket,
    to: origin + Math.ceil((to - origin) / bucket) * bucket,
  };
}

// Bars the chart can show legibly across `widthPx`.
export function capacity(widthPx: number, spacingPx = 6): number {
  return Math.max(10, Math.floor(widthPx / spacingPx));
}

export interface Visible {
  from: number; // seconds
  to: number;
  widthPx: number;
}

export interface Loaded {
  from: number;
  to: number;
  bucket: number; // seconds per candle in the loaded window
}

export interface RunSpan {
  start: number;
  end: number;
  overviewBucket: number; // seconds per candle of the whole-run overview
  sourceBucket: number; // seconds per candle of the run itself (finest available)
}

export type Plan =
  | { kind: "overview" } // zoomed out: the overview is as fine as the screen needs
  | { kind: "keep" } // the loaded window still covers the screen at the right resolution
  | { kind: "fetch"; from: number; to: number; maxCandles: number };

// Decides what the chart needs for what is on screen. A fetched window spans the visible range
// plus one screen either side (so scrolling does not wait) and is capped at three screens of bars.
export function planWindow(
  visible: Visible,
  run: RunSpan,
  loaded: Loaded | null,
  spacingPx = 6,
): Plan {
  const cap = capacity(visible.widthPx, spacingPx);
  const span = Math.max(1, visible.to - visible.from);
  const ideal = Math.max(run.sourceBucket, span / cap);
  if (ideal >= run.overviewBucket * 0.7) return { kind: "overview" };
  if (
    loaded !== null &&
    visible.from >= Math.max(run.start, loaded.from) - 1e-9 &&
    visible.to <= Math.min(run.end, loaded.to) + 1e-9 &&
    loaded.bucket <= ideal * 2.5 &&
    loaded.bucket >= ideal / 2.5
  )
    return { kind: "keep" };
  const aligned = alignWindow(
    Math.max(run.start, visible.from - span),
    Math.min(run.end, visible.to + span),
    run.start,
    run.overviewBucket,
  );
  const windowSpan = aligned.to - aligned.from;
  const maxCandles = Math.max(10, Math.min(3 * cap, Math.ceil(windowSpan / ideal)));
  return { kind: "fetch", from: aligned.from, to: aligned.to, maxCandles };
}

// Advances a playback cursor by wall-clock time at `speed` simulated seconds per second.
export function advanceCursor(
  cursor: number,
  elapsedMs: number,
  speed: number,
  end: number,
): number {
  return Math.min(end, cursor + (elapsedMs / 1000) * speed);
}

export interface FillLike {
  time: number; // seconds
  side: "buy" | "sell";
  quantity: string;
  price: string;
}

export interface FillMarker {
  time: number; // the candle the fills fall in
  side: "buy" | "sell";
  count: number;
  text: string;
}

// One marker per candle and side: at any zoom there are never more markers than candles.
export function fillMarkers(fills: readonly FillLike[], times: readonly number[]): FillMarker[] {
  const markers = new Map<string, FillMarker>();
  for (const fill of fills) {
    const index = bucketIndex(times, fill.time);
    if (index < 0) continue;
    const time = times[index]!;
    const key = `${time}:${fill.side}`;
    const existing = markers.get(key);
    if (existing === undefined) {
      markers.set(key, {
        time,
        side: fill.side,
        count: 1,
        text: `${fill.side === "buy" ? "B" : "S"} ${fill.quantity} @ ${fill.price}`,
      });
    } else {
      existing.count += 1;
      existing.text = `${fill.side === "buy" ? "B" : "S"} ×${existing.count}`;
    }
  }
  return [...markers.values()].sort((a, b) => a.time - b.time || (a.side < b.side ? -1 : 1));
}

// Bar i of `times` (bucket opens) spans [times[i], times[i + 1]) and is centred on logical index i
// (lightweight-charts' convention), so it covers logical [i - 0.5, i + 0.5). Times before the first
// bar or after the last (`lastBucket` wide) extrapolate at the neighbouring bar's width: a view in
// time maps to the same logical range whether the chart draws all of `times` or only a prefix.
export function timeToLogical(times: readonly number[], time: number, lastBucket = 60): number {
  const n = times.length;
  if (n === 0) return 0;
  const width = (i: number) => (i + 1 < n ? times[i + 1]! - times[i]! : lastBucket) || lastBucket;
  if (time < times[0]!) return -0.5 - (times[0]! - time) / width(0);
  const index = bucketIndex(times, time);
  const end = times[n - 1]! + lastBucket;
  if (index === n - 1 && time >= end) return n - 0.5 + (time - end) / lastBucket;
  return index - 0.5 + (time - times[index]!) / width(index);
}

// The inverse of timeToLogical.
export function logicalToTime(times: readonly number[], logical: number, lastBucket = 60): number {
  const n = times.length;
  if (n === 0) return 0;
  const width = (i: number) => (i + 1 < n ? times[i + 1]! - times[i]! : lastBucket) || lastBucket;
  const index = Math.floor(logical + 0.5);
  if (index < 0) return times[0]! + (logical + 0.5) * width(0);
  if (index >= n) return times[n - 1]! + lastBucket + (logical - (n - 0.5)) * lastBucket;
  return times[index]! + (logical + 0.5 - index) * width(index);
}

// Pixel x of an instant on a chart showing `times` across `widthPx` for the visible logical range;
// interpolates inside a bucket. Null before the first bar.
export function timeToX(
  times: readonly number[],
  time: number,
  visible: { from: number; to: number },
  widthPx: number,
  lastBucket = 60,
): number | null {
  if (bucketIndex(times, time) < 0 || visible.to <= visible.from) return null;
  const logical = timeToLogical(times, time, lastBucket);
  // The visible logical range spans exactly the plot's width.
  return ((logical - visible.from) / (visible.to - visible.from)) * widthPx;
}

// How many of `times` a replay at `cursor` draws: the bars that have opened by then.
export function barsUpTo(times: readonly number[], cursor: number | null): number {
  return cursor === null ? 0 : bucketIndex(times, cursor) + 1;
}

// How many of the time-ordered `fills` have happened by `cursor`.
export function fillsUpTo(fills: readonly FillLike[], cursor: number | null): number {
  if (cursor === null) return 0;
  let lo = 0;
  let hi = fills.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (fills[mid]!.time <= cursor) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

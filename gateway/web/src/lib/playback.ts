// The playback view's one state object and its transitions. Every change the view makes goes
// through one of these pure functions; the components draw what changed (see views/playback/).
import { overlapProblem } from "./compare";
import {
  DEFAULT_PRECISION,
  readToggles,
  withOverlay,
  withPane,
  type Pane,
  type Precision,
  type Toggles,
} from "./indicators";
import {
  advanceCursor,
  barsUpTo,
  emptyColumns,
  fillsUpTo,
  spliceWindow,
  type CandleColumns,
  type FillLike,
  type Loaded,
  type RunSpan,
} from "./series";

export const SPEEDS: ReadonlyArray<readonly [number, string]> = [
  [60, "1 min/s"],
  [600, "10 min/s"],
  [3600, "1 h/s"],
  [6 * 3600, "6 h/s"],
  [86400, "1 day/s"],
];
const DEFAULT_SPEED = 3600;
// The timeframes the selector offers besides Auto (seconds per candle, label).
export const TIMEFRAMES: ReadonlyArray<readonly [number, string]> = [
  [60, "1m"],
  [300, "5m"],
  [900, "15m"],
  [3600, "1h"],
  [4 * 3600, "4h"],
  [86400, "1D"],
];
// A fixed timeframe draws the whole run at it: at most this many candles.
export const MAX_TIMEFRAME_CANDLES = 50_000;

// Playback opens with this many of the run's own bars behind the cursor, and a fifth as many
// ahead of it in view: the same opening for every visit, whatever order the data arrives in.
export const OPENING_BARS = 100;

// Replay draws the run as it happened up to the cursor; analysis draws all of it.
export type Mode = "replay" | "analysis";

export interface Compare {
  readonly id: string;
  readonly equity: CandleColumns;
  readonly problem: string | null; // why it cannot be drawn beside this run (lib/compare.ts)
}

// Equity columns carry each point's drawdown (1 - equity / peak so far, from StreamEquity) as the
// indicator column of this key: 0 is INDICATOR_UNSPECIFIED, never a real indicator.
export const DRAWDOWN = 0;

// What a chart or the fills line says instead of (or under) its data; null: nothing to say.
export type Notice = {
  readonly kind: "loading" | "info" | "empty" | "error";
  readonly text: string;
} | null;

export interface Notices {
  readonly candles: Notice;
  readonly equity: Notice;
  readonly fills: Notice;
}

export interface PlaybackState {
  readonly run: RunSpan | null; // known once the whole-run overview has arrived
  readonly contentVersion: string; // of a finished run: its windows can be cached
  readonly precision: Precision; // of the run's instrument, once its dataset is known
  readonly overview: CandleColumns; // the whole run at about one candle per screen column
  readonly candles: CandleColumns; // what the chart shows: the overview, a finer window spliced in
  readonly window: Loaded | null; // the finer window spliced into `candles`, if any
  readonly equityOverview: CandleColumns;
  readonly equity: CandleColumns; // the equity curve shown, spliced like the candles
  readonly compare: Compare | null; // another run's equity drawn beside this one's
  readonly fills: readonly FillLike[]; // of the run, or of the window when one is loaded
  readonly cursor: number | null; // seconds; null until the run is known
  readonly requestedCursor: number | null; // from the URL: where the cursor opens
  readonly mode: Mode;
  readonly timeframe: number | null; // seconds per candle chosen by the user; null: Auto
  readonly playing: boolean;
  readonly speed: number; // simulated seconds per wall-clock second
  readonly toggles: Toggles;
  readonly notices: Notices;
}

// The state a playback URL opens with: nothing loaded; toggles, speed, mode and the cursor's
// time (`t`, seconds) from the URL.
export function initialPlayback(params: URLSearchParams): PlaybackState {
  const speed = Number(params.get("speed"));
  const requested = Number(params.get("t") ?? "");
  return {
    run: null,
    contentVersion: "",
    precision: DEFAULT_PRECISION,
    overview: emptyColumns(),
    candles: emptyColumns(),
    window: null,
    equityOverview: emptyColumns(),
    equity: emptyColumns(),
    compare: null,
    fills: [],
    cursor: null,
    requestedCursor: params.has("t") && Number.isFinite(requested) ? requested : null,
    mode: params.get("mode") === "analysis" ? "analysis" : "replay",
    timeframe: TIMEFRAMES.find(([seconds]) => String(seconds) === params.get("tf"))?.[0] ?? null,
    playing: false,
    speed: SPEEDS.some(([value]) => value === speed) ? speed : DEFAULT_SPEED,
    toggles: readToggles(params),
    notices: {
      candles: { kind: "loading", text: "Loading candles…" },
      equity: { kind: "loading", text: "Loading equity…" },
      fills: null,
    },
  };
}

export function noticed(state: PlaybackState, key: keyof Notices, notice: Notice): PlaybackState {
  return { ...state, notices: { ...state.notices, [key]: notice } };
}

export function runDescribed(state: PlaybackState, contentVersion: string): PlaybackState {
  return { ...state, contentVersion };
}

export function instrumentKnown(state: PlaybackState, precision: Precision): PlaybackState {
  return { ...state, precision };
}

// A run that has not succeeded has nothing to play back yet.
export function runUnfinished(state: PlaybackState, stateName: string): PlaybackState {
  const text = `This run is ${stateName}: playback opens once it has succeeded.`;
  return { ...state, notices: { ...state.notices, candles: { kind: "info", text }, equity: null } };
}

// Part of the overview has streamed in: show it at once (a new object, so the chart redraws).
export function overviewArriving(state: PlaybackState, data: CandleColumns): PlaybackState {
  return { ...noticed(state, "candles", null), candles: { ...data } };
}

// Where the cursor opens: the URL's time, else OPENING_BARS of the run's bars after its start.
export function openingCursor(run: RunSpan, requested: number | null): number {
  const time = requested ?? run.start + OPENING_BARS * run.sourceBucket;
  return Math.max(run.start, Math.min(run.end, time));
}

// The time span in view when playback opens: the bars up to the cursor (OPENING_BARS of them at
// most) and a fifth as many ahead.
export function openingView(run: RunSpan, cursor: number): { from: number; to: number } {
  const bars = OPENING_BARS * run.sourceBucket;
  return { from: Math.max(run.start, cursor - bars), to: cursor + bars / 5 };
}

// The whole overview is in: the run's span is known and the cursor opens (see openingCursor).
export function overviewLoaded(
  state: PlaybackState,
  data: CandleColumns,
  bucket: number,
  sourceBucket: number,
): PlaybackState {
  const last = data.times.at(-1);
  const first = data.times[0];
  if (first === undefined || last === undefined) {
    const empty = noticed(state, "candles", { kind: "empty", text: "This run has no candles." });
    return { ...empty, overview: data, candles: data, run: null };
  }
  const run = { start: first, end: last + bucket, overviewBucket: bucket, sourceBucket };
  const shown = noticed(state, "candles", null);
  const cursor = openingCursor(run, state.requestedCursor);
  return { ...shown, overview: data, candles: data, window: null, run, cursor };
}

// Whether the whole run fits the chart at `timeframe` (MAX_TIMEFRAME_CANDLES at most).
export function timeframeFits(run: RunSpan | null, timeframe: number): boolean {
  if (run === null) return true;
  return (
    timeframe >= run.sourceBucket && (run.end - run.start) / timeframe <= MAX_TIMEFRAME_CANDLES
  );
}

export function timeframeChosen(state: PlaybackState, timeframe: number | null): PlaybackState {
  return timeframe === state.timeframe ? state : { ...state, timeframe };
}

// The whole run again at another resolution (a timeframe chosen, or Auto again): the cursor and
// the run stay; no finer window.
export function overviewReplaced(
  state: PlaybackState,
  data: CandleColumns,
  bucket: number,
): PlaybackState {
  const run = state.run;
  if (run === null || data.times.length === 0) return state;
  return {
    ...state,
    overview: data,
    candles: data,
    window: null,
    equity: state.equityOverview,
    run: { ...run, overviewBucket: bucket },
  };
}

// A finer window of candles arrived for [window.from, window.to).
export function windowLoaded(
  state: PlaybackState,
  window: Loaded,
  fine: CandleColumns,
): PlaybackState {
  return { ...state, window, candles: spliceWindow(state.overview, fine, window.from, window.to) };
}

// Zoomed out again: the overview is as fine as the screen needs.
export function backToOverview(state: PlaybackState): PlaybackState {
  if (state.window === null) return state;
  return { ...state, window: null, candles: state.overview, equity: state.equityOverview };
}

export function equityOverviewLoaded(state: PlaybackState, data: CandleColumns): PlaybackState {
  const notice: Notice =
    data.times.length === 0 ? { kind: "empty", text: "This run has no equity points." } : null;
  return { ...noticed(state, "equity", notice), equityOverview: data, equity: data };
}

export function equityWindowLoaded(
  state: PlaybackState,
  fine: CandleColumns,
  from: number,
  to: number,
): PlaybackState {
  return { ...state, equity: spliceWindow(state.equityOverview, fine, from, to) };
}

export function compareLoaded(
  state: PlaybackState,
  id: string,
  equity: CandleColumns,
  problem: string | null,
): PlaybackState {
  return { ...state, compare: { id, equity, problem } };
}

// Why the compared run is not drawn (another market, or no time in common); null when it is.
export function compareProblem(state: PlaybackState): string | null {
  const compare = state.compare;
  if (compare === null) return null;
  return (
    compare.problem ?? overlapProblem(state.equityOverview.times, compare.equity.times, compare.id)
  );
}

export function fillsLoaded(state: PlaybackState, fills: readonly FillLike[]): PlaybackState {
  return { ...state, fills };
}

// Moves the cursor to `time`, kept inside the run.
export function moveCursor(state: PlaybackState, time: number): PlaybackState {
  const run = state.run;
  if (run === null) return state;
  const cursor = Math.max(run.start, Math.min(run.end, time));
  return cursor === state.cursor ? state : { ...state, cursor };
}

// One bar of the finest loaded resolution forwards (+1) or backwards (-1).
export function stepCursor(state: PlaybackState, direction: 1 | -1): PlaybackState {
  if (state.run === null || state.cursor === null) return state;
  const step = state.window?.bucket ?? state.run.sourceBucket;
  return moveCursor(state, state.cursor + direction * step);
}

// Plays from the cursor, or from the start when the cursor is at the end.
export function play(state: PlaybackState): PlaybackState {
  const run = state.run;
  if (run === null) return state;
  const cursor = state.cursor === null || state.cursor >= run.end ? run.start : state.cursor;
  return { ...state, cursor, playing: true };
}

export function pause(state: PlaybackState): PlaybackState {
  return state.playing ? { ...state, playing: false } : state;
}

// A frame of play: the cursor moves `elapsedMs` of wall-clock time at the speed; playing stops at
// the run's end.
export function advance(state: PlaybackState, elapsedMs: number): PlaybackState {
  if (!state.playing || state.run === null || state.cursor === null) return state;
  const cursor = advanceCursor(state.cursor, elapsedMs, state.speed, state.run.end);
  return { ...state, cursor, playing: cursor < state.run.end };
}

export function setSpeed(state: PlaybackState, speed: number): PlaybackState {
  return speed === state.speed ? state : { ...state, speed };
}

// How many of `candles` the price chart draws: all in analysis, those opened by the cursor in replay.
export function shownBars(state: PlaybackState): number {
  const times = state.candles.times;
  return state.mode === "analysis" ? times.length : barsUpTo(times, state.cursor);
}

// How many of `fills` the chart marks: all in analysis, those done by the cursor in replay.
export function shownFills(state: PlaybackState): number {
  return state.mode === "analysis" ? state.fills.length : fillsUpTo(state.fills, state.cursor);
}

// How many points of `equity` the equity chart draws, like the candles.
export function shownEquity(state: PlaybackState): number {
  const times = state.equity.times;
  return state.mode === "analysis" ? times.length : barsUpTo(times, state.cursor);
}

// Seconds covered by the last of `candles`: the loaded window's bucket when it reaches the run's
// end, the overview's otherwise.
export function lastBucket(state: PlaybackState): number {
  const { run, window } = state;
  if (run === null) return 60;
  return window !== null && window.to >= run.end ? window.bucket : run.overviewBucket;
}

export function setMode(state: PlaybackState, mode: Mode): PlaybackState {
  return mode === state.mode ? state : { ...state, mode };
}

export function toggleOverlay(state: PlaybackState, key: string, on: boolean): PlaybackState {
  const toggles = withOverlay(state.toggles, key, on);
  return toggles === state.toggles ? state : { ...state, toggles };
}

export function togglePane(state: PlaybackState, pane: Pane, on: boolean): PlaybackState {
  const toggles = withPane(state.toggles, pane, on);
  return toggles === state.toggles ? state : { ...state, toggles };
}

// The visible range that keeps the cursor on screen, or null when it is in view. Replay pages
// with the cursor: once it reaches the last tenth, the view moves it back to 60% of the span (the
// range changes once per 30% of the span, not on every frame of play); analysis brings it back to
// a tenth from the left edge when it has left the range or reached its last tenth.
export function rangeFollowing(
  view: { from: number; to: number },
  cursor: number,
  mode: Mode = "analysis",
): { from: number; to: number } | null {
  const span = view.to - view.from;
  if (cursor >= view.from && cursor <= view.from + span * 0.9) return null;
  if (mode === "replay") return { from: cursor - span * 0.6, to: cursor + span * 0.4 };
  return { from: cursor - span * 0.1, to: cursor + span * 0.9 };
}

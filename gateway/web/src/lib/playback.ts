// The playback view's one state object and its transitions. Every change the view makes goes
// through one of these pure functions; the components draw what changed (see views/playback/).
import { readToggles, withOverlay, withPane, type Pane, type Toggles } from "./indicators";
import {
  advanceCursor,
  emptyColumns,
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

export interface Compare {
  readonly id: string;
  readonly equity: CandleColumns;
}

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
  readonly overview: CandleColumns; // the whole run at about one candle per screen column
  readonly candles: CandleColumns; // what the chart shows: the overview, a finer window spliced in
  readonly window: Loaded | null; // the finer window spliced into `candles`, if any
  readonly equityOverview: CandleColumns;
  readonly equity: CandleColumns; // the equity curve shown, spliced like the candles
  readonly compare: Compare | null; // another run's equity drawn beside this one's
  readonly fills: readonly FillLike[]; // of the run, or of the window when one is loaded
  readonly cursor: number | null; // seconds; null until the run is known
  readonly playing: boolean;
  readonly speed: number; // simulated seconds per wall-clock second
  readonly toggles: Toggles;
  readonly notices: Notices;
}

// The state a playback URL opens with: nothing loaded, toggles and speed from the URL.
export function initialPlayback(params: URLSearchParams): PlaybackState {
  const speed = Number(params.get("speed"));
  return {
    run: null,
    contentVersion: "",
    overview: emptyColumns(),
    candles: emptyColumns(),
    window: null,
    equityOverview: emptyColumns(),
    equity: emptyColumns(),
    compare: null,
    fills: [],
    cursor: null,
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

// A run that has not succeeded has nothing to play back yet.
export function runUnfinished(state: PlaybackState, stateName: string): PlaybackState {
  const text = `This run is ${stateName}: playback opens once it has succeeded.`;
  return { ...state, notices: { ...state.notices, candles: { kind: "info", text }, equity: null } };
}

// Part of the overview has streamed in: show it at once (a new object, so the chart redraws).
export function overviewArriving(state: PlaybackState, data: CandleColumns): PlaybackState {
  return { ...noticed(state, "candles", null), candles: { ...data } };
}

// The whole overview is in: the run's span is known and the cursor starts at its first instant.
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
  return { ...shown, overview: data, candles: data, window: null, run, cursor: run.start };
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
): PlaybackState {
  return { ...state, compare: { id, equity } };
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

export function toggleOverlay(state: PlaybackState, key: string, on: boolean): PlaybackState {
  const toggles = withOverlay(state.toggles, key, on);
  return toggles === state.toggles ? state : { ...state, toggles };
}

export function togglePane(state: PlaybackState, pane: Pane, on: boolean): PlaybackState {
  const toggles = withPane(state.toggles, pane, on);
  return toggles === state.toggles ? state : { ...state, toggles };
}

// The visible range that brings the cursor back on screen (10% from the left edge) when it has
// left the range or is in its last tenth; null when it is in view.
export function rangeFollowing(
  view: { from: number; to: number },
  cursor: number,
): { from: number; to: number } | null {
  const span = view.to - view.from;
  if (cursor >= view.from && cursor <= view.from + span * 0.9) return null;
  return { from: cursor - span * 0.1, to: cursor + span * 0.9 };
}

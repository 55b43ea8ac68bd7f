// A walk-forward as the runs view shows it: one row per fold (its windows, the in-sample winner and
// how it did out of sample), and the stitched out-of-sample equity as points for the chart.
import {
  BacktestState,
  WalkForwardState,
  type EquityChunk,
  type WalkForward,
} from "../gen/tapedeck/backtest/v1/backtest_pb";
import { paramsOf } from "./launch";
import { stateName, type RunPhase } from "./runs";
import { nanosToSeconds } from "./series";
import { metricText } from "./sweeps";
import { formatNumber, formatTime, timestampSeconds } from "./time";

export interface FoldRow {
  readonly index: number;
  readonly inSample: readonly [number | null, number | null]; // seconds, half-open
  readonly outOfSample: readonly [number | null, number | null];
  readonly windows: readonly [string, string]; // "start → end" of each
  readonly sweepId: string; // the in-sample sweep
  readonly parameters: string; // the winner's, "" until known
  readonly inSampleText: string;
  readonly outOfSampleText: string;
  readonly efficiencyText: string;
  readonly runId: string; // the out-of-sample run, "" until launched
  readonly phase: RunPhase;
  readonly error: string;
}

const id = (name: string) => name.split("/").pop() ?? "";

export function foldRows(walk: WalkForward): FoldRow[] {
  return walk.folds.map((fold) => {
    const range = (r: typeof fold.inSample) =>
      [timestampSeconds(r?.startTime), timestampSeconds(r?.endTime)] as const;
    const inSample = range(fold.inSample);
    const outOfSample = range(fold.outOfSample);
    const text = ([start, end]: readonly [number | null, number | null]) =>
      `${formatTime(start, false)} → ${formatTime(end, false)}`;
    const value = (v: number | undefined) => (v === undefined ? "" : metricText(walk.metric, v));
    return {
      index: fold.index,
      inSample,
      outOfSample,
      windows: [text(inSample), text(outOfSample)],
      sweepId: id(fold.sweep),
      parameters: paramsOf(fold.bestParameters),
      inSampleText: value(fold.inSampleValue),
      outOfSampleText: value(fold.outOfSampleValue),
      efficiencyText: fold.efficiency === undefined ? "" : formatNumber(fold.efficiency),
      runId: id(fold.outOfSampleBacktest),
      phase: fold.outOfSampleBacktest === "" ? "queued" : stateName(fold.outOfSampleState),
      error: fold.errorMessage,
    };
  });
}

export function walkForwardFinal(walk: WalkForward): boolean {
  return walk.state !== WalkForwardState.RUNNING && walk.state !== WalkForwardState.UNSPECIFIED;
}

// Whether StreamWalkForwardEquity can send the stitched curve: only once every fold succeeded.
export function hasStitchedEquity(walk: WalkForward): boolean {
  return walk.state === WalkForwardState.SUCCEEDED;
}

function phaseOf(walk: WalkForward): string {
  return (WalkForwardState[walk.state] ?? "").toLowerCase();
}

function foldsRun(walk: WalkForward): number {
  return walk.folds.filter((f) => f.outOfSampleState === BacktestState.SUCCEEDED).length;
}

export function walkForwardSummary(walk: WalkForward): string {
  const efficiency =
    walk.efficiency === undefined ? "" : ` · efficiency ${formatNumber(walk.efficiency)}`;
  return `${phaseOf(walk)} · ${foldsRun(walk)} of ${walk.folds.length} folds run out of sample${efficiency}`;
}

// A walk-forward as one row of the list (ListWalkForwards).
export interface WalkForwardListRow {
  readonly id: string;
  readonly created: string;
  readonly phase: string; // "running", "succeeded" or "failed"
  readonly dataset: string; // "datasets/..."
  readonly folds: string; // folds run out of sample, of all
  readonly efficiencyText: string; // "" until known
}

export function walkForwardListRow(walk: WalkForward): WalkForwardListRow {
  return {
    id: id(walk.name),
    created: formatTime(timestampSeconds(walk.createTime), false),
    phase: phaseOf(walk),
    dataset: walk.baseSpec?.dataset ?? "",
    folds: `${foldsRun(walk)}/${walk.folds.length}`,
    efficiencyText: walk.efficiency === undefined ? "" : formatNumber(walk.efficiency),
  };
}

// A chunk of the stitched curve as chart points in whole seconds, from `after` (the last second
// drawn) on: of several points in one second the last is kept, and a point in the second drawn
// last replaces it (the chart needs strictly increasing times; an update at its last time
// replaces that point).
export function equityPoints(
  chunk: Pick<EquityChunk, "times" | "equity">,
  after: number,
): Array<{ time: number; value: number }> {
  const points: Array<{ time: number; value: number }> = [];
  let last = after;
  chunk.times.forEach((nanos, i) => {
    const time = Math.floor(nanosToSeconds(nanos));
    const value = chunk.equity[i]!;
    if (time > last) {
      points.push({ time, value });
      last = time;
    } else if (time === last) {
      if (points.length > 0) points[points.length - 1] = { time, value };
      else points.push({ time, value });
    }
  });
  return points;
}

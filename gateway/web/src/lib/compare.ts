// Comparing two runs' equity: each as its return from its own start (runs with different capital
// compare), drawn on this run's times so both curves share the time scale, and the reasons two
// runs cannot be compared.
import { bucketIndex } from "./series";

export interface RunIdentity {
  readonly id: string;
  readonly dataset: string; // as a person reads it: the display name, else the resource name
  readonly instrument: string; // the dataset's instrument id; "" when unknown
}

// Each value's return from the first one: 0 at the run's start.
export function fromStart(values: readonly number[]): number[] {
  const base = values[0];
  if (base === undefined || !(base !== 0)) return values.map(() => Number.NaN);
  return values.map((v) => v / base - 1);
}

// The other curve's value at each of `times` (its last point at or before), NaN outside its span.
export function alignedTo(
  times: readonly number[],
  otherTimes: readonly number[],
  otherValues: readonly number[],
): number[] {
  const last = otherTimes.at(-1);
  return times.map((time) => {
    if (last === undefined || time > last) return Number.NaN;
    const i = bucketIndex(otherTimes, time);
    return i < 0 ? Number.NaN : otherValues[i]!;
  });
}

// Why `other` cannot be compared with `own`, or null when it can: runs on different instruments
// (or an instrument unknown) are different markets, whatever their datasets.
export function instrumentProblem(own: RunIdentity, other: RunIdentity): string | null {
  if (own.instrument !== "" && own.instrument === other.instrument) return null;
  const market = (r: RunIdentity) => `${r.instrument || "an unknown instrument"} (${r.dataset})`;
  const otherId = other.id.slice(0, 8);
  return `Cannot compare: this run trades ${market(own)}, run ${otherId} trades ${market(other)}.`;
}

// Why two curves cannot be drawn together, or null: they must share some time.
export function overlapProblem(
  times: readonly number[],
  otherTimes: readonly number[],
  otherId: string,
): string | null {
  if (times.length === 0 || otherTimes.length === 0) return null; // still loading
  if (otherTimes[0]! <= times.at(-1)! && times[0]! <= otherTimes.at(-1)!) return null;
  return `Cannot compare: run ${otherId.slice(0, 8)} covers no time of this run.`;
}

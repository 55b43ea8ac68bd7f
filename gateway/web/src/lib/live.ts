// The live view: its filter (from the URL), its state (the events listed and tailed, the tail's
// status) and how they read.
import { EventType, type Event } from "../gen/tapedeck/live/v1/live_pb";
import { describeError } from "../errors";
import type { TailStatus } from "./tail";

export const EVENT_TYPES = Object.values(EventType).filter(
  (v): v is EventType => typeof v === "number" && v !== EventType.UNSPECIFIED,
);

export function eventTypeName(type: EventType): string {
  return (EventType[type] ?? String(type)).toLowerCase();
}

export interface EventFilter {
  types: EventType[];
  runId: string;
  reason: string;
  symbol: string;
}

// `type=&run=&reason=&symbol=` of the URL; an unknown type is no type.
export function filterOf(params: URLSearchParams): EventFilter {
  const type = Number(params.get("type") ?? "");
  return {
    types: EVENT_TYPES.includes(type) && params.get("type") !== "" ? [type] : [],
    runId: params.get("run") ?? "",
    reason: params.get("reason") ?? "",
    symbol: params.get("symbol") ?? "",
  };
}

export type TailView = TailStatus | { kind: "stopped"; error: unknown } | { kind: "off" };

export interface LiveState {
  readonly events: readonly Event[]; // newest first
  readonly fresh: ReadonlySet<bigint>; // sequences that arrived through the tail
  readonly nextPage: string; // token of the next older page; "" at the end
  readonly tail: TailView;
}

export function initialLive(): LiveState {
  return { events: [], fresh: new Set(), nextPage: "", tail: { kind: "connecting" } };
}

export function pageListed(state: LiveState, events: readonly Event[], next: string): LiveState {
  return { ...state, events: state.events.concat(events), nextPage: next };
}

// Tailed events go on top, newest first; past `max` rows the oldest go (history stays a page away).
export function eventsArrived(state: LiveState, arrived: readonly Event[], max: number): LiveState {
  const fresh = new Set(state.fresh);
  for (const e of arrived) fresh.add(e.sequence);
  const events = arrived.slice().reverse().concat(state.events);
  return { ...state, fresh, events: events.length > max ? events.slice(0, max) : events };
}

export function tailChanged(state: LiveState, tail: TailView): LiveState {
  return { ...state, tail };
}

// Everything after the newest listed event comes through the tail: nothing missed, nothing twice.
export function newestSequence(events: readonly Event[]): bigint {
  return events.reduce((max, e) => (e.sequence > max ? e.sequence : max), 0n);
}

export function tailLabel(tail: TailView): { state: string; text: string } {
  switch (tail.kind) {
    case "live":
      return { state: "live", text: "● live" };
    case "connecting":
      return { state: "connecting", text: "connecting…" };
    case "retrying":
      return {
        state: "retrying",
        text: `reconnecting in ${Math.round(tail.inMs / 1000)} s — ${describeError(tail.error)}`,
      };
    case "stopped":
      return { state: "error", text: `tail stopped — ${describeError(tail.error)}` };
    case "off":
      return { state: "error", text: "not tailing" };
  }
}

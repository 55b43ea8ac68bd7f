import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventSchema, EventType } from "../gen/tapedeck/live/v1/live_pb";
import {
  eventsArrived,
  filterOf,
  initialLive,
  newestSequence,
  pageListed,
  tailLabel,
} from "./live";

const event = (n: number) => create(EventSchema, { sequence: BigInt(n) });
const sequences = (events: readonly { sequence: bigint }[]) =>
  events.map((e) => Number(e.sequence));

describe("live state", () => {
  it("reads the filter from the URL, ignoring an unknown type", () => {
    const type = String(EventType.TRADE_BLOCKED);
    expect(filterOf(new URLSearchParams(`type=${type}&run=r1&reason=x`))).toEqual({
      types: [EventType.TRADE_BLOCKED],
      runId: "r1",
      reason: "x",
      symbol: "",
    });
    expect(filterOf(new URLSearchParams("type=999")).types).toEqual([]);
    expect(filterOf(new URLSearchParams("type=")).types).toEqual([]);
  });

  it("appends older pages and puts tailed events on top, newest first, capped", () => {
    let state = pageListed(initialLive(), [event(5), event(4)], "next");
    expect(state.nextPage).toBe("next");
    state = eventsArrived(state, [event(6), event(7)], 3);
    expect(sequences(state.events)).toEqual([7, 6, 5]);
    expect([...state.fresh]).toEqual([6n, 7n]);
    expect(newestSequence(state.events)).toBe(7n);
    expect(newestSequence([])).toBe(0n);
  });

  it("labels the tail's status", () => {
    expect(tailLabel({ kind: "live" })).toEqual({ state: "live", text: "● live" });
    const retrying = {
      kind: "retrying",
      inMs: 1500,
      failures: 1,
      error: new Error("down"),
    } as const;
    expect(tailLabel(retrying)).toEqual({ state: "retrying", text: "reconnecting in 2 s — down" });
    expect(tailLabel({ kind: "stopped", error: new Error("no") }).text).toBe("tail stopped — no");
    expect(tailLabel({ kind: "off" })).toEqual({ state: "error", text: "not tailing" });
  });
});

import { describe, expect, it } from "vitest";
import { Tail, type TailBatch, type TailStatus } from "./tail";

interface Ev {
  seq: bigint;
}
const ev = (n: number): Ev => ({ seq: BigInt(n) });

// A server scripted per connection: each connection yields batches then either throws or ends.
function scripted(connections: Array<{ batches: TailBatch<Ev>[]; fail?: Error }>) {
  const afters: bigint[] = [];
  let index = 0;
  async function* subscribe(after: bigint): AsyncIterable<TailBatch<Ev>> {
    afters.push(after);
    const connection = connections[index++];
    if (connection === undefined) {
      await new Promise(() => undefined); // hang like a quiet live stream
      return;
    }
    for (const batch of connection.batches) yield batch;
    if (connection.fail !== undefined) throw connection.fail;
  }
  return { subscribe, afters };
}

describe("Tail", () => {
  it("resumes from its cursor after a break and never delivers an event twice", async () => {
    const server = scripted([
      { batches: [{ events: [ev(1), ev(2)], cursor: 2n }], fail: new Error("reset") },
      // The server replays 2 (at-least-once) and continues.
      {
        batches: [
          { events: [ev(2), ev(3)], cursor: 3n },
          { events: [], cursor: 7n },
        ],
        fail: new Error("reset"),
      },
      { batches: [{ events: [ev(8)], cursor: 8n }] },
    ]);
    const seen: bigint[] = [];
    const sleeps: number[] = [];
    const statuses: TailStatus["kind"][] = [];
    const tail = new Tail<Ev>(
      {
        subscribe: server.subscribe,
        sequenceOf: (e) => e.seq,
        onEvents: (events) => {
          seen.push(...events.map((e) => e.seq));
          if (seen.includes(8n)) tail.stop();
        },
        onStatus: (s) => statuses.push(s.kind),
        sleep: async (ms) => {
          sleeps.push(ms);
        },
      },
      0n,
    );
    await tail.run();
    expect(seen).toEqual([1n, 2n, 3n, 8n]);
    // Heartbeat cursors move the resume point too.
    expect(server.afters).toEqual([0n, 2n, 7n]);
    // Each connection delivered data, so the failure count resets: always the 1 s base.
    expect(sleeps).toEqual([1000, 1000]);
    expect(statuses).toContain("retrying");
  });

  it("backs off 1 s, x1.5, capped at 30 s while the server stays down", async () => {
    const failures = Array.from({ length: 12 }, () => ({ batches: [], fail: new Error("down") }));
    const server = scripted(failures);
    const sleeps: number[] = [];
    const tail = new Tail<Ev>(
      {
        subscribe: server.subscribe,
        sequenceOf: (e) => e.seq,
        onEvents: () => undefined,
        sleep: async (ms) => {
          sleeps.push(ms);
          if (sleeps.length === 12) tail.stop();
        },
      },
      5n,
    );
    await tail.run();
    expect(sleeps.slice(0, 4)).toEqual([1000, 1500, 2250, 3375]);
    expect(Math.max(...sleeps)).toBe(30000);
    expect(new Set(server.afters)).toEqual(new Set([5n]));
  });

  it("stops on a fatal error", async () => {
    const fatal = new Error("permission denied");
    const server = scripted([{ batches: [], fail: fatal }]);
    const tail = new Tail<Ev>(
      {
        subscribe: server.subscribe,
        sequenceOf: (e) => e.seq,
        onEvents: () => undefined,
        isFatal: (e) => e === fatal,
      },
      0n,
    );
    expect(await tail.run()).toBe(fatal);
  });
});

// A live tail that survives broken streams: reconnects with exponential backoff and resumes from
// its cursor, delivering every event exactly once in sequence order.
import { reconnectDelay } from "../backoff";

export interface TailBatch<E> {
  events: E[];
  cursor: bigint;
}

export type TailStatus =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "retrying"; inMs: number; failures: number; error: unknown };

export interface TailOptions<E> {
  // Opens the stream of events strictly after `after`.
  subscribe: (after: bigint, signal: AbortSignal) => AsyncIterable<TailBatch<E>>;
  sequenceOf: (event: E) => bigint;
  onEvents: (events: E[]) => void;
  onStatus?: (status: TailStatus) => void;
  // Errors that retrying cannot fix (bad filter, no permission) end the tail.
  isFatal?: (error: unknown) => boolean;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  delay?: (failures: number) => number;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

export class Tail<E> {
  cursor: bigint;
  private readonly controller = new AbortController();
  private failures = 0;

  constructor(
    private readonly options: TailOptions<E>,
    after: bigint,
  ) {
    this.cursor = after;
  }

  stop(): void {
    this.controller.abort();
  }

  get stopped(): boolean {
    return this.controller.signal.aborted;
  }

  // Runs until stop() or a fatal error (returned).
  async run(): Promise<unknown> {
    const { signal } = this.controller;
    const sleep = this.options.sleep ?? abortableSleep;
    const delay = this.options.delay ?? reconnectDelay;
    while (!signal.aborted) {
      this.options.onStatus?.({ kind: "connecting" });
      try {
        let first = true;
        for await (const batch of this.options.subscribe(this.cursor, signal)) {
          if (signal.aborted) return null;
          if (first) {
            first = false;
            this.failures = 0;
            this.options.onStatus?.({ kind: "live" });
          }
          this.accept(batch);
        }
        // The server ended the stream cleanly (e.g. a restart): resume at once.
        if (first) this.failures += 1;
      } catch (error) {
        if (signal.aborted) return null;
        if (this.options.isFatal?.(error) === true) return error;
        this.failures += 1;
        const inMs = delay(this.failures);
        this.options.onStatus?.({ kind: "retrying", inMs, failures: this.failures, error });
        await sleep(inMs, signal);
        continue;
      }
      if (this.failures > 0) await sleep(delay(this.failures), signal);
    }
    return null;
  }

  private accept(batch: TailBatch<E>): void {
    const fresh = batch.events.filter((event) => this.options.sequenceOf(event) > this.cursor);
    for (const event of fresh) {
      const sequence = this.options.sequenceOf(event);
      if (sequence > this.cursor) this.cursor = sequence;
    }
    if (batch.cursor > this.cursor) this.cursor = batch.cursor;
    if (fresh.length > 0) this.options.onEvents(fresh);
  }
}

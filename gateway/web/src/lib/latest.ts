// Latest-wins requests: while one is in flight only the newest pending key is kept, and only the
// answer to the newest key asked is shown (a fast scrubber never queues up stale requests).
export class Latest<K, V> {
  private inFlight = false;
  private pending: { key: K } | null = null;
  private newest: K | undefined;

  constructor(
    private readonly fetch: (key: K) => Promise<V>,
    private readonly onResult: (
      key: K,
      result: { ok: true; value: V } | { ok: false; error: unknown },
    ) => void,
  ) {}

  request(key: K): void {
    this.newest = key;
    if (this.inFlight) {
      this.pending = { key };
      return;
    }
    void this.start(key);
  }

  private async start(key: K): Promise<void> {
    this.inFlight = true;
    let result: { ok: true; value: V } | { ok: false; error: unknown };
    try {
      result = { ok: true, value: await this.fetch(key) };
    } catch (error) {
      result = { ok: false, error };
    }
    this.inFlight = false;
    const next = this.pending;
    this.pending = null;
    if (next !== null && next.key !== key) {
      void this.start(next.key);
      return;
    }
    if (key === this.newest) this.onResult(key, result);
  }
}

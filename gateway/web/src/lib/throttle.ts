// At most one call per interval while triggers keep coming, and always one for the last trigger.
export interface Timers {
  now: () => number;
  setTimeout: (run: () => void, ms: number) => number;
  clearTimeout: (id: number) => void;
}

const browserTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (run, ms) => window.setTimeout(run, ms),
  clearTimeout: (id) => window.clearTimeout(id),
};

export class Throttle {
  private last = -Infinity;
  private timer = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly run: () => void,
    private readonly timers: Timers = browserTimers,
  ) {}

  trigger(): void {
    const now = this.timers.now();
    this.timers.clearTimeout(this.timer);
    if (now - this.last >= this.intervalMs) this.fire();
    else
      this.timer = this.timers.setTimeout(() => this.fire(), this.intervalMs - (now - this.last));
  }

  cancel(): void {
    this.timers.clearTimeout(this.timer);
  }

  private fire(): void {
    this.last = this.timers.now();
    this.run();
  }
}

// One call, `delayMs` after the last of a burst of triggers (the chart settles, then asks).
export class Debounce {
  private timer = 0;

  constructor(
    private readonly delayMs: number,
    private readonly run: () => void,
    private readonly timers: Timers = browserTimers,
  ) {}

  trigger(): void {
    this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(this.run, this.delayMs);
  }

  cancel(): void {
    this.timers.clearTimeout(this.timer);
  }
}

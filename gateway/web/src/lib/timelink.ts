// The price and equity charts show the same times: a range change on one moves the other, without
// echoing back, and a redraw that keeps its range can be done quietly.
export interface TimeRange {
  from: number;
  to: number;
}

export class TimeLink {
  private echoing = false;

  quietly(change: () => void): void {
    const before = this.echoing;
    this.echoing = true;
    try {
      change();
    } finally {
      this.echoing = before;
    }
  }

  follow(range: TimeRange | null, target: { setVisibleRange(range: TimeRange): void }): void {
    if (this.echoing || range === null) return;
    this.quietly(() => target.setVisibleRange(range));
  }
}

// Requests that replace each other: starting the next one cancels the one before (a newer window
// of candles makes the older one useless), and leaving the view cancels whichever is running.
export class Superseding {
  private current: AbortController | null = null;

  constructor(private readonly parent: AbortSignal) {}

  next(): AbortSignal {
    this.cancel();
    const controller = new AbortController();
    this.current = controller;
    return AbortSignal.any([this.parent, controller.signal]);
  }

  cancel(): void {
    this.current?.abort();
    this.current = null;
  }
}

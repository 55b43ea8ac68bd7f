// One state object per view. Transitions are pure functions (state in, state out) that unit tests
// reach; the components that draw a part of the state subscribe and compare the slices they draw.
export type Listener<S> = (next: S, previous: S) => void;

export class Store<S> {
  private readonly listeners = new Set<Listener<S>>();
  private readonly queue: Array<(state: S) => S> = [];
  private dispatching = false;

  constructor(private current: S) {}

  get state(): S {
    return this.current;
  }

  // Applies `transition`; listeners hear of it only when it returns a new object. An update asked
  // for by a listener runs after every listener has heard of the current one, so each listener
  // sees the changes in order.
  update(transition: (state: S) => S): void {
    this.queue.push(transition);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        const previous = this.current;
        const state = next(previous);
        if (state === previous) continue;
        this.current = state;
        for (const listener of [...this.listeners]) listener(state, previous);
      }
    } finally {
      this.dispatching = false;
      this.queue.length = 0;
    }
  }

  subscribe(listener: Listener<S>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

import { describe, expect, it } from "vitest";
import { Store } from "./store";

describe("store", () => {
  it("tells listeners the new and the previous state", () => {
    const store = new Store({ n: 1 });
    const seen: Array<[number, number]> = [];
    store.subscribe((next, previous) => seen.push([next.n, previous.n]));
    store.update((s) => ({ n: s.n + 1 }));
    expect(store.state.n).toBe(2);
    expect(seen).toEqual([[2, 1]]);
  });

  it("stays quiet when a transition returns the same state", () => {
    const store = new Store({ n: 1 });
    let calls = 0;
    store.subscribe(() => (calls += 1));
    store.update((s) => s);
    expect(calls).toBe(0);
  });

  it("runs an update asked for by a listener after every listener heard of the first", () => {
    const store = new Store({ n: 0 });
    const seen: string[] = [];
    store.subscribe((next, previous) => {
      seen.push(`a ${previous.n}->${next.n}`);
      if (next.n === 1) store.update((s) => ({ n: s.n + 10 }));
    });
    store.subscribe((next, previous) => seen.push(`b ${previous.n}->${next.n}`));
    store.update(() => ({ n: 1 }));
    expect(seen).toEqual(["a 0->1", "b 0->1", "a 1->11", "b 1->11"]);
  });

  it("stops telling a listener once it unsubscribes", () => {
    const store = new Store({ n: 0 });
    let calls = 0;
    const stop = store.subscribe(() => (calls += 1));
    store.update(() => ({ n: 1 }));
    stop();
    store.update(() => ({ n: 2 }));
    expect(calls).toBe(1);
  });
});

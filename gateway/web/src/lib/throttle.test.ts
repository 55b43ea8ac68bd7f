import { describe, expect, it } from "vitest";
import { Debounce, Throttle, type Timers } from "./throttle";

function fakeTimers() {
  let now = 0;
  let next = 1;
  const pending = new Map<number, { at: number; run: () => void }>();
  const timers: Timers = {
    now: () => now,
    setTimeout: (run, ms) => {
      pending.set(next, { at: now + ms, run });
      return next++;
    },
    clearTimeout: (id) => void pending.delete(id),
  };
  const advance = (ms: number) => {
    now += ms;
    for (const [id, task] of [...pending]) if (task.at <= now) (pending.delete(id), task.run());
  };
  return { timers, advance };
}

describe("Throttle", () => {
  it("fires at once, then at most every interval, and once more for the last trigger", () => {
    const { timers, advance } = fakeTimers();
    let calls = 0;
    const throttle = new Throttle(100, () => calls++, timers);
    throttle.trigger(); // t=0: fires
    for (let t = 0; t < 250; t += 16) (advance(16), throttle.trigger()); // a 60 Hz scrub for 250 ms
    expect(calls).toBe(3); // t=0, ~112, ~224
    advance(200); // the trailing call for where the cursor stopped
    expect(calls).toBe(4);
    advance(1000);
    expect(calls).toBe(4);
  });
});

describe("Debounce", () => {
  it("fires once, after the last trigger of a burst", () => {
    const { timers, advance } = fakeTimers();
    let calls = 0;
    const debounce = new Debounce(120, () => calls++, timers);
    for (let t = 0; t < 500; t += 16) (advance(16), debounce.trigger());
    expect(calls).toBe(0);
    advance(119);
    expect(calls).toBe(0);
    advance(1);
    expect(calls).toBe(1);
  });

  it("does not fire once cancelled", () => {
    const { timers, advance } = fakeTimers();
    let calls = 0;
    const debounce = new Debounce(120, () => calls++, timers);
    debounce.trigger();
    debounce.cancel();
    advance(1000);
    expect(calls).toBe(0);
  });
});

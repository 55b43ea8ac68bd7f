import { describe, expect, it } from "vitest";
import { alignedTo, fromStart, instrumentProblem, overlapProblem } from "./compare";

describe("comparing runs", () => {
  it("measures each curve from its own start, not from a visible bar", () => {
    const returns = fromStart([200, 210, 190]);
    [0, 0.05, -0.05].forEach((r, i) => expect(returns[i]).toBeCloseTo(r, 12));
    expect(fromStart([0, 1]).every(Number.isNaN)).toBe(true);
  });

  it("draws the other run on this run's times: its last point at or before each", () => {
    const values = alignedTo([5, 10, 15, 20, 25], [10, 18, 20], [1, 2, 3]);
    expect(values.slice(1, 4)).toEqual([1, 1, 3]);
    expect(values[0]).toBeNaN(); // before it starts
    expect(values[4]).toBeNaN(); // after it ends
  });

  it("compares runs on one instrument, whatever their datasets", () => {
    const own = { id: "aaaaaaaa1", dataset: "datasets/a", instrument: "BTCUSDT.BINANCE" };
    expect(instrumentProblem(own, { ...own, id: "bbbbbbbb2" })).toBeNull();
    expect(instrumentProblem(own, { ...own, id: "b", dataset: "datasets/b" })).toBeNull();
    expect(instrumentProblem(own, { ...own, id: "dddddddd4", instrument: "" })).toBe(
      "Cannot compare: this run trades BTCUSDT.BINANCE (datasets/a), run dddddddd trades an unknown instrument (datasets/a).",
    );
    expect(
      instrumentProblem(own, {
        id: "cccccccc3",
        dataset: "datasets/c",
        instrument: "EURUSD.SIM",
      }),
    ).toBe(
      "Cannot compare: this run trades BTCUSDT.BINANCE (datasets/a), run cccccccc trades EURUSD.SIM (datasets/c).",
    );
  });

  it("says so when the runs share no time", () => {
    expect(overlapProblem([1, 2, 3], [3, 4], "other")).toBeNull();
    expect(overlapProblem([1, 2, 3], [], "other")).toBeNull();
    expect(overlapProblem([1, 2, 3], [4, 5], "otherrun1")).toBe(
      "Cannot compare: run otherrun covers no time of this run.",
    );
  });
});

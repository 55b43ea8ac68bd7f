import { describe, expect, it } from "vitest";
import { nextDirection, sortRows } from "./sort";

describe("sortRows", () => {
  const rows = [
    { id: "a", sharpe: 1.2 },
    { id: "b", sharpe: null },
    { id: "c", sharpe: 2.5 },
    { id: "d", sharpe: -0.3 },
    { id: "e", sharpe: 1.2 },
  ];
  it("sorts both ways, keeps ties stable and blanks last", () => {
    expect(sortRows(rows, (r) => r.sharpe, "desc").map((r) => r.id)).toEqual([
      "c",
      "a",
      "e",
      "d",
      "b",
    ]);
    expect(sortRows(rows, (r) => r.sharpe, "asc").map((r) => r.id)).toEqual([
      "d",
      "a",
      "e",
      "c",
      "b",
    ]);
  });
  it("orders text naturally", () => {
    const names = [{ n: "run 10" }, { n: "run 9" }];
    expect(sortRows(names, (r) => r.n, "asc").map((r) => r.n)).toEqual(["run 9", "run 10"]);
  });
  it("toggles direction on the same column", () => {
    expect(nextDirection(null, "asc", "sharpe")).toBe("desc");
    expect(nextDirection("sharpe", "desc", "sharpe")).toBe("asc");
  });
});

import { describe, expect, it } from "vitest";
import { rowWindow } from "./virtual";

describe("rowWindow", () => {
  it("renders only what the viewport shows plus overscan", () => {
    const w = rowWindow(10_000, 20, 2000, 400, 5);
    expect(w).toEqual({ start: 95, end: 126, offsetTop: 1900, totalHeight: 200_000 });
  });
  it("clamps at both ends", () => {
    expect(rowWindow(100, 20, -50, 400, 5)).toMatchObject({ start: 0, end: 26 });
    const bottom = rowWindow(100, 20, 99_999, 400, 5);
    expect(bottom.end).toBe(100);
    expect(bottom.start).toBe(75);
  });
  it("handles empty and tiny tables", () => {
    expect(rowWindow(0, 20, 0, 400)).toEqual({ start: 0, end: 0, offsetTop: 0, totalHeight: 0 });
    expect(rowWindow(3, 20, 0, 400)).toMatchObject({ start: 0, end: 3 });
  });
});

import { describe, expect, it } from "vitest";
import { gridSize, parseAxis, parseParam, type ParamSpec } from "./params";

const fast: ParamSpec = { name: "fast_period", type: "int", min: 2, max: 500 };
const size: ParamSpec = { name: "trade_size", type: "double", min: 0.001, max: 1000 };

describe("parseParam", () => {
  it("keeps values within the strategy's bounds", () => {
    expect(parseParam(fast, "10")).toEqual({ ok: true, value: { case: "intValue", value: 10n } });
    expect(parseParam(fast, "1")).toEqual({ ok: false, error: "fast_period: at least 2" });
    expect(parseParam(fast, "501")).toEqual({ ok: false, error: "fast_period: at most 500" });
    expect(parseParam(fast, "2.5").ok).toBe(false);
    expect(parseParam(size, "0.5")).toEqual({
      ok: true,
      value: { case: "doubleValue", value: 0.5 },
    });
  });
  it("reads booleans and choices", () => {
    expect(parseParam({ name: "allow_short", type: "bool" }, "true")).toMatchObject({ ok: true });
    expect(parseParam({ name: "mode", type: "string", choices: ["a", "b"] }, "c").ok).toBe(false);
  });
});

describe("parseAxis", () => {
  it("reads lists and inclusive ranges", () => {
    const list = parseAxis(fast, "5, 10,20");
    expect(list.ok && list.value.map((v) => v.value)).toEqual([5n, 10n, 20n]);
    const range = parseAxis(fast, "10:50:10");
    expect(range.ok && range.value.map((v) => v.value)).toEqual([10n, 20n, 30n, 40n, 50n]);
    const decimals = parseAxis(size, "0.1:0.3:0.1");
    expect(decimals.ok && decimals.value.map((v) => v.value)).toEqual([0.1, 0.2, 0.3]);
  });
  it("refuses values out of bounds and runaway grids", () => {
    expect(parseAxis(fast, "1:10:1")).toEqual({ ok: false, error: "fast_period: at least 2" });
    expect(parseAxis(fast, "2:500000:1", 100).ok).toBe(false);
    expect(parseAxis(fast, "10:5:1").ok).toBe(false);
  });
  it("counts the grid", () => {
    expect(
      gridSize(
        [
          [1, 2, 3],
          [1, 2],
        ].map((a) => a.map((v) => ({ case: "intValue" as const, value: BigInt(v) }))),
      ),
    ).toBe(6);
  });
});

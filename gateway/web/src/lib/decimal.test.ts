import { describe, expect, it } from "vitest";
import { compareDecimal, formatDecimal, isDecimal, signOf, subtractDecimal } from "./decimal";

describe("formatDecimal", () => {
  it("groups thousands without touching the digits", () => {
    expect(formatDecimal("1234567.891234567890123456")).toBe("1,234,567.891234567890123456");
    expect(formatDecimal("10.123456789012345678", { group: false })).toBe("10.123456789012345678");
  });
  it("rounds half away from zero on the digits, beyond float precision", () => {
    expect(formatDecimal("0.125", { maxFractionDigits: 2 })).toBe("0.13");
    expect(formatDecimal("-0.125", { maxFractionDigits: 2 })).toBe("-0.13");
    expect(formatDecimal("9999.995", { maxFractionDigits: 2 })).toBe("10,000");
    expect(formatDecimal("12345678901234567.89", { maxFractionDigits: 1 })).toBe(
      "12,345,678,901,234,567.9",
    );
  });
  it("pads, signs and normalises", () => {
    expect(formatDecimal("5", { minFractionDigits: 2 })).toBe("5.00");
    expect(formatDecimal("007.500")).toBe("7.5");
    expect(formatDecimal("-0.000")).toBe("0");
    expect(formatDecimal("-0.001", { maxFractionDigits: 2 })).toBe("0");
    expect(formatDecimal("3", { plusSign: true })).toBe("+3");
    expect(formatDecimal("not a number")).toBe("not a number");
  });
});

describe("decimal arithmetic", () => {
  it("compares and subtracts exactly", () => {
    expect(compareDecimal("0.1", "0.10")).toBe(0);
    expect(compareDecimal("-2", "1.5")).toBe(-1);
    expect(compareDecimal("10.000000000000000001", "10")).toBe(1);
    expect(subtractDecimal("1.5", "1.25")).toBe("0.25");
    expect(subtractDecimal("0.1", "0.3")).toBe("-0.2");
    expect(subtractDecimal("10.123456789012345678", "10.123456789012345678")).toBe("0");
  });
  it("reads the sign", () => {
    expect(signOf("-0.0")).toBe(0);
    expect(signOf("-0.01")).toBe(-1);
    expect(signOf("+2")).toBe(1);
    expect(isDecimal("1e5")).toBe(false);
    expect(isDecimal(".5")).toBe(true);
  });
});

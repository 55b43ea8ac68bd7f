import { describe, expect, it } from "vitest";
import { formatRate, formatRatio, formatSeconds } from "./overview";

describe("stack status formatting", () => {
  it("shows rates, latencies and ratios at a readable precision", () => {
    expect(formatRate(0.25)).toBe("0.25");
    expect(formatRate(123.4)).toBe("123");
    expect(formatSeconds(0)).toBe("—");
    expect(formatSeconds(0.0042)).toBe("4.2 ms");
    expect(formatSeconds(2.5)).toBe("2.50 s");
    expect(formatRatio(0)).toBe("0.0 %");
    expect(formatRatio(0.0012)).toBe("0.12 %");
    expect(formatRatio(0.25)).toBe("25.0 %");
  });
});

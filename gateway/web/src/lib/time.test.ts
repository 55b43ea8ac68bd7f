import { describe, expect, it } from "vitest";
import {
  formatDuration,
  formatPercent,
  formatTime,
  secondsToTimestamp,
  timestampSeconds,
} from "./time";

describe("time formatting", () => {
  it("shows UTC times", () => {
    expect(formatTime(1_704_067_200)).toBe("2024-01-01 00:00:00");
    expect(formatTime(1_704_067_260, false)).toBe("2024-01-01 00:01");
    expect(formatTime(null)).toBe("—");
  });
  it("converts timestamps both ways", () => {
    expect(timestampSeconds({ seconds: 10n, nanos: 500_000_000 })).toBe(10.5);
    expect(secondsToTimestamp(10.25)).toEqual({ seconds: 10n, nanos: 250_000_000 });
  });
  it("shows durations and percents", () => {
    expect(formatDuration(42)).toBe("42 s");
    expect(formatDuration(3725)).toBe("1 h 2 min");
    expect(formatPercent(0.1234)).toBe("12.34%");
    expect(formatPercent(NaN)).toBe("—");
  });
});

import { describe, expect, it } from "vitest";
import {
  formatDuration,
  formatNumber,
  formatPercent,
  loadZone,
  setZone,
  wallClock,
  zoneLabel,
  formatTime,
  secondsToTimestamp,
  timestampSeconds,
} from "./time";

describe("time formatting", () => {
  it("shows UTC times", () => {
    expect(formatTime(1_704_067_200)).toBe("2024-01-01 00:00:00 UTC");
    expect(formatTime(1_704_067_260, false)).toBe("2024-01-01 00:01 UTC");
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
    expect(formatPercent(-0.00001)).toBe("0.00%");
    expect(formatPercent(-0.1234)).toBe("-12.34%");
    expect(formatNumber(1234567.891)).toBe("1,234,567.89");
    expect(formatNumber(-0.004)).toBe("0.00");
    expect(formatNumber(49266.7673506, 2)).toBe("49,266.77");
  });
});

describe("time zone setting", () => {
  it("shows UTC by default and the browser's zone, labelled, when chosen", () => {
    const store = new Map<string, string>();
    const storage = {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
    };
    expect(loadZone(storage)).toBe("utc");
    setZone("local", storage);
    expect(loadZone(storage)).toBe("local");
    const offset = -new Date(1_704_067_200_000).getTimezoneOffset();
    expect(zoneLabel(1_704_067_200)).toMatch(/^UTC[+-]\d\d:\d\d$/);
    const local = new Date((1_704_067_200 + offset * 60) * 1000).toISOString();
    expect(wallClock(1_704_067_200)).toBe(`${local.slice(0, 10)} ${local.slice(11, 19)}`);
    setZone("utc", storage);
    expect(zoneLabel()).toBe("UTC");
  });
});

import { describe, expect, it } from "vitest";
import { paramsText, progressView, shortId } from "./runs";

describe("run rows", () => {
  it("shortens ids and lists parameters in name order", () => {
    expect(shortId("backtests/2ff480a46f7d4ca48b68a62601cb4687")).toBe("2ff480a4");
    expect(shortId("backtests/abc")).toBe("abc");
    expect(paramsText({ slow: "20", fast: "10" })).toBe("fast=10 slow=20");
  });
  it("labels progress by phase", () => {
    expect(progressView("queued", 0, null)).toEqual({ percent: 0, label: "queued" });
    expect(progressView("running", 42.4, 75)).toEqual({
      percent: 42.4,
      label: "42% · 1 min 15 s left",
    });
    expect(progressView("succeeded", 97, null)).toEqual({ percent: 100, label: "100%" });
    expect(progressView("failed", 130, null)).toEqual({ percent: 100, label: "100%" });
    expect(progressView("running", NaN, null).percent).toBe(0);
  });
});
